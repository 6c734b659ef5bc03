//! Tasks across real processes: a runner killed with `kill -9` mid-build,
//! then resumed; and an MCP client that takes tasks.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResponse, CancelTaskParams, ClientCapabilities, ClientConfig, GetTaskParams, TaskStatus};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

use crate::support::{SHORT_LEASE_MS, TOOLSHED, alive, completed_task, data_dir, push_with_cli as push, template, toolshed_on as toolshed};



fn task(data: &Path, id: &str) -> Value {
    let out = toolshed(data).args(["task", id]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}


#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_runner_is_killed_mid_build_resumes_and_makes_exactly_one_workspace() {
    let root = tempfile::tempdir().unwrap();
    let data = data_dir(root.path());
    let slow = push(&data, root.path(), "slow", &template("slow", "echo one; sleep 4; echo two", "true", ""));

    // `call --detach` records the task and returns its id; a background
    // runner takes it.
    let out = toolshed(&data).args(["call", "create_workspace", &json!({ "template_id": slow }).to_string(), "--chat", "crash", "--detach"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    uuid::Uuid::parse_str(&id).expect("call --detach prints the task id");

    // Wait until the runner reports the build running, then kill -9 it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let runner: i32 = loop {
        let shown = task(&data, &id);
        assert_eq!(shown["state"], "working", "{shown}");
        if shown["status_message"].as_str().is_some_and(|m| m.contains("running")) {
            let backend = toolshed_local::LocalBackend::open(toolshed_local::LocalConfig::new(data.clone(), TOOLSHED)).await.unwrap();
            let record = backend.journal().get(toolshed_local::LOCAL_OWNER, &id).await.unwrap().unwrap();
            break record.runner.expect("a runner holds it").split(':').next().unwrap().parse().unwrap();
        }
        assert!(Instant::now() < deadline, "the build never ran: {shown}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(alive(runner));
    nix_kill(runner);
    let killed = Instant::now();
    while alive(runner) {
        assert!(killed.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The restart: a runner resumes every task no live process runs.
    let out = toolshed(&data).args(["tasks", "resume"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("resumed and ended {} ms after the kill", killed.elapsed().as_millis());

    let out = toolshed(&data).args(["task", &id, "--wait"]).output().unwrap();
    let ended: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "{ended}");
    assert_eq!(ended["state"], "completed");
    assert_eq!(ended["is_error"], false, "{ended}");
    assert_eq!(ended["attempts"], 2, "run once, resumed once: {ended}");

    let listing = String::from_utf8(toolshed(&data).arg("workspaces").output().unwrap().stdout).unwrap();
    assert_eq!(listing.lines().count(), 1, "exactly one workspace: {listing}");
    assert!(listing.contains("start succeeded") && listing.contains("chats: crash"), "{listing}");

    let tasks = String::from_utf8(toolshed(&data).arg("tasks").output().unwrap().stdout).unwrap();
    assert!(tasks.contains(&id) && tasks.contains("completed"), "{tasks}");

    let backend = toolshed_local::LocalBackend::open(toolshed_local::LocalConfig::new(data, TOOLSHED)).await.unwrap();
    backend.stop_all_agents().await;
}

fn nix_kill(pid: i32) {
    let status = Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    assert!(status.success());
}

#[test]
fn task_of_an_unknown_id_is_an_error_naming_it() {
    let root = tempfile::tempdir().unwrap();
    let data = data_dir(root.path());
    let id = "0f8c6e4a-5b1d-4c2a-9e3f-1a2b3c4d5e6f";
    let out = toolshed(&data).args(["task", id]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(id), "{}", String::from_utf8_lossy(&out.stderr));
    let out = toolshed(&data).args(["task", "not-a-uuid"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_client_that_takes_tasks_gets_one_and_polls_it_to_the_result() {
    let root = tempfile::tempdir().unwrap();
    let data = data_dir(root.path());
    let slow = push(&data, root.path(), "slow", &template("slow", "echo one; sleep 3; echo two", "true", ""));

    let mut command = tokio::process::Command::new(TOOLSHED);
    command.arg("--data-dir").arg(&data).env("TOOLSHED_LEASE_MS", SHORT_LEASE_MS).arg("serve");
    let mut config = ClientConfig::default();
    config.capabilities = ClientCapabilities::builder().enable_tasks().build();
    let client = config.serve(TokioChildProcess::new(command).unwrap()).await.unwrap();
    let info = client.peer_info().expect("initialized");
    assert!(info.capabilities.supports_tasks(), "the server offers tasks");

    // A quick call answers inline.
    let listed = client.call_tool_once(CallToolRequestParams::new("list_templates").with_arguments(json!({}).as_object().unwrap().clone())).await.unwrap();
    assert!(matches!(listed, CallToolResponse::Complete(_)), "{listed:?}");

    // A long one answers with a task.
    let create = CallToolRequestParams::new("create_workspace").with_arguments(json!({ "template_id": slow }).as_object().unwrap().clone());
    let CallToolResponse::Task(created) = client.call_tool_once(create).await.unwrap() else { panic!("a 3 s build answers with a task") };
    assert_eq!(created.task.status, TaskStatus::Working);
    let id = created.task.task_id.clone();

    // The task was written before the answer: another process reads it.
    let shown = task(&data, &id);
    assert_eq!(shown["tool"], "create_workspace");
    assert_eq!(shown["arguments"]["template_id"], slow.as_str());

    let result = completed_task(&client, &id, Duration::from_secs(60)).await;
    assert_eq!(result["structuredContent"]["created"], true, "{result:?}");

    // An id the server never gave reads as not found; so does cancelling it.
    let unknown = "0f8c6e4a-5b1d-4c2a-9e3f-1a2b3c4d5e6f";
    assert!(client.get_task(GetTaskParams::new(unknown)).await.is_err());
    assert!(client.cancel_task(CancelTaskParams::new(unknown)).await.is_err());

    client.cancel().await.unwrap();
    let backend = toolshed_local::LocalBackend::open(toolshed_local::LocalConfig::new(data, TOOLSHED)).await.unwrap();
    backend.stop_all_agents().await;
}

/// Tasks outlive their request, so a client cannot get past the per-caller
/// cap by having every call answered with a task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_count_against_the_per_caller_cap() {
    let root = tempfile::tempdir().unwrap();
    let data = data_dir(root.path());
    let forever = push(&data, root.path(), "forever", &template("forever", "exec sleep 600", "true", ""));

    let mut command = tokio::process::Command::new(TOOLSHED);
    command.arg("--data-dir").arg(&data).env("TOOLSHED_LEASE_MS", SHORT_LEASE_MS).args(["serve", "--calls-per-caller", "2"]);
    let mut config = ClientConfig::default();
    config.capabilities = ClientCapabilities::builder().enable_tasks().build();
    let client = config.serve(TokioChildProcess::new(command).unwrap()).await.unwrap();

    let mut ids = Vec::new();
    for chat in ["a", "b"] {
        let mut create = CallToolRequestParams::new("create_workspace").with_arguments(json!({ "template_id": forever }).as_object().unwrap().clone());
        let mut meta = rmcp::model::RequestMetaObject::default();
        meta.insert("chat_id".into(), json!(chat));
        create.meta = Some(meta);
        let CallToolResponse::Task(task) = client.call_tool_once(create).await.unwrap() else { panic!("a build that never ends answers with a task") };
        ids.push(task.task.task_id);
    }
    let third = client.call_tool_once(CallToolRequestParams::new("list_templates").with_arguments(json!({}).as_object().unwrap().clone())).await.unwrap();
    let CallToolResponse::Complete(refused) = third else { panic!("{third:?}") };
    assert_eq!(refused.structured_content.as_ref().unwrap()["code"], "TOO_MANY_CALLS", "{refused:?}");

    // Cancelling one frees its place.
    client.cancel_task(CancelTaskParams::new(ids[0].clone())).await.unwrap();
    let fourth = client.call_tool_once(CallToolRequestParams::new("list_templates").with_arguments(json!({}).as_object().unwrap().clone())).await.unwrap();
    assert!(matches!(fourth, CallToolResponse::Complete(ref r) if r.is_error == Some(false)), "{fourth:?}");
    client.cancel_task(CancelTaskParams::new(ids[1].clone())).await.unwrap();

    client.cancel().await.unwrap();
    let backend = toolshed_local::LocalBackend::open(toolshed_local::LocalConfig::new(data, TOOLSHED)).await.unwrap();
    backend.stop_all_agents().await;
}

/// Every call a tasks client makes is kept as a task for a day, with its
/// arguments: `serve --max-tasks` bounds how many one caller keeps, in the
/// store, and the next call is told which quota it met.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_past_the_callers_task_quota_are_refused_with_quota_exceeded() {
    let root = tempfile::tempdir().unwrap();
    let data = data_dir(root.path());
    let mut command = tokio::process::Command::new(TOOLSHED);
    command.arg("--data-dir").arg(&data).args(["serve", "--max-tasks", "2"]);
    let mut config = ClientConfig::default();
    config.capabilities = ClientCapabilities::builder().enable_tasks().build();
    let client = config.serve(TokioChildProcess::new(command).unwrap()).await.unwrap();
    let list = || CallToolRequestParams::new("list_templates").with_arguments(json!({}).as_object().unwrap().clone());
    for _ in 0..2 {
        let answered = client.call_tool_once(list()).await.unwrap();
        assert!(matches!(answered, CallToolResponse::Complete(ref r) if r.is_error == Some(false)), "{answered:?}");
    }
    let third = client.call_tool_once(list()).await.unwrap();
    let CallToolResponse::Complete(refused) = third else { panic!("{third:?}") };
    let error = refused.structured_content.unwrap();
    assert_eq!(error["code"], "QUOTA_EXCEEDED", "{error}");
    assert_eq!(error["quota"], json!({ "name": "tasks", "limit": 2 }));
    client.cancel().await.unwrap();
}
