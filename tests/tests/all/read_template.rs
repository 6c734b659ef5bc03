//! SPEC 4.2: read_template, and the allowlist on create.

use serde_json::json;
use toolshed_harness::{OutputExt, ParameterOption, ids};

use crate::support::{env_with_template, parameter};

#[tokio::test(start_paused = true)]
async fn reads_the_template_and_its_active_version_parameters() {
    let (env, template) = env_with_template();
    let mut region = parameter("region", true);
    region.description = "d".repeat(400);
    region.mutable = true;
    region.default_value = Some("eu".into());
    region.options = vec![ParameterOption { name: "Europe".into(), value: "eu".into(), description: String::new() }];
    region.validation_regex = Some("^[a-z]+$".into());
    let mut size = parameter("size", false);
    size.type_ = "number".into();
    size.validation_min = Some(1);
    size.validation_max = Some(8);
    env.backend.set_parameters(&template.active_version_id, vec![region, size]);

    let out = env.call("read_template", json!({ "template_id": template.id })).await;
    let out = out.ok();
    assert_eq!(out["template"]["id"], template.id.as_str());
    assert_eq!(out["template"]["active_version_id"], template.active_version_id.as_str());
    let region = &out["parameters"][0];
    assert_eq!(region["name"], "region");
    assert_eq!(region["required"], true);
    assert_eq!(region["description"].as_str().unwrap().len(), 300);
    assert_eq!(region["mutable"], true);
    assert!(region.get("ephemeral").is_none(), "false flags are omitted");
    assert_eq!(region["default"], "eu");
    assert_eq!(region["options"][0], json!({ "name": "Europe", "value": "eu" }));
    assert_eq!(region["validation_regex"], "^[a-z]+$");
    let size = &out["parameters"][1];
    assert_eq!((size["validation_min"].as_i64(), size["validation_max"].as_i64()), (Some(1), Some(8)));
    assert!(size.get("mutable").is_none());
}

#[tokio::test(start_paused = true)]
async fn an_empty_template_id_is_required() {
    let env = crate::support::env();
    let out = env.call("read_template", json!({ "template_id": "" })).await;
    assert!(out.message().contains("template_id is required"), "{}", out.value);
    assert_eq!(out.err()["category"], "validation_failed");
}

#[tokio::test(start_paused = true)]
async fn a_template_id_that_is_not_a_uuid_is_invalid() {
    let env = crate::support::env();
    let out = env.call("read_template", json!({ "template_id": "docker" })).await;
    assert!(out.message().contains("invalid template_id"), "{}", out.value);
}

#[tokio::test(start_paused = true)]
async fn another_organizations_template_is_not_found() {
    let env = crate::support::env();
    let theirs = env.backend.add_template("theirs", ids::OTHER_ORG, 0);
    let out = env.call("read_template", json!({ "template_id": theirs.id })).await;
    assert_eq!(out.message(), "template not found");
}

#[tokio::test(start_paused = true)]
async fn a_disallowed_template_is_not_found() {
    let (env, template) = env_with_template();
    let other = env.backend.add_template("other", ids::ORG, 0);
    env.backend.set_allowlist(&[&other.id]);
    let out = env.call("read_template", json!({ "template_id": template.id })).await;
    assert_eq!(out.message(), "template not found");
}

#[tokio::test(start_paused = true)]
async fn a_missing_template_is_not_found_with_the_same_message() {
    let env = crate::support::env();
    let out = env.call("read_template", json!({ "template_id": ids::fresh() })).await;
    assert_eq!(out.message(), "template not found");
}

#[tokio::test(start_paused = true)]
async fn create_with_a_disallowed_template_is_not_available_and_never_creates() {
    let (env, template) = env_with_template();
    let other = env.backend.add_template("other", ids::ORG, 0);
    env.backend.set_allowlist(&[&other.id]);
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert!(out.message().contains("not available"), "{}", out.value);
    assert!(out.message().contains("list_templates"), "{}", out.value);
    assert!(env.backend.recorder().creates().is_empty());
}
