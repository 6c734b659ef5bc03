//! SPEC 4.5: create_workspace when the chat already has a workspace.

use serde_json::json;
use toolshed_harness::{AgentSpec, BuildPlan, ConnectScript, Heartbeat, JobScript, OutputExt, Transition};

use crate::support::env_with_template;

#[tokio::test(start_paused = true)]
async fn a_connected_agent_returns_the_workspace_without_a_connection_attempt() {
    let (env, template) = env_with_template();
    let (workspace, build) = env.backend.add_workspace(&template, Transition::Start, BuildPlan::job(JobScript::succeeded()));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    let out = out.ok();
    assert_eq!(out["created"], false);
    assert_eq!(out["status"], "already_exists");
    assert_eq!(out["workspace_name"], format!("alice/{}", workspace.name));
    assert_eq!(out["build_id"], build.id.as_str());
    assert!(out["message"].is_string());
    assert_eq!(env.backend.recorder().connects(), 0);
    assert!(env.backend.recorder().creates().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_connected_agent_still_gets_its_lifecycle_checked() {
    let (env, template) = env_with_template();
    let plan = BuildPlan::job(JobScript::succeeded()).agents(vec![AgentSpec::ready("main").lifecycle(vec![
        (0, toolshed_harness::LifecycleState::StartError),
    ])]);
    env.backend.add_workspace(&template, Transition::Start, plan);
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert_eq!(out.ok()["startup_scripts"], "startup_scripts_failed");
    assert_eq!(env.backend.recorder().connects(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_in_progress_build_is_waited_for_and_its_build_id_returned() {
    let (env, template) = env_with_template();
    let (_, build) = env.backend.add_workspace(&template, Transition::Start, BuildPlan::job(JobScript::succeeds_after(90_000)));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    let out = out.ok();
    assert_eq!(out["status"], "already_exists");
    assert_eq!(out["build_id"], build.id.as_str());
    assert!(env.backend.recorder().creates().is_empty());
    assert_eq!(env.backend.recorder().chat_updates(), 1, "fired once, when the build in progress was bound");
}

#[tokio::test(start_paused = true)]
async fn an_in_progress_build_that_fails_is_an_error_with_its_build_id() {
    let (env, template) = env_with_template();
    let (_, build) = env.backend.add_workspace(&template, Transition::Start, BuildPlan::job(JobScript::fails_after(20_000, "image pull failed")));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    let err = out.err();
    assert!(err["error"].as_str().unwrap().contains("image pull failed"), "{err}");
    assert_eq!(err["build_id"], build.id.as_str());
    assert!(env.backend.recorder().creates().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_connecting_agent_gets_exactly_one_connection_attempt() {
    let (env, template) = env_with_template();
    let plan = BuildPlan::job(JobScript::succeeded()).agents(vec![AgentSpec::ready("main").heartbeat(Heartbeat::Connecting)]);
    env.backend.add_workspace(&template, Transition::Start, plan);
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert_eq!(out.ok()["status"], "already_exists");
    assert_eq!(env.backend.recorder().connects(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_connecting_agent_that_does_not_answer_is_not_ready_after_one_attempt() {
    let (env, template) = env_with_template();
    let plan = BuildPlan::job(JobScript::succeeded()).agents(vec![AgentSpec::ready("main")
        .heartbeat(Heartbeat::Connecting)
        .connect(ConnectScript::Fails("no route".into()))]);
    env.backend.add_workspace(&template, Transition::Start, plan);
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert_eq!(out.ok()["agent_status"], "not_ready");
    assert_eq!(env.backend.recorder().connects(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_disconnected_agent_means_a_new_workspace() {
    let (env, template) = env_with_template();
    let plan = BuildPlan::job(JobScript::succeeded()).agents(vec![AgentSpec::ready("main").heartbeat(Heartbeat::Disconnected)]);
    let (old, _) = env.backend.add_workspace(&template, Transition::Start, plan);
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert_eq!(out.ok()["created"], true);
    assert_eq!(env.backend.recorder().creates().len(), 1);
    assert_ne!(env.backend.chat(&env.context()).workspace_id.as_deref(), Some(old.id.as_str()));
}

#[tokio::test(start_paused = true)]
async fn an_agent_silent_past_the_inactivity_limit_means_a_new_workspace() {
    let (env, template) = env_with_template();
    let plan = BuildPlan::job(JobScript::succeeded()).agents(vec![AgentSpec::ready("main").heartbeat(Heartbeat::Stale)]);
    env.backend.add_workspace(&template, Transition::Start, plan);
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert_eq!(out.ok()["created"], true);
    assert_eq!(env.backend.recorder().connects(), 1, "only the new workspace's agent is connected to");
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_agent_means_a_new_workspace() {
    let (env, template) = env_with_template();
    let plan = BuildPlan::job(JobScript::succeeded()).agents(vec![AgentSpec::ready("main").heartbeat(Heartbeat::TimedOut)]);
    env.backend.add_workspace(&template, Transition::Start, plan);
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert_eq!(out.ok()["created"], true);
    assert_eq!(env.backend.recorder().creates().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_workspace_without_agents_means_a_new_workspace() {
    let (env, template) = env_with_template();
    env.backend.add_workspace(&template, Transition::Start, BuildPlan::job(JobScript::succeeded()).agents(vec![]));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert_eq!(out.ok()["created"], true);
}

#[tokio::test(start_paused = true)]
async fn a_stopped_workspace_is_reported_with_start_workspace_named() {
    let (env, template) = env_with_template();
    let (workspace, _) = env.backend.add_workspace(&template, Transition::Stop, BuildPlan::job(JobScript::succeeded()));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    let out = out.ok();
    assert_eq!(out["created"], false);
    assert_eq!(out["status"], "stopped");
    assert_eq!(out["workspace_name"], format!("alice/{}", workspace.name));
    assert!(out["message"].as_str().unwrap().contains("start_workspace"), "{out}");
    assert!(env.backend.recorder().creates().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_deleted_workspace_means_a_new_workspace() {
    let (env, template) = env_with_template();
    let (old, _) = env.backend.add_workspace(&template, Transition::Start, BuildPlan::job(JobScript::succeeded()));
    env.backend.delete_workspace(&old.id);
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert_eq!(out.ok()["created"], true);
    assert_eq!(env.backend.recorder().creates().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_last_build_means_a_new_workspace() {
    let (env, template) = env_with_template();
    env.backend.add_workspace(&template, Transition::Start, BuildPlan::job(JobScript::fails_after(0, "boom")));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert_eq!(out.ok()["created"], true);
}
