//! SPEC 3.6: the manual-update rewrite, and the recovery it leads to.

use serde_json::json;
use toolshed_harness::{ApiError, BuildPlan, ControlError, JobScript, OutputExt, TestEnv, Transition, Validation};

use crate::support::{env_with_template, parameter};

/// A stopped workspace whose template has moved to a new active version,
/// which its starts must use.
fn outdated_env() -> (TestEnv, toolshed_infra::Template) {
    let (env, template) = env_with_template();
    env.backend.require_active_version(&template.id, true);
    env.backend.add_workspace(&template, Transition::Stop, BuildPlan::job(JobScript::succeeded()));
    env.backend.new_template_version(&template.id, vec![parameter("region", true)]);
    (env, template)
}

fn assert_retry_instructions(err: &serde_json::Value, template_id: &str) {
    let text = err["error"].as_str().unwrap();
    assert!(text.contains("read_template"), "{text}");
    assert!(text.contains(template_id), "{text}");
    assert!(text.contains("parameters"), "{text}");
    assert!(text.contains("ask the user"), "{text}");
    assert!(!text.starts_with("start workspace:"), "{text}");
    assert_eq!(err["template_id"], template_id);
    assert_eq!(err["recoverable"], true);
}

#[tokio::test(start_paused = true)]
async fn a_new_required_parameter_gives_retry_instructions() {
    let (env, template) = outdated_env();
    let out = env.call("start_workspace", json!({})).await;
    let err = out.err();
    assert_retry_instructions(err, &template.id);
    assert_eq!(err["validations"], json!([{ "field": "region", "detail": "a value is required" }]));
    assert!(err["detail"].as_str().unwrap().contains("Unable to validate parameters"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn retrying_with_the_parameter_starts_on_the_active_version() {
    let (env, template) = outdated_env();
    env.call("start_workspace", json!({})).await.err();
    let read = env.call("read_template", json!({ "template_id": template.id })).await;
    assert_eq!(read.ok()["parameters"][0]["name"], "region");
    let out = env.call("start_workspace", json!({ "parameters": { "region": "eu" } })).await;
    assert_eq!(out.ok()["updated_to_active_version"], true);
}

async fn rewritten(message: &str, detail: &str, validations: Vec<Validation>) -> serde_json::Value {
    let (env, template) = outdated_env();
    env.backend.fail_next_build(ControlError::Api(ApiError { status: 400, message: message.into(), detail: detail.into(), validations }));
    let out = env.call("start_workspace", json!({})).await;
    assert_retry_instructions(out.err(), &template.id);
    out.value
}

fn region_invalid() -> Vec<Validation> {
    vec![Validation { field: "region".into(), detail: "required".into() }]
}

#[tokio::test(start_paused = true)]
async fn validations_and_empty_detail_use_the_underlying_error_text() {
    let err = rewritten("Unable to validate parameters", "", region_invalid()).await;
    assert_eq!(err["detail"], "Unable to validate parameters (region: required)");
    assert_eq!(err["validations"], json!([{ "field": "region", "detail": "required" }]));
}

#[tokio::test(start_paused = true)]
async fn validations_and_a_detail_keep_the_detail() {
    let err = rewritten("Unable to validate parameters", "region is missing", region_invalid()).await;
    assert_eq!(err["detail"], "region is missing");
    assert_eq!(err["validations"], json!([{ "field": "region", "detail": "required" }]));
}

#[tokio::test(start_paused = true)]
async fn no_validations_and_empty_detail_use_the_message() {
    let err = rewritten("template requires the active version", "", vec![]).await;
    assert_eq!(err["detail"], "template requires the active version");
    assert!(err.get("validations").is_none());
}

#[tokio::test(start_paused = true)]
async fn no_validations_and_a_detail_join_message_and_detail() {
    let err = rewritten("template requires the active version", "version 7 adds region", vec![]).await;
    assert_eq!(err["detail"], "template requires the active version: version 7 adds region");
    assert!(err.get("validations").is_none());
}
