//! One-shot commands end right after their answer: what they have to say
//! (a plugin that was refused, and why) is written before they exit, on
//! every run, not only when a thread happens to get there first.

use std::process::Command;

use crate::support::{TOOLSHED, data_dir};

/// `toolshed call` with a plugin directory whose plugin the built-in policy
/// refuses (it imports the database, which the policy grants it not): the
/// call answers UNKNOWN_TOOL and the warning that says why the plugin was
/// not loaded is on stderr, twenty runs out of twenty.
#[test]
fn toolshed_call_warns_of_a_refused_plugin_on_every_run() {
    const RUNS: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::write(plugins.join("hostile.wasm"), toolshed_fixtures::HOSTILE).unwrap();
    let mut missing = Vec::new();
    for run in 0..RUNS {
        let out = Command::new(TOOLSHED)
            .arg("--data-dir")
            .arg(data_dir(dir.path()))
            .arg("--plugins")
            .arg(&plugins)
            .args(["call", "ping", "{}"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("UNKNOWN_TOOL"), "run {run}: {stdout}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !stderr.contains("was not loaded: plugin hostile") {
            missing.push((run, stderr.to_string()));
        }
    }
    assert!(missing.is_empty(), "the warning was missing from {} of {RUNS} runs: {missing:?}", missing.len());
}
