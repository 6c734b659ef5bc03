//! Legacy HTTP sessions as an attacker would use them: opened and dropped
//! by the thousand, opened past any reasonable number, and used with
//! another principal's session id.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use toolshed_mcp::auth::{Auth, TokenFile, hash_token};
use toolshed_mcp::http::{HttpConfig, HttpLimits};
use toolshed_mcp::{Principal, ServerSettings};

use crate::support::Local;

/// A server on loopback exposed as `config` says; returns its address and
/// its settings, whose gauge counts its sessions.
async fn server(local: &Local, config: HttpConfig) -> (SocketAddr, Arc<ServerSettings>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let principal = Principal { owner_id: "local".into(), owner_name: "local".into(), organization_id: toolshed_local::LOCAL_ORG.into(), scopes: vec![] };
    let settings = Arc::new(ServerSettings::new(principal, Some(local.backend.clone())));
    tokio::spawn(toolshed_mcp::http::serve_listener(local.host.clone(), settings.clone(), listener, config));
    (addr, settings)
}

/// Static tokens `t-NAME` for owners `NAME`.
fn tokens(owners: &[&str]) -> Auth {
    let file: String = owners
        .iter()
        .map(|owner| {
            format!(
                "[[token]]\nsha256 = \"{}\"\nowner_id = \"{owner}\"\nowner_name = \"{owner}\"\norganization_id = \"{}\"\n",
                hash_token(&format!("t-{owner}")),
                toolshed_local::LOCAL_ORG
            )
        })
        .collect();
    Auth { tokens: Some(Arc::new(TokenFile::parse(&file).unwrap())), jwt: None, required_scope: "toolshed:tools".into() }
}

/// One request to `/mcp`: `method` with `body`, as `token`, in `session`.
async fn send(client: &reqwest::Client, addr: SocketAddr, method: reqwest::Method, token: Option<&str>, session: Option<&str>, body: Option<Value>) -> reqwest::Response {
    let mut request = client.request(method, format!("http://{addr}/mcp")).header("accept", "application/json, text/event-stream");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(session) = session {
        request = request.header("mcp-session-id", session).header("mcp-protocol-version", "2025-06-18");
    }
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body.to_string());
    }
    request.send().await.unwrap()
}

/// Opens a session as `token`, its `initialize` carrying `padding` bytes;
/// returns its id, or the status that refused it.
async fn open(client: &reqwest::Client, addr: SocketAddr, token: Option<&str>, padding: usize) -> Result<String, u16> {
    let initialize = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": { "protocolVersion": "2025-06-18",
        "capabilities": {}, "clientInfo": { "name": "x".repeat(padding.max(1)), "version": "1" } } });
    let response = send(client, addr, reqwest::Method::POST, token, None, Some(initialize)).await;
    let status = response.status().as_u16();
    let id = response.headers().get("mcp-session-id").map(|v| v.to_str().unwrap().to_string());
    let _ = response.text().await;
    let id = id.ok_or(status)?;
    let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    let status = send(client, addr, reqwest::Method::POST, token, Some(&id), Some(initialized)).await.status().as_u16();
    assert_eq!(status, 202, "notifications/initialized");
    Ok(id)
}

async fn close(client: &reqwest::Client, addr: SocketAddr, token: Option<&str>, session: &str) -> u16 {
    send(client, addr, reqwest::Method::DELETE, token, Some(session), None).await.status().as_u16()
}

fn resident_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
}

/// `cycles` sessions opened (with `notifications/initialized`, which starts
/// the session's list-change watcher) and deleted, eight at a time.
async fn cycle(addr: SocketAddr, cycles: usize, padding: usize) {
    let mut workers = Vec::new();
    for worker in 0..8 {
        workers.push(tokio::spawn(async move {
            toolshed_mcp::tls::ensure_provider();
            let client = reqwest::Client::new();
            for _ in (worker..cycles).step_by(8) {
                let id = open(&client, addr, None, padding).await.expect("a session");
                assert_eq!(close(&client, addr, None, &id).await, 204);
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
}

/// Waits until the gauge shows no session and no watcher (at most 10 s);
/// returns what it showed last.
async fn drained(settings: &ServerSettings) -> (usize, usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = (settings.sessions.open(), settings.sessions.watching());
        if now == (0, 0) || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Ten thousand sessions opened and deleted, each `initialize` carrying
/// 64 KiB: when they are gone, no session and no list-change watcher is
/// left, and the process's memory has not grown with them. Before the fix
/// each watcher lived on with the session's peer and its initialize
/// parameters: 10,000 of 64 KiB is 640 MiB, so a bound of 128 MiB (which
/// also absorbs what tests running beside this one allocate) catches even
/// a fifth of that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_sessions_opened_and_deleted_leave_no_session_no_watcher_and_no_memory_behind() {
    const CYCLES: usize = 10_000;
    const PADDING: usize = 64 << 10;
    let local = Local::new().await;
    let (addr, settings) = server(&local, HttpConfig::default()).await;
    // A warm-up: allocator pools, connection pools, the host's first calls.
    cycle(addr, 1_000, PADDING).await;
    assert_eq!(drained(&settings).await, (0, 0), "(sessions, watchers) left after the warm-up");
    let before = resident_mib();
    let started = Instant::now();
    cycle(addr, CYCLES, PADDING).await;
    let left = drained(&settings).await;
    let after = resident_mib();
    eprintln!("{CYCLES} sessions opened and deleted in {} ms; test process {before} -> {after} MiB resident; {left:?} (sessions, watchers) left", started.elapsed().as_millis());
    assert_eq!(left, (0, 0), "(sessions, watchers) left after {CYCLES} sessions were deleted");
    assert!(after <= before + 128, "the process grew from {before} to {after} MiB over {CYCLES} sessions");
}

/// A session id is no credential: another principal who names it, to call,
/// to stream or to delete, is told there is no such session, and the
/// session goes on for its owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_id_used_by_another_principal_is_not_found() {
    toolshed_mcp::tls::ensure_provider();
    let local = Local::new().await;
    let (addr, settings) = server(&local, HttpConfig { auth: Some(tokens(&["ada", "bob"])), ..HttpConfig::default() }).await;
    let client = reqwest::Client::new();
    let id = open(&client, addr, Some("t-ada"), 0).await.unwrap();
    let list = json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/list" });
    let call = json!({ "jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": { "name": "list_templates", "arguments": {} } });
    for (method, body) in [(reqwest::Method::POST, Some(list.clone())), (reqwest::Method::POST, Some(call)), (reqwest::Method::GET, None), (reqwest::Method::DELETE, None)] {
        let response = send(&client, addr, method.clone(), Some("t-bob"), Some(&id), body).await;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, 404, "bob's {method} in ada's session: {text}");
    }
    let response = send(&client, addr, reqwest::Method::POST, Some("t-ada"), Some(&id), Some(list)).await;
    assert_eq!(response.status(), 200, "ada's session lives on");
    assert!(response.text().await.unwrap().contains("list_templates"));
    assert_eq!(settings.sessions.open(), 1);
    assert_eq!(close(&client, addr, Some("t-ada"), &id).await, 204);
}

/// Sessions are capped per principal and in all: an `initialize` past a cap
/// is answered 503 with Retry-After; another principal is not held back by
/// one at its own cap; a deleted session makes room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_past_a_cap_are_turned_away_and_ended_ones_make_room() {
    toolshed_mcp::tls::ensure_provider();
    let local = Local::new().await;
    let limits = HttpLimits { max_sessions: 3, max_sessions_per_principal: 2, ..HttpLimits::default() };
    let (addr, settings) = server(&local, HttpConfig { auth: Some(tokens(&["ada", "bob", "cy"])), limits, ..HttpConfig::default() }).await;
    let client = reqwest::Client::new();
    let first = open(&client, addr, Some("t-ada"), 0).await.unwrap();
    open(&client, addr, Some("t-ada"), 0).await.unwrap();
    assert_eq!(open(&client, addr, Some("t-ada"), 0).await, Err(503), "ada's third session");
    open(&client, addr, Some("t-bob"), 0).await.expect("bob is not held back by ada's cap");
    assert_eq!(open(&client, addr, Some("t-cy"), 0).await, Err(503), "past the server's cap of 3");
    assert_eq!(settings.sessions.open(), 3);
    assert_eq!(close(&client, addr, Some("t-ada"), &first).await, 204);
    open(&client, addr, Some("t-cy"), 0).await.expect("a deleted session makes room");
}
