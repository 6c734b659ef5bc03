//! `serve` compiles a plugin its cache lacks in a child process
//! (`toolshed precompile`) and loads the artifact; when the child fails
//! (or is killed mid-answer),
//! answers bytes that are no artifact, or one made for another engine,
//! the compile runs in the host process instead and the plugin still
//! serves.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use toolshed_harness::{OutputExt, TestEnv};
use toolshed_runtime::Runtime;

use crate::support::TOOLSHED;

const WASM: &[u8] = toolshed_builtin::WORKSPACE_TOOLS;

/// A runtime as `serve` builds it, compiling in `program ARGS`.
fn runtime(data: &Path, program: &str, args: &[&str]) -> Arc<Runtime> {
    let builder = toolshed::app::runtime_builder(toolshed_builtin::policy(), data).concurrent_calls(8);
    Arc::new(builder.compile_in_child(program, args.iter().map(|a| a.to_string()).collect()).build().unwrap())
}

/// Compiles the workspace tools, checks they answer, and returns the
/// runtime's (compiled, compiled in the child, loaded) counts.
async fn compile_and_call(runtime: &Arc<Runtime>) -> (u64, u64, u64) {
    let plugin = Arc::new(runtime.compile("workspace-tools", WASM).expect("compiled"));
    let env = TestEnv::on(runtime.clone(), &[plugin]);
    env.backend.add_template("docker", toolshed_harness::ids::ORG, 0);
    assert_eq!(env.call("list_templates", json!({})).await.ok()["count"], 1, "the plugin answers");
    let stats = runtime.cache_stats();
    (stats.compiled(), stats.compiled_elsewhere(), stats.loaded())
}

#[tokio::test]
async fn a_plugin_the_cache_lacks_is_compiled_in_a_child_and_its_entry_serves_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(compile_and_call(&runtime(dir.path(), TOOLSHED, &["precompile"])).await, (1, 1, 0));
    // The entry written from the child's artifact loads on the next start.
    assert_eq!(compile_and_call(&runtime(dir.path(), TOOLSHED, &["precompile"])).await, (0, 0, 1));
}

#[tokio::test]
async fn a_child_that_fails_answers_garbage_or_compiles_for_another_engine_leaves_the_compile_to_the_host() {
    let wrong_engine = format!("exec {TOOLSHED} precompile --calls 1 --memory-bytes 1048576");
    for (program, args) in [
        ("/nonexistent/compiler", vec![]),
        ("sh", vec!["-c", "cat >/dev/null; exit 3", "sh"]),
        ("sh", vec!["-c", "cat >/dev/null; printf '\\177ELF'; kill -9 $$", "sh"]),
        ("sh", vec!["-c", "cat >/dev/null; printf 'not an artifact'", "sh"]),
        ("sh", vec!["-c", wrong_engine.as_str(), "sh"]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(compile_and_call(&runtime(dir.path(), program, &args)).await, (1, 0, 0), "{program} {args:?}");
    }
}

#[test]
fn precompile_refuses_bytes_that_are_not_a_component_naming_what_is_wrong() {
    use std::io::Write;
    let mut child = std::process::Command::new(TOOLSHED)
        .args(["precompile", "--calls", "8", "--memory-bytes", "67108864"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"\0asm not really").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error:") && stderr.len() > "error: ".len() + 10, "{stderr}");
}
