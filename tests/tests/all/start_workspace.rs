//! SPEC 4.4 and 4.6: start_workspace.

use serde_json::json;
use toolshed_harness::{AgentSpec, ApiError, BuildPlan, ControlError, JobScript, OutputExt, TestEnv, Transition};

use crate::support::{env_with_template, parameter};

fn stopped_env() -> (TestEnv, toolshed_infra::Template, toolshed_infra::Workspace) {
    let (env, template) = env_with_template();
    let (workspace, _) = env.backend.add_workspace(&template, Transition::Stop, BuildPlan::job(JobScript::succeeded()));
    (env, template, workspace)
}

#[tokio::test(start_paused = true)]
async fn no_workspace_names_create_workspace() {
    let env = crate::support::env();
    let out = env.call("start_workspace", json!({})).await;
    assert!(out.message().contains("create_workspace"), "{}", out.value);
    assert!(env.backend.recorder().builds().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_deleted_workspace_says_so_and_names_create_workspace() {
    let (env, _, workspace) = stopped_env();
    env.backend.delete_workspace(&workspace.id);
    let out = env.call("start_workspace", json!({})).await;
    assert!(out.message().contains("deleted"), "{}", out.value);
    assert!(out.message().contains("create_workspace"), "{}", out.value);
}

#[tokio::test(start_paused = true)]
async fn an_already_running_workspace_needs_no_build() {
    let (env, template) = env_with_template();
    let (workspace, _) = env.backend.add_workspace(&template, Transition::Start, BuildPlan::job(JobScript::succeeded()));
    let out = env.call("start_workspace", json!({})).await;
    let out = out.ok();
    assert_eq!(out["started"], true);
    assert_eq!(out["no_build"], true);
    assert!(out.get("build_id").is_none());
    assert_eq!(out["workspace_name"], format!("alice/{}", workspace.name));
    assert!(env.backend.recorder().builds().is_empty(), "no start call");
    assert_eq!(env.backend.recorder().chat_updates(), 0, "no extra chat-updated");
}

#[tokio::test(start_paused = true)]
async fn a_stopped_workspace_is_started_with_a_new_build() {
    let (env, _, workspace) = stopped_env();
    let out = env.call("start_workspace", json!({})).await;
    let out = out.ok();
    let builds = env.backend.recorder().builds();
    assert_eq!(builds.len(), 1);
    assert_eq!(builds[0].transition, Transition::Start);
    assert_eq!(builds[0].workspace_id, workspace.id);
    let build_id = out["build_id"].as_str().unwrap();
    assert_eq!(env.backend.chat(&env.context()).build_id.as_deref(), Some(build_id));
    assert!(out.get("updated_to_active_version").is_none());
    assert_eq!(env.backend.recorder().chat_updates(), 2, "once bound, once the agent is ready");
}

#[tokio::test(start_paused = true)]
async fn parameters_are_forwarded_to_the_start() {
    let (env, _, _) = stopped_env();
    env.call("start_workspace", json!({ "parameters": { "region": "us" } })).await.ok();
    assert_eq!(env.backend.recorder().builds()[0].parameters, [("region".to_string(), "us".to_string())]);
}

#[tokio::test(start_paused = true)]
async fn moving_to_a_new_active_version_adds_the_update_keys() {
    let (env, template, _) = stopped_env();
    env.backend.require_active_version(&template.id, true);
    let version = env.backend.new_template_version(&template.id, vec![parameter("optional", false)]);
    let out = env.call("start_workspace", json!({})).await;
    let out = out.ok();
    assert_eq!(out["updated_to_active_version"], true);
    assert!(out["update_reason"].is_string());
    assert!(out["message"].as_str().unwrap().contains("updated to the active template version"), "{out}");
    let build = env.backend.build_by_id(out["build_id"].as_str().unwrap()).unwrap();
    assert_eq!(build.template_version_id.as_deref(), Some(version.as_str()));
}

#[tokio::test(start_paused = true)]
async fn prefers_the_chat_agent() {
    let (env, _, _) = stopped_env();
    env.backend.push_plan(BuildPlan::default().agents(vec![AgentSpec::ready("a"), AgentSpec::ready("b-coderd-chat").order(3)]));
    env.call("start_workspace", json!({})).await.ok();
    let chat = env.backend.chat(&env.context());
    assert_eq!(env.backend.agent_name(chat.agent_id.as_deref().unwrap()).as_deref(), Some("b-coderd-chat"));
}

#[tokio::test(start_paused = true)]
async fn no_agents_reports_no_agent() {
    let (env, _, _) = stopped_env();
    env.backend.push_plan(BuildPlan::default().agents(vec![]));
    let out = env.call("start_workspace", json!({})).await;
    assert_eq!(out.ok()["agent_status"], "no_agent");
}

#[tokio::test(start_paused = true)]
async fn a_selection_error_is_kept_and_no_connection_is_attempted() {
    let (env, _, _) = stopped_env();
    env.backend.push_plan(BuildPlan::default().agents(vec![AgentSpec::ready("x-coderd-chat"), AgentSpec::ready("y-coderd-chat")]));
    let out = env.call("start_workspace", json!({})).await;
    assert_eq!(out.ok()["agent_status"], "selection_error");
    assert_eq!(env.backend.recorder().connects(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_api_error_without_validations_has_no_template_id() {
    let (env, _, _) = stopped_env();
    env.backend.fail_next_build(ControlError::Api(ApiError {
        status: 403,
        message: "You are not allowed to start this workspace".into(),
        detail: "quota reached".into(),
        validations: vec![],
    }));
    let out = env.call("start_workspace", json!({})).await;
    let err = out.err();
    assert_eq!(err["error"], "You are not allowed to start this workspace");
    assert_eq!(err["detail"], "quota reached");
    assert_eq!(err["category"], "permission_denied");
    assert!(err.get("template_id").is_none());
}

#[tokio::test(start_paused = true)]
async fn an_api_error_with_validations_carries_the_template_id() {
    let (env, template, _) = stopped_env();
    env.backend.fail_next_build(ControlError::Api(ApiError {
        status: 400,
        message: "bad parameter".into(),
        detail: String::new(),
        validations: vec![toolshed_harness::Validation { field: "cpu".into(), detail: "too many".into() }],
    }));
    let out = env.call("start_workspace", json!({ "parameters": { "cpu": "99" } })).await;
    assert_eq!(out.err()["template_id"], template.id.as_str());
    assert_eq!(out.err()["validations"][0]["field"], "cpu");
}

#[tokio::test(start_paused = true)]
async fn a_non_api_failure_is_prefixed_with_start_workspace() {
    let (env, _, _) = stopped_env();
    env.backend.fail_next_build(ControlError::Failed("connection reset by peer".into()));
    let out = env.call("start_workspace", json!({})).await;
    assert_eq!(out.message(), "start workspace: connection reset by peer");
}

#[tokio::test(start_paused = true)]
async fn an_in_progress_build_is_bound_waited_for_and_returned() {
    let (env, template) = env_with_template();
    let (workspace, _) = env.backend.add_workspace(&template, Transition::Stop, BuildPlan::job(JobScript::succeeded()));
    let running = env.backend.add_build(&workspace.id, Transition::Start, None, BuildPlan::job(JobScript::succeeds_after(120_000)));
    let out = env.call("start_workspace", json!({})).await;
    let out = out.ok();
    assert_eq!(out["build_id"], running.id.as_str());
    assert!(env.backend.recorder().builds().is_empty(), "no new build while one runs");
    assert_eq!(env.backend.recorder().chat_updates(), 2, "fired when binding, and once the agent is ready");
    assert_eq!(env.backend.chat(&env.context()).build_id.as_deref(), Some(running.id.as_str()));
}

#[tokio::test(start_paused = true)]
async fn an_in_progress_build_that_fails_is_an_error_with_its_build_id() {
    let (env, template) = env_with_template();
    let (workspace, _) = env.backend.add_workspace(&template, Transition::Stop, BuildPlan::job(JobScript::succeeded()));
    let running = env.backend.add_build(&workspace.id, Transition::Start, None, BuildPlan::job(JobScript::fails_after(5_000, "disk full")));
    let out = env.call("start_workspace", json!({})).await;
    assert_eq!(out.message(), "waiting for in-progress build: disk full");
    assert_eq!(out.err()["build_id"], running.id.as_str());
}

#[tokio::test(start_paused = true)]
async fn a_start_build_that_fails_is_an_error_with_its_build_id() {
    let (env, _, _) = stopped_env();
    env.backend.push_plan(BuildPlan::job(JobScript::fails_after(8_000, "provider error")));
    let out = env.call("start_workspace", json!({})).await;
    assert_eq!(out.message(), "workspace start build failed: provider error");
    let build_id = out.err()["build_id"].as_str().unwrap();
    assert_eq!(env.backend.chat(&env.context()).build_id.as_deref(), Some(build_id));
}
