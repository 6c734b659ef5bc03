//! The local backend with real processes and a real SQLite file.

use serde_json::json;

use crate::support::{Local, TOOLSHED, chat, data_dir, template};

const READY: &str = "touch .agent-ready";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_stop_and_start_with_a_changed_template() {
    let local = Local::new().await;
    let v1 = local.push("app", &template("app", "echo built > built.txt", READY, "")).await;
    let created = local.call("c1", "create_workspace", json!({ "template_id": v1.template_id, "name": "app-one" })).await;
    assert!(!created.is_error, "{}", created.value);
    assert_eq!(created.value["created"], true);
    assert!(created.value.get("agent_status").is_none(), "the agent process answered: {}", created.value);
    let workspace_id = chat(&local.backend, "c1").await.workspace_id.unwrap();
    let dir = std::path::PathBuf::from(local.backend.store().workspace(&workspace_id).await.unwrap().unwrap().dir);
    assert!(dir.starts_with(data_dir(local.dir.path()).join("workspaces")) && dir.ends_with("app-one"), "{}", dir.display());
    assert_eq!(std::fs::read_to_string(dir.join("built.txt")).unwrap().trim(), "built");
    assert!(dir.join(".agent-ready").exists(), "the agent ran its startup script");

    let stopped = local.call("c1", "stop_workspace", json!({})).await;
    assert_eq!(stopped.value["stopped"], true, "{}", stopped.value);
    assert!(local.backend.store().running_agents(&workspace_id, 0).await.unwrap().is_empty(), "stopping stopped the agent");

    local.push("app", &template("app", "echo built $TOOLSHED_PARAM_REGION > built.txt", READY, "[[parameters]]\nname = \"region\"\nrequired = true\n")).await;
    let refused = local.call("c1", "start_workspace", json!({})).await;
    assert_eq!(refused.value["code"], "TEMPLATE_PARAMETERS_REQUIRED", "{}", refused.value);
    assert_eq!(refused.value["validations"][0]["field"], "region");

    let started = local.call("c1", "start_workspace", json!({ "parameters": { "region": "eu" } })).await;
    assert_eq!(started.value["updated_to_active_version"], true, "{}", started.value);
    assert_eq!(std::fs::read_to_string(dir.join("built.txt")).unwrap().trim(), "built eu");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_build_script_is_an_error_with_the_build_id_and_a_log() {
    let local = Local::new().await;
    let t = local.push("bad", &template("bad", "echo fetching\necho 'error: no base image' >&2\nexit 3", READY, "")).await;
    let out = local.call("c2", "create_workspace", json!({ "template_id": t.template_id })).await;
    assert!(out.is_error);
    let message = out.value["error"].as_str().unwrap();
    assert!(message.starts_with("workspace build failed: build script exited with status 3"), "{message}");
    assert!(message.contains("no base image"), "{message}");
    let build_id = out.value["build_id"].as_str().unwrap();
    let log = std::fs::read_to_string(local.backend.log_path(build_id)).unwrap();
    assert!(log.contains("fetching") && log.contains("no base image"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_startup_script_reports_failed_startup_scripts() {
    let local = Local::new().await;
    let t = local.push("flaky", &template("flaky", "true", "echo starting; exit 1", "")).await;
    let out = local.call("c3", "create_workspace", json!({ "template_id": t.template_id })).await;
    assert!(!out.is_error, "{}", out.value);
    assert_eq!(out.value["startup_scripts"], "startup_scripts_failed");
    assert_eq!(out.value["lifecycle_state"], "start_error");
}

#[test]
fn provision_registry_through_the_cli_creates_an_oci_layout() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let arguments = json!({
        "project_id": "proj", "cluster_id": "c1", "cluster_name": "dev", "provider": "hetzner", "region": "fsn1", "registry_name": "My Registry"
    });
    let output = std::process::Command::new(TOOLSHED)
        .arg("--data-dir")
        .arg(&data)
        .args(["call", "provision_registry", &arguments.to_string()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["registry_name"], "my-registry");
    let owner = toolshed_local::paths::owner_dir(toolshed_local::LOCAL_OWNER, toolshed_local::LOCAL_OWNER_NAME);
    let registry = data.join("registries").join(owner).join("proj/my-registry");
    assert_eq!(result["registry_url"], format!("oci:{}", registry.display()));
    assert!(registry.join("oci-layout").is_file() && registry.join("index.json").is_file() && registry.join("blobs/sha256").is_dir());
}

#[test]
fn a_tool_error_from_the_cli_exits_with_status_one_and_prints_the_error_object() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(TOOLSHED)
        .arg("--data-dir")
        .arg(data_dir(dir.path()))
        .args(["call", "read_template", "{\"template_id\": \"nope\"}"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let error: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(error["code"], "INVALID_TEMPLATE_ID");
}
