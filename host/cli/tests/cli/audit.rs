//! The audit as whoever investigates an incident reads it: every call,
//! refused ones included, under the principal that made it; every request
//! refused at the door, with its reason and address and never its token;
//! every task read or cancelled, with its id; all of it in a sink of its
//! own that the log's filter never silences, written out before `serve`
//! exits.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResponse, CancelTaskParams, ClientCapabilities, ClientConfig, GetTaskParams};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};
use toolshed_mcp::audit::AuditLog;
use toolshed_mcp::auth::Auth;
use toolshed_mcp::http::HttpConfig;
use toolshed_mcp::{Principal, ServerSettings};

use crate::http::{OWNER_A, OWNER_B, call, client, initialize, post, tokens_for};
use crate::support::{Local, SHORT_LEASE_MS, TOOLSHED, data_dir, push_with_cli as push, template};

/// Keeps what the audit writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A server on loopback authenticating with `auth`, whose audit is kept.
async fn audited(local: &Local, auth: Auth) -> (SocketAddr, Arc<ServerSettings>, Captured) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let principal = Principal { owner_id: "the-servers-own-user".into(), owner_name: "local".into(), organization_id: toolshed_local::LOCAL_ORG.into(), scopes: vec![] };
    let captured = Captured::default();
    let mut settings = ServerSettings::new(principal, Some(local.backend.clone()));
    settings.audit = Arc::new(AuditLog::to_writer(Box::new(captured.clone())));
    let settings = Arc::new(settings);
    let config = HttpConfig { auth: Some(auth), ..HttpConfig::default() };
    tokio::spawn(toolshed_mcp::http::serve_listener(local.host.clone(), settings.clone(), listener, config));
    (addr, settings, captured)
}

/// The records written so far.
fn records(settings: &ServerSettings, captured: &Captured) -> (Vec<Value>, String) {
    assert!(settings.audit.flush(Duration::from_secs(10)), "the audit was written out");
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    (text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_leaves_one_audit_record_with_principal_chat_tool_outcome_and_duration() {
    let local = Local::new().await;
    let (addr, settings, captured) = audited(&local, tokens_for(&[("ta", OWNER_A, "ay")])).await;
    let client = client(addr, Some("ta"), false).await;
    client.call_tool(call("list_templates", json!({}), Some("audited"))).await.unwrap();
    client.call_tool(call("read_template", json!({ "template_id": "nope" }), Some("audited"))).await.unwrap();
    let (records, text) = records(&settings, &captured);
    let calls: Vec<&Value> = records.iter().filter(|r| r["event"] == "call" && r["chat"] == "audited").collect();
    assert_eq!(calls.len(), 2, "{text}");
    for (record, (tool, outcome)) in calls.iter().zip([("list_templates", "ok"), ("read_template", "error")]) {
        assert_eq!((&record["principal"], &record["tool"], &record["outcome"]), (&json!(OWNER_A), &json!(tool), &json!(outcome)), "{record}");
        assert!(record["duration_ms"].is_u64() && record["time"].is_string(), "{record}");
        assert_eq!(record["target"], "toolshed::audit");
    }
}

/// A call the server refuses before any tool runs (here for a chat id that
/// is not one) is the caller's doing: its record names the caller and the
/// chat it asked for, never the server's own default user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_call_is_audited_under_its_caller() {
    let local = Local::new().await;
    let (addr, settings, captured) = audited(&local, tokens_for(&[("ta", OWNER_A, "ay"), ("tb", OWNER_B, "bee")])).await;
    client(addr, Some("ta"), false).await.call_tool(call("list_templates", json!({}), Some("chat-of-a"))).await.unwrap();
    let refused_call = client(addr, Some("tb"), false).await.call_tool(call("list_templates", json!({}), Some("not a chat id!"))).await.unwrap();
    assert_eq!(refused_call.structured_content.unwrap()["code"], "INVALID_CHAT_ID");
    let (records, text) = records(&settings, &captured);
    let refused: Vec<&Value> = records.iter().filter(|r| r["outcome"] == "refused").collect();
    assert_eq!(refused.len(), 1, "{text}");
    assert_eq!(refused[0]["principal"], json!(OWNER_B), "{text}");
    assert!(!text.contains("the-servers-own-user"), "a record names the server's default user: {text}");
}

/// Requests refused at the door (no token, a token no one issued, a token
/// without the scope) are each recorded with the status, the reason and
/// the client's address; the tokens themselves appear nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_are_audited_with_reason_and_address_and_never_the_token() {
    let local = Local::new().await;
    let mut auth = tokens_for(&[("ta", OWNER_A, "ay")]);
    auth.required_scope = "toolshed:admin".into();
    let (addr, settings, captured) = audited(&local, auth).await;
    let forged = "sekrit-9f8e7d6c5b4a";
    let cases = [(vec![], 401, "a bearer token is required"), (vec![("authorization", format!("Bearer {forged}"))], 401, "not known"), (vec![("authorization", "Bearer ta".to_string())], 403, "scope")];
    for (headers, status, _) in &cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        assert_eq!(post(addr, &headers, initialize().to_string()).await.0, *status);
    }
    let (records, text) = records(&settings, &captured);
    let refused: Vec<&Value> = records.iter().filter(|r| r["event"] == "refused").collect();
    assert_eq!(refused.len(), 3, "{text}");
    for (record, (_, status, reason)) in refused.iter().zip(&cases) {
        assert_eq!(record["status"], *status, "{record}");
        assert!(record["reason"].as_str().unwrap().contains(reason), "{record}");
        assert!(record["client"].as_str().unwrap().starts_with("127.0.0.1:"), "{record}");
        assert_eq!((&record["method"], &record["path"]), (&json!("POST"), &json!("/mcp")), "{record}");
    }
    assert!(!text.contains(forged) && !text.contains("Bearer"), "a token is in the audit: {text}");
}

/// `serve` with the log filtered to nothing still writes its audit, to the
/// file it is given, and writes all of it before it exits: the calls, and
/// tasks/get and tasks/cancel with the task's id (and an id it does not
/// know, as not found). Without --audit-log, the audit is audit.jsonl in
/// the data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_writes_its_audit_whatever_the_log_filter_says_and_before_it_exits() {
    let root = tempfile::tempdir().unwrap();
    let data = data_dir(root.path());
    let forever = push(&data, root.path(), "forever", &template("forever", "exec sleep 600", "true", ""));
    let audit_file = root.path().join("audit.jsonl");
    let mut command = tokio::process::Command::new(TOOLSHED);
    command.arg("--data-dir").arg(&data).env("TOOLSHED_LEASE_MS", SHORT_LEASE_MS).env("TOOLSHED_LOG", "off").arg("serve").arg("--audit-log").arg(&audit_file);
    let transport = TokioChildProcess::new(command).unwrap();
    let pid = transport.id().unwrap();
    let mut config = ClientConfig::default();
    config.capabilities = ClientCapabilities::builder().enable_tasks().build();
    let client = config.serve(transport).await.unwrap();
    let arguments = |v: Value| v.as_object().unwrap().clone();
    client.call_tool_once(CallToolRequestParams::new("list_templates").with_arguments(arguments(json!({})))).await.unwrap();
    let create = CallToolRequestParams::new("create_workspace").with_arguments(arguments(json!({ "template_id": forever })));
    let CallToolResponse::Task(task) = client.call_tool_once(create).await.unwrap() else { panic!("a build that never ends answers with a task") };
    let id = task.task.task_id;
    client.get_task(GetTaskParams::new(id.clone())).await.unwrap();
    client.cancel_task(CancelTaskParams::new(id.clone())).await.unwrap();
    let unknown = "0f8c6e4a-5b1d-4c2a-9e3f-1a2b3c4d5e6f";
    assert!(client.get_task(GetTaskParams::new(unknown)).await.is_err());
    client.cancel().await.unwrap();
    // The audit must be whole once the process is gone.
    while crate::support::alive(pid as i32) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = std::fs::read_to_string(&audit_file).unwrap();
    let records: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let seen: Vec<(String, String, String)> = records
        .iter()
        .map(|r| (r["event"].as_str().unwrap().to_string(), r["tool"].as_str().or(r["task_id"].as_str()).unwrap_or_default().to_string(), r["outcome"].as_str().unwrap_or_default().to_string()))
        .collect();
    let expected = [
        ("call", "list_templates", "ok"),
        ("call", "create_workspace", "task"),
        ("tasks/get", id.as_str(), "ok"),
        ("tasks/cancel", id.as_str(), "ok"),
        ("tasks/get", unknown, "not_found"),
    ];
    let expected: Vec<(String, String, String)> = expected.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect();
    assert_eq!(seen, expected, "{text}");
    assert!(records.iter().all(|r| r["principal"] == toolshed_local::LOCAL_OWNER), "{text}");

    // Without --audit-log: the data directory's audit.jsonl.
    let mut command = tokio::process::Command::new(TOOLSHED);
    command.arg("--data-dir").arg(&data).env("TOOLSHED_LOG", "off").arg("serve");
    let client = ().serve(TokioChildProcess::new(command).unwrap()).await.unwrap();
    client.call_tool(CallToolRequestParams::new("list_templates").with_arguments(arguments(json!({})))).await.unwrap();
    client.cancel().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(data.join("audit.jsonl")).unwrap_or_default().contains("list_templates") {
        assert!(std::time::Instant::now() < deadline, "no audit.jsonl in the data directory");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let backend = toolshed_local::LocalBackend::open(toolshed_local::LocalConfig::new(data, TOOLSHED)).await.unwrap();
    backend.stop_all_agents().await;
}
