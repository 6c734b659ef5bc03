//! SPEC 4.8: provision_registry, on virtual time, through the real .wasm.

use serde_json::{Value, json};
use toolshed_harness::{ApiFailure, OutputExt, PlatformError, TaskScript, TaskStatus, TestEnv};
use crate::support::{runtime};

fn registry_env() -> TestEnv {
    crate::support::env_with(&[("registry-tools", toolshed_builtin::REGISTRY_TOOLS)])
}

fn args() -> Value {
    json!({
        "project_id": "proj-1",
        "cluster_id": "cl-1",
        "cluster_name": "prod",
        "provider": "hetzner",
        "region": "fsn1",
    })
}

fn with(mut base: Value, key: &str, value: Value) -> Value {
    base[key] = value;
    base
}

async fn validation_error(arguments: Value, code: &str) -> Value {
    let env = registry_env();
    let out = env.call("provision_registry", arguments).await;
    let err = out.err().clone();
    assert_eq!(err["category"], "validation_failed", "{err}");
    assert_eq!(err["code"], code);
    assert_eq!(err["recoverable"], true);
    assert!(err["suggestions"][0].is_string(), "{err}");
    assert!(env.backend.recorder().provisions().is_empty(), "nothing was started");
    err
}

#[tokio::test(start_paused = true)]
async fn an_empty_project_id_is_a_validation_error() {
    validation_error(with(args(), "project_id", json!("")), "PROJECT_ID_REQUIRED").await;
}

#[tokio::test(start_paused = true)]
async fn an_empty_cluster_id_is_a_validation_error() {
    validation_error(with(args(), "cluster_id", json!(" ")), "CLUSTER_ID_REQUIRED").await;
}

#[tokio::test(start_paused = true)]
async fn an_unknown_provider_is_a_validation_error() {
    let err = validation_error(with(args(), "provider", json!("aws")), "UNKNOWN_PROVIDER").await;
    assert!(err["error"].as_str().unwrap().contains("aws"));
}

#[tokio::test(start_paused = true)]
async fn gcp_without_a_gcp_project_is_a_validation_error() {
    validation_error(with(args(), "provider", json!("gcp")), "GCP_PROJECT_ID_REQUIRED").await;
}

async fn name_sent_for(given: &str) -> String {
    let env = registry_env();
    let out = env.call("provision_registry", with(args(), "registry_name", json!(given))).await;
    let sent = env.backend.recorder().provisions()[0].registry_name.clone();
    assert_eq!(out.ok()["registry_name"], sent.as_str());
    sent
}

#[tokio::test(start_paused = true)]
async fn names_are_sanitised() {
    assert_eq!(name_sent_for("My Registry").await, "my-registry");
    assert_eq!(name_sent_for("test_name").await, "test-name");
    assert_eq!(name_sent_for("--test--").await, "test");
    assert_eq!(name_sent_for("MAIN").await, "main");
}

#[tokio::test(start_paused = true)]
async fn the_name_defaults_to_main() {
    let env = registry_env();
    env.call("provision_registry", args()).await.ok();
    assert_eq!(env.backend.recorder().provisions()[0].registry_name, "main");
}

#[tokio::test(start_paused = true)]
async fn a_completed_task_returns_the_registry() {
    let env = registry_env();
    env.backend.push_registry_plan(TaskScript::completes_after(30_000));
    let out = env
        .call("provision_registry", with(with(args(), "provider", json!("gcp")), "gcp_project_id", json!("gp-7")))
        .await;
    let out = out.ok();
    assert_eq!(out["success"], true);
    assert_eq!(out["status"], "completed");
    assert_eq!(out["provider"], "gcp");
    assert_eq!(out["region"], "fsn1");
    assert_eq!(out["registry_url"], "registry.example.test/proj-1/main");
    assert!(out["task_id"].is_string() && out["message"].is_string());
    assert!(!out["next_steps"].as_array().unwrap().is_empty());
    assert_eq!(env.backend.recorder().provisions()[0].gcp_project_id.as_deref(), Some("gp-7"));
}

#[tokio::test(start_paused = true)]
async fn polling_is_every_three_seconds() {
    let env = registry_env();
    env.backend.push_registry_plan(TaskScript::completes_after(30_000));
    env.call("provision_registry", args()).await.ok();
    let polls = env.backend.recorder().count(|c| matches!(c, toolshed_harness::Call::PollTask(_)));
    // Immediately, then every 3 s until 30 s: 11 polls.
    assert_eq!(polls, 11);
}

#[tokio::test(start_paused = true)]
async fn a_failed_task_is_an_external_command_failure_with_the_platform_message() {
    let env = registry_env();
    env.backend.push_registry_plan(TaskScript::ends_after(6_000, TaskStatus::Failed, Some("quota exhausted in fsn1")));
    let out = env.call("provision_registry", args()).await;
    let err = out.err();
    assert_eq!(err["category"], "external_command_failed");
    assert_eq!(err["recoverable"], false);
    assert!(err["error"].as_str().unwrap().contains("quota exhausted in fsn1"), "{err}");
    assert!(err["task_id"].is_string());
}

#[tokio::test(start_paused = true)]
async fn a_failed_task_without_a_message_says_unknown_error() {
    let env = registry_env();
    env.backend.push_registry_plan(TaskScript::ends_after(6_000, TaskStatus::Failed, None));
    let out = env.call("provision_registry", args()).await;
    assert!(out.message().contains("Unknown error"), "{}", out.value);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_task_is_user_cancelled() {
    let env = registry_env();
    env.backend.push_registry_plan(TaskScript::ends_after(6_000, TaskStatus::Cancelled, None));
    let out = env.call("provision_registry", args()).await;
    assert_eq!(out.err()["category"], "user_cancelled");
    assert_eq!(out.err()["recoverable"], true);
}

#[tokio::test(start_paused = true)]
async fn a_task_past_300_seconds_times_out_and_may_still_finish() {
    let env = registry_env();
    env.backend.push_registry_plan(TaskScript::never_finishes());
    let started = tokio::time::Instant::now();
    let out = env.call("provision_registry", args()).await;
    let waited = started.elapsed();
    let err = out.err();
    assert_eq!(err["category"], "timeout");
    let task_id = err["task_id"].as_str().unwrap();
    assert!(err["error"].as_str().unwrap().contains(task_id));
    assert!(err["error"].as_str().unwrap().contains("may still finish"), "{err}");
    assert!(waited >= std::time::Duration::from_secs(300) && waited < std::time::Duration::from_secs(310), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn a_poll_error_is_a_network_error() {
    let env = registry_env();
    env.backend.fail_next_poll(PlatformError::BadResponse("truncated JSON".into()));
    let out = env.call("provision_registry", args()).await;
    let err = out.err();
    assert_eq!(err["category"], "network_error");
    assert_eq!(err["code"], "TASK_POLL_FAILED");
    assert!(err["error"].as_str().unwrap().contains("truncated JSON"), "the platform's reason is kept: {err}");
    assert!(err["task_id"].is_string());
}

async fn start_error(error: PlatformError) -> Value {
    let env = registry_env();
    env.backend.fail_next_provision(error);
    env.call("provision_registry", args()).await.err().clone()
}

#[tokio::test(start_paused = true)]
async fn platform_errors_map_to_their_categories() {
    let cases = [
        (PlatformError::Unauthorized("token expired".into()), "permission_denied"),
        (PlatformError::Forbidden("not an owner".into()), "permission_denied"),
        (PlatformError::NotFound("project".into()), "resource_unavailable"),
        (PlatformError::RateLimited("slow down".into()), "resource_unavailable"),
        (PlatformError::Connection("connection refused".into()), "network_error"),
        (PlatformError::BadResponse("not JSON".into()), "internal_error"),
        (PlatformError::Api(ApiFailure { status: 502, message: "bad gateway".into() }), "external_command_failed"),
    ];
    for (error, category) in cases {
        let err = start_error(error.clone()).await;
        assert_eq!(err["category"], category, "{error:?} -> {err}");
        assert!(err["code"].is_string() && err["recoverable"].is_boolean());
    }
}

#[tokio::test(start_paused = true)]
async fn both_plugins_serve_side_by_side() {
    let env = crate::support::env_with(&[
        ("workspace-tools", toolshed_builtin::WORKSPACE_TOOLS),
        ("registry-tools", toolshed_builtin::REGISTRY_TOOLS),
    ]);
    let names: Vec<String> = env.host.tools().iter().map(|t| t.name.clone()).collect();
    assert_eq!(names, ["create_workspace", "list_templates", "provision_registry", "read_template", "start_workspace", "stop_workspace"]);
    env.call("provision_registry", args()).await.ok();
    assert_eq!(env.call("list_templates", json!({})).await.ok()["count"], 0);
}

#[test]
fn the_registry_plugin_imports_only_the_platform_clock_events_and_log() {
    let plugin = crate::support::plugin("registry-tools", toolshed_builtin::REGISTRY_TOOLS);
    assert!(plugin.policy.grants.iter().all(|g| !g.allows("toolshed:infra/db@0.1.0") && !g.allows("toolshed:infra/control@0.1.0")));
    // A plugin under the registry's name that imports build control is refused.
    let err = runtime().compile("registry-tools", toolshed_fixtures::UNGRANTED).err().expect("refused");
    assert!(err.to_string().contains("toolshed:infra/control"), "{err}");
}
