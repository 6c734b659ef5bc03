//! Parking: a call that waits holds no instance, keeps its locks, progress
//! and budgets across its runs, and cannot park past the host's limits.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinHandle;
use toolshed_fixtures as fixtures;
use toolshed_harness::{BuildPlan, JobScript, OutputExt, TestEnv, Transition};
use toolshed_runtime::park::{MAX_PARKS_PER_CALL, MAX_STATE_BYTES};
use toolshed_runtime::{Arguments, CallOptions, ToolOutput};

use crate::support::env_with_template;

fn parking_env() -> TestEnv {
    crate::support::env_with(&[("parking", fixtures::PARKING)])
}

/// Calls `tool` in the test's chat on a task of its own, recording its
/// progress as [`TestEnv::call`] does.
fn spawn_call(env: &TestEnv, tool: &'static str, arguments: Value) -> JoinHandle<ToolOutput> {
    let (host, cx) = (env.host.clone(), env.context());
    let options = CallOptions { progress: Some(env.backend.recorder().progress_sink(&cx)), wait_budget: None, client: None };
    tokio::spawn(async move { host.call_with(&cx, tool, Arguments::Json(&arguments), options).await })
}

#[tokio::test(start_paused = true)]
async fn a_create_waiting_on_its_build_holds_no_instance() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::job(JobScript::succeeds_after(60_000)));
    let arguments = json!({ "template_id": template.id });
    let call = spawn_call(&env, "create_workspace", arguments);

    // Twenty virtual seconds into the build: the call is waiting, parked.
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(!call.is_finished());
    assert_eq!(env.host.stats().live(), 0, "a parked call holds no instance");
    assert_eq!(env.host.stats().calls(), 1, "the call is under way");
    let runs_so_far = env.host.stats().instances();
    assert!(runs_so_far >= 10, "one run per poll, every two seconds: {runs_so_far}");

    let out = call.await.unwrap();
    let out = out.ok();
    assert_eq!(out["created"], true, "{out}");
    assert!(out["workspace_name"].as_str().unwrap().starts_with("alice/docker-"), "{out}");
    assert_eq!(env.host.stats().calls(), 0);
    let runs = env.host.stats().instances();
    assert!((30..=32).contains(&runs), "a minute's build polled every two seconds: {runs} runs");
    let progress = env.backend.recorder().progress(&env.context().chat_id);
    assert!(progress.len() >= 29, "every parked poll reported progress: {}", progress.len());
    assert!(progress.iter().any(|p| p.contains("for 58 s of 10 min")), "waited time counts from the first run: {progress:?}");
}

#[tokio::test(start_paused = true)]
async fn a_stop_and_a_start_waiting_on_their_builds_hold_no_instance() {
    let (env, template) = env_with_template();
    let (workspace, _) = env.backend.add_workspace(&template, Transition::Start, BuildPlan::job(JobScript::succeeded()));
    for (tool, done) in [("stop_workspace", "stopped"), ("start_workspace", "started")] {
        env.backend.push_plan(BuildPlan::job(JobScript::succeeds_after(30_000)));
        let before = env.host.stats().instances();
        let call = spawn_call(&env, tool, json!({}));
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(!call.is_finished());
        assert_eq!(env.host.stats().live(), 0, "{tool}: a parked call holds no instance");
        let out = call.await.unwrap();
        let out = out.ok();
        assert_eq!(out[done], true, "{out}");
        assert_eq!(out["workspace_name"], format!("alice/{}", workspace.name));
        assert!(out["build_id"].is_string(), "{out}");
        let runs = env.host.stats().instances() - before;
        assert!((15..=17).contains(&runs), "{tool}: 30 s polled every two seconds: {runs} runs");
    }
}

#[tokio::test(start_paused = true)]
async fn a_second_create_in_the_chat_waits_for_the_parked_one_and_finds_its_workspace() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::job(JobScript::succeeds_after(30_000)));
    let arguments = json!({ "template_id": template.id });
    let (first, second) = tokio::join!(env.call("create_workspace", arguments.clone()), async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        env.call("create_workspace", arguments.clone()).await
    });
    assert_eq!(first.ok()["created"], true);
    assert_eq!(second.ok()["created"], false, "the lock the parked call kept made the second wait: {}", second.value);
    assert_eq!(first.ok()["workspace_name"], second.ok()["workspace_name"]);
    assert_eq!(env.backend.live_workspaces().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn runs_carry_state_progress_numbering_and_the_lock() {
    let env = parking_env();
    let call = spawn_call(&env, "park_runs", json!({ "runs": 5, "ms": 1_000, "lock": true }));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    // Parked, between its second and third runs: its lock is still held.
    let blocked = tokio::time::timeout(Duration::from_millis(100), env.call("take_lock", json!({}))).await;
    assert!(blocked.is_err(), "another call of the chat took the lock a parked call holds");
    let out = call.await.unwrap();
    assert_eq!(out.ok()["text"], "runs: 5");
    assert_eq!(env.host.stats().live(), 0);
    assert_eq!(env.call("take_lock", json!({})).await.ok()["text"], "took the lock", "released when the call ended");
    let progress = env.backend.recorder().progress(&env.context().chat_id);
    assert_eq!(progress, ["run 1", "run 2", "run 3", "run 4", "run 5"]);
}

#[tokio::test(start_paused = true)]
async fn a_state_past_the_limit_ends_the_call_naming_it() {
    let env = parking_env();
    let fits = env.call("park_state", json!({ "bytes": MAX_STATE_BYTES })).await;
    assert_eq!(fits.ok()["text"], format!("state: {MAX_STATE_BYTES}"));
    let over = env.call("park_state", json!({ "bytes": MAX_STATE_BYTES + 1 })).await;
    let err = over.err();
    assert_eq!(err["code"], "PARK_STATE_TOO_LARGE", "{err}");
    assert!(err.to_string().contains(&format!("{} bytes", MAX_STATE_BYTES + 1)), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_call_that_parks_for_ever_is_stopped_at_the_park_limit() {
    let env = parking_env();
    let out = env.call("park_forever", json!({})).await;
    let err = out.err();
    assert_eq!(err["code"], "TOO_MANY_PARKS", "{err}");
    assert_eq!(env.host.stats().instances(), u64::from(MAX_PARKS_PER_CALL) + 1, "one run per park, then the refused one");
    assert_eq!(env.host.stats().live(), 0);
    assert_eq!(env.call("park_state", json!({ "bytes": 4 })).await.ok()["text"], "state: 4", "the host serves the next call");
}

#[tokio::test(start_paused = true)]
async fn the_deadline_covers_parked_time() {
    let env = parking_env();
    // 1,000 parks of an hour each: far past the fixture's 30-minute deadline.
    let out = env.call("park_runs", json!({ "runs": 1_000, "ms": 3_600_000, "lock": false })).await;
    let err = out.err();
    assert_eq!(err["code"], "LIMIT_DEADLINE", "{err}");
    assert_eq!(env.host.stats().live(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_host_call_budget_carries_from_run_to_run() {
    let env = crate::support::env_with(&[("parking-budget", fixtures::PARKING)]);
    // Three host calls a run (resumed, progress, park): the seventh run
    // passes 20, though no single run comes near it.
    let out = env.call("park_runs", json!({ "runs": 10, "ms": 1_000, "lock": false })).await;
    let err = out.err();
    assert_eq!(err["code"], "LIMIT_IMPORT_CALLS", "{err}");
    assert_eq!(env.host.stats().instances(), 7);
}
