//! Tasks on virtual time: recorded before they run, bound to their owner,
//! cancelled with their instance, resumed after their runner stopped, given
//! up after too many starts, purged after their time to live.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use toolshed_harness::{BuildPlan, JobScript, Transition, ids};
use toolshed_runtime::CallContext;
use toolshed_runtime::tasks::{MemoryJournal, TaskJournal, TaskRecord, TaskSettings, TaskState, Tasks};

use crate::support::env_with_template;

fn tasks_of(env: &toolshed_harness::TestEnv, settings: TaskSettings) -> (Arc<Tasks>, Arc<MemoryJournal>) {
    let journal = Arc::new(MemoryJournal::default());
    (Tasks::new(env.host.clone(), journal.clone(), settings), journal)
}

#[tokio::test(start_paused = true)]
async fn a_task_is_recorded_before_it_runs_and_ends_with_the_tools_answer() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::job(JobScript::succeeds_after(90_000).printing("Step 2/5")));
    let (tasks, journal) = tasks_of(&env, TaskSettings::default());
    let cx = env.context();
    let task = tasks.start(&cx, "create_workspace", json!({ "template_id": template.id })).await.unwrap();
    let recorded = journal.get(&cx.owner_id, &task.id).await.unwrap().expect("recorded when start returns");
    assert_eq!((recorded.state, recorded.tool.as_str(), recorded.plugin.as_str()), (TaskState::Working, "create_workspace", "workspace-tools"));
    assert_eq!(recorded.arguments, json!({ "template_id": template.id }));

    tokio::time::sleep(Duration::from_secs(30)).await;
    let working = journal.get(&cx.owner_id, &task.id).await.unwrap().unwrap();
    let note = working.status_message.expect("the latest heartbeat is kept");
    assert!(note.contains("for 2") && note.contains("of 10 min") && note.contains("Step 2/5"), "{note}");

    let ended = tasks.wait(&cx.owner_id, &task.id).await.unwrap().unwrap();
    assert_eq!(ended.state, TaskState::Completed);
    assert!(!ended.is_error);
    assert_eq!(ended.result.unwrap()["created"], true);
    assert_eq!(env.backend.recorder().creates().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn another_owners_task_reads_as_not_found_and_cannot_be_cancelled() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::job(JobScript::succeeds_after(90_000)));
    let (tasks, _) = tasks_of(&env, TaskSettings::default());
    let task = tasks.start(&env.context(), "create_workspace", json!({ "template_id": template.id })).await.unwrap();
    assert!(tasks.get(ids::OTHER_OWNER, &task.id).await.unwrap().is_none());
    assert!(tasks.cancel(ids::OTHER_OWNER, &task.id).await.unwrap().is_none());
    assert!(tasks.wait(ids::OTHER_OWNER, &task.id).await.unwrap().is_none());
    assert!(tasks.list(ids::OTHER_OWNER, 10).await.unwrap().is_empty());
    let mine = tasks.get(ids::OWNER, &task.id).await.unwrap().unwrap();
    assert_eq!(mine.state, TaskState::Working, "the stranger's cancel changed nothing");
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_task_ends_its_call_and_marks_it_cancelled() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::job(JobScript::never_finishes()));
    let (tasks, _) = tasks_of(&env, TaskSettings::default());
    let task = tasks.start(&env.context(), "create_workspace", json!({ "template_id": template.id })).await.unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(tasks.running(), 1, "the task's call runs");
    let cancelled = tasks.cancel(ids::OWNER, &task.id).await.unwrap().unwrap();
    assert_eq!(cancelled.state, TaskState::Cancelled);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(env.host.stats().live(), 0, "no instance is left");
    assert_eq!(env.host.stats().calls(), 0, "no call is left");
    assert_eq!(tasks.running(), 0);
    // The call, parked between polls when it was cancelled, polls no more.
    let polls = env.backend.recorder().reads().len();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(env.backend.recorder().reads().len(), polls, "cancel ended the call");
    let ended = tasks.wait(ids::OWNER, &task.id).await.unwrap().unwrap();
    assert_eq!(ended.state, TaskState::Cancelled);
    assert!(ended.result.is_none());
}

/// The journal as a runner that died mid-task leaves it: working, claimed
/// by a process that no longer renews its lease.
fn orphaned(cx: &CallContext, tool: &str, arguments: serde_json::Value, now: u64, attempts: u32) -> TaskRecord {
    TaskRecord {
        id: ids::fresh(),
        owner_id: cx.owner_id.clone(),
        owner_name: cx.owner_name.clone(),
        organization_id: cx.organization_id.clone(),
        chat_id: cx.chat_id.clone(),
        tool: tool.into(),
        arguments,
        plugin: "workspace-tools".into(),
        plugin_version: "earlier".into(),
        state: TaskState::Working,
        status_message: None,
        result: None,
        is_error: false,
        created_at_ms: now - 20_000,
        updated_at_ms: now - 20_000,
        ttl_ms: 86_400_000,
        runner: Some("4242:dead".into()),
        lease_expires_at_ms: Some(now - 1_000),
        attempts,
    }
}

#[tokio::test(start_paused = true)]
async fn a_task_whose_runner_died_is_resumed_and_waits_on_the_same_build() {
    let (env, template) = env_with_template();
    // What the dead runner's create_workspace left: a workspace bound to
    // the chat, its build still running.
    let (workspace, _) = env.backend.add_workspace(&template, Transition::Start, BuildPlan::job(JobScript::succeeds_after(60_000)));
    env.backend.bind(&env.context(), &workspace.id);
    let (tasks, journal) = tasks_of(&env, TaskSettings::default());
    let lost = orphaned(&env.context(), "create_workspace", json!({ "template_id": template.id }), env.backend.now(), 1);
    journal.insert(&lost).await.unwrap();

    tasks.tend().await.unwrap();
    assert_eq!(tasks.running(), 1, "the lapsed task was claimed");
    let ended = tasks.wait(ids::OWNER, &lost.id).await.unwrap().unwrap();
    assert_eq!(ended.state, TaskState::Completed, "{ended:?}");
    assert_eq!(ended.attempts, 2);
    let result = ended.result.unwrap();
    assert_eq!(result["created"], false, "{result}");
    assert!(env.backend.recorder().creates().is_empty(), "no second workspace");
    assert!(env.backend.recorder().builds().is_empty(), "no second build");
}

#[tokio::test(start_paused = true)]
async fn a_task_started_too_often_is_given_up_with_the_reason() {
    let (env, template) = env_with_template();
    let settings = TaskSettings::default();
    let (tasks, journal) = tasks_of(&env, settings.clone());
    let lost = orphaned(&env.context(), "create_workspace", json!({ "template_id": template.id }), env.backend.now(), settings.max_attempts);
    journal.insert(&lost).await.unwrap();
    tasks.tend().await.unwrap();
    let ended = journal.get(ids::OWNER, &lost.id).await.unwrap().unwrap();
    assert_eq!(ended.state, TaskState::Failed);
    assert_eq!(ended.result.unwrap()["code"], "TASK_ABANDONED");
    assert!(env.backend.recorder().creates().is_empty(), "the tool did not run again");
}

#[tokio::test(start_paused = true)]
async fn a_live_runners_task_is_not_claimed_by_another() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::job(JobScript::succeeds_after(90_000)));
    let journal = Arc::new(MemoryJournal::default());
    let first = Tasks::new(env.host.clone(), journal.clone(), TaskSettings::default());
    let second = Tasks::new(env.host.clone(), journal.clone(), TaskSettings::default());
    let _keeper = first.keep();
    let task = first.start(&env.context(), "create_workspace", json!({ "template_id": template.id })).await.unwrap();
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_secs(5)).await;
        second.tend().await.unwrap();
        assert_eq!(second.running(), 0, "the first runner renews its lease");
    }
    let ended = first.wait(ids::OWNER, &task.id).await.unwrap().unwrap();
    assert_eq!(ended.attempts, 1);
    assert_eq!(ended.state, TaskState::Completed);
}

#[tokio::test(start_paused = true)]
async fn tasks_past_their_time_to_live_are_purged() {
    let (env, _) = env_with_template();
    let settings = TaskSettings { ttl: Duration::from_secs(60), ..TaskSettings::default() };
    let (tasks, journal) = tasks_of(&env, settings);
    let task = tasks.start(&env.context(), "list_templates", json!({})).await.unwrap();
    let ended = tasks.wait(ids::OWNER, &task.id).await.unwrap().unwrap();
    assert_eq!(ended.state, TaskState::Completed);
    tokio::time::sleep(Duration::from_secs(59)).await;
    tasks.tend().await.unwrap();
    assert!(journal.get(ids::OWNER, &task.id).await.unwrap().is_some(), "kept within its time to live");
    tokio::time::sleep(Duration::from_secs(2)).await;
    tasks.tend().await.unwrap();
    assert!(journal.get(ids::OWNER, &task.id).await.unwrap().is_none(), "purged after it");
}

#[tokio::test(start_paused = true)]
async fn a_task_for_an_unknown_tool_is_refused_and_not_recorded() {
    let (env, _) = env_with_template();
    let (tasks, journal) = tasks_of(&env, TaskSettings::default());
    let refused = tasks.start(&env.context(), "no_such_tool", json!({})).await.unwrap_err();
    assert_eq!(refused.to_json()["code"], "UNKNOWN_TOOL");
    assert!(journal.list(ids::OWNER, 10).await.unwrap().is_empty());
}
