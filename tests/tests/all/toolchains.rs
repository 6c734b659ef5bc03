//! The host offers what a plugin means to offer, whatever toolchain built
//! it: only the functions of its exported tool interfaces become tools, and
//! an import the host cannot answer is refused at load, naming it and, for
//! a known toolchain, the switch that leaves it out (docs/plugins.md).

use serde_json::json;
use toolshed_harness::{HandMade, OutputExt};
use toolshed_runtime::{LoadError, Policy};

use crate::support::{builder, empty_env, runtime};

const TOOLS: &str = "plugins:hand/tools@0.1.0";

/// What componentize-py adds to every plugin beside its tools.
fn with_python_helper(plugin: HandMade) -> HandMade {
    plugin.export("exports", &["init"])
}

#[tokio::test(start_paused = true)]
async fn a_toolchain_helper_export_is_not_offered_as_a_tool() {
    let bytes = with_python_helper(HandMade::new().export(TOOLS, &["answer"])).build();
    let env = empty_env();
    let plugin = env.host.install("helper", bytes).await.expect("loads");
    let names: Vec<&str> = plugin.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["answer"]);
    assert!(env.call("init", json!({})).await.is_unknown_tool());
    assert_eq!(env.call("answer", json!({})).await.ok(), &json!({ "result": 0 }));
}

#[tokio::test(start_paused = true)]
async fn two_plugins_with_the_same_helper_export_load_side_by_side() {
    let env = empty_env();
    env.host.install("first", with_python_helper(HandMade::new().export(TOOLS, &["one"])).build()).await.expect("first loads");
    env.host.install("second", with_python_helper(HandMade::new().export("plugins:other/tools@0.1.0", &["two"])).build()).await.expect("second loads");
    assert_eq!(env.call("one", json!({})).await.ok(), &json!({ "result": 0 }));
    assert_eq!(env.call("two", json!({})).await.ok(), &json!({ "result": 0 }));
}

#[test]
fn exported_wasi_interfaces_and_bare_names_are_not_tools() {
    let bytes = HandMade::new().export("wasi:cli/run@0.2.0", &["run"]).export("greeter", &["greet"]).export(TOOLS, &["answer"]).build();
    let plugin = runtime().compile("exports", &bytes).expect("loads");
    let names: Vec<&str> = plugin.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["answer"]);
}

#[test]
fn a_plugin_exporting_only_helpers_is_refused_as_exporting_no_tools() {
    let bytes = with_python_helper(HandMade::new()).export("wasi:cli/run@0.2.0", &["run"]).build();
    let err = runtime().compile("helpers", &bytes).err().expect("refused");
    assert!(matches!(err, LoadError::NoTools { .. }), "{err}");
}

#[test]
fn wasi_http_imported_by_componentize_js_without_a_grant_is_refused_naming_it_and_its_switch() {
    let bytes = HandMade::new()
        .import("wasi:http/outgoing-handler@0.2.10", &["handle"])
        .export(TOOLS, &["answer"])
        .processed_by("ComponentizeJS", "0.23.0")
        .build();
    let err = runtime().compile("js", &bytes).err().expect("refused");
    // wasi:http is linked only for plugins granted it (docs/network.md).
    assert!(matches!(&err, LoadError::NotGranted { interface, .. } if interface == "wasi:http/outgoing-handler@0.2.10"), "{err}");
    let message = err.to_string();
    assert!(message.contains("does not grant") && message.contains("--disable http") && message.contains("-d http"), "{message}");
}

#[test]
fn wasi_http_granted_on_a_host_without_the_network_capability_is_refused_naming_it_and_its_switch() {
    let bytes = HandMade::new()
        .import("wasi:http/outgoing-handler@0.2.10", &["handle"])
        .export(TOOLS, &["answer"])
        .processed_by("ComponentizeJS", "0.23.0")
        .build();
    let policy = Policy::from_toml("[plugins.js]\ngrants = [\"wasi:http/*\"]\n").unwrap();
    let bare = toolshed_runtime::Runtime::builder().policy(policy).build().unwrap();
    let err = bare.compile("js", &bytes).err().expect("refused");
    assert!(matches!(&err, LoadError::NotProvided { interface, .. } if interface == "wasi:http/outgoing-handler@0.2.10"), "{err}");
    let message = err.to_string();
    assert!(message.contains("does not provide") && message.contains("--disable http") && message.contains("-d http"), "{message}");
}

#[test]
fn a_wasi_import_beyond_the_linked_packages_from_componentize_py_names_stub_wasi() {
    let bytes = with_python_helper(HandMade::new().import("wasi:keyvalue/store@0.2.0-draft", &["open"]).export(TOOLS, &["answer"])).build();
    let err = runtime().compile("py", &bytes).err().expect("refused");
    assert!(matches!(&err, LoadError::NotProvided { interface, .. } if interface == "wasi:keyvalue/store@0.2.0-draft"), "{err}");
    assert!(err.to_string().contains("--stub-wasi"), "{err}");
}

#[test]
fn an_unknown_toolchain_is_refused_naming_the_interface_without_a_switch() {
    let bytes = HandMade::new().import("wasi:http/types@0.2.0", &["new-fields"]).export(TOOLS, &["answer"]).build();
    let err = runtime().compile("other", &bytes).err().expect("refused");
    assert!(matches!(&err, LoadError::NotGranted { interface, leave_out: None, .. } if interface == "wasi:http/types@0.2.0"), "{err}");
}

#[test]
fn an_ungranted_import_of_a_foreign_package_is_refused_naming_it() {
    let bytes = HandMade::new().import("example:weather/forecast@1.0.0", &["today"]).export(TOOLS, &["answer"]).build();
    let err = runtime().compile("weather", &bytes).err().expect("refused");
    assert!(matches!(&err, LoadError::NotGranted { interface, .. } if interface == "example:weather/forecast@1.0.0"), "{err}");
    assert!(err.to_string().contains("example:weather/forecast"), "{err}");
}

#[test]
fn a_granted_import_nothing_links_is_refused_at_load_naming_it() {
    let policy = Policy::from_toml("[plugins.weather]\ngrants = [\"example:weather/*\"]\n").unwrap();
    let runtime = builder().policy(policy).concurrent_calls(2).build().unwrap();
    let bytes = HandMade::new().import("example:weather/forecast@1.0.0", &["today"]).export(TOOLS, &["answer"]).build();
    let err = runtime.compile("weather", &bytes).err().expect("refused");
    assert!(matches!(&err, LoadError::NotProvided { interface, .. } if interface == "example:weather/forecast@1.0.0"), "{err}");
}
