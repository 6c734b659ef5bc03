//! SPEC §1: every row of the timing table, pinned on the schedule of reads
//! and connection attempts the fake records on virtual time. Each test
//! fails if its row's value changes: a poll interval shows in the gaps
//! between reads, a limit in the time of the last one.

use serde_json::json;
use toolshed_harness::{AgentSpec, BuildPlan, ConnectScript, JobScript, LifecycleState, OutputExt, ReadKind, TaskScript, TestEnv};

use crate::support::env_with_template;

/// `times` as offsets from `from`.
fn offsets(times: &[u64], from: u64) -> Vec<u64> {
    times.iter().map(|t| t - from).collect()
}

/// `0, step, 2 * step, … , last`.
fn every(step: u64, last: u64) -> Vec<u64> {
    (0..=last / step).map(|i| i * step).collect()
}

fn job_reads(env: &TestEnv) -> Vec<u64> {
    env.backend.recorder().read_times(|k| matches!(k, ReadKind::Job(_)))
}

fn lifecycle_reads(env: &TestEnv) -> Vec<u64> {
    env.backend.recorder().read_times(|k| matches!(k, ReadKind::Agent(_)))
}

#[tokio::test(start_paused = true)]
async fn a_build_is_polled_at_once_then_every_two_seconds() {
    let (env, template) = env_with_template();
    // Pending, running from 10 s, succeeded at 20 s.
    env.backend.push_plan(BuildPlan::job(JobScript::succeeds_after(20_000)));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    let created_at = env.backend.build_created_at(out.ok()["build_id"].as_str().unwrap()).unwrap();
    assert_eq!(offsets(&job_reads(&env), created_at), every(2_000, 20_000), "the first poll at once, then one every 2 s until it succeeds");
}

#[tokio::test(start_paused = true)]
async fn a_build_wait_gives_up_at_ten_minutes() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::job(JobScript::never_finishes()));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    let err = out.err();
    assert_eq!(err["code"], "BUILD_TIMEOUT", "{err}");
    let created_at = env.backend.build_created_at(err["build_id"].as_str().unwrap()).unwrap();
    assert_eq!(offsets(&job_reads(&env), created_at), every(2_000, 600_000), "polls every 2 s, the last at exactly 10 min");
    assert_eq!(env.backend.now() - created_at, 600_000, "the answer comes at the limit, not a poll later");
}

#[tokio::test(start_paused = true)]
async fn connection_attempts_last_five_seconds_pause_two_and_end_at_two_minutes() {
    let (env, template) = env_with_template();
    env.backend.push_plan(
        BuildPlan::job(JobScript::succeeded()).agents(vec![AgentSpec::ready("main").connect(ConnectScript::Fails("connection refused".into()))]),
    );
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert_eq!(out.ok()["agent_status"], "not_ready");
    let attempts = env.backend.recorder().attempts();
    let first = attempts[0].at_ms;
    let schedule: Vec<(u64, u64)> = attempts.iter().map(|a| (a.at_ms - first, a.timeout_ms)).collect();
    // Each attempt may take 5 s, then a 2 s pause: one every 7 s. The last
    // fits in what is left of the 2 minutes: 1 s at 119 s.
    let mut expected: Vec<(u64, u64)> = (0..17).map(|i| (i * 7_000, 5_000)).collect();
    expected.push((119_000, 1_000));
    assert_eq!(schedule, expected);
    for pair in attempts.windows(2) {
        assert_eq!(pair[1].at_ms - (pair[0].at_ms + pair[0].timeout_ms), 2_000, "the pause between attempts");
    }
    let last = attempts.last().unwrap();
    assert_eq!(last.at_ms + last.timeout_ms - first, 120_000, "the whole wait is 2 min");
}

#[tokio::test(start_paused = true)]
async fn an_agent_that_answers_on_the_third_attempt_is_tried_at_0_7_and_14_seconds() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::job(JobScript::succeeded()).agents(vec![AgentSpec::ready("main").connect(ConnectScript::FailsTimes(2))]));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert!(out.ok().get("agent_status").is_none(), "{}", out.value);
    let attempts = env.backend.recorder().attempts();
    let first = attempts[0].at_ms;
    let schedule: Vec<(u64, u64)> = attempts.iter().map(|a| (a.at_ms - first, a.timeout_ms)).collect();
    assert_eq!(schedule, [(0, 5_000), (7_000, 5_000), (14_000, 5_000)]);
}

#[tokio::test(start_paused = true)]
async fn startup_scripts_are_polled_at_once_then_every_two_seconds() {
    let (env, template) = env_with_template();
    env.backend.push_plan(
        BuildPlan::job(JobScript::succeeded())
            .agents(vec![AgentSpec::ready("main").lifecycle(vec![(0, LifecycleState::Starting), (9_000, LifecycleState::Ready)])]),
    );
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert!(out.ok().get("startup_scripts").is_none(), "{}", out.value);
    let connected_at = env.backend.recorder().attempts()[0].at_ms;
    // Ready from 9 s after the build: seen at the poll at 10 s.
    assert_eq!(offsets(&lifecycle_reads(&env), connected_at), every(2_000, 10_000));
}

#[tokio::test(start_paused = true)]
async fn the_startup_script_wait_gives_up_at_ten_minutes() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::job(JobScript::succeeded()).agents(vec![AgentSpec::ready("main").lifecycle(vec![(0, LifecycleState::Starting)])]));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert_eq!(out.ok()["startup_scripts"], "startup_scripts_timeout");
    let reads = lifecycle_reads(&env);
    assert_eq!(offsets(&reads, reads[0]), every(2_000, 600_000), "polls every 2 s, the last at exactly 10 min");
    assert_eq!(env.backend.now() - reads[0], 600_000);
}

fn registry_args() -> serde_json::Value {
    json!({ "project_id": "p", "cluster_id": "c", "cluster_name": "prod", "provider": "hetzner", "region": "fsn1" })
}

#[tokio::test(start_paused = true)]
async fn a_registry_task_is_polled_at_once_then_every_three_seconds_until_300_seconds() {
    let env = crate::support::env_with(&[("registry-tools", toolshed_builtin::REGISTRY_TOOLS)]);
    env.backend.push_registry_plan(TaskScript::never_finishes());
    let started = env.backend.now();
    let out = env.call("provision_registry", registry_args()).await;
    assert_eq!(out.err()["code"], "PROVISIONING_TIMEOUT");
    let polls = env.backend.recorder().read_times(|k| matches!(k, ReadKind::Task(_)));
    assert_eq!(offsets(&polls, started), every(3_000, 300_000), "the first poll at once, the last at exactly 300 s");
    assert_eq!(env.backend.now() - started, 300_000);
}
