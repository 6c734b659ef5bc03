//! The compiled cache: a second start compiles nothing, and an entry is
//! loaded only when its tag, under this cache's key, verifies for this very
//! plugin and engine. Each refusal below is checked with the counter of
//! entries handed to `Component::deserialize`: a refused entry never is.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;
use sha2::{Digest, Sha256};
use toolshed_harness::{OutputExt, TestEnv};
use toolshed_runtime::Runtime;

/// The cache in `data/compiled`, its key in `data/compiled.key`, as
/// `toolshed` lays them out in its data directory.
fn runtime_with_cache(data: &Path) -> Arc<Runtime> {
    Arc::new(crate::support::builder().cache_dir(data.join("compiled")).concurrent_calls(8).build().unwrap())
}

const WASM: &[u8] = toolshed_builtin::WORKSPACE_TOOLS;

/// The entry file of `wasm` in the cache of `data`.
fn entry_of(runtime: &Runtime, data: &Path, wasm: &[u8]) -> PathBuf {
    toolshed_runtime::plugin::CompiledCache::new(Some(data.join("compiled")))
        .entry_path(runtime.engine(), &toolshed_runtime::plugin::content_hash(wasm))
        .unwrap()
}

/// Compiles the workspace tools from the cache of `data`, checks the
/// plugin answers, and returns the runtime's (compiled, loaded, rejected,
/// deserialized) counts.
async fn start_and_call(data: &Path) -> (u64, u64, u64, u64) {
    let runtime = runtime_with_cache(data);
    let plugin = Arc::new(runtime.compile("workspace-tools", WASM).expect("compiled or loaded"));
    let env = TestEnv::on(runtime.clone(), &[plugin]);
    env.backend.add_template("docker", toolshed_harness::ids::ORG, 0);
    assert_eq!(env.call("list_templates", json!({})).await.ok()["count"], 1, "the plugin answers as the workspace tools");
    let stats = runtime.cache_stats();
    (stats.compiled(), stats.loaded(), stats.rejected(), stats.deserialized())
}

#[test]
fn a_second_start_loads_from_the_cache_without_compiling() {
    let dir = tempfile::tempdir().unwrap();
    let first = runtime_with_cache(dir.path());
    first.compile("workspace-tools", WASM).unwrap();
    assert_eq!((first.cache_stats().compiled(), first.cache_stats().loaded()), (1, 0));

    let second = runtime_with_cache(dir.path());
    second.compile("workspace-tools", WASM).unwrap();
    assert_eq!((second.cache_stats().compiled(), second.cache_stats().loaded(), second.cache_stats().deserialized()), (0, 1, 1));
}

#[test]
fn the_key_is_made_on_first_use_private_and_outside_the_cache_directory() {
    let dir = tempfile::tempdir().unwrap();
    runtime_with_cache(dir.path()).compile("workspace-tools", WASM).unwrap();
    let key = dir.path().join("compiled.key");
    let bytes = std::fs::read(&key).expect("the key file is made beside compiled/");
    assert_eq!(bytes.len(), 32);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let inside: Vec<_> = std::fs::read_dir(dir.path().join("compiled")).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    assert!(inside.iter().all(|n| n.to_string_lossy().ends_with(".cwasm")), "nothing but entries in the cache directory: {inside:?}");
    // A second runtime uses the same key: the entry loads.
    let again = runtime_with_cache(dir.path());
    again.compile("workspace-tools", WASM).unwrap();
    assert_eq!(again.cache_stats().loaded(), 1);
    assert_eq!(std::fs::read(&key).unwrap(), bytes, "the key is kept, not remade");
}

#[test]
fn the_same_bytes_are_compiled_once_per_runtime_while_a_version_of_them_lives() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime_with_cache(dir.path());
    let _served = runtime.compile("workspace-tools", WASM).unwrap();
    runtime.compile("workspace-tools", WASM).unwrap();
    assert_eq!(runtime.cache_stats().compiled() + runtime.cache_stats().loaded(), 1);
}

/// Writes the workspace tools' entry, lets `damage` change it, then checks
/// that the next start refuses it without deserializing it, recompiles,
/// answers, and rewrites an entry the start after loads.
async fn refuses(damage: impl FnOnce(&Path, &mut Vec<u8>)) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime_with_cache(dir.path());
    runtime.compile("workspace-tools", WASM).unwrap();
    let path = entry_of(&runtime, dir.path(), WASM);
    let mut bytes = std::fs::read(&path).unwrap();
    damage(dir.path(), &mut bytes);
    std::fs::write(&path, &bytes).unwrap();

    let (compiled, loaded, rejected, deserialized) = start_and_call(dir.path()).await;
    assert_eq!((compiled, loaded, rejected), (1, 0, 1), "refused and recompiled");
    assert_eq!(deserialized, 0, "a refused entry never reaches Component::deserialize");

    // The entry was rewritten: the next start loads it.
    let next = runtime_with_cache(dir.path());
    next.compile("workspace-tools", WASM).unwrap();
    assert_eq!((next.cache_stats().loaded(), next.cache_stats().rejected()), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_corrupted_entry_is_recompiled() {
    refuses(|_, bytes| {
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_truncated_entry_is_recompiled() {
    refuses(|_, bytes| bytes.truncate(bytes.len() / 3)).await;
}

#[tokio::test(start_paused = true)]
async fn an_entry_cut_to_its_tag_is_recompiled() {
    refuses(|_, bytes| bytes.truncate(32)).await;
}

#[tokio::test(start_paused = true)]
async fn an_entry_of_garbage_is_recompiled() {
    refuses(|_, bytes| *bytes = b"not a compiled component at all, but long enough to have a header".to_vec()).await;
}

/// The attack the old checksum allowed: change the code, then write the
/// SHA-256 of the new bytes where the entry keeps its check. The bytes are
/// machine code with its instructions overwritten by `ud2`/`int3`-like
/// garbage, which would crash the host the moment it ran.
#[tokio::test(start_paused = true)]
async fn a_forged_entry_with_its_hash_recomputed_is_never_deserialized() {
    refuses(|_, bytes| {
        let artifact = &mut bytes[32..];
        let start = artifact.len() / 4;
        for byte in &mut artifact[start..start + 4096] {
            *byte = 0xcc;
        }
        let digest = Sha256::digest(&bytes[32..]);
        bytes[..32].copy_from_slice(&digest);
    })
    .await;
}

/// Another plugin's valid entry, made by this very cache under its key,
/// renamed to the workspace tools' name: its tag binds the other plugin's
/// wasm hash, so it is refused, and the plugin loaded is the one asked for.
#[tokio::test(start_paused = true)]
async fn another_plugins_valid_entry_renamed_is_refused() {
    refuses(|data, bytes| {
        let other = toolshed_builtin::REGISTRY_TOOLS;
        let runtime = runtime_with_cache(data);
        runtime.compile("registry-tools", other).unwrap();
        *bytes = std::fs::read(entry_of(&runtime, data, other)).unwrap();
    })
    .await;
}

/// An entry made under another key (another data directory's cache, or a
/// key the attacker chose) is refused.
#[tokio::test(start_paused = true)]
async fn an_entry_made_under_another_key_is_refused() {
    refuses(|data, bytes| {
        let elsewhere = tempfile::tempdir().unwrap();
        let runtime = runtime_with_cache(elsewhere.path());
        runtime.compile("workspace-tools", WASM).unwrap();
        *bytes = std::fs::read(entry_of(&runtime, elsewhere.path(), WASM)).unwrap();
        assert_ne!(std::fs::read(data.join("compiled.key")).unwrap(), std::fs::read(elsewhere.path().join("compiled.key")).unwrap());
    })
    .await;
}

/// A key file others could read may have leaked: it is replaced, and the
/// entries made under it are refused.
#[tokio::test(start_paused = true)]
async fn a_key_readable_by_others_is_replaced_and_its_entries_refused() {
    use std::os::unix::fs::PermissionsExt;
    refuses(|data, _| {
        std::fs::set_permissions(data.join("compiled.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    })
    .await;
}

#[test]
fn the_cache_drops_other_engine_builds_and_keeps_only_the_most_recently_used() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("compiled");
    std::fs::create_dir_all(&cache).unwrap();
    let limits = toolshed_runtime::plugin::CacheLimits { max_entries: 4, max_bytes: 1 << 30 };
    let runtime = crate::support::builder().cache_dir(&cache).cache_limits(limits).concurrent_calls(4).build().unwrap();
    let ours = toolshed_runtime::plugin::CompiledCache::new(Some(cache.clone())).entry_path(runtime.engine(), &"0".repeat(64)).unwrap();
    let our_suffix = ours.file_name().unwrap().to_str().unwrap().trim_start_matches(&"0".repeat(64)).to_string();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3_600);
    let write = |name: String, age: std::time::Duration| {
        let path = cache.join(name);
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
