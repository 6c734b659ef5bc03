//! SPEC 4.7: stop_workspace.

use serde_json::json;
use toolshed_harness::{BuildPlan, JobScript, OutputExt, Transition};

use crate::support::env_with_template;

#[tokio::test(start_paused = true)]
async fn stops_a_running_workspace_and_waits_for_the_stop_build() {
    let (env, template) = env_with_template();
    let (workspace, _) = env.backend.add_workspace(&template, Transition::Start, BuildPlan::job(JobScript::succeeded()));
    env.backend.push_plan(BuildPlan::job(JobScript::succeeds_after(30_000)));
    let started = tokio::time::Instant::now();
    let out = env.call("stop_workspace", json!({})).await;
    let out = out.ok();
    assert_eq!(out["stopped"], true);
    assert_eq!(out["workspace_name"], format!("alice/{}", workspace.name));
    let builds = env.backend.recorder().builds();
    assert_eq!(builds.len(), 1);
    assert_eq!(builds[0].transition, Transition::Stop);
    assert!(out["build_id"].is_string());
    assert!(started.elapsed() >= std::time::Duration::from_secs(30), "waited for the stop build");
}

#[tokio::test(start_paused = true)]
async fn stopping_a_stopped_workspace_needs_no_build() {
    let (env, template) = env_with_template();
    env.backend.add_workspace(&template, Transition::Stop, BuildPlan::job(JobScript::succeeded()));
    let out = env.call("stop_workspace", json!({})).await;
    assert_eq!(out.ok()["no_build"], true);
    assert!(env.backend.recorder().builds().is_empty());
}

#[tokio::test(start_paused = true)]
async fn no_workspace_names_create_workspace() {
    let env = crate::support::env();
    let out = env.call("stop_workspace", json!({})).await;
    assert!(out.message().contains("create_workspace"), "{}", out.value);
}

#[tokio::test(start_paused = true)]
async fn a_failed_stop_build_is_an_error_with_its_build_id() {
    let (env, template) = env_with_template();
    env.backend.add_workspace(&template, Transition::Start, BuildPlan::job(JobScript::succeeded()));
    env.backend.push_plan(BuildPlan::job(JobScript::fails_after(3_000, "destroy failed")));
    let out = env.call("stop_workspace", json!({})).await;
    assert_eq!(out.message(), "workspace stop build failed: destroy failed");
    assert!(out.err()["build_id"].is_string());
}

#[tokio::test(start_paused = true)]
async fn stop_then_start_runs_the_workspace_again() {
    let (env, template) = env_with_template();
    env.call("create_workspace", json!({ "template_id": template.id })).await.ok();
    env.call("stop_workspace", json!({})).await.ok();
    let out = env.call("start_workspace", json!({})).await;
    assert_eq!(out.ok()["started"], true);
    assert!(out.ok()["build_id"].is_string());
}
