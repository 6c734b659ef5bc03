//! The instance pool fits language runtimes: a plugin whose instance takes
//! many core instances loads beside the Rust ones and holds as many call
//! slots as it fills; one that could never be allocated is refused at load
//! (docs/sandbox.md, call slots).

use serde_json::json;
use toolshed_harness::{HandMade, OutputExt, TestEnv};
use toolshed_runtime::plugin::Footprint;
use toolshed_runtime::{LoadError, Plugin};

use crate::support::{builder, runtime, shared, workspace_tools};

const TOOLS: &str = "plugins:hand/tools@0.1.0";

/// A plugin of `core_instances` core instances, as componentize-py makes them.
fn runtime_like(core_instances: u32) -> Vec<u8> {
    HandMade::new().export(TOOLS, &["answer"]).extra_core_instances(core_instances - 1).build()
}

#[test]
fn a_rust_plugin_takes_one_call_slot() {
    let footprint = Footprint::of(workspace_tools()).unwrap();
    assert_eq!((footprint.memories, footprint.tables), (1, 2), "{footprint:?}");
    assert_eq!(shared().1.slots, 1, "{footprint:?}");
}

#[tokio::test(start_paused = true)]
async fn a_plugin_of_38_core_instances_loads_and_answers_beside_the_rust_ones() {
    let python_sized = runtime().compile("stubbed-python", &runtime_like(38)).expect("loads");
    assert_eq!(python_sized.footprint.core_instances, 38);
    assert_eq!(python_sized.slots, 10);
    let env = TestEnv::on(runtime().clone(), &[shared().1, std::sync::Arc::new(python_sized)]);
    assert_eq!(env.call("answer", json!({})).await.ok(), &json!({ "result": 0 }));
    assert!(!env.call("list_templates", json!({})).await.is_error);
}

#[test]
fn an_instance_of_more_core_instances_than_a_component_may_have_is_refused_naming_the_count() {
    let err = runtime().compile("huge", &runtime_like(65)).err().expect("refused");
    // wasmtime's pool refuses it as it compiles, naming both counts.
    assert!(matches!(&err, LoadError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("65 core module instances") && err.to_string().contains("maximum of 64"), "{err}");
}

#[test]
fn a_plugin_needing_more_call_slots_than_the_host_has_is_refused_at_load() {
    let small = builder().concurrent_calls(2).build().unwrap();
    let err = small.compile("stubbed-python", &runtime_like(38)).err().expect("refused");
    assert!(matches!(&err, LoadError::TooLarge { need, allowed, .. } if need == "10 call slots" && allowed == "2"), "{err}");
    let fits: Plugin = small.compile("python", &runtime_like(8)).expect("two slots fit");
    assert_eq!(fits.slots, 2);
}
