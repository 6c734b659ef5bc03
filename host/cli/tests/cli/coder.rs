//! `toolshed serve --backend coder` against a contract fake of Coder's API:
//! the tools drive the deployment as the token's user, the token never
//! shows, and a deployment that cannot be used is a clear error at start.

use std::process::{Command, Stdio};
use std::sync::Arc;

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use serde_json::json;
use toolshed_coder_fake::{BuildPlan, EPOCH_MS, FakeCoder, Fault, Method, ORG, SteppingClock, TOKEN, USER, parameter};

use crate::support::{TOOLSHED, data_dir};

async fn fake() -> FakeCoder {
    FakeCoder::start(Arc::new(SteppingClock::starting_at(EPOCH_MS))).await
}

/// `toolshed --data-dir D serve --backend coder --coder-url URL
/// --coder-token-file F`, with the token file holding `token`.
fn serve_over(dir: &std::path::Path, url: &str, token: &str) -> Command {
    let token_file = dir.join("coder.token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let mut command = Command::new(TOOLSHED);
    command.arg("--data-dir").arg(data_dir(dir)).args(["serve", "--backend", "coder", "--coder-url", url, "--coder-token-file"]).arg(&token_file);
    command
}

fn call(tool: &str, arguments: serde_json::Value) -> CallToolRequestParams {
    CallToolRequestParams::new(tool.to_string()).with_arguments(arguments.as_object().unwrap().clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_drives_coder_as_the_tokens_user_and_never_shows_the_token() {
    let fake = fake().await;
    let template = fake.add_template("docker", ORG, vec![parameter("size", false)]);
    fake.push_plan(BuildPlan { running_reads: 0, ..BuildPlan::default() });
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let mut command = tokio::process::Command::from(serve_over(dir.path(), fake.url(), TOKEN));
    // Everything the host, the backend and the HTTP stack log, each request
    // with the token included (the compiler's trace is left out: it is
    // large and sees no token).
    command.env("TOOLSHED_LOG", "trace,cranelift=info,wasmtime=info,regalloc2=info");
    let (transport, _) = TokioChildProcess::builder(command).stderr(Stdio::from(std::fs::File::create(&log).unwrap())).spawn().unwrap();
    let pid = transport.id().unwrap();
    let client = ().serve(transport).await.unwrap();

    let listed = client.call_tool(call("list_templates", json!({}))).await.unwrap().structured_content.unwrap();
    assert_eq!(listed["templates"][0]["id"], template.template_id.as_str(), "{listed}");
    let created = client.call_tool(call("create_workspace", json!({ "template_id": template.template_id, "name": "dev" }))).await.unwrap();
    let created = created.structured_content.unwrap();
    assert_eq!(created["created"], true, "{created}");
    assert_eq!(created["workspace_name"], "alice/dev");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    client.cancel().await.unwrap();

    let requests = fake.requests();
    assert_eq!(requests[0].path, "/api/v2/users/me", "the token is checked at start");
    assert!(requests.iter().all(|r| r.token.as_deref() == Some(TOKEN)));
    let post = requests.iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(post.path, format!("/api/v2/users/{USER}/workspaces"), "calls act for the token's user");
    assert_eq!(fake.workspace_count(), 1);

    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("serving the tools over Coder"), "the log was written: {logged}");
    assert!(logged.lines().count() > 20, "trace logging is on");
    assert!(!logged.contains(TOKEN), "the token is never logged");
    assert!(!String::from_utf8_lossy(&cmdline).contains(TOKEN), "nor is it on the command line");
}

/// Runs `serve` over Coder as `command` sets it up; it must refuse to start.
/// Returns what it printed.
fn refused(mut command: Command) -> String {
    let out = command.stdin(Stdio::null()).output().unwrap();
    assert!(!out.status.success(), "serve started: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_serve_cannot_use_is_a_clear_error_at_start() {
    let fake = fake().await;
    let dir = tempfile::tempdir().unwrap();

    let wrong = "wrong-token-3f9a";
    let said = refused(serve_over(dir.path(), fake.url(), wrong));
    assert!(said.contains("Coder answered 401") && said.contains("coder tokens create"), "{said}");
    assert!(!said.contains(wrong), "the refused token is not shown: {said}");

    fake.inject(Method::GET, "/api/v2/users/me", Fault::Status { status: 403, message: "Forbidden.".into(), retry_after: None });
    let said = refused(serve_over(dir.path(), fake.url(), TOKEN));
    assert!(said.contains("Coder answered 403") && said.contains("lacks the permission"), "{said}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let said = refused(serve_over(dir.path(), &url, TOKEN));
    assert!(said.contains("cannot reach Coder at"), "{said}");

    let said = refused(serve_over(dir.path(), "ftp://coder.example.com", TOKEN));
    assert!(said.contains("must be an http:// or https:// URL"), "{said}");

    let mut no_file = Command::new(TOOLSHED);
    no_file.arg("--data-dir").arg(data_dir(dir.path())).args(["serve", "--backend", "coder", "--coder-url", fake.url(), "--coder-token-file"]);
    no_file.arg(dir.path().join("missing.token"));
    let said = refused(no_file);
    assert!(said.contains("reading the Coder token file") && said.contains("missing.token"), "{said}");

    let mut no_url = Command::new(TOOLSHED);
    no_url.arg("--data-dir").arg(data_dir(dir.path())).args(["serve", "--backend", "coder"]).env_remove("CODER_URL");
    let said = refused(no_url);
    assert!(said.contains("--coder-url"), "{said}");
}
