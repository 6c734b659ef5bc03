//! Bad input gets a clear error object; the guest is never entered for
//! input the host can reject itself.

use serde_json::json;
use toolshed_harness::{OutputExt, TestEnv};

async fn rejected_before_the_guest(env: &TestEnv, tool: &str, raw: &str) -> serde_json::Value {
    let before = env.host.stats().instances();
    let out = env.host.call(&env.context(), tool, raw).await;
    assert_eq!(env.host.stats().instances(), before, "the guest must not run for {raw}");
    let err = out.err().clone();
    for key in ["error", "category", "code", "recoverable"] {
        assert!(err.get(key).is_some(), "{key} missing in {err}");
    }
    err
}

#[tokio::test(start_paused = true)]
async fn malformed_json_is_rejected_with_its_position() {
    let env = crate::support::env();
    let err = rejected_before_the_guest(&env, "create_workspace", "{\"template_id\": ").await;
    assert_eq!(err["code"], "MALFORMED_JSON");
    assert!(err["error"].as_str().unwrap().contains("not valid JSON"), "{err}");
    assert!(err["error"].as_str().unwrap().contains("line 1"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_wrong_type_names_the_path_the_expected_type_and_the_value() {
    let env = crate::support::env();
    let err = rejected_before_the_guest(&env, "create_workspace", r#"{"template_id": 5}"#).await;
    let text = err["error"].as_str().unwrap();
    assert!(text.contains("$.template_id"), "{text}");
    assert!(text.contains("expected a string"), "{text}");
    assert!(text.contains("number 5"), "{text}");
    assert_eq!(err["category"], "validation_failed");
}

#[tokio::test(start_paused = true)]
async fn a_wrong_type_deep_inside_names_the_whole_path() {
    let env = crate::support::env();
    let err = rejected_before_the_guest(&env, "start_workspace", r#"{"parameters": {"region": 3}}"#).await;
    assert!(err["error"].as_str().unwrap().contains("$.parameters.region"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_missing_required_field_is_named() {
    let env = crate::support::env();
    let err = rejected_before_the_guest(&env, "read_template", "{}").await;
    let text = err["error"].as_str().unwrap();
    assert!(text.contains("$.template_id") && text.contains("required"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn an_unknown_field_is_named() {
    let env = crate::support::env();
    let err = rejected_before_the_guest(&env, "list_templates", r#"{"qurey": "docker"}"#).await;
    let text = err["error"].as_str().unwrap();
    assert!(text.contains("$.qurey") && text.contains("unknown field"), "{text}");
    assert!(text.contains("query"), "the known fields are listed: {text}");
}

#[tokio::test(start_paused = true)]
async fn an_unknown_tool_is_named_and_the_real_ones_suggested() {
    let env = crate::support::env();
    let err = rejected_before_the_guest(&env, "delete_everything", "{}").await;
    assert!(err["error"].as_str().unwrap().contains("delete_everything"), "{err}");
    assert!(err["suggestions"][0].as_str().unwrap().contains("create_workspace"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn arguments_that_are_not_an_object_are_rejected() {
    let env = crate::support::env();
    let err = rejected_before_the_guest(&env, "read_template", "[1, 2]").await;
    assert!(err["error"].as_str().unwrap().contains("expected an object"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_tool_without_arguments_rejects_some() {
    let env = crate::support::env();
    let err = rejected_before_the_guest(&env, "stop_workspace", r#"{"force": true}"#).await;
    assert!(err["error"].as_str().unwrap().contains("$.force"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_non_uuid_id_is_an_error_from_the_tool_and_creates_nothing() {
    let env = crate::support::env();
    let out = env.call("create_workspace", json!({ "template_id": "123" })).await;
    let err = out.err();
    assert!(err["error"].as_str().unwrap().contains("invalid template_id"), "{err}");
    assert_eq!(err["code"], "INVALID_TEMPLATE_ID");
    assert!(env.backend.recorder().creates().is_empty());
}

#[tokio::test(start_paused = true)]
async fn null_for_an_optional_field_means_not_given() {
    let env = crate::support::env();
    let out = env.call("list_templates", json!({ "query": null, "page": null })).await;
    assert_eq!(out.ok()["page"], 1);
}
