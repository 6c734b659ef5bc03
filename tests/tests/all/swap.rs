//! Hot swap: a new version goes live atomically, in-flight calls finish on
//! theirs, a broken version is refused while the old one serves.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use toolshed_runtime::{CallContext, LoadError};
use toolshed_fixtures as fixtures;
use toolshed_harness::{OutputExt, TestEnv, default_context};
use crate::support::{runtime};

async fn version(env: &TestEnv) -> String {
    env.call("version", json!({})).await.ok()["version"].as_str().unwrap().to_string()
}

#[tokio::test(start_paused = true)]
async fn an_installed_version_serves_the_next_call() {
    let env = crate::support::empty_env();
    env.host.install("versioned", fixtures::VERSIONED_V1.to_vec()).await.unwrap();
    assert_eq!(version(&env).await, "v1");
    env.host.install("versioned", fixtures::VERSIONED_V2.to_vec()).await.unwrap();
    assert_eq!(version(&env).await, "v2");
}

#[tokio::test(start_paused = true)]
async fn an_in_flight_call_finishes_on_the_version_it_started_on() {
    let env = crate::support::env_with(&[("versioned", fixtures::VERSIONED_V1)]);
    let in_flight = env.call("version", json!({}));
    let swap = async {
        // Let the call start and park in its host sleep, then swap.
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        env.host.publish(Arc::new(runtime().compile("versioned", fixtures::VERSIONED_V2).unwrap())).unwrap();
        version(&env).await
    };
    let (old, new) = tokio::join!(in_flight, swap);
    assert_eq!(old.ok()["version"], "v1");
    assert_eq!(new, "v2");
}

#[tokio::test(start_paused = true)]
async fn broken_versions_are_refused_and_the_old_one_keeps_serving() {
    let env = crate::support::env_with(&[("versioned", fixtures::VERSIONED_V1)]);
    let corrupt = env.host.install("versioned", b"\0asm\x0d\0\x01\0garbage".to_vec()).await.err().unwrap();
    assert!(matches!(corrupt, LoadError::Invalid { .. }), "{corrupt}");
    let wrong_world = env.host.install("versioned", fixtures::UNGRANTED.to_vec()).await.err().unwrap();
    assert!(matches!(wrong_world, LoadError::NotGranted { .. }), "{wrong_world}");
    let not_a_plugin = env.host.install("versioned", b"hello".to_vec()).await.err().unwrap();
    assert!(not_a_plugin.to_string().contains("versioned"), "{not_a_plugin}");
    assert_eq!(version(&env).await, "v1");
}

#[tokio::test(start_paused = true)]
async fn a_trap_in_the_smoke_call_refuses_the_version() {
    let env = crate::support::empty_env();
    let err = env.host.install("smoke-panics", fixtures::HOSTILE.to_vec()).await.err().unwrap();
    assert!(matches!(&err, LoadError::Smoke { tool, .. } if tool == "panic"), "{err}");
    assert!(env.host.tools().is_empty());
}

#[tokio::test(start_paused = true)]
async fn removing_a_plugin_unloads_its_tools_and_announces_it() {
    let env = crate::support::env_with(&[("versioned", fixtures::VERSIONED_V1)]);
    let mut changes = env.host.subscribe();
    assert!(env.host.remove("versioned"));
    let change = changes.recv().await.unwrap();
    assert_eq!(change.plugin, "versioned");
    assert!(change.tools.is_empty());
    assert_eq!(env.call("version", json!({})).await.err()["code"], "UNKNOWN_TOOL");
}

#[tokio::test(start_paused = true)]
async fn every_published_change_is_announced_with_the_new_tool_list() {
    let env = crate::support::env();
    let mut changes = env.host.subscribe();
    env.host.install("versioned", fixtures::VERSIONED_V1.to_vec()).await.unwrap();
    let change = changes.recv().await.unwrap();
    assert!(change.tools.contains(&"version".to_string()) && change.tools.contains(&"list_templates".to_string()));
    assert_eq!(change.generation, env.host.generation());
}

/// Swaps v1 -> v2 -> broken -> v3 over and over while callers run
/// continuously on several threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaps_under_load_fail_no_call_and_never_serve_an_old_version_after_publishing() {
    const CYCLES: usize = 20;
    let env = Arc::new(crate::support::env_with(&[("versioned", fixtures::VERSIONED_V1)]));
    let served_by: Arc<Mutex<BTreeMap<u64, String>>> = Arc::new(Mutex::new(BTreeMap::from([(env.host.generation(), "v1".to_string())])));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let mut callers = Vec::new();
    for _ in 0..4 {
        let (env, done) = (env.clone(), done.clone());
        callers.push(tokio::spawn(async move {
            let cx: CallContext = default_context();
            let mut seen = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let before = env.host.generation();
                let out = env.host.call_value(&cx, "version", &json!({})).await;
                let after = env.host.generation();
                seen.push((before, after, out));
            }
            seen
        }));
    }

    let versions: [(&str, &[u8]); 4] = [
        ("v1", fixtures::VERSIONED_V1),
        ("v2", fixtures::VERSIONED_V2),
        ("broken", b"\0asm this is not a component"),
        ("v3", fixtures::VERSIONED_V3),
    ];
    let (mut swaps, mut refused) = (0, 0);
    for _ in 0..CYCLES {
        for (name, bytes) in versions {
            match env.host.install("versioned", bytes.to_vec()).await {
                Ok(_) => {
                    swaps += 1;
                    served_by.lock().unwrap().insert(env.host.generation(), name.to_string());
                }
                Err(_) => refused += 1,
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);

    let served_by = served_by.lock().unwrap().clone();
    let mut calls = 0;
    for caller in callers {
        for (before, after, out) in caller.await.unwrap() {
            calls += 1;
            assert!(!out.is_error, "a call failed during the swaps: {}", out.value);
            let version = out.value["version"].as_str().unwrap();
            // The version that answered belongs to a generation that was
            // serving at some moment during the call, never an older one.
            let possible: Vec<&String> = served_by.range(before..=after).map(|(_, v)| v).collect();
            assert!(possible.iter().any(|v| *v == version), "call in generations {before}..={after} answered {version}, possible {possible:?}");
        }
    }
    assert!(swaps >= 50, "{swaps} swaps");
    assert_eq!(refused, CYCLES);
    assert!(calls > 100, "only {calls} calls overlapped the swaps");
}

#[tokio::test]
async fn the_directory_watcher_installs_replaces_refuses_and_removes() {
    let dir = tempfile::tempdir().unwrap();
    let env = crate::support::empty_env();
    let mut changes = env.host.subscribe();
    let _watch = toolshed_runtime::plugin::watch(env.host.clone(), dir.path()).unwrap();
    let file = dir.path().join("versioned.wasm");
    let next_change = |changes: &mut tokio::sync::broadcast::Receiver<toolshed_runtime::ToolsChanged>| {
        let mut changes = changes.resubscribe();
        async move { tokio::time::timeout(Duration::from_secs(30), changes.recv()).await.expect("a change within 30 s").unwrap() }
    };

    let waiting = next_change(&mut changes);
    std::fs::write(&file, fixtures::VERSIONED_V1).unwrap();
    waiting.await;
    assert_eq!(version(&env).await, "v1");

    let waiting = next_change(&mut changes);
    std::fs::write(&file, fixtures::VERSIONED_V2).unwrap();
    waiting.await;
    assert_eq!(version(&env).await, "v2");

    // A broken file is refused with a reason, and v2 keeps serving.
    let mut refusals = env.host.subscribe_refusals();
    std::fs::write(&file, b"broken").unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(30), refusals.recv()).await.expect("a refusal within 30 s").unwrap();
    assert_eq!(refused.plugin, "versioned");
    assert!(refused.reason.contains("not a valid WebAssembly component"), "{}", refused.reason);
    assert_eq!(version(&env).await, "v2");

    let waiting = next_change(&mut changes);
    std::fs::remove_file(&file).unwrap();
    let change = waiting.await;
    assert_eq!(change.plugin, "versioned");
    assert!(change.tools.is_empty());
    assert_eq!(env.call("version", json!({})).await.err()["code"], "UNKNOWN_TOOL");
}

#[tokio::test]
async fn reads_touches_and_identical_rewrites_install_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let env = crate::support::empty_env();
    let file = dir.path().join("versioned.wasm");
    std::fs::write(&file, fixtures::VERSIONED_V1).unwrap();
    let mut changes = env.host.subscribe();
    let _watch = toolshed_runtime::plugin::watch(env.host.clone(), dir.path()).unwrap();
    for (path, reason) in toolshed_runtime::plugin::load_dir(&env.host, dir.path()).await.unwrap() {
        panic!("{} refused: {reason}", path.display());
    }
    assert_eq!(changes.recv().await.unwrap().plugin, "versioned");
    let installed = env.host.generation();

    // What an operator's tools do to a plugin file without changing it.
    for _ in 0..3 {
        let _ = std::fs::read(&file).unwrap();
        std::fs::File::options().append(true).open(&file).unwrap().set_modified(std::time::SystemTime::now()).unwrap();
        std::fs::write(&file, fixtures::VERSIONED_V1).unwrap();
    }
    // Then a real change, as a marker: every event before it has been seen
    // by the time it is installed.
    std::fs::write(&file, fixtures::VERSIONED_V2).unwrap();
    let change = tokio::time::timeout(Duration::from_secs(30), changes.recv()).await.expect("the change within 30 s").unwrap();
    assert_eq!(version(&env).await, "v2");
    assert_eq!(change.generation, installed + 1, "only the real change was installed");
    // Nothing else comes after it.
    let quiet = tokio::time::timeout(toolshed_runtime::plugin::QUIET * 6, changes.recv()).await;
    assert!(quiet.is_err(), "an unchanged file was installed again: {quiet:?}");
}
