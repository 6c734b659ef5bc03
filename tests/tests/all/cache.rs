//! The compiled cache: a second start compiles nothing, and a bad entry is
//! recompiled, never trusted.

use std::sync::Arc;

use serde_json::json;
use toolshed_runtime::Runtime;
use toolshed_harness::{OutputExt, TestEnv};

fn runtime_with_cache(dir: &std::path::Path) -> Arc<Runtime> {
    Arc::new(crate::support::builder().cache_dir(dir).concurrent_calls(8).build().unwrap())
}

const WASM: &[u8] = toolshed_builtin::WORKSPACE_TOOLS;

#[test]
fn a_second_start_loads_from_the_cache_without_compiling() {
    let dir = tempfile::tempdir().unwrap();
    let first = runtime_with_cache(dir.path());
    first.compile("workspace-tools", WASM).unwrap();
    assert_eq!((first.cache_stats().compiled(), first.cache_stats().loaded()), (1, 0));

    let second = runtime_with_cache(dir.path());
    second.compile("workspace-tools", WASM).unwrap();
    assert_eq!((second.cache_stats().compiled(), second.cache_stats().loaded()), (0, 1));
}

#[test]
fn the_same_bytes_are_compiled_once_per_runtime_while_a_version_of_them_lives() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime_with_cache(dir.path());
    let _served = runtime.compile("workspace-tools", WASM).unwrap();
    runtime.compile("workspace-tools", WASM).unwrap();
    assert_eq!(runtime.cache_stats().compiled() + runtime.cache_stats().loaded(), 1);
}

fn entry(runtime: &Runtime) -> std::path::PathBuf {
    let plugin = runtime.compile("workspace-tools", WASM).unwrap();
    let dir = std::fs::read_dir(runtime_cache_dir(runtime)).unwrap();
    let _ = plugin;
    dir.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| p.extension().is_some_and(|e| e == "cwasm")).expect("an entry")
}

fn runtime_cache_dir(_runtime: &Runtime) -> std::path::PathBuf {
    CACHE_DIR.with(|d| d.borrow().clone().unwrap())
}

thread_local! {
    static CACHE_DIR: std::cell::RefCell<Option<std::path::PathBuf>> = const { std::cell::RefCell::new(None) };
}

async fn recovers_from(damage: impl Fn(&mut Vec<u8>)) {
    let dir = tempfile::tempdir().unwrap();
    CACHE_DIR.with(|d| *d.borrow_mut() = Some(dir.path().to_path_buf()));
    let path = entry(&runtime_with_cache(dir.path()));
    let mut bytes = std::fs::read(&path).unwrap();
    damage(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();

    let runtime = runtime_with_cache(dir.path());
    let plugin = Arc::new(runtime.compile("workspace-tools", WASM).expect("recompiled"));
    assert_eq!(runtime.cache_stats().rejected(), 1);
    assert_eq!(runtime.cache_stats().compiled(), 1);
    let env = TestEnv::on(runtime.clone(), &[plugin]);
    env.backend.add_template("docker", toolshed_harness::ids::ORG, 0);
    assert_eq!(env.call("list_templates", json!({})).await.ok()["count"], 1);

    // The entry was rewritten: the next start loads it.
    let next = runtime_with_cache(dir.path());
    next.compile("workspace-tools", WASM).unwrap();
    assert_eq!((next.cache_stats().loaded(), next.cache_stats().rejected()), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_corrupted_entry_is_recompiled() {
    recovers_from(|bytes| {
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_truncated_entry_is_recompiled() {
    recovers_from(|bytes| bytes.truncate(bytes.len() / 3)).await;
}

#[tokio::test(start_paused = true)]
async fn an_entry_of_garbage_is_recompiled() {
    recovers_from(|bytes| *bytes = b"not a compiled component at all, but long enough to have a header".to_vec()).await;
}

#[test]
fn the_cache_drops_other_engine_builds_and_keeps_only_the_most_recently_used() {
    let dir = tempfile::tempdir().unwrap();
    let limits = toolshed_runtime::plugin::CacheLimits { max_entries: 4, max_bytes: 1 << 30 };
    let runtime = crate::support::builder().cache_dir(dir.path()).cache_limits(limits).concurrent_calls(4).build().unwrap();
    let ours = toolshed_runtime::plugin::CompiledCache::new(Some(dir.path().to_path_buf()))
        .entry_path(runtime.engine(), &"0".repeat(64))
        .unwrap();
    let our_suffix = ours.file_name().unwrap().to_str().unwrap().trim_start_matches(&"0".repeat(64)).to_string();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3_600);
    let write = |name: String, age: std::time::Duration| {
        let path = dir.path().join(name);
        std::fs::write(&path, b"an old artifact").unwrap();
        std::fs::File::options().append(true).open(&path).unwrap().set_modified(old + age).unwrap();
        path
    };
    let foreign: Vec<_> = (0..3).map(|i| write(format!("{:064x}-00000000deadbeef.cwasm", i), std::time::Duration::ZERO)).collect();
    let stale: Vec<_> = (0..6).map(|i| write(format!("{:064x}{our_suffix}", i + 100), std::time::Duration::from_secs(i))).collect();

    runtime.compile("workspace-tools", WASM).unwrap();

    assert!(foreign.iter().all(|p| !p.exists()), "entries of another engine build are dropped");
    let kept: Vec<_> = stale.iter().filter(|p| p.exists()).collect();
    assert_eq!(kept.len(), 3, "four entries in all: the new one and the three most recently used");
    assert!(kept.iter().all(|p| stale[3..].contains(p)), "the least recently used went first: {kept:?}");
    let next = runtime_with_cache(dir.path());
    next.compile("workspace-tools", WASM).unwrap();
    assert_eq!(next.cache_stats().loaded(), 1, "the new entry was kept");
}
