//! `toolshed test DIR` builds a plugin project with its language's
//! toolchain, packs it, runs its cases and the standard checks, and caches
//! the toolchain's build by source hash. The toolchain here is a stand-in
//! for componentize-py that counts its runs and writes a component made by
//! hand, so the suite needs no Python.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use toolshed_harness::HandMade;

use crate::support::TOOLSHED;

const DOCUMENTED: &str = "package plugins:hand@0.1.0;

interface hand-tools {
    /// Answers the question everyone asks.
    answer: func() -> u32;
}

world hand-plugin {
    export hand-tools;
}
";

/// A Python-like project in `dir`: app.py, the WIT `world`, a policy with a
/// smoke call, `cases`, and a componentize-py in .venv that writes a
/// hand-made component and counts its runs in `runs`.
fn project(dir: &Path, world: &str, cases: &str) -> PathBuf {
    let root = dir.join("hand");
    std::fs::create_dir_all(root.join("wit")).unwrap();
    std::fs::create_dir_all(root.join("tests")).unwrap();
    std::fs::create_dir_all(root.join(".venv/bin")).unwrap();
    std::fs::write(root.join("app.py"), "# the tools\n").unwrap();
    std::fs::write(root.join("wit/world.wit"), world).unwrap();
    std::fs::write(root.join("policy.toml"), "[plugins.hand]\ngrants = []\nsmoke = { tool = \"answer\", arguments = {} }\n").unwrap();
    std::fs::write(root.join("tests/cases.json"), cases).unwrap();
    let component = dir.join("component.wasm");
    std::fs::write(&component, HandMade::new().export("plugins:hand/hand-tools@0.1.0", &["answer"]).build()).unwrap();
    let fake = root.join(".venv/bin/componentize-py");
    let script = format!("#!/bin/sh\n# the last argument is the output\nfor last; do :; done\necho run >> {}\ncp {} \"$last\"\n", dir.join("runs").display(), component.display());
    std::fs::write(&fake, script).unwrap();
    let mut permissions = std::fs::metadata(&fake).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&fake, permissions).unwrap();
    root
}

fn toolshed_test(project: &Path, cache: &Path) -> Output {
    Command::new(TOOLSHED).arg("test").arg(project).env("TOOLSHED_BUILD_CACHE", cache).output().unwrap()
}

fn runs(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("runs")).map_or(0, |text| text.lines().count())
}

const CASES: &str = r#"[{ "name": "answer answers", "tool": "answer", "result": { "result": 0 } }]"#;

#[test]
fn a_project_builds_packs_passes_its_cases_and_the_checks_and_a_rebuild_comes_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let root = project(dir.path(), DOCUMENTED, CASES);
    let out = toolshed_test(&root, &dir.path().join("cache"));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}{}", String::from_utf8_lossy(&out.stderr));
    for step in ["ok    built", "ok    the plugin loads: answer", "ok    case: answer answers", "ok    check: every tool and field is described",
        "ok    check: the schemas are valid JSON Schema 2020-12", "ok    check: bad arguments are refused before the guest runs",
        "ok    check: error objects are well formed", "ok    check: the smoke call succeeds"] {
        assert!(report.contains(step), "{step:?} is not in\n{report}");
    }
    assert_eq!(runs(dir.path()), 1);

    let again = toolshed_test(&root, &dir.path().join("cache"));
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("from the build cache"), "{}", String::from_utf8_lossy(&again.stdout));
    assert_eq!(runs(dir.path()), 1, "unchanged sources ran the toolchain again");

    std::fs::write(root.join("app.py"), "# the tools, changed\n").unwrap();
    assert!(toolshed_test(&root, &dir.path().join("cache")).status.success());
    assert_eq!(runs(dir.path()), 2, "changed sources were not rebuilt");
}

#[test]
fn an_undescribed_tool_and_a_wrong_answer_fail_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let undocumented = DOCUMENTED.replace("    /// Answers the question everyone asks.\n", "");
    let wrong = r#"[{ "name": "answer answers", "tool": "answer", "result": { "result": 42 } }]"#;
    let root = project(dir.path(), &undocumented, wrong);
    let out = toolshed_test(&root, &dir.path().join("cache"));
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("FAIL  case: answer answers: $.result is 0, not 42"), "{report}");
    assert!(report.contains("FAIL  check: every tool and field is described: tool answer has no description"), "{report}");
}

#[test]
fn a_directory_that_is_no_project_is_refused_naming_what_it_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let out = toolshed_test(dir.path(), &dir.path().join("cache"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a plugin project"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// guest/templates-python and guest/templates-javascript answer
/// list_templates and read_template in Python and JavaScript; CI runs
/// their cases against them with `toolshed test`. The same cases hold for
/// the workspace tools' Rust, so all three answer alike.
#[tokio::test(start_paused = true)]
async fn the_python_and_javascript_templates_cases_hold_for_the_rust_workspace_tools() {
    use toolshed::plugin_test::cases;
    let guest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest");
    let python = std::fs::read_to_string(guest.join("templates-python/tests/cases.json")).unwrap();
    let javascript = std::fs::read_to_string(guest.join("templates-javascript/tests/cases.json")).unwrap();
    assert!(python == javascript, "the two languages' cases differ");
    let all = cases::parse(&python).unwrap();
    assert!(all.len() >= 6);
    let runtime = toolshed_harness::runtime_under(toolshed_builtin::policy());
    let plugin = std::sync::Arc::new(runtime.compile("workspace-tools", toolshed_builtin::WORKSPACE_TOOLS).unwrap());
    for case in &all {
        let env = toolshed_harness::TestEnv::on(runtime.clone(), std::slice::from_ref(&plugin));
        let (_, verdict) = cases::run(&env, case).await;
        assert!(verdict.is_ok(), "{}: {}", case.name, verdict.unwrap_err());
    }
}
