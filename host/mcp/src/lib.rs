//! toolshed-mcp: the MCP server, serving a host's tools to agents over any
//! rmcp transport (stdio, streamable HTTP).
//!
//! `tools/list` comes from the reflected schemas; `tools/call` returns the
//! result or error object as structured content plus text, with `isError`
//! for error objects; progress is sent while a call waits when the client
//! asked for it; a change of the tool list after a hot swap is announced;
//! a cancelled call's instance is dropped. One session is one chat, unless a
//! request names another in `_meta.chat_id`.

#![deny(missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, InitializeResult, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ServerCapabilities, Tool as McpTool,
};
use rmcp::service::{NotificationContext, RequestContext, RoleServer};
use rmcp::{ErrorData as McpError, ServerHandler, ServiceExt};
use serde_json::Value;

use toolshed_runtime::{Arguments, CallContext, CallOptions, Tool, Toolshed};

/// How long `tools/list` waits for plugin installs under way.
pub const LIST_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Serves a [`Toolshed`]'s tools over MCP.
#[derive(Clone)]
pub struct McpServer {
    host: Arc<Toolshed>,
    context: CallContext,
}

impl McpServer {
    /// A server for `host` whose calls run as `context` (the session's chat).
    pub fn new(host: Arc<Toolshed>, context: CallContext) -> Self {
        Self { host, context }
    }

    /// Serves MCP on stdin and stdout until the client goes away.
    ///
    /// # Errors
    ///
    /// When the transport fails.
    pub async fn serve_stdio(self) -> anyhow::Result<()> {
        self.serve(rmcp::transport::stdio()).await?.waiting().await?;
        Ok(())
    }

    /// Serves MCP over streamable HTTP at `addr` (path `/mcp`), each session
    /// its own chat. Only loopback addresses are accepted: the tools act on
    /// the owner's infrastructure and there is no authentication.
    ///
    /// # Errors
    ///
    /// When `addr` is not loopback or cannot be bound.
    pub async fn serve_http(host: Arc<Toolshed>, addr: SocketAddr, owner: CallContext) -> anyhow::Result<()> {
        anyhow::ensure!(addr.ip().is_loopback(), "{addr} is not a loopback address; toolshed serves HTTP on loopback only");
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tracing::info!("serving MCP on http://{}/mcp", listener.local_addr()?);
        Self::serve_listener(host, listener, owner).await
    }

    /// Serves MCP over streamable HTTP on an already bound listener.
    ///
    /// # Errors
    ///
    /// When accepting connections fails.
    pub async fn serve_listener(host: Arc<Toolshed>, listener: tokio::net::TcpListener, owner: CallContext) -> anyhow::Result<()> {
        use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
        use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
        let service = StreamableHttpService::new(
            move || {
                let chat = CallContext { chat_id: uuid::Uuid::new_v4().to_string(), ..owner.clone() };
                Ok(McpServer::new(host.clone(), chat))
            },
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default(),
        );
        loop {
            let (stream, _) = listener.accept().await?;
            let service = hyper_util::service::TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await {
                    tracing::debug!("MCP HTTP connection: {e}");
                }
            });
        }
    }
}

/// A tool as MCP lists it.
pub fn mcp_tool(tool: &Tool) -> McpTool {
    let object = |schema: &Value| Arc::new(schema.as_object().cloned().unwrap_or_default());
    McpTool::new(tool.name.clone(), tool.description.clone(), object(&tool.input_schema)).with_raw_output_schema(object(&tool.output_schema))
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> InitializeResult {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().enable_tool_list_changed().build())
            .with_instructions("Tools to find templates and create, start and stop this chat's development workspace.")
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        // Announce tool-list changes to this session for as long as it lasts.
        let mut changes = self.host.subscribe();
        let peer = context.peer;
        tokio::spawn(async move {
            while changes.recv().await.is_ok() {
                if peer.notify_tool_list_changed().await.is_err() {
                    break;
                }
            }
        });
    }

    async fn list_tools(&self, _request: Option<PaginatedRequestParams>, _context: RequestContext<RoleServer>) -> Result<ListToolsResult, McpError> {
        // Plugins install in the background, so `initialize` never waits for
        // them; give installs under way a moment before the first listing.
        // A plugin that takes longer is announced with list_changed.
        self.host.installs_settled(LIST_GRACE).await;
        Ok(ListToolsResult::with_all_items(self.host.tools().iter().map(|t| mcp_tool(t)).collect()))
    }

    async fn call_tool(&self, request: CallToolRequestParams, context: RequestContext<RoleServer>) -> Result<CallToolResponse, McpError> {
        let mut cx = self.context.clone();
        if let Some(chat) = context.meta.get("chat_id").and_then(Value::as_str) {
            cx.chat_id = chat.to_string();
        }
        let arguments = Value::Object(request.arguments.unwrap_or_default());

        // This call's progress, if the client asked for it, on a path of its
        // own that keeps only the latest report: a flood in another call, or
        // a client slow to read, never builds a queue.
        let (sink, forwarder) = match context.meta.get_progress_token() {
            Some(token) => {
                let (sink, mut latest) = toolshed_runtime::progress::latest();
                let peer = context.peer.clone();
                let forwarder = tokio::spawn(async move {
                    while latest.changed().await.is_ok() {
                        let Some(progress) = latest.borrow_and_update().clone() else { continue };
                        let note = ProgressNotificationParam::new(token.clone(), progress.sequence as f64).with_message(progress.message);
                        if peer.notify_progress(note).await.is_err() {
                            break;
                        }
                    }
                });
                (Some(sink), Some(forwarder))
            }
            None => (None, None),
        };

        let options = CallOptions { progress: sink, ..CallOptions::default() };
        let call = async {
            // A tool of a plugin still installing is waited for, not refused.
            self.host.wait_for_tool(&request.name).await;
            self.host.call_with(&cx, &request.name, Arguments::Json(&arguments), options).await
        };
        let outcome = tokio::select! {
            out = call => Some(out),
            // Dropping the call drops its store: the instance ends here.
            _ = context.ct.cancelled() => None,
        };
        if let Some(forwarder) = forwarder {
            forwarder.abort();
        }
        let Some(out) = outcome else {
            return Err(McpError::internal_error("the call was cancelled", None));
        };
        let text = serde_json::to_string_pretty(&out.value).unwrap_or_default();
        let mut result = if out.is_error { CallToolResult::error(vec![ContentBlock::text(text)]) } else { CallToolResult::success(vec![ContentBlock::text(text)]) };
        result.structured_content = Some(out.value);
        Ok(result.into())
    }
}
