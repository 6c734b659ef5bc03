//! SPEC 4.3.7-8, 4.4.2-7, 4.5 and 4.7: how many times each path fires
//! chat-updated, counted exactly. The front end redraws the chat on each,
//! so one too many is as wrong as one too few.

use serde_json::json;
use toolshed_harness::{
    AgentSpec, ApiError, BuildPlan, ConnectScript, ControlError, Heartbeat, JobScript, OutputExt, TestEnv, Transition, ids,
};
use toolshed_infra::Template;

use crate::support::{env_with_template, parameter};

fn updates(env: &TestEnv) -> usize {
    env.backend.recorder().chat_updates()
}

fn api_error(status: u16) -> ControlError {
    ControlError::Api(ApiError { status, message: "refused".into(), detail: String::new(), validations: vec![] })
}

async fn create(env: &TestEnv, template: &Template) -> toolshed_runtime::ToolOutput {
    env.call("create_workspace", json!({ "template_id": template.id })).await
}

#[tokio::test(start_paused = true)]
async fn create_fires_twice_when_it_creates_and_once_when_the_build_fails() {
    let (env, template) = env_with_template();
    create(&env, &template).await.ok();
    assert_eq!(updates(&env), 2, "bound, then the agent ready");

    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::job(JobScript::fails_after(4_000, "boom")));
    create(&env, &template).await.err();
    assert_eq!(updates(&env), 1, "bound; the failure ends the call");

    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::default().agents(vec![AgentSpec::ready("main").connect(ConnectScript::Fails("refused".into()))]));
    assert_eq!(create(&env, &template).await.ok()["agent_status"], "not_ready");
    assert_eq!(updates(&env), 2, "an agent that is not ready still ends the create");
}

#[tokio::test(start_paused = true)]
async fn create_fires_none_when_it_creates_nothing() {
    let (env, template) = env_with_template();
    env.backend.fail_next_create(api_error(400));
    create(&env, &template).await.err();
    assert_eq!(updates(&env), 0, "the create was refused");

    let env = crate::support::env();
    for bad in [json!({ "template_id": "" }), json!({ "template_id": "docker" }), json!({ "template_id": ids::fresh() })] {
        env.call("create_workspace", bad).await.err();
    }
    let theirs = env.backend.add_template("theirs", ids::OTHER_ORG, 0);
    env.call("create_workspace", json!({ "template_id": theirs.id })).await.err();
    assert_eq!(updates(&env), 0, "invalid, unknown or another organization's template");
}

#[tokio::test(start_paused = true)]
async fn the_existing_workspace_check_fires_once_for_a_build_in_progress_and_none_otherwise() {
    let (env, template) = env_with_template();
    env.backend.add_workspace(&template, Transition::Start, BuildPlan::job(JobScript::succeeds_after(30_000)));
    assert_eq!(create(&env, &template).await.ok()["status"], "already_exists");
    assert_eq!(updates(&env), 1, "the build in progress is bound");

    let (env, template) = env_with_template();
    env.backend.add_workspace(&template, Transition::Start, BuildPlan::job(JobScript::fails_after(30_000, "boom")));
    create(&env, &template).await.err();
    assert_eq!(updates(&env), 1, "bound, then the build failed");

    for heartbeat in [Heartbeat::Connected, Heartbeat::Connecting] {
        let (env, template) = env_with_template();
        env.backend.add_workspace(&template, Transition::Start, BuildPlan::job(JobScript::succeeded()).agents(vec![AgentSpec::ready("main").heartbeat(heartbeat)]));
        assert_eq!(create(&env, &template).await.ok()["status"], "already_exists");
        assert_eq!(updates(&env), 0, "{heartbeat:?}: nothing new is bound");
    }

    let (env, template) = env_with_template();
    env.backend.add_workspace(&template, Transition::Stop, BuildPlan::job(JobScript::succeeded()));
    assert_eq!(create(&env, &template).await.ok()["status"], "stopped");
    assert_eq!(updates(&env), 0, "stopped");

    let (env, template) = env_with_template();
    env.backend.add_workspace(&template, Transition::Start, BuildPlan::job(JobScript::succeeded()).agents(vec![AgentSpec::ready("main").heartbeat(Heartbeat::Disconnected)]));
    assert_eq!(create(&env, &template).await.ok()["created"], true);
    assert_eq!(updates(&env), 2, "a dead agent means a new workspace, created as any other");
}

fn stopped(env: &TestEnv, template: &Template) -> toolshed_infra::Workspace {
    env.backend.add_workspace(template, Transition::Stop, BuildPlan::job(JobScript::succeeded())).0
}

async fn start(env: &TestEnv) -> toolshed_runtime::ToolOutput {
    env.call("start_workspace", json!({})).await
}

#[tokio::test(start_paused = true)]
async fn start_fires_twice_for_a_new_build_and_once_when_it_fails() {
    let (env, template) = env_with_template();
    stopped(&env, &template);
    start(&env).await.ok();
    assert_eq!(updates(&env), 2, "bound, then the agent ready");

    let (env, template) = env_with_template();
    stopped(&env, &template);
    env.backend.push_plan(BuildPlan::job(JobScript::fails_after(4_000, "boom")));
    start(&env).await.err();
    assert_eq!(updates(&env), 1, "bound, then the build failed");
}

#[tokio::test(start_paused = true)]
async fn start_fires_twice_for_a_start_in_progress_and_once_when_it_fails() {
    let (env, template) = env_with_template();
    let workspace = stopped(&env, &template);
    env.backend.add_build(&workspace.id, Transition::Start, None, BuildPlan::job(JobScript::succeeds_after(30_000)));
    start(&env).await.ok();
    assert_eq!(updates(&env), 2, "bound, then the agent ready");

    let (env, template) = env_with_template();
    let workspace = stopped(&env, &template);
    env.backend.add_build(&workspace.id, Transition::Start, None, BuildPlan::job(JobScript::fails_after(30_000, "boom")));
    start(&env).await.err();
    assert_eq!(updates(&env), 1, "bound, then the build failed");
}

#[tokio::test(start_paused = true)]
async fn start_fires_three_times_when_it_waits_out_a_stop_then_starts() {
    let (env, template) = env_with_template();
    let (workspace, _) = env.backend.add_workspace(&template, Transition::Start, BuildPlan::job(JobScript::succeeded()));
    env.backend.add_build(&workspace.id, Transition::Stop, None, BuildPlan::job(JobScript::succeeds_after(30_000)));
    start(&env).await.ok();
    assert_eq!(updates(&env), 3, "the stop bound, the start bound, the agent ready");
}

#[tokio::test(start_paused = true)]
async fn start_fires_none_when_it_starts_nothing() {
    let (env, template) = env_with_template();
    env.backend.add_workspace(&template, Transition::Start, BuildPlan::job(JobScript::succeeded()));
    assert_eq!(start(&env).await.ok()["no_build"], true);
    assert_eq!(updates(&env), 0, "already running");

    let env = crate::support::env();
    start(&env).await.err();
    assert_eq!(updates(&env), 0, "no workspace");

    let (env, template) = env_with_template();
    let workspace = stopped(&env, &template);
    env.backend.delete_workspace(&workspace.id);
    start(&env).await.err();
    assert_eq!(updates(&env), 0, "deleted");

    let (env, template) = env_with_template();
    stopped(&env, &template);
    env.backend.fail_next_build(api_error(403));
    start(&env).await.err();
    assert_eq!(updates(&env), 0, "the start was refused");

    let (env, template) = env_with_template();
    stopped(&env, &template);
    env.backend.require_active_version(&template.id, true);
    env.backend.new_template_version(&template.id, vec![parameter("region", true)]);
    assert_eq!(start(&env).await.err()["code"], "TEMPLATE_PARAMETERS_REQUIRED");
    assert_eq!(updates(&env), 0, "the manual-update error");
}

#[tokio::test(start_paused = true)]
async fn stop_fires_twice_for_a_stop_build_and_none_when_already_stopped() {
    let (env, template) = env_with_template();
    env.backend.add_workspace(&template, Transition::Start, BuildPlan::job(JobScript::succeeded()));
    env.call("stop_workspace", json!({})).await.ok();
    assert_eq!(updates(&env), 2, "bound, then stopped");

    let (env, template) = env_with_template();
    stopped(&env, &template);
    assert_eq!(env.call("stop_workspace", json!({})).await.ok()["no_build"], true);
    assert_eq!(updates(&env), 0, "already stopped");

    let (env, template) = env_with_template();
    env.backend.add_workspace(&template, Transition::Start, BuildPlan::job(JobScript::succeeds_after(30_000)));
    env.call("stop_workspace", json!({})).await.ok();
    assert_eq!(updates(&env), 2, "the start in progress is waited out unbound; the stop is bound, then done");

    let (env, template) = env_with_template();
    env.backend.add_workspace(&template, Transition::Start, BuildPlan::job(JobScript::succeeded()));
    env.backend.push_plan(BuildPlan::job(JobScript::fails_after(3_000, "destroy failed")));
    env.call("stop_workspace", json!({})).await.err();
    assert_eq!(updates(&env), 1, "bound, then the stop failed");
}
