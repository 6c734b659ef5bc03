//! toolshed-mcp: the MCP server, serving a host's tools to agents over any
//! rmcp transport: stdio, or streamable HTTP ([`http`]).
//!
//! `tools/list` comes from the reflected schemas; `tools/call` returns the
//! result or error object as structured content plus text, with `isError`
//! for error objects; progress is sent while a call waits when the client
//! asked for it; a change of the tool list after a hot swap is announced;
//! a cancelled call's instance is dropped.
//!
//! Every call runs as the principal its transport establishes: over stdio
//! the configured local user, over HTTP the authenticated one. A call's
//! chat is the one `_meta.chat_id` names (always one of the caller's own:
//! chats are keyed by owner and id), else the session's, else the caller's
//! default chat, so a client without sessions reaches the same chat on
//! every call.

#![deny(missing_docs)]

pub mod audit;
pub mod auth;
pub mod client;
mod content;
pub mod offers;
pub mod http;
pub mod identity;
pub mod stdio;

/// TLS setup, shared with every crate of the host.
pub use toolshed_runtime::tls;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult, GetPromptRequestParams, GetPromptResponse, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, PromptsCapability, ReadResourceRequestParams, ReadResourceResponse, ResourcesCapability,
    SubscribeRequestParams, UnsubscribeRequestParams, CallToolResult, CancelTaskParams, ContentBlock, CreateTaskResult, DetailedTask, GetTaskParams,
    GetTaskResult, Implementation, InitializeResult, ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ServerCapabilities, Task as McpTask,
    ProtocolVersion, TaskPayload, TaskStatus as McpTaskStatus, Tool as McpTool,
};
// Logging is in every revision served; rmcp marks it deprecated for a draft.
#[allow(deprecated)]
use rmcp::model::SetLevelRequestParams;
use rmcp::service::{NotificationContext, RequestContext, RoleServer};
use rmcp::{ErrorData as McpError, ServerHandler, ServiceExt};
use serde_json::Value;
use toolshed_runtime::chats::{ChatDirectory, default_chat, is_chat_id};
use toolshed_runtime::error::{Category, HostError};
use toolshed_runtime::tasks::{TaskRecord, TaskState, Tasks};
use toolshed_runtime::{Arguments, CallOptions, Tool, ToolOutput, Toolshed};

pub use identity::Principal;

/// The protocol revisions served: every revision rmcp knows but 2025-03-26
/// (see [`McpServer::supported_protocol_versions`]).
pub const SUPPORTED_PROTOCOL_VERSIONS: &[ProtocolVersion] =
    &[ProtocolVersion::V_2024_11_05, ProtocolVersion::V_2025_06_18, ProtocolVersion::V_2025_11_25, ProtocolVersion::V_2026_07_28];

/// How long `tools/list` waits for plugin installs under way.
pub const LIST_GRACE: Duration = Duration::from_secs(2);

/// How long a client without tasks waits for a call, unless configured:
/// under the 60 s request timeout common MCP clients use by default.
pub const DEFAULT_WAIT_BUDGET: Duration = Duration::from_secs(50);

/// How long a call made as a task may take before the client gets the task
/// instead of the answer.
pub const TASK_GRACE: Duration = Duration::from_secs(1);

/// How long a call's answer waits for its log records to be sent.
pub const LOG_FLUSH: Duration = Duration::from_secs(1);

/// How often clients are asked to poll a task.
pub const TASK_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// How many calls one principal may have running at once, unless configured.
pub const DEFAULT_CALLS_PER_PRINCIPAL: usize = 32;

/// What every session of a server shares.
pub struct ServerSettings {
    /// How the server names itself in `serverInfo`.
    pub name: String,
    /// The version it gives there.
    pub version: String,
    /// What the server tells a client about its tools when it initializes;
    /// the embedder writes it, since only it knows which plugins it serves.
    pub instructions: Option<String>,
    /// Who calls when the transport establishes no one: the local user over
    /// stdio, or over HTTP on loopback without authentication.
    pub principal: Principal,
    /// Who owns which chat; without one, chats are not checked (one user).
    pub chats: Option<Arc<dyn ChatDirectory>>,
    /// How many calls one principal may have running at once.
    pub calls_per_principal: usize,
    /// How long callers without tasks wait for an answer, told to the tools.
    pub wait_budget: Option<Duration>,
    /// Where calls made as tasks run; without it, the server does not offer
    /// the tasks extension.
    pub tasks: Option<Arc<Tasks>>,
    /// Sessions alive and their list-change watchers, counted.
    pub sessions: Arc<SessionGauge>,
    /// Where the audit goes (default: standard error).
    pub audit: Arc<audit::AuditLog>,
    running: Mutex<HashMap<String, usize>>,
    claimed: Mutex<Claims>,
}

/// How many sessions a server holds, and how many of them watch the tool
/// list for changes: both must come back down as sessions end.
#[derive(Debug, Default)]
pub struct SessionGauge {
    open: std::sync::atomic::AtomicUsize,
    watching: std::sync::atomic::AtomicUsize,
}

impl SessionGauge {
    /// Sessions alive over HTTP (legacy sessions, from `initialize` to their
    /// end).
    pub fn open(&self) -> usize {
        self.open.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sessions whose list-change watcher is running.
    pub fn watching(&self) -> usize {
        self.watching.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn opened(&self) {
        self.open.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn closed(&self) {
        self.open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn watch(self: &Arc<Self>) -> Watching {
        self.watching.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Watching(self.clone())
    }
}

/// A running list-change watcher; dropping it ends the count.
struct Watching(Arc<SessionGauge>);

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.watching.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How many (owner, chat) claims a server remembers before it forgets them
/// all and asks the directory again.
const REMEMBERED_CLAIMS: usize = 4_096;

/// The chats each owner has claimed through this server, looked up by
/// borrowed names: checking costs no allocation on a call's path.
#[derive(Default)]
struct Claims {
    by_owner: HashMap<String, HashSet<String>>,
    count: usize,
}

impl Claims {
    fn contains(&self, owner: &str, chat: &str) -> bool {
        self.by_owner.get(owner).is_some_and(|chats| chats.contains(chat))
    }

    fn insert(&mut self, owner: &str, chat: &str) {
        if self.count >= REMEMBERED_CLAIMS {
            *self = Claims::default();
        }
        if self.by_owner.entry(owner.to_string()).or_default().insert(chat.to_string()) {
            self.count += 1;
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.count
    }
}

impl ServerSettings {
    /// Settings for calls by `principal`, chats checked by `chats`.
    pub fn new(principal: Principal, chats: Option<Arc<dyn ChatDirectory>>) -> Self {
        Self {
            name: "toolshed".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            instructions: None,
            principal,
            chats,
            calls_per_principal: DEFAULT_CALLS_PER_PRINCIPAL,
            wait_budget: None,
            tasks: None,
            sessions: Arc::default(),
            audit: Arc::new(audit::AuditLog::stderr()),
            running: Mutex::new(HashMap::new()),
            claimed: Mutex::new(Claims::default()),
        }
    }

    /// Whether `owner` has claimed `chat` through this server before. An
    /// owner's chat stays theirs, so a claim that succeeded once holds;
    /// remembering it saves the directory a look per call.
    fn claimed_before(&self, owner: &str, chat: &str) -> bool {
        self.claimed.lock().unwrap_or_else(|e| e.into_inner()).contains(owner, chat)
    }

    fn remember_claim(&self, owner: &str, chat: &str) {
        self.claimed.lock().unwrap_or_else(|e| e.into_inner()).insert(owner, chat);
    }

    /// Counts a call of `owner` as running, unless the owner is at the cap.
    fn admit(self: &Arc<Self>, owner: &str) -> Option<Running> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let count = running.entry(owner.to_string()).or_default();
        if *count >= self.calls_per_principal {
            return None;
        }
        *count += 1;
        Some(Running { settings: self.clone(), owner: owner.to_string() })
    }
}

/// A running call of one principal; dropping it ends the count.
struct Running {
    settings: Arc<ServerSettings>,
    owner: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut running = self.settings.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = running.get_mut(&self.owner) {
            *count -= 1;
            if *count == 0 {
                running.remove(&self.owner);
            }
        }
    }
}

/// Serves a [`Toolshed`]'s tools over MCP: one per session (or per request,
/// for clients without sessions).
#[derive(Clone)]
pub struct McpServer {
    host: Arc<Toolshed>,
    settings: Arc<ServerSettings>,
    session_chat: String,
    /// Dropped with the last clone of this server, which the transport
    /// drops when the session ends: what the session started ends with it.
    alive: Arc<tokio::sync::watch::Sender<()>>,
    /// The level this session asked for with `logging/setLevel`.
    log_level: Arc<client::SessionLevel>,
    /// The resources this session is subscribed to.
    subscriptions: Arc<offers::Subscriptions>,
}

impl McpServer {
    /// A server for `host` under `settings`, whose session uses
    /// `session_chat` (default: a new chat).
    pub fn new(host: Arc<Toolshed>, settings: Arc<ServerSettings>, session_chat: Option<String>) -> Self {
        let session_chat = session_chat.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        Self { host, settings, session_chat, alive: Arc::new(tokio::sync::watch::channel(()).0), log_level: Arc::default(), subscriptions: Arc::default() }
    }

    /// Serves MCP on stdin and stdout until the client goes away.
    ///
    /// # Errors
    ///
    /// When the transport fails.
    pub async fn serve_stdio(self) -> anyhow::Result<()> {
        self.serve(stdio::streams()).await?.waiting().await?;
        Ok(())
    }

    /// Who calls: the principal the transport established, else the
    /// configured one.
    fn principal(&self, context: &RequestContext<RoleServer>) -> Principal {
        let parts = context.extensions.get::<::http::request::Parts>();
        parts.and_then(|p| p.extensions.get::<Principal>()).cloned().unwrap_or_else(|| self.settings.principal.clone())
    }

    /// The principal and chat of a call, or the error object that refuses it.
    async fn caller(&self, context: &RequestContext<RoleServer>) -> Result<(Principal, String), HostError> {
        let parts = context.extensions.get::<::http::request::Parts>();
        let principal = self.principal(context);
        // Stdio is one session; over HTTP a legacy session names itself in
        // a header, and a request without one belongs to no session.
        let in_session = parts.is_none_or(|p| p.headers.contains_key("mcp-session-id"));
        let chat = match context.meta.get("chat_id") {
            Some(Value::String(id)) if is_chat_id(id) => id.clone(),
            Some(other) => {
                return Err(HostError::new(
                    Category::ValidationFailed,
                    "INVALID_CHAT_ID",
                    format!("_meta.chat_id {} is not a chat id: use 1 to 128 letters, digits, '-', '_', '.' or ':'", toolshed_runtime::text::clip(&other.to_string(), 80)),
                ));
            }
            None if in_session => self.session_chat.clone(),
            None => default_chat(&principal.owner_id),
        };
        if let Some(chats) = &self.settings.chats
            && !self.settings.claimed_before(&principal.owner_id, &chat)
        {
            // Chats are keyed by (owner, id): the id is always the caller's
            // own chat, refused only for a quota or a failing directory.
            match chats.claim(&principal.context(&chat)).await {
                Ok(()) => self.settings.remember_claim(&principal.owner_id, &chat),
                Err(refused) => return Err(refused.error(&chat)),
            }
        }
        Ok((principal, chat))
    }
}

/// A tool as MCP lists it.
pub fn mcp_tool(tool: &Tool) -> McpTool {
    let object = |schema: &Value| Arc::new(schema.as_object().cloned().unwrap_or_default());
    McpTool::new(tool.name.clone(), tool.description.clone(), object(&tool.input_schema)).with_raw_output_schema(object(&tool.output_schema))
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> InitializeResult {
        let capabilities = ServerCapabilities::builder().enable_tools().enable_tool_list_changed();
        let mut capabilities = if self.settings.tasks.is_some() { capabilities.enable_tasks().build() } else { capabilities.build() };
        // Plugins' log records reach the caller that asks for them
        // (`logging/setLevel`); completion answers with no suggestions.
        #[allow(deprecated)]
        {
            capabilities.logging = Some(Default::default());
        }
        capabilities.completions = Some(Default::default());
        // Resources and prompts come from plugins, which may arrive after
        // this session starts: both are always offered, listed empty when
        // no plugin has any.
        let mut resources = ResourcesCapability::default();
        resources.subscribe = Some(true);
        capabilities.resources = Some(resources);
        capabilities.prompts = Some(PromptsCapability::default());
        let info = InitializeResult::new(capabilities).with_server_info(Implementation::new(&self.settings.name, &self.settings.version));
        match &self.settings.instructions {
            Some(instructions) => info.with_instructions(instructions.clone()),
            None => info,
        }
    }

    /// The revisions whose every MUST this server meets. 2025-03-26 is left
    /// out: it requires receiving JSON-RPC batches, which no other revision
    /// has and this server does not take. A client asking for it is offered
    /// the newest revision instead, as version negotiation provides.
    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(SUPPORTED_PROTOCOL_VERSIONS)
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        // Announce tool-list changes to this session for as long as it
        // lasts, and not a moment longer: the watcher holds the session's
        // peer, and with it the client's initialize parameters, so it ends
        // when the session does, not at the next change it fails to send.
        let mut changes = self.host.subscribe();
        let mut session = self.alive.subscribe();
        let watching = self.settings.sessions.watch();
        let peer = context.peer;
        tokio::spawn(async move {
            let _watching = watching;
            loop {
                tokio::select! {
                    change = changes.recv() => match change {
                        // Missed changes are one change to announce.
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            if peer.notify_tool_list_changed().await.is_err() {
                                break;
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    },
                    // The server's last clone is gone: the session ended.
                    _ = session.changed() => break,
                }
            }
        });
    }

    #[allow(deprecated)]
    async fn set_level(&self, request: SetLevelRequestParams, _context: RequestContext<RoleServer>) -> Result<(), McpError> {
        self.log_level.set(request.level);
        Ok(())
    }

    /// No argument of a served prompt or resource template has values to
    /// suggest: the answer is an empty list, which the protocol allows.
    async fn complete(&self, _request: CompleteRequestParams, _context: RequestContext<RoleServer>) -> Result<CompleteResult, McpError> {
        Ok(CompleteResult::default())
    }

    async fn list_resources(&self, _request: Option<PaginatedRequestParams>, context: RequestContext<RoleServer>) -> Result<ListResourcesResult, McpError> {
        let cx = self.offer_caller(&context).await?;
        offers::list_resources(&self.host, &cx).await
    }

    async fn list_resource_templates(&self, _request: Option<PaginatedRequestParams>, context: RequestContext<RoleServer>) -> Result<ListResourceTemplatesResult, McpError> {
        let cx = self.offer_caller(&context).await?;
        offers::list_templates(&self.host, &cx).await
    }

    async fn read_resource(&self, request: ReadResourceRequestParams, context: RequestContext<RoleServer>) -> Result<ReadResourceResponse, McpError> {
        let cx = self.offer_caller(&context).await?;
        offers::read_resource(&self.host, &cx, &request.uri).await.map(Into::into)
    }

    async fn subscribe(&self, request: SubscribeRequestParams, context: RequestContext<RoleServer>) -> Result<(), McpError> {
        let cx = self.offer_caller(&context).await?;
        self.subscriptions.subscribe(&self.host, &cx, &request.uri).await?;
        if self.subscriptions.start_watching() {
            self.watch_subscriptions(&context, cx);
        }
        Ok(())
    }

    async fn unsubscribe(&self, request: UnsubscribeRequestParams, _context: RequestContext<RoleServer>) -> Result<(), McpError> {
        self.subscriptions.unsubscribe(&request.uri);
        Ok(())
    }

    async fn list_prompts(&self, _request: Option<PaginatedRequestParams>, context: RequestContext<RoleServer>) -> Result<ListPromptsResult, McpError> {
        let cx = self.offer_caller(&context).await?;
        offers::list_prompts(&self.host, &cx).await
    }

    async fn get_prompt(&self, request: GetPromptRequestParams, context: RequestContext<RoleServer>) -> Result<GetPromptResponse, McpError> {
        let cx = self.offer_caller(&context).await?;
        offers::get_prompt(&self.host, &cx, &request.name, request.arguments.unwrap_or_default()).await.map(Into::into)
    }

    async fn list_tools(&self, _request: Option<PaginatedRequestParams>, _context: RequestContext<RoleServer>) -> Result<ListToolsResult, McpError> {
        // Plugins install in the background, so `initialize` never waits for
        // them; give installs under way a moment before the first listing.
        // A plugin that takes longer is announced with list_changed.
        self.host.installs_settled(LIST_GRACE).await;
        Ok(ListToolsResult::with_all_items(self.host.tools().iter().map(|t| mcp_tool(t)).collect()))
    }

    async fn call_tool(&self, request: CallToolRequestParams, context: RequestContext<RoleServer>) -> Result<CallToolResponse, McpError> {
        let started = Instant::now();
        let (principal, chat) = match self.caller(&context).await {
            Ok(caller) => caller,
            Err(refusal) => {
                // Refused for the chat it names: recorded under the caller,
                // with the chat it asked for.
                let asked = match context.meta.get("chat_id") {
                    Some(Value::String(id)) => toolshed_runtime::text::one_line(&toolshed_runtime::text::clip(id, 128)),
                    _ => "-".into(),
                };
                self.audit_call(&self.principal(&context), &asked, &request.name, "refused", started);
                return Ok(respond(ToolOutput::new(true, refusal.to_json())));
            }
        };
        // Tasks outlive their request, so they count against the cap too.
        let tasks_running = self.settings.tasks.as_ref().map_or(0, |t| t.running_for(&principal.owner_id));
        let admitted = if tasks_running >= self.settings.calls_per_principal { None } else { self.settings.admit(&principal.owner_id) };
        let Some(_running) = admitted else {
            self.audit_call(&principal, &chat, &request.name, "refused", started);
            let busy = HostError::new(
                Category::ResourceUnavailable,
                "TOO_MANY_CALLS",
                format!("you have {} calls running, the most one caller may have; wait for one to finish", self.settings.calls_per_principal),
            )
            .field("limit", self.settings.calls_per_principal);
            return Ok(respond(ToolOutput::new(true, busy.to_json())));
        };
        let cx = principal.context(&chat);
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        // Over HTTP the body that held the arguments bounds their size, so
        // they need counting only when that bound is over the limit.
        let body_bytes = context
            .extensions
            .get::<::http::request::Parts>()
            .and_then(|p| p.headers.get(::http::header::CONTENT_LENGTH))
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        let sized = match body_bytes {
            Some(bound) => Arguments::JsonWithin(&arguments, bound),
            None => Arguments::Json(&arguments),
        };

        // A client that takes tasks gets one for a call that runs longer
        // than a moment; the call then has no wait budget.
        let takes_tasks = context.client_capabilities().is_some_and(|c| c.supports_tasks());
        if let (Some(tasks), true) = (&self.settings.tasks, takes_tasks) {
            let task = match tasks.start(&cx, &request.name, arguments.clone()).await {
                Ok(task) => task,
                Err(refused) if refused.code == toolshed_runtime::error::UNKNOWN_TOOL => {
                    self.audit_call(&principal, &chat, &request.name, "refused", started);
                    return Err(unknown_tool(&self.host, &request.name));
                }
                Err(refused) => {
                    self.audit_call(&principal, &chat, &request.name, "refused", started);
                    return Ok(respond(ToolOutput::new(true, refused.to_json())));
                }
            };
            let ended = tokio::time::timeout(TASK_GRACE, tasks.wait(&principal.owner_id, &task.id)).await;
            if let Ok(Ok(Some(done))) = ended
                && done.state == TaskState::Completed
                && let Some(value) = done.result
            {
                self.audit_call(&principal, &chat, &request.name, if done.is_error { "error" } else { "ok" }, started);
                return Ok(respond(ToolOutput::new(done.is_error, value)));
            }
            self.audit_call(&principal, &chat, &request.name, "task", started);
            return Ok(CallToolResponse::Task(CreateTaskResult::new(mcp_task(&task))));
        }

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

        // Log records and questions go to this caller only; a client over
        // HTTP without a session has no stream to take a question on.
        let in_session = context.extensions.get::<::http::request::Parts>().is_none_or(|p| p.headers.contains_key("mcp-session-id"));
        let capabilities = context.peer.peer_info().map(|info| info.capabilities.clone()).unwrap_or_default();
        let can_ask = in_session && capabilities.elicitation.is_some();
        let can_sample = in_session && capabilities.sampling.is_some();
        let (client, logs) = client::CallClient::new(context.peer.clone(), self.log_level.clone(), can_ask, can_sample);
        let options = CallOptions { progress: sink, wait_budget: self.settings.wait_budget, client: Some(client) };
        let call = self.host.call_with(&cx, &request.name, sized, options);
        let outcome = tokio::select! {
            out = call => Some(out),
            // Dropping the call drops its store: the instance ends here.
            _ = context.ct.cancelled() => None,
        };
        if let Some(forwarder) = forwarder {
            forwarder.abort();
        }
        // The call's log records are sent before its answer: the forwarder
        // ends once the call's last handle on the client is gone.
        if tokio::time::timeout(LOG_FLUSH, logs).await.is_err() {
            tracing::warn!("a call's log records were not all sent within {LOG_FLUSH:?}");
        }
        let Some(out) = outcome else {
            self.audit_call(&principal, &chat, &request.name, "cancelled", started);
            return Err(McpError::internal_error("the call was cancelled", None));
        };
        // A tool no plugin serves (the call waited for installs under way)
        // is a protocol error, as the spec answers it.
        if out.is_unknown_tool() {
            self.audit_call(&principal, &chat, &request.name, "refused", started);
            return Err(unknown_tool(&self.host, &request.name));
        }
        self.audit_call(&principal, &chat, &request.name, if out.is_error { "error" } else { "ok" }, started);
        Ok(respond(out))
    }

    async fn get_task(&self, request: GetTaskParams, context: RequestContext<RoleServer>) -> Result<GetTaskResult, McpError> {
        let started = Instant::now();
        let (tasks, principal) = self.task_caller(&context).await?;
        let task = tasks.get(&principal.owner_id, &request.task_id).await.map_err(journal_error);
        let task = self.audit_task(&principal, "tasks/get", &request.task_id, task, started)?;
        Ok(GetTaskResult::new(detailed_task(&task)))
    }

    async fn cancel_task(&self, request: CancelTaskParams, context: RequestContext<RoleServer>) -> Result<(), McpError> {
        let started = Instant::now();
        let (tasks, principal) = self.task_caller(&context).await?;
        let cancelled = tasks.cancel(&principal.owner_id, &request.task_id).await.map_err(journal_error);
        self.audit_task(&principal, "tasks/cancel", &request.task_id, cancelled, started)?;
        Ok(())
    }
}

impl McpServer {
    /// Tells this session's client, for as long as the session lasts, when
    /// a resource it subscribed to reads differently, as the caller who
    /// subscribed (`notifications/resources/updated`).
    fn watch_subscriptions(&self, context: &RequestContext<RoleServer>, cx: toolshed_runtime::CallContext) {
        let (host, subscriptions, peer, mut session) = (self.host.clone(), self.subscriptions.clone(), context.peer.clone(), self.alive.subscribe());
        tokio::spawn(async move {
            let read = |uri: String| {
                let (host, cx) = (host.clone(), cx.clone());
                async move { offers::read_resource(&host, &cx, &uri).await.ok().map(|read| offers::digest(&read)) }
            };
            let notify = |uri: String| {
                let peer = peer.clone();
                async move { peer.notify_resource_updated(rmcp::model::ResourceUpdatedNotificationParam::new(uri)).await.is_ok() }
            };
            tokio::select! {
                () = offers::watch(subscriptions, read, notify) => {}
                // The server's last clone is gone: the session ended.
                _ = session.changed() => {}
            }
        });
    }

    /// The calling context a resource or prompt request is answered for.
    async fn offer_caller(&self, context: &RequestContext<RoleServer>) -> Result<toolshed_runtime::CallContext, McpError> {
        self.host.installs_settled(LIST_GRACE).await;
        let (principal, chat) = self.caller(context).await.map_err(|refusal| McpError::invalid_request(refusal.message.to_string(), None))?;
        Ok(principal.context(&chat))
    }

    /// The tasks and the owner a tasks request is made for.
    async fn task_caller(&self, context: &RequestContext<RoleServer>) -> Result<(Arc<Tasks>, Principal), McpError> {
        let tasks = self.settings.tasks.clone().ok_or_else(|| McpError::internal_error("this server keeps no tasks", None))?;
        let (principal, _) = self.caller(context).await.map_err(|refusal| McpError::invalid_request(refusal.message.to_string(), None))?;
        Ok((tasks, principal))
    }
}

/// The protocol error for a tool no plugin serves, naming those that are.
fn unknown_tool(host: &Toolshed, name: &str) -> McpError {
    let served: Vec<String> = host.tools().iter().map(|t| t.name.clone()).collect();
    McpError::invalid_params(
        format!("Unknown tool: {}. Tools served: {}.", toolshed_runtime::text::clip(name, 100), served.join(", ")),
        Some(serde_json::json!({ "tool": toolshed_runtime::text::clip(name, 100), "tools": served })),
    )
}

/// The error for a task id the caller does not own: the same as for one
/// that does not exist.
fn no_task(id: &str) -> McpError {
    McpError::invalid_params(format!("no task {}", toolshed_runtime::text::clip(id, 80)), None)
}

fn journal_error(e: toolshed_runtime::tasks::JournalError) -> McpError {
    McpError::internal_error(e.to_string(), None)
}

/// `ms` since the Unix epoch as ISO 8601.
fn iso(ms: u64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms as i64).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A task as MCP shows it, without its payload.
fn mcp_task(task: &TaskRecord) -> McpTask {
    let status = match task.state {
        TaskState::Working => McpTaskStatus::Working,
        TaskState::Completed => McpTaskStatus::Completed,
        TaskState::Failed => McpTaskStatus::Failed,
        TaskState::Cancelled => McpTaskStatus::Cancelled,
    };
    let mut shown = McpTask::new(task.id.clone(), status, iso(task.created_at_ms), iso(task.updated_at_ms))
        .with_ttl_ms(task.ttl_ms)
        .with_poll_interval_ms(TASK_POLL_INTERVAL.as_millis() as u64);
    if let Some(message) = &task.status_message {
        shown = shown.with_status_message(message.clone());
    }
    shown
}

/// A task with its payload: the tool's result once completed, the host's
/// error once failed.
fn detailed_task(task: &TaskRecord) -> DetailedTask {
    let payload = match task.state {
        TaskState::Working => TaskPayload::Working,
        TaskState::Cancelled => TaskPayload::Cancelled,
        TaskState::Completed => {
            let out = ToolOutput::new(task.is_error, task.result.clone().unwrap_or_default());
            let result = match respond(out) {
                CallToolResponse::Complete(result) => serde_json::to_value(result).ok().and_then(|v| v.as_object().cloned()).unwrap_or_default(),
                _ => Default::default(),
            };
            TaskPayload::Completed { result }
        }
        TaskState::Failed => {
            let message = task.status_message.clone().unwrap_or_else(|| "the task failed".into());
            let mut error = serde_json::Map::new();
            error.insert("code".into(), (-32603).into());
            error.insert("message".into(), message.into());
            if let Some(detail) = &task.result {
                error.insert("data".into(), detail.clone());
            }
            TaskPayload::Failed { error }
        }
    };
    DetailedTask::new(mcp_task(task), payload)
}

/// A tool output as an MCP result: the content blocks the tool added, then
/// the object as compact text; the object as structured content; `isError`
/// for error objects.
fn respond(out: ToolOutput) -> CallToolResponse {
    let text = serde_json::to_string(&out.value).unwrap_or_default();
    let mut blocks: Vec<ContentBlock> = out.content.into_iter().map(content::mcp_block).collect();
    blocks.push(ContentBlock::text(text));
    let mut result = if out.is_error { CallToolResult::error(blocks) } else { CallToolResult::success(blocks) };
    result.structured_content = Some(out.value);
    result.into()
}

impl McpServer {
    /// One audit record per call, refused ones included, naming the
    /// principal that made it.
    fn audit_call(&self, principal: &Principal, chat: &str, tool: &str, outcome: &str, started: Instant) {
        let tool = toolshed_runtime::text::one_line(&toolshed_runtime::text::clip(tool, 100));
        let fields = serde_json::json!({ "principal": principal.owner_id, "organization": principal.organization_id, "chat": chat, "tool": tool,
            "outcome": outcome, "duration_ms": started.elapsed().as_millis() as u64 });
        self.settings.audit.record("call", fields);
    }

    /// One audit record per task read or cancelled, with the task's id;
    /// a task the caller does not own reads as not found, in the audit too.
    fn audit_task<T>(&self, principal: &Principal, method: &str, task_id: &str, answer: Result<Option<T>, McpError>, started: Instant) -> Result<T, McpError> {
        let outcome = match &answer {
            Ok(Some(_)) => "ok",
            Ok(None) => "not_found",
            Err(_) => "error",
        };
        let fields = serde_json::json!({ "principal": principal.owner_id, "organization": principal.organization_id, "method": method,
            "task_id": toolshed_runtime::text::one_line(&toolshed_runtime::text::clip(task_id, 80)), "outcome": outcome, "duration_ms": started.elapsed().as_millis() as u64 });
        self.settings.audit.record(method, fields);
        answer?.ok_or_else(|| no_task(task_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ServerSettings {
        let principal = Principal { owner_id: "a".into(), owner_name: "a".into(), organization_id: "o".into(), scopes: vec![] };
        ServerSettings::new(principal, None)
    }

    #[test]
    fn a_remembered_claim_is_its_owners_alone() {
        let settings = settings();
        settings.remember_claim("a", "chat-1");
        assert!(settings.claimed_before("a", "chat-1"));
        assert!(!settings.claimed_before("b", "chat-1"), "another owner naming the chat asks the directory");
        assert!(!settings.claimed_before("a", "chat-2"));
    }

    #[test]
    fn the_remembered_claims_are_bounded() {
        let settings = settings();
        for i in 0..REMEMBERED_CLAIMS * 3 {
            settings.remember_claim("a", &format!("chat-{i}"));
        }
        let held = settings.claimed.lock().unwrap().len();
        assert!(held <= REMEMBERED_CLAIMS, "{held}");
        assert!(settings.claimed_before("a", &format!("chat-{}", REMEMBERED_CLAIMS * 3 - 1)), "the newest is held");
    }
}
