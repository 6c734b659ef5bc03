//! MCP over streamable HTTP, at `/mcp`.
//!
//! Clients of MCP 2026-07-28 send each request on its own, with no session;
//! older clients hold a session. Either way every request is authenticated
//! when authentication is configured, and the server binds beyond loopback
//! only then. `Host` and `Origin` are checked against explicit lists, and
//! request bodies are capped. Connections are accepted and timed by
//! [`listener`] within [`HttpLimits`]; [`gate`] lets requests in.

mod gate;
pub mod limits;
mod listener;
mod sessions;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use toolshed_runtime::Toolshed;

pub use limits::HttpLimits;

use crate::auth::Auth;
use crate::{McpServer, ServerSettings};

/// The largest request body accepted, unless configured: far above a tool's
/// largest arguments (64 KiB by default), far below anything that hurts.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 << 10;

/// How an HTTP server is exposed.
#[derive(Clone, Default)]
pub struct HttpConfig {
    /// The URL clients reach `/mcp` at, which is the resource tokens are
    /// issued for; default `http://<bound address>/mcp`.
    pub public_url: Option<String>,
    /// How requests are authenticated; none serves loopback only.
    pub auth: Option<Auth>,
    /// `Host` values accepted beyond loopback ones.
    pub allowed_hosts: Vec<String>,
    /// Browser origins accepted (`scheme://host:port`) besides the public
    /// URL's, which is always accepted. Requests without an `Origin` pass.
    pub allowed_origins: Vec<String>,
    /// The largest request body; default [`DEFAULT_MAX_BODY_BYTES`].
    pub max_body_bytes: Option<usize>,
    /// Connections, timeouts and sessions.
    pub limits: HttpLimits,
}

/// Binds `addr` and serves MCP there until the process ends.
///
/// # Errors
///
/// When `addr` is beyond loopback and no authentication is configured, or
/// it cannot be bound.
pub async fn serve(host: Arc<Toolshed>, settings: Arc<ServerSettings>, addr: SocketAddr, config: HttpConfig) -> anyhow::Result<()> {
    anyhow::ensure!(
        addr.ip().is_loopback() || config.auth.is_some(),
        "serving {addr}, beyond loopback, needs authentication: pass --auth-tokens FILE or --auth-issuer with --auth-jwks"
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_listener(host, settings, listener, config).await
}

/// Serves MCP on an already bound listener until the process ends.
///
/// # Errors
///
/// When the listener fails.
pub async fn serve_listener(host: Arc<Toolshed>, settings: Arc<ServerSettings>, listener: tokio::net::TcpListener, config: HttpConfig) -> anyhow::Result<()> {
    let local = listener.local_addr()?;
    // A public URL says clients reach the server from beyond this machine,
    // through whatever forwards to the address bound: a loopback bind proves
    // nothing then, and serving that URL unauthenticated would open the host.
    if let (Some(public), None) = (&config.public_url, &config.auth) {
        anyhow::bail!(
            "--public-url {public} makes the server reachable beyond loopback, which needs authentication: pass --auth-tokens FILE or --auth-issuer with --auth-jwks, or leave out --public-url"
        );
    }
    let limits = config.limits.clone();
    let app = router(host, settings, local, config)?;
    tracing::info!("serving MCP on http://{local}/mcp");
    listener::run(listener, app, limits).await?;
    Ok(())
}

/// Where the protected-resource metadata is, for a resource URL.
fn metadata_url(resource: &str) -> String {
    let origin = origin(resource).unwrap_or_else(|| resource.trim_end_matches('/').to_string());
    format!("{origin}{METADATA_PATH}")
}

/// The root of the protected-resource metadata (RFC 9728 §3).
const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// The paths the metadata is served at: the root, where the challenge
/// points, and the path RFC 9728 §3.1 derives from the resource's own path
/// (`/.well-known/oauth-protected-resource/mcp` for `…/mcp`), which clients
/// try first. The local `/mcp` is covered too, for a public URL whose path
/// a proxy rewrites.
fn metadata_paths(resource: &str) -> Vec<String> {
    let mut paths = vec![METADATA_PATH.to_string(), format!("{METADATA_PATH}/mcp")];
    if let Some(path) = resource.split_once("://").and_then(|(_, rest)| rest.find('/').map(|at| &rest[at..])) {
        let path = path.split(['?', '#']).next().unwrap_or_default().trim_end_matches('/');
        if !path.is_empty() {
            paths.push(format!("{METADATA_PATH}{path}"));
        }
    }
    paths.sort();
    paths.dedup();
    paths
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    Some(format!("{scheme}://{authority}"))
}

/// The app: `/mcp` behind the gate, and the metadata beside it.
///
/// # Errors
///
/// When the configuration does not describe a usable server.
pub fn router(host: Arc<Toolshed>, settings: Arc<ServerSettings>, local: SocketAddr, config: HttpConfig) -> anyhow::Result<Router> {
    let resource = config.public_url.clone().unwrap_or_else(|| format!("http://{local}/mcp"));
    let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into(), local.to_string()];
    if let Some(public) = origin(&resource).and_then(|o| o.split_once("://").map(|(_, a)| a.to_string())) {
        hosts.push(public);
    }
    hosts.extend(config.allowed_hosts.iter().cloned());
    // The public URL's origin is the server's own: always accepted, with
    // any others configured beside it.
    let mut origins: Vec<String> = origin(&resource).into_iter().collect();
    origins.extend(config.allowed_origins.iter().cloned());
    let max_body_bytes = config.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
    let rmcp_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_allowed_origins(origins)
        .enforce_origin_validation()
        .with_max_request_body_bytes(max_body_bytes)
        .with_sse_keep_alive(Some(Duration::from_secs(15)))
        // The transport's own priming events (before an initialize answer,
        // and on a session's standalone stream) all carry the id "0", which
        // the session's first standalone event has too: event ids must be
        // unique across a session's streams, so the transport sends none.
        // The session still primes each request's stream, with ids of its own.
        .with_sse_retry(None)
        // A call that reports no progress is answered as plain JSON: no
        // event-stream framing to write or parse. One that reports progress
        // still streams.
        .with_json_response(true);
    // A legacy session idle this long is closed; its client initializes again.
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.keep_alive = Some(Duration::from_secs(600));
    let audit = settings.audit.clone();
    let sessions = Arc::new(sessions::OwnedSessions::new(sessions, config.limits.max_sessions, config.limits.max_sessions_per_principal, settings.sessions.clone()));
    let service = StreamableHttpService::new(move || Ok(McpServer::new(host.clone(), settings.clone(), None)), sessions.clone(), rmcp_config);
    let gate = Arc::new(gate::Gate {
        metadata: metadata_url(&resource),
        auth: config.auth.clone(),
        max_body_bytes,
        body_read_timeout: config.limits.body_read_timeout,
        sessions,
        audit: audit.clone(),
    });
    let mut app = Router::new().nest_service("/mcp", service).layer(middleware::from_fn_with_state(gate, gate::admit));
    if let Some(auth) = config.auth {
        let metadata = json!({
            "resource": resource,
            "authorization_servers": auth.issuer().map(|i| vec![i.to_string()]).unwrap_or_default(),
            "scopes_supported": [auth.required_scope],
            "bearer_methods_supported": ["header"],
            "resource_name": "toolshed",
        });
        for path in metadata_paths(&resource) {
            let metadata = metadata.clone();
            app = app.route(&path, axum::routing::get(move || async move { axum::Json(metadata) }));
        }
    }
    Ok(app)
}
