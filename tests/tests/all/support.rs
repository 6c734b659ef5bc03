//! The host every suite runs on, and scenarios several suites share.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use serde_json::Value;
use toolshed_harness::{TemplateParameter, TestEnv, ids, plugin_on, runtime_under};
use toolshed_infra::Template;
use toolshed_runtime::{Plugin, Policy, Runtime};

/// The bytes of the workspace tools under test: the plugin built from the
/// guest crate, or, in the compatibility suite, an archived build. Each test
/// binary names them in its `main.rs`.
pub fn workspace_tools() -> &'static [u8] {
    crate::WORKSPACE_TOOLS
}

/// The policy the suites run under: the built-in plugins' own, plus the
/// fixtures'.
pub fn harness_policy() -> Policy {
    let mut policy = toolshed_builtin::policy();
    policy.extend(Policy::from_toml(include_str!("policy.toml")).expect("the fixtures' policy parses"));
    policy
}

/// A runtime builder with the capabilities and policy the suites use; set
/// another policy on it to test refusals.
pub fn builder() -> toolshed_runtime::RuntimeBuilder {
    toolshed_standard::runtime().policy(harness_policy())
}

/// One runtime for the whole test process.
pub fn runtime() -> &'static Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME.get_or_init(|| runtime_under(harness_policy()))
}

/// Plugin `name` compiled once per test process on [`runtime`].
pub fn plugin(name: &str, bytes: &[u8]) -> Arc<Plugin> {
    plugin_on(runtime(), name, bytes)
}

/// The runtime and the workspace-tools plugin.
pub fn shared() -> (&'static Arc<Runtime>, Arc<Plugin>) {
    (runtime(), plugin("workspace-tools", workspace_tools()))
}

/// A host with the workspace tools and an empty backend.
pub fn env() -> TestEnv {
    TestEnv::on(runtime().clone(), &[shared().1])
}

/// A host serving the plugins given as `(name, component bytes)`.
pub fn env_with(plugins: &[(&str, &[u8])]) -> TestEnv {
    let compiled: Vec<Arc<Plugin>> = plugins.iter().map(|(name, bytes)| plugin(name, bytes)).collect();
    TestEnv::on(runtime().clone(), &compiled)
}

/// A host serving no plugins yet.
pub fn empty_env() -> TestEnv {
    TestEnv::on(runtime().clone(), &[])
}

/// A host with one template of the chat's organization.
pub fn env_with_template() -> (TestEnv, Template) {
    let env = env();
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
