//! Random arguments, well-formed and not, to every tool: the host always
//! answers with a result object or an error object, and never panics.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use toolshed_harness::ids;

/// JSON shaped like the tools' arguments: the right keys with values of
/// every type, some right.
fn schema_shaped() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just(json!("123e4567-e89b-12d3-a456-426614174000")),
        Just(json!(ids::uuid(1))),
        "[a-zA-Z0-9 _-]{0,40}".prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        Just(json!({ "region": "eu", "size": "3" })),
        Just(json!({ "region": 3 })),
        Just(Value::Null),
        Just(json!([1, "two"])),
    ];
    let key = prop_oneof![
        Just("template_id"), Just("name"), Just("parameters"), Just("query"), Just("page"), Just("megabytes"), Just("extra")
    ];
    prop::collection::btree_map(key, value, 0..4).prop_map(|m| serde_json::to_string(&m).unwrap())
}

/// Text that is often not JSON at all.
fn malformed() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,60}",
        "[\\[\\]{}\",:0-9a-z ]{0,40}",
        schema_shaped().prop_map(|s| s[..s.len() / 2].to_string()),
        Just("\u{0}".to_string()),
        Just("{\"template_id\": \"\\ud800\"}".to_string()),
        Just("1e999999".to_string()),
    ]
}

#[test]
fn every_tool_answers_random_arguments_with_a_result_or_an_error_object() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
    let env = runtime.block_on(async {
        let env = crate::support::env_with(&[
            ("workspace-tools", toolshed_builtin::WORKSPACE_TOOLS),
            ("hostile", toolshed_fixtures::HOSTILE),
        ]);
        env.backend.add_template("docker", ids::ORG, 2);
        env
    });
    // The hostile tools that take time by design are left to the sandbox suite.
    let tools: Vec<String> = env
        .host
        .tools()
        .iter()
        .map(|t| t.name.clone())
        .filter(|n| {
            !["spin", "allocate", "recurse", "sleep_forever", "flood_imports", "patient", "flood_progress", "progress_steps", "flood_log", "hoard_locks", "squat_lock"]
                .contains(&n.as_str())
        })
        .chain(["no_such_tool".to_string()])
        .collect();
    let mut runner = TestRunner::new(Config { cases: 64, failure_persistence: None, ..Config::default() });
    let (mut results, mut errors) = (0, 0);
    for tool in &tools {
        for strategy in [schema_shaped().boxed(), malformed().boxed()] {
            runner
                .run(&strategy, |text| {
                    let out = runtime.block_on(env.host.call(&env.context(), tool, &text));
                    prop_assert!(out.value.is_object(), "{tool} {text:?} -> {}", out.value);
                    if out.is_error {
                        prop_assert!(out.value["error"].is_string(), "{tool} {text:?} -> {}", out.value);
                        prop_assert!(out.value["category"].is_string() && out.value["code"].is_string());
                        prop_assert!(out.value["recoverable"].is_boolean());
                    }
                    Ok(())
                })
                .unwrap();
        }
        // Count both kinds once more on a fixed pair, so the run is known to reach the guest.
        let ok = runtime.block_on(env.host.call(&env.context(), tool, "{}"));
        if ok.is_error { errors += 1 } else { results += 1 }
    }
    assert!(results >= 3 && errors >= 1, "{results} results, {errors} errors");
}
