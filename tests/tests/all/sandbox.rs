//! Hostile plugins: every limit stops the call with an error object naming
//! the plugin, the tool and the limit, and the host serves the next call.

use serde_json::{Value, json};
use toolshed_fixtures as fixtures;
use toolshed_harness::{OutputExt, TestEnv};

fn hostile_env() -> TestEnv {
    crate::support::env_with(&[("hostile", fixtures::HOSTILE)])
}

/// Calls `tool`, checks the error names `limit`, then checks the same host
/// still answers.
async fn stopped_by(tool: &str, arguments: Value, limit: &str) -> Value {
    let env = hostile_env();
    let out = env.call(tool, arguments).await;
    let err = out.err().clone();
    assert_eq!(err["limit"], limit, "{err}");
    assert_eq!(err["plugin"], "hostile");
    assert_eq!(err["tool"], tool);
    let text = err["error"].as_str().unwrap();
    assert!(text.contains("hostile") && text.contains(tool) && text.contains(limit), "{text}");
    assert_host_still_serves(&env).await;
    err
}

async fn assert_host_still_serves(env: &TestEnv) {
    let out = env.call("ping", json!({})).await;
    assert_eq!(out.ok()["text"], "pong");
}

#[tokio::test(start_paused = true)]
async fn an_endless_loop_is_stopped_by_the_compute_budget() {
    let err = stopped_by("spin", json!({}), "compute").await;
    assert_eq!(err["category"], "timeout");
}

#[tokio::test(start_paused = true)]
async fn a_memory_bomb_is_stopped_by_the_memory_limit() {
    let err = stopped_by("allocate", json!({}), "memory").await;
    assert!(err["error"].as_str().unwrap().contains("64 MiB"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn deep_recursion_is_stopped_by_the_stack_limit() {
    stopped_by("recurse", json!({}), "stack").await;
}

#[tokio::test(start_paused = true)]
async fn a_huge_result_is_refused_by_the_result_limit() {
    stopped_by("huge_result", json!({ "megabytes": 8 }), "result_size").await;
}

#[tokio::test(start_paused = true)]
async fn a_call_that_sleeps_forever_is_stopped_by_the_deadline() {
    let started = tokio::time::Instant::now();
    let err = stopped_by("sleep_forever", json!({}), "deadline").await;
    let waited = started.elapsed();
    assert_eq!(err["category"], "timeout");
    assert!(waited >= std::time::Duration::from_secs(1800) && waited < std::time::Duration::from_secs(1900), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_import_calls_is_stopped_by_the_import_limit() {
    stopped_by("flood_imports", json!({}), "import_calls").await;
}

#[tokio::test(start_paused = true)]
async fn a_panic_is_an_error_object_naming_the_plugin() {
    let env = hostile_env();
    let out = env.call("panic", json!({})).await;
    let err = out.err();
    assert_eq!(err["code"], "PLUGIN_PANICKED");
    assert_eq!(err["plugin"], "hostile");
    assert_eq!(err["tool"], "panic");
    assert_host_still_serves(&env).await;
}

#[tokio::test(start_paused = true)]
async fn arguments_past_the_size_limit_are_refused_before_the_guest() {
    let env = crate::support::env();
    let before = env.host.stats().instances();
    let big = "x".repeat(70 << 10);
    let out = env.call("list_templates", json!({ "query": big })).await;
    assert_eq!(out.err()["limit"], "argument_size");
    assert_eq!(env.host.stats().instances(), before);
}

#[tokio::test(start_paused = true)]
async fn wasi_gives_no_files() {
    let env = hostile_env();
    let out = env.call("read_file", json!({})).await;
    assert!(out.message().contains("refused"), "{}", out.value);
    assert_host_still_serves(&env).await;
}

#[tokio::test(start_paused = true)]
async fn wasi_gives_no_environment_and_no_arguments() {
    let env = hostile_env();
    let out = env.call("read_env", json!({})).await;
    assert_eq!(out.ok()["text"], "vars=0 args=0");
}

#[tokio::test(start_paused = true)]
async fn wasi_gives_no_sockets() {
    let env = hostile_env();
    let out = env.call("open_socket", json!({})).await;
    assert!(out.message().contains("refused"), "{}", out.value);
    assert_host_still_serves(&env).await;
}

#[tokio::test(start_paused = true)]
async fn a_call_stopped_by_its_deadline_releases_the_chat_lock() {
    // Workspace tools with a one-minute deadline, and a build that takes ninety seconds.
    let policy = toolshed_runtime::Policy::from_toml(
        "[plugins.workspace-tools]\ngrants = [\"toolshed:runtime/*\", \"toolshed:infra/*\", \"toolshed:builds/*\"]\nlimits = { deadline_s = 60 }\n",
    )
    .unwrap();
    let runtime = std::sync::Arc::new(crate::support::builder().policy(policy).concurrent_calls(8).build().unwrap());
    let plugin = std::sync::Arc::new(runtime.compile("workspace-tools", toolshed_builtin::WORKSPACE_TOOLS).unwrap());
    let env = TestEnv::on(runtime, &[plugin]);
    let template = env.backend.add_template("docker", toolshed_harness::ids::ORG, 0);
    env.backend.push_plan(toolshed_harness::BuildPlan::job(toolshed_harness::JobScript::succeeds_after(90_000)));

    let first = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert_eq!(first.err()["limit"], "deadline", "{}", first.value);
    // The first call died holding the chat's workspace lock. If the lock
    // outlived it, this call would wait for it until its own deadline.
    let second = env.call("start_workspace", json!({})).await;
    assert_eq!(second.ok()["started"], true);
}

/// On real time: the plugin's compute budget is 200 ms, and it waits 600 ms
/// inside a host import; the budget restarts when the import returns.
#[tokio::test]
async fn waiting_in_a_host_import_does_not_count_as_computation() {
    let env = hostile_env();
    let out = env.call("patient", json!({ "ms": 600 })).await;
    assert_eq!(out.ok()["text"], "waited");
}
