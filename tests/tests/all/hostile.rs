//! A plugin cannot hurt the host or another plugin through what the host
//! keeps on its behalf: progress, logs, locks, installs, tool names, slots,
//! compiled code, error text and chat bindings.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use toolshed_runtime::progress::{self, MAX_MESSAGE_BYTES};
use toolshed_runtime::{Arguments, CallOptions, LoadError, Runtime};
use toolshed_fixtures as fixtures;
use toolshed_harness::{BuildPlan, JobScript, OutputExt, TestEnv, Transition, ids};
use crate::support::{harness_policy};

fn hostile_env() -> TestEnv {
    crate::support::env_with(&[("hostile", fixtures::HOSTILE)])
}

fn both_env() -> TestEnv {
    crate::support::env_with(&[("workspace-tools", toolshed_builtin::WORKSPACE_TOOLS), ("hostile", fixtures::HOSTILE)])
}

// Progress

#[tokio::test(start_paused = true)]
async fn a_progress_flood_reaches_the_caller_as_one_cut_message() {
    let env = hostile_env();
    let (sink, latest) = progress::latest();
    let arguments = json!({ "count": 2_000, "bytes": 1 << 20 });
    let out = env.host.call_with(&env.context(), "flood_progress", Arguments::Json(&arguments), CallOptions { progress: Some(sink), ..CallOptions::default() }).await;
    assert_eq!(out.ok()["text"], "reported 2000");
    let seen = latest.borrow().clone().expect("progress was reported");
    assert_eq!(seen.sequence, 2_000, "every report is counted");
    assert!(seen.message.len() <= MAX_MESSAGE_BYTES, "{} bytes kept", seen.message.len());
    assert!(seen.message.ends_with("bytes cut]"), "a cut message says so");
}

#[tokio::test(start_paused = true)]
async fn progress_goes_only_to_the_call_that_reported_it() {
    let env = hostile_env();
    let (sink_a, latest_a) = progress::latest();
    let (sink_b, latest_b) = progress::latest();
    let flood = json!({ "count": 500, "bytes": 64 });
    let steps = json!({ "count": 3, "interval_ms": 1_000 });
    let (chat_a, chat_b) = (env.context(), env.other_chat());
    let (a, b) = tokio::join!(
        env.host.call_with(&chat_a, "flood_progress", Arguments::Json(&flood), CallOptions { progress: Some(sink_a), ..CallOptions::default() }),
        env.host.call_with(&chat_b, "progress_steps", Arguments::Json(&steps), CallOptions { progress: Some(sink_b), ..CallOptions::default() }),
    );
    assert!(!a.is_error && !b.is_error);
    assert_eq!(latest_a.borrow().clone().unwrap().sequence, 500);
    let b_seen = latest_b.borrow().clone().unwrap();
    assert_eq!((b_seen.sequence, b_seen.message.as_str()), (3, "step 3"), "no report of the flood reached the other call");
}

// Logs

/// Collects what a tracing subscriber writes, for one thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn logs_are_capped_per_call_escaped_and_name_plugin_tool_and_chat() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).with_max_level(tracing::Level::WARN).finish();
    let _local = tracing::subscriber::set_default(subscriber);

    let env = hostile_env();
    let out = env.call("flood_log", json!({ "count": 10_000, "bytes": 1_000 })).await;
    assert_eq!(out.ok()["text"], "logged 10000", "logging never fails the call");

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let cap = toolshed_runtime::call_log::MAX_BYTES_PER_CALL;
    // The budget counts message bytes; each record adds its fields (~150 bytes).
    assert!(text.len() < cap + cap / 2, "{} bytes written for one call", text.len());
    assert!(text.contains("further lines are dropped"), "the cut is announced once");
    assert!(!text.lines().any(|line| line.trim_start().starts_with("ERROR forged")), "a line break in a message cannot start a record");
    let first = text.lines().find(|l| l.contains("forged")).expect("the first record");
    assert!(first.contains("first\\nERROR forged"), "{first}");
    for record in text.lines() {
        assert!(record.contains("hostile") && record.contains("flood_log") && record.contains(ids::CHAT), "{record}");
    }
}

// Locks

#[tokio::test(start_paused = true)]
async fn a_plugin_cannot_take_or_wait_on_another_plugins_lock() {
    let env = both_env();
    let template = env.backend.add_template("docker", ids::ORG, 0);
    env.backend.add_workspace(&template, Transition::Start, BuildPlan::job(JobScript::succeeded()));
    // The hostile plugin, with nothing but the runtime grants, sits on the
    // key the workspace tools use for the chat, for a quarter of an hour.
    let squat = env.call("squat_lock", json!({ "key": "chat-workspace", "ms": 1_000_000 }));
    let stop = async {
        tokio::task::yield_now().await;
        tokio::time::timeout(Duration::from_secs(120), env.call("stop_workspace", json!({}))).await
    };
    let (squatted, stopped) = tokio::join!(squat, stop);
    let stopped = stopped.expect("stop_workspace did not wait for the other plugin's lock");
    assert_eq!(stopped.ok()["stopped"], true);
    assert_eq!(squatted.ok()["text"], "released");
}

#[tokio::test(start_paused = true)]
async fn taking_a_key_the_call_holds_is_an_error_not_a_deadlock() {
    let env = hostile_env();
    let started = tokio::time::Instant::now();
    let out = env.call("lock_twice", json!({ "key": "k" })).await;
    assert_eq!(out.err()["code"], "LOCK_ALREADY_HELD", "{}", out.value);
    assert!(out.message().contains("hostile") && out.message().contains("lock_twice"), "{}", out.value);
    assert!(started.elapsed() < Duration::from_secs(1), "answered at once, not at the deadline");
    // The call's locks were released with it.
    assert_eq!(env.call("squat_lock", json!({ "key": "k", "ms": 1 })).await.ok()["text"], "released");
}

#[tokio::test(start_paused = true)]
async fn lock_keys_and_the_locks_one_call_holds_are_bounded() {
    let env = hostile_env();
    let long = env.call("hoard_locks", json!({ "count": 1, "key_bytes": 1 << 20, "hold_ms": 0 })).await;
    assert_eq!(long.err()["code"], "LOCK_KEY_TOO_LONG", "{}", long.value);
    assert!(long.message().len() < 1_000, "the error does not echo the key: {} bytes", long.message().len());
    let many = env.call("hoard_locks", json!({ "count": toolshed_runtime::locks::MAX_HELD_PER_CALL + 1, "key_bytes": 8, "hold_ms": 0 })).await;
    assert_eq!(many.err()["code"], "TOO_MANY_LOCKS", "{}", many.value);
    let allowed = json!({ "count": toolshed_runtime::locks::MAX_HELD_PER_CALL, "key_bytes": toolshed_runtime::locks::MAX_KEY_BYTES, "hold_ms": 0 });
    assert_eq!(env.call("hoard_locks", allowed).await.ok()["text"], format!("held {}", toolshed_runtime::locks::MAX_HELD_PER_CALL));
}

// Installs

#[tokio::test(start_paused = true)]
async fn a_smoke_call_that_never_answers_is_refused_at_its_deadline() {
    let env = crate::support::empty_env();
    let started = tokio::time::Instant::now();
    let err = env.host.install("smoke-sleeps", fixtures::HOSTILE.to_vec()).await.err().expect("refused");
    assert!(matches!(&err, LoadError::Smoke { tool, .. } if tool == "sleep_forever"), "{err}");
    assert!(err.to_string().contains("smoke deadline of 20 s"), "{err}");
    assert_eq!(started.elapsed().as_secs(), 20);
    assert!(env.host.tools().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_plugin_whose_smoke_call_hangs_delays_no_other_install() {
    let env = crate::support::empty_env();
    let host = env.host.clone();
    let slow = tokio::spawn(async move { host.install("smoke-sleeps", fixtures::HOSTILE.to_vec()).await.map(|_| ()) });
    tokio::task::yield_now().await;
    env.host.install("versioned", fixtures::VERSIONED_V1.to_vec()).await.expect("installed");
    assert!(!slow.is_finished(), "the slow plugin is still in its smoke call");
    assert_eq!(env.call("version", json!({})).await.ok()["version"], "v1");
    assert!(slow.await.unwrap().is_err());
}

#[tokio::test(start_paused = true)]
async fn a_tool_name_another_plugin_serves_is_refused_naming_both() {
    let env = crate::support::env();
    let mut changes = env.host.subscribe();
    let err = env.host.install("impostor", fixtures::IMPOSTOR.to_vec()).await.err().expect("refused");
    match &err {
        LoadError::ToolConflict { plugin, tool, other } => {
            assert_eq!((plugin.as_str(), tool.as_str(), other.as_str()), ("impostor", "list_templates", "workspace-tools"));
        }
        other => panic!("expected a tool conflict, got {other}"),
    }
    let text = err.to_string();
    assert!(text.contains("impostor") && text.contains("list_templates") && text.contains("workspace-tools"), "{text}");
    assert!(changes.try_recv().is_err(), "nothing was published");
    let listed = env.call("list_templates", json!({})).await;
    assert!(listed.ok().get("templates").is_some(), "the workspace tools still answer: {}", listed.value);
}

// Slots

fn small_runtime(capacity: u32, queue_wait: Duration) -> Arc<Runtime> {
    Arc::new(crate::support::builder().policy(harness_policy()).concurrent_calls(capacity).queue_wait(queue_wait).build().unwrap())
}

#[tokio::test(start_paused = true)]
async fn at_capacity_a_call_waits_then_hears_the_host_is_busy() {
    let runtime = small_runtime(2, Duration::from_secs(5));
    let hostile = Arc::new(runtime.compile("hostile", fixtures::HOSTILE).unwrap());
    let env = TestEnv::on(runtime, &[hostile]);
    let long = || env.call("patient", json!({ "ms": 60_000 }));
    let started = tokio::time::Instant::now();
    let (a, b, busy) = tokio::join!(long(), long(), async {
        tokio::task::yield_now().await;
        env.call("ping", json!({})).await
    });
    assert!(!a.is_error && !b.is_error);
    let err = busy.err();
    assert_eq!(err["code"], "HOST_BUSY", "{err}");
    assert_eq!(err["category"], "resource_unavailable");
    assert_eq!(err["recoverable"], true);
    assert_eq!(err["capacity"], 2);
    assert!(busy.message().contains('2'), "{err}");
    assert!(started.elapsed() >= Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_queued_call_runs_when_a_slot_frees_within_its_wait() {
    let runtime = small_runtime(1, Duration::from_secs(10));
    let hostile = Arc::new(runtime.compile("hostile", fixtures::HOSTILE).unwrap());
    let env = TestEnv::on(runtime, &[hostile]);
    let (first, second) = tokio::join!(env.call("patient", json!({ "ms": 3_000 })), async {
        tokio::task::yield_now().await;
        env.call("ping", json!({})).await
    });
    assert!(!first.is_error);
    assert_eq!(second.ok()["text"], "pong");
}

// Compiled code

#[tokio::test(start_paused = true)]
async fn a_replaced_version_is_freed_once_no_call_uses_it() {
    let runtime = small_runtime(8, Duration::from_secs(1));
    let env = TestEnv::on(runtime.clone(), &[]);
    env.host.install("versioned", fixtures::VERSIONED_V1.to_vec()).await.unwrap();
    assert_eq!(runtime.live_components(), 1);
    // One poll starts the call, which takes v1 and parks in its 5 ms sleep;
    // it is polled again only once v2 is in. Run side by side instead, the
    // call and v2's smoke call (the same 5 ms sleep) would end on the same
    // tick of the paused clock, in either order.
    let mut in_flight = std::pin::pin!(env.call("version", json!({})));
    let started = std::future::poll_fn(|cx| std::task::Poll::Ready(in_flight.as_mut().poll(cx))).await;
    assert!(started.is_pending(), "the call waits on its sleep");
    env.host.install("versioned", fixtures::VERSIONED_V2.to_vec()).await.unwrap();
    let during = runtime.live_components();
    let answer = in_flight.await;
    assert_eq!(answer.ok()["version"], "v1");
    assert_eq!(during, 2, "the running call kept v1 alive");
    assert_eq!(runtime.live_components(), 1, "v1 was dropped when its call ended");
    let _ = env.host.install("versioned", b"\0asm broken".to_vec()).await;
    env.host.install("versioned", fixtures::VERSIONED_V3.to_vec()).await.unwrap();
    assert_eq!(runtime.live_components(), 1, "only v3 is kept");
}

// Error text

#[tokio::test(start_paused = true)]
async fn a_trap_reaches_the_model_as_one_line_without_a_backtrace() {
    let env = hostile_env();
    let out = env.call("wild_read", json!({})).await;
    let err = out.err();
    assert_eq!(err["code"], "PLUGIN_TRAPPED", "{err}");
    let message = out.message();
    assert!(!message.contains('\n'), "{message}");
    assert!(!message.contains("backtrace") && !message.contains("fixture_hostile") && !message.contains("0x"), "{message}");
    assert!(message.contains("out of bounds"), "the reason is kept: {message}");
    assert_eq!(env.call("ping", json!({})).await.ok()["text"], "pong");
}

// Error objects

/// SPEC §0: whatever a plugin puts in its error object, what reaches the
/// client fits the tool's output schema; a code outside the contract's form
/// is wrapped, with the plugin's answer kept beside it, and a huge one is
/// cut by the result limit. (`TestEnv::call` also checks every answer
/// against the schema.)
#[tokio::test(start_paused = true)]
async fn an_error_object_outside_the_contract_is_wrapped_before_a_client_sees_it() {
    let env = hostile_env();
    for code in ["not upper", "", "LOOKS_FINE\n{\"forged\":true}", "É"] {
        let out = env.call("forged_error", json!({ "code": code, "bytes": 10 })).await;
        assert_eq!(out.err()["code"], "MALFORMED_TOOL_ERROR", "{code:?}: {}", out.value);
        assert_eq!(out.err()["plugin_error"]["code"], code, "the plugin's answer is kept");
        assert_eq!(out.err()["plugin"], "hostile");
        assert!(out.message().contains("forged_error"), "{}", out.value);
    }
    let fine = env.call("forged_error", json!({ "code": "MY_CODE_2", "bytes": 10 })).await;
    assert_eq!(fine.err()["code"], "MY_CODE_2", "a well-formed error passes as it is");
    assert!(fine.err().get("plugin_error").is_none());
    let huge = env.call("forged_error", json!({ "code": "BIG", "bytes": 4 << 20 })).await;
    assert_eq!(huge.err()["code"], "LIMIT_RESULT_SIZE", "{}", toolshed_runtime::text::clip(&huge.value.to_string(), 300));
}

// Chat bindings

#[tokio::test(start_paused = true)]
async fn bind_chat_binds_only_the_owners_own_ids() {
    let env = both_env();
    let template = env.backend.add_template("docker", ids::ORG, 0);
    let (own, build) = env.backend.add_workspace(&template, Transition::Start, BuildPlan::job(JobScript::succeeded()));
    let (foreign, _) = env.backend.add_workspace(&template, Transition::Start, BuildPlan::job(JobScript::succeeded()));
    env.backend.reassign_workspace(&foreign.id, ids::OTHER_OWNER);
    env.backend.bind(&env.context(), &own.id);

    let attempts: [(&str, Value); 5] = [
        ("a path", json!({ "workspace_id": "../../etc/passwd" })),
        ("a huge id", json!({ "workspace_id": "a".repeat(10 << 10) })),
        ("another owner's workspace", json!({ "workspace_id": foreign.id })),
        ("an unknown build", json!({ "build_id": ids::fresh() })),
        ("an unknown agent", json!({ "agent_id": ids::fresh() })),
    ];
    for (what, arguments) in attempts {
        let out = env.call("bind", arguments).await;
        assert_eq!(out.err()["code"], "BIND_REFUSED", "{what} was bound: {}", out.value);
        assert!(out.message().len() < 1_000, "{what}: the refusal does not echo it whole");
        let chat = env.backend.chat(&env.context());
        assert_eq!(chat.workspace_id.as_deref(), Some(own.id.as_str()), "{what} changed the binding");
    }
    assert_eq!(env.call("bind", json!({ "build_id": build.id })).await.ok()["text"], "bound", "the owner's own build binds");
}
