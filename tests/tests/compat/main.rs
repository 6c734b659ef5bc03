//! The conformance suites, run through the workspace tools as they were
//! built for toolshed API 0.1.0: an archived `.wasm`, never rebuilt. It
//! imports `toolshed:runtime@0.1.0`, which the host still serves by
//! delegating to the newest implementation. A plugin built for 0.2.0 (the
//! parking fixture) loads and runs beside it.
//!
//! The suite files are the same as in `tests/all`; only the plugin differs.

/// The workspace tools under test: the archived 0.1.0 build.
const WORKSPACE_TOOLS: &[u8] = include_bytes!("../../fixtures/archive/workspace-tools-0.1.0.wasm");

#[path = "../all/bad_input.rs"]
mod bad_input;
#[path = "../all/concurrency.rs"]
mod concurrency;
#[path = "../all/create_workspace.rs"]
mod create_workspace;
#[path = "../all/existing_workspace.rs"]
mod existing_workspace;
#[path = "../all/list_templates.rs"]
mod list_templates;
#[path = "../all/manual_update.rs"]
mod manual_update;
#[path = "../all/read_template.rs"]
mod read_template;
#[path = "../all/start_workspace.rs"]
mod start_workspace;
#[path = "../all/stop_workspace.rs"]
mod stop_workspace;
// Not every helper is used by the suites included here.
#[allow(dead_code)]
#[path = "../all/support.rs"]
mod support;

/// A plugin built for API 0.2.0 (the parking fixture, on the frozen 0.2.0
/// WIT) loads under a 0.3.0 host, reads as 0.2.0, and its calls run, park
/// and resume through the 0.2.0 interfaces, which delegate to the newest.
#[tokio::test(start_paused = true)]
async fn a_plugin_built_for_0_2_0_keeps_loading_and_running() {
    use toolshed_harness::OutputExt;
    let plugin = support::plugin("parking", toolshed_fixtures::PARKING);
    assert_eq!(plugin.api_version, "0.2.0");
    let env = support::env_with(&[("parking", toolshed_fixtures::PARKING)]);
    let out = env.call("park_runs", serde_json::json!({ "runs": 3, "ms": 10, "lock": true })).await;
    assert_eq!(out.ok()["text"], "runs: 3");
    let newest = support::plugin("conformance", toolshed_fixtures::CONFORMANCE);
    assert_eq!(newest.api_version, "0.3.0", "a plugin of the newest API reads as it");
}

#[test]
fn the_archived_plugin_is_the_0_1_0_api() {
    let (_, plugin) = support::shared();
    assert_eq!(plugin.api_version, "0.1.0");
    let mut imports = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(WORKSPACE_TOOLS) {
        if let Ok(wasmparser::Payload::ComponentImportSection(section)) = payload {
            imports.extend(section.into_iter().filter_map(Result::ok).map(|import| import.name.name.to_string()));
        }
    }
    assert!(imports.iter().any(|i| i == "toolshed:runtime/locks@0.1.0"), "{imports:?}");
    assert!(!imports.iter().any(|i| i.contains("@0.2.0")), "{imports:?}");
}
