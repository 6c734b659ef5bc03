//! `toolshed serve` driven over stdio by an MCP client.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::handler::client::ClientHandler;
use rmcp::model::{CallToolRequestParams, ClientConfig, NumberOrString, ProgressNotificationParam, ProgressToken, RequestMetaObject};
use rmcp::service::{NotificationContext, RoleClient};
use rmcp::transport::TokioChildProcess;
use rmcp::ServiceExt;
use serde_json::json;
use tokio::sync::Notify;

use crate::support::{TOOLSHED, data_dir};

/// Records the notifications the server sends.
#[derive(Clone, Default)]
struct Recorder {
    progress: Arc<Mutex<Vec<String>>>,
    list_changed: Arc<Notify>,
}

impl ClientHandler for Recorder {
    async fn on_progress(&self, params: ProgressNotificationParam, _context: NotificationContext<RoleClient>) {
        self.progress.lock().unwrap().push(params.message.unwrap_or_default());
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.list_changed.notify_one();
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::default()
    }
}

pub(crate) fn distinct(bytes: &[u8]) -> Vec<u8> {
    use wasm_encoder::ComponentSection;
    let mut bytes = bytes.to_vec();
    wasm_encoder::CustomSection { name: "test-nonce".into(), data: b"2".as_slice().into() }.append_to_component(&mut bytes);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_client_lists_calls_gets_progress_and_hears_of_new_tools() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::write(plugins.join("workspace-tools.wasm"), toolshed_builtin::WORKSPACE_TOOLS).unwrap();
    std::fs::write(plugins.join("registry-tools.wasm"), toolshed_builtin::REGISTRY_TOOLS).unwrap();
    let template = {
        let backend = toolshed_local::LocalBackend::open(toolshed_local::LocalConfig::new(data.clone(), TOOLSHED)).await.unwrap();
        let (v1, _, _) = write_examples(&dir.path().join("templates"));
        backend.push_template(&v1).await.unwrap().template_id
    };

    let mut command = tokio::process::Command::new(TOOLSHED);
    command.arg("--data-dir").arg(&data).arg("--plugins").arg(&plugins).arg("serve");
    let recorder = Recorder::default();
    let client = recorder.clone().serve(TokioChildProcess::new(command).unwrap()).await.unwrap();

    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(names, ["create_workspace", "list_templates", "provision_registry", "read_template", "start_workspace", "stop_workspace"]);
    assert!(tools.iter().all(|t| t.output_schema.is_some() && t.description.as_deref().is_some_and(|d| !d.is_empty())));

    let listed = client.call_tool(CallToolRequestParams::new("list_templates").with_arguments(json!({}).as_object().unwrap().clone())).await.unwrap();
    assert_eq!(listed.is_error, Some(false));
    assert_eq!(listed.structured_content.as_ref().unwrap()["count"], 1);

    let bad = client
        .call_tool(CallToolRequestParams::new("read_template").with_arguments(json!({ "template_id": "nope" }).as_object().unwrap().clone()))
        .await
        .unwrap();
    assert_eq!(bad.is_error, Some(true));
    assert_eq!(bad.structured_content.as_ref().unwrap()["code"], "INVALID_TEMPLATE_ID");

    let mut create = CallToolRequestParams::new("create_workspace").with_arguments(json!({ "template_id": template }).as_object().unwrap().clone());
    let mut meta = RequestMetaObject::default();
    meta.set_progress_token(ProgressToken(NumberOrString::Number(7)));
    create.meta = Some(meta);
    let created = client.call_tool(create).await.unwrap();
    assert_eq!(created.structured_content.as_ref().unwrap()["created"], true, "{created:?}");
    let progress = recorder.progress.lock().unwrap().clone();
    // The build may end before its first poll; the agent's wait then reports.
    assert!(progress.iter().any(|m| m.contains("build") || m.contains("agent")), "progress while the call waited: {progress:?}");

    std::fs::write(plugins.join("registry-tools.wasm"), distinct(toolshed_builtin::REGISTRY_TOOLS)).unwrap();
    tokio::time::timeout(Duration::from_secs(30), recorder.list_changed.notified()).await.expect("list_changed within 30 s");

    client.cancel().await.unwrap();
    let backend = toolshed_local::LocalBackend::open(toolshed_local::LocalConfig::new(data, TOOLSHED)).await.unwrap();
    backend.stop_all_agents().await;
}

fn write_examples(dir: &std::path::Path) -> (std::path::PathBuf, (), ()) {
    let v1 = dir.join("python-dev");
    std::fs::create_dir_all(&v1).unwrap();
    std::fs::write(v1.join("template.toml"), include_str!("../../templates/python-dev/template.toml")).unwrap();
    (v1, (), ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_call_ends_it() {
    use crate::support::{Local, template};
    let local = Local::new().await;
    // The build outlasts the test: only the cancellation can end the call in time.
    let slow = local.push("slow", &template("slow", "exec sleep 60", "true", "")).await;
    let (server_io, client_io) = tokio::io::duplex(1 << 16);
    let server = toolshed_mcp::McpServer::new(local.host.clone(), crate::support::local_settings(&local), Some("cancel".into()));
    tokio::spawn(async move { server.serve(server_io).await.unwrap().waiting().await });
    let recorder = Recorder::default();
    let client = recorder.clone().serve(client_io).await.unwrap();

    let mut create = CallToolRequestParams::new("create_workspace").with_arguments(json!({ "template_id": slow.template_id }).as_object().unwrap().clone());
    let mut meta = RequestMetaObject::default();
    meta.set_progress_token(ProgressToken(NumberOrString::Number(1)));
    create.meta = Some(meta);
    let request = rmcp::model::ClientRequest::CallToolRequest(rmcp::model::Request::new(create));
    let handle = client.send_cancellable_request(request, rmcp::service::PeerRequestOptions::no_options()).await.unwrap();

    // Wait until the call is waiting on its build, then cancel it.
    let waiting = async {
        while local.host.stats().calls() == 0 || recorder.progress.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), waiting).await.expect("the call started waiting");
    assert_eq!(local.host.stats().calls(), 1);
    handle.cancel(Some("the user changed their mind".into())).await.unwrap();
    let ended = async {
        while local.host.stats().calls() != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), ended).await.expect("the call ended after the cancellation");
}

/// Over pipes, serve polls its standard input and output directly; a file
/// or a terminal cannot be polled, and gets tokio's blocking streams. Here
/// both are files, and serve still answers.
#[test]
fn serve_answers_when_its_standard_input_and_output_are_files() {
    let dir = tempfile::tempdir().unwrap();
    let requests = dir.path().join("requests.jsonl");
    let initialize = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "files", "version": "0" } } });
    std::fs::write(&requests, format!("{initialize}\n")).unwrap();
    let responses = dir.path().join("responses.jsonl");
    let mut serve = std::process::Command::new(TOOLSHED)
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir(dir.path()))
        .stdin(std::fs::File::open(&requests).unwrap())
        .stdout(std::fs::File::create(&responses).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The input ends after one request, so serve ends by itself; the loop
    // only guards against a hang.
    for _ in 0..600 {
        if serve.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = serve.kill();
    let _ = serve.wait();
    let written = std::fs::read_to_string(&responses).unwrap();
    let answer: serde_json::Value = serde_json::from_str(written.lines().next().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}: {written:?}"));
    assert_eq!(answer["id"], 1, "{answer}");
    assert!(answer["result"]["capabilities"]["tools"].is_object(), "{answer}");
}

/// A server over `local` on an in-process pipe, with one end for the test.
fn piped_server(local: &crate::support::Local, chat: &str) -> tokio::io::DuplexStream {
    let (server_io, client_io) = tokio::io::duplex(1 << 16);
    let server = toolshed_mcp::McpServer::new(local.host.clone(), crate::support::local_settings(local), Some(chat.into()));
    tokio::spawn(async move { server.serve(server_io).await.unwrap().waiting().await });
    client_io
}

/// As the spec's own example answers it: a tool no plugin serves is a
/// JSON-RPC error (-32602) naming the tools that are, not a tool result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_tool_is_a_protocol_error_naming_the_tools_served() {
    let local = crate::support::Local::new().await;
    let client = ().serve(piped_server(&local, "unknown")).await.unwrap();
    let refused = client.call_tool(CallToolRequestParams::new("no_such_tool")).await.unwrap_err();
    let rmcp::ServiceError::McpError(error) = refused else { panic!("{refused:?}") };
    assert_eq!(error.code, rmcp::model::ErrorCode::INVALID_PARAMS);
    assert!(error.message.contains("no_such_tool") && error.message.contains("create_workspace"), "{}", error.message);
    let known = client.call_tool(CallToolRequestParams::new("list_templates")).await.unwrap();
    assert_eq!(known.is_error, Some(false), "the session goes on");
}

/// Reads one JSON line from `reader`.
async fn read_message(reader: &mut tokio::io::Lines<tokio::io::BufReader<tokio::io::ReadHalf<tokio::io::DuplexStream>>>) -> serde_json::Value {
    let line = tokio::time::timeout(Duration::from_secs(30), reader.next_line()).await.expect("an answer").unwrap().expect("a line");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

/// 2025-03-26 requires a server to receive JSON-RPC batches, which toolshed
/// does not take: a client asking for it is offered another revision, never
/// that one; the revisions served are offered as asked; and a batch is
/// refused as an invalid request without ending the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_revisions_whose_musts_are_met_are_negotiated() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let local = crate::support::Local::new().await;
    for (asked, expected) in [("2025-03-26", None), ("2025-06-18", Some("2025-06-18")), ("2025-11-25", Some("2025-11-25")), ("2024-11-05", Some("2024-11-05"))] {
        let (read, mut write) = tokio::io::split(piped_server(&local, "versions"));
        let mut lines = tokio::io::BufReader::new(read).lines();
        let initialize = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": { "protocolVersion": asked, "capabilities": {}, "clientInfo": { "name": "raw", "version": "1" } } });
        write.write_all(format!("{initialize}\n").as_bytes()).await.unwrap();
        let answer = read_message(&mut lines).await;
        let negotiated = answer["result"]["protocolVersion"].as_str().unwrap().to_string();
        match expected {
            Some(version) => assert_eq!(negotiated, version, "{answer}"),
            None => assert_ne!(negotiated, asked, "{answer}"),
        }
        assert_eq!(answer["result"]["serverInfo"]["name"], "toolshed", "{answer}");
        if expected.is_none() {
            write.write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n").await.unwrap();
            let batch = json!([{ "jsonrpc": "2.0", "id": 2, "method": "ping" }, { "jsonrpc": "2.0", "id": 3, "method": "ping" }]);
            write.write_all(format!("{batch}\n").as_bytes()).await.unwrap();
            let refused = read_message(&mut lines).await;
            assert_eq!(refused["error"]["code"], -32600, "{refused}");
            write.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ping\"}\n").await.unwrap();
            assert_eq!(read_message(&mut lines).await["id"], 4, "the session goes on after the batch");
        }
    }
}
