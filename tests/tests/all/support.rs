//! Scenarios several suites share.

use std::collections::BTreeSet;

use serde_json::Value;
use toolshed::bindings::Template;
use toolshed_harness::{TemplateParameter, TestEnv, ids};

/// A host with one template of the chat's organization.
pub fn env_with_template() -> (TestEnv, Template) {
    let env = TestEnv::new();
    let template = env.backend.add_template("docker", ids::ORG, 1);
    (env, template)
}

/// A template parameter.
pub fn parameter(name: &str, required: bool) -> TemplateParameter {
    TemplateParameter {
        name: name.to_string(),
        type_: "string".into(),
        required,
        display_name: String::new(),
        description: String::new(),
        default_value: None,
        mutable: false,
        ephemeral: false,
        form_type: String::new(),
        options: Vec::new(),
        validation_regex: None,
        validation_min: None,
        validation_max: None,
    }
}

/// The keys of a JSON object.
pub fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

/// The keys as a set, for comparing.
pub fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| k.to_string()).collect()
}
