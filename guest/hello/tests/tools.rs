//! The plugin through the real host, as an agent calls it: JSON in, JSON out.

use serde_json::json;
use toolshed_harness::{OutputExt, TestEnv};
use toolshed_runtime::Policy;

/// The plugin, built for wasm32-wasip2 by the build script.
const PLUGIN: &[u8] = include_bytes!(env!("HELLO_WASM"));

fn env() -> TestEnv {
    // The policy `toolshed serve --policy policy.toml` serves it under.
    let policy = Policy::from_toml(include_str!("../policy.toml")).expect("the policy parses");
    TestEnv::serving(policy, &[("hello", PLUGIN)])
}

#[tokio::test(start_paused = true)]
async fn greet_greets_by_name_and_refuses_an_empty_one() {
    let env = env();
    let out = env.call("greet", json!({ "name": "Ada" })).await;
    assert_eq!(out.ok()["text"], "Hello, Ada!");
    let refused = env.call("greet", json!({ "name": "" })).await;
    assert_eq!(refused.err()["code"], "NAME_REQUIRED");
    let tool = env.host.tools().into_iter().find(|t| t.name == "greet").expect("greet is served");
    assert!(tool.description.contains("Greets someone"), "the WIT docs reach the model: {}", tool.description);
}
