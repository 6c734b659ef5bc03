//! tests/SPEC.md "Long waits": heartbeats while a tool waits, and the wait
//! budget: a caller that will not wait as long as the work takes gets a
//! recoverable STILL_IN_PROGRESS in time, and calling again waits on the
//! same work. All on virtual time.

use std::time::Duration;

use serde_json::{Value, json};
use toolshed_harness::{
    AgentSpec, BuildPlan, ConnectScript, JobScript, LifecycleState, OutputExt, TaskScript, TestEnv, Transition,
};

use crate::support::env_with_template;

/// The budget `toolshed serve` gives clients that do not use tasks.
const BUDGET: Duration = Duration::from_secs(50);

/// The command an error's first suggestion names, as (tool, arguments).
fn suggested_call(err: &Value) -> (String, Value) {
    let call = err["suggestions"][0].as_str().unwrap_or_else(|| panic!("no suggested call in {err}"));
    let (tool, arguments) = call.split_once(' ').unwrap_or_else(|| panic!("not a call: {call}"));
    (tool.to_string(), serde_json::from_str(arguments).unwrap_or_else(|e| panic!("{call}: {e}")))
}

/// Asserts `err` is the budget's answer: recoverable, not a failure, with
/// the build and the call that waits on.
fn assert_still_in_progress(err: &Value) {
    assert_eq!(err["code"], "STILL_IN_PROGRESS", "{err}");
    assert_eq!(err["category"], "timeout", "{err}");
    assert_eq!(err["recoverable"], true, "{err}");
    assert!(err["error"].as_str().unwrap().contains("nothing failed"), "{err}");
    let (tool, _) = suggested_call(err);
    assert!(err["error"].as_str().unwrap().contains(&tool), "the message names the call too: {err}");
}

#[tokio::test(start_paused = true)]
async fn a_ninety_second_build_sends_a_heartbeat_at_least_every_ten_seconds() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::job(JobScript::succeeds_after(90_000).printing("Step 4/9 : RUN cargo build")));
    let started = tokio::time::Instant::now();
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    out.ok();
    let progress = env.backend.recorder().progress_timed(&env.context().chat_id);
    let beats: Vec<_> = progress.iter().filter(|(_, m)| m.starts_with("build ")).collect();
    assert!(beats.len() >= 9, "{progress:?}");
    let mut last = started;
    for (at, message) in &beats {
        assert!(at.duration_since(last) <= Duration::from_secs(10), "a gap of {:?} before {message}", at.duration_since(last));
        last = *at;
    }
    // Status, time waited, the limit, and the build's last line.
    let late = &beats[beats.len() - 1].1;
    assert!(late.contains("running for 1 min") && late.contains("of 10 min"), "{late}");
    assert!(late.contains("last line: Step 4/9 : RUN cargo build"), "{late}");
}

#[tokio::test(start_paused = true)]
async fn waiting_for_startup_scripts_sends_heartbeats_too() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::default().agents(vec![AgentSpec::ready("main").lifecycle(vec![
        (0, LifecycleState::Starting),
        (60_000, LifecycleState::Ready),
    ])]));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    out.ok();
    let progress = env.backend.recorder().progress_timed(&env.context().chat_id);
    let beats: Vec<_> = progress.iter().filter(|(_, m)| m.contains("startup scripts starting")).collect();
    assert!(beats.len() >= 6, "{progress:?}");
    for pair in beats.windows(2) {
        assert!(pair[1].0.duration_since(pair[0].0) <= Duration::from_secs(10), "{pair:?}");
    }
}

/// The scenario real clients hit: a 90 s build, a caller that waits 50 s.
/// Two calls end it, each answered within the budget, and one workspace is
/// made.
#[tokio::test(start_paused = true)]
async fn a_ninety_second_build_finishes_in_two_calls_within_a_fifty_second_budget() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::job(JobScript::succeeds_after(90_000)));
    let cx = env.context();

    let started = tokio::time::Instant::now();
    let first = env.call_waiting(&cx, "create_workspace", json!({ "template_id": template.id }), Some(BUDGET)).await;
    assert!(started.elapsed() < BUDGET, "answered after {:?}", started.elapsed());
    let err = first.err().clone();
    assert_still_in_progress(&err);
    let build_id = err["build_id"].as_str().expect("the build is named").to_string();
    assert!(err["error"].as_str().unwrap().contains(&build_id), "{err}");

    let (tool, arguments) = suggested_call(&err);
    assert_eq!((tool.as_str(), &arguments), ("create_workspace", &json!({ "template_id": template.id })));
    let again = tokio::time::Instant::now();
    let second = env.call_waiting(&cx, &tool, arguments, Some(BUDGET)).await;
    assert!(again.elapsed() < BUDGET, "answered after {:?}", again.elapsed());
    let out = second.ok();
    assert_eq!(out["build_id"], build_id.as_str(), "{out}");
    assert_eq!(env.backend.recorder().creates().len(), 1, "one workspace");
    assert_eq!(env.backend.recorder().builds().len(), 0, "no second build");
    assert_eq!(env.backend.chat(&cx).build_id.as_deref(), Some(build_id.as_str()));
}

#[tokio::test(start_paused = true)]
async fn without_a_budget_the_call_waits_for_the_whole_build() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::job(JobScript::succeeds_after(90_000)));
    let started = tokio::time::Instant::now();
    let out = env.call_waiting(&env.context(), "create_workspace", json!({ "template_id": template.id }), None).await;
    assert_eq!(out.ok()["created"], true);
    assert!(started.elapsed() >= Duration::from_secs(90));
}

#[tokio::test(start_paused = true)]
async fn the_suggested_create_call_keeps_the_name_and_parameters() {
    let (env, _) = env_with_template();
    let template = env.backend.add_template("rust", toolshed_harness::ids::ORG, 0);
    env.backend.set_parameters(template.active_version_id.as_str(), vec![crate::support::parameter("region", false)]);
    env.backend.push_plan(BuildPlan::job(JobScript::succeeds_after(90_000)));
    let arguments = json!({ "template_id": template.id, "name": "my-box", "parameters": { "region": "eu" } });
    let out = env.call_waiting(&env.context(), "create_workspace", arguments.clone(), Some(BUDGET)).await;
    let (tool, again) = suggested_call(out.err());
    assert_eq!(tool, "create_workspace");
    assert_eq!(again, arguments);
}

#[tokio::test(start_paused = true)]
async fn a_budget_that_runs_out_while_the_agent_starts_says_the_workspace_is_built() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::job(JobScript::succeeds_after(20_000)).agents(vec![AgentSpec::ready("main").lifecycle(vec![
        (0, LifecycleState::Starting),
        (120_000, LifecycleState::Ready),
    ])]));
    let cx = env.context();
    let first = env.call_waiting(&cx, "create_workspace", json!({ "template_id": template.id }), Some(BUDGET)).await;
    let err = first.err().clone();
    assert_still_in_progress(&err);
    assert!(err["error"].as_str().unwrap().contains("agent is still starting"), "{err}");
    // Calling again waits on the agent of the same workspace.
    let mut calls = 1;
    let mut out = first;
    while out.is_error && calls < 4 {
        let (tool, arguments) = suggested_call(&out.value);
        out = env.call_waiting(&cx, &tool, arguments, Some(BUDGET)).await;
        calls += 1;
    }
    assert!(!out.is_error, "{}", out.value);
    assert!(out.value.get("startup_scripts").is_none(), "the scripts finished: {}", out.value);
    assert_eq!(calls, 3, "120 s of startup in 50 s budgets");
    assert_eq!(env.backend.recorder().creates().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_agent_within_the_budget_answers_still_in_progress() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::default().agents(vec![AgentSpec::ready("main").connect(ConnectScript::FailsTimes(30))]));
    let started = tokio::time::Instant::now();
    let out = env.call_waiting(&env.context(), "create_workspace", json!({ "template_id": template.id }), Some(BUDGET)).await;
    assert!(started.elapsed() < BUDGET);
    assert_still_in_progress(out.err());
}

#[tokio::test(start_paused = true)]
async fn stop_within_a_budget_answers_with_the_call_that_waits_on() {
    let (env, template) = env_with_template();
    env.backend.add_workspace(&template, Transition::Start, BuildPlan::job(JobScript::succeeded()));
    env.backend.push_plan(BuildPlan::job(JobScript::succeeds_after(80_000)));
    let cx = env.context();
    let first = env.call_waiting(&cx, "stop_workspace", json!({}), Some(BUDGET)).await;
    let err = first.err().clone();
    assert_still_in_progress(&err);
    let (tool, arguments) = suggested_call(&err);
    assert_eq!((tool.as_str(), &arguments), ("stop_workspace", &json!({})));
    let second = env.call_waiting(&cx, &tool, arguments, Some(BUDGET)).await;
    assert_eq!(second.ok()["stopped"], true);
    assert_eq!(env.backend.recorder().builds().len(), 1, "the second call waited on the first stop build");
}

#[tokio::test(start_paused = true)]
async fn start_within_a_budget_answers_with_the_call_that_waits_on() {
    let (env, template) = env_with_template();
    env.backend.add_workspace(&template, Transition::Stop, BuildPlan::job(JobScript::succeeded()));
    env.backend.push_plan(BuildPlan::job(JobScript::succeeds_after(80_000)));
    let cx = env.context();
    let first = env.call_waiting(&cx, "start_workspace", json!({}), Some(BUDGET)).await;
    let err = first.err().clone();
    assert_still_in_progress(&err);
    let (tool, arguments) = suggested_call(&err);
    assert_eq!((tool.as_str(), &arguments), ("start_workspace", &json!({})));
    let second = env.call_waiting(&cx, &tool, arguments, Some(BUDGET)).await;
    assert_eq!(second.ok()["started"], true);
    assert_eq!(env.backend.recorder().builds().len(), 1, "the second call waited on the first start build");
}

fn registry_env() -> TestEnv {
    crate::support::env_with(&[("registry-tools", toolshed_builtin::REGISTRY_TOOLS)])
}

fn registry_args() -> Value {
    json!({ "project_id": "proj-1", "cluster_id": "cl-1", "cluster_name": "prod", "provider": "hetzner", "region": "fsn1" })
}

#[tokio::test(start_paused = true)]
async fn provisioning_past_the_budget_continues_on_its_task_and_never_starts_a_second_registry() {
    let env = registry_env();
    env.backend.push_registry_plan(TaskScript::completes_after(120_000));
    let cx = env.context();
    let mut out = env.call_waiting(&cx, "provision_registry", registry_args(), Some(BUDGET)).await;
    let task_id = out.err()["task_id"].as_str().expect("the task is named").to_string();
    assert_still_in_progress(&out.value);
    let mut calls = 1;
    while out.is_error {
        let (tool, arguments) = suggested_call(&out.value);
        assert_eq!(arguments["task_id"], task_id.as_str(), "{arguments}");
        let started = tokio::time::Instant::now();
        out = env.call_waiting(&cx, &tool, arguments, Some(BUDGET)).await;
        assert!(started.elapsed() < BUDGET);
        calls += 1;
        assert!(calls <= 4, "{}", out.value);
    }
    assert_eq!(out.value["task_id"], task_id.as_str());
    assert_eq!(out.value["status"], "completed");
    assert_eq!(env.backend.recorder().provisions().len(), 1, "provisioning started once");
    assert_eq!(calls, 3, "120 s in 50 s budgets");
}

#[tokio::test(start_paused = true)]
async fn a_task_id_of_another_owner_reads_as_not_found_and_starts_nothing() {
    let env = registry_env();
    env.backend.push_registry_plan(TaskScript::completes_after(120_000));
    let first = env.call_waiting(&env.context(), "provision_registry", registry_args(), Some(BUDGET)).await;
    let task_id = first.err()["task_id"].as_str().unwrap().to_string();
    let stranger = toolshed_runtime::CallContext { owner_id: "00000000-0000-4000-8000-0000000000ff".into(), ..env.context() };
    let mut arguments = registry_args();
    arguments["task_id"] = json!(task_id);
    let out = env.call_in(&stranger, "provision_registry", arguments).await;
    assert_eq!(out.err()["code"], "TASK_NOT_FOUND", "{}", out.value);
    assert_eq!(env.backend.recorder().provisions().len(), 1);
}
