//! The checks every plugin must pass, whatever its language: what the
//! model reads is all there, the schemas are valid, bad arguments never
//! reach the guest, errors are well formed, and the smoke call succeeds.

use std::sync::Arc;

use serde_json::{Value, json};
use toolshed_harness::TestEnv;
use toolshed_runtime::Tool;
use toolshed_runtime::reflect::answer::error_object_fault;

/// One check's name and, when it failed, why.
pub type Checked = (&'static str, Result<(), String>);

/// Runs every check on the tools `env` serves; `errors` are the error
/// objects the cases got, held to the contract with the checks' own.
pub async fn run(env: &TestEnv, plugin: &str, smoke: Option<&toolshed_runtime::policy::Smoke>, errors: &[Value]) -> Vec<Checked> {
    let tools = env.host.tools();
    let mut refusals = Vec::new();
    let bad_arguments = bad_arguments_are_refused_before_the_guest_runs(env, &tools, &mut refusals).await;
    vec![
        ("every tool and field is described", first_fault(tools.iter().map(|tool| undescribed(tool)))),
        ("the schemas are valid JSON Schema 2020-12", first_fault(tools.iter().map(|tool| invalid_schema(tool)))),
        ("bad arguments are refused before the guest runs", bad_arguments),
        ("error objects are well formed", well_formed(errors.iter().chain(&refusals))),
        ("the smoke call succeeds", smoke_call(env, plugin, smoke).await),
    ]
}

fn first_fault(faults: impl Iterator<Item = Option<String>>) -> Result<(), String> {
    faults.flatten().next().map_or(Ok(()), Err)
}

/// The first tool or field with no description, if any.
fn undescribed(tool: &Tool) -> Option<String> {
    if tool.description.trim().is_empty() {
        return Some(format!("tool {} has no description: give its WIT function a /// doc", tool.name));
    }
    let mut result = tool.output_schema.get("anyOf").and_then(|a| a.get(0)).unwrap_or(&Value::Null);
    // A result that is not a record is served wrapped as `{"result": ...}`:
    // the wrapper is the host's, and only what it holds is the author's.
    let wrapped = result.get("properties").and_then(Value::as_object).filter(|p| p.len() == 1).and_then(|p| p.get("result"));
    if let Some(inner) = wrapped.filter(|_| result.get("description").is_none()) {
        result = inner;
    }
    undescribed_field(&tool.input_schema, &format!("{} arguments", tool.name))
        .or_else(|| undescribed_field(result, &format!("{} result", tool.name)))
        .map(|field| format!("{field} has no description: give it a /// doc in the WIT"))
}

/// The first record field under `schema` with no description, if any.
/// Variant cases (`tag` and `value`) are the reflection's, not the author's.
fn undescribed_field(schema: &Value, path: &str) -> Option<String> {
    let Value::Object(object) = schema else { return None };
    let is_variant_case = object.get("properties").and_then(|p| p.get("tag")).is_some_and(|tag| tag.get("const").is_some());
    if let Some(Value::Object(properties)) = object.get("properties")
        && !is_variant_case
    {
        for (name, field) in properties {
            let described = field.get("description").and_then(Value::as_str).is_some_and(|d| !d.trim().is_empty());
            if !described {
                return Some(format!("{path}.{name}"));
            }
            if let Some(inner) = undescribed_field(field, &format!("{path}.{name}")) {
                return Some(inner);
            }
        }
    }
    ["items", "additionalProperties"]
        .iter()
        .filter_map(|key| object.get(*key))
        .chain(["anyOf", "oneOf", "prefixItems"].iter().filter_map(|key| object.get(*key)).filter_map(Value::as_array).flatten())
        .find_map(|inner| undescribed_field(inner, path))
}

fn invalid_schema(tool: &Tool) -> Option<String> {
    [("input", &tool.input_schema), ("output", &tool.output_schema)].into_iter().find_map(|(which, schema)| {
        jsonschema::draft202012::meta::validate(schema).err().map(|e| format!("the {which} schema of {} is not valid JSON Schema 2020-12: {e}", tool.name))
    })
}

/// Calls every tool with arguments no schema admits and checks each is
/// refused with INVALID_ARGUMENTS and no instance is made; the refusals go
/// to `refusals` for the error-object check.
async fn bad_arguments_are_refused_before_the_guest_runs(env: &TestEnv, tools: &[Arc<Tool>], refusals: &mut Vec<Value>) -> Result<(), String> {
    for tool in tools {
        for bad in [json!({ "not_an_argument_of_any_tool": true }), json!(["not", "an", "object"])] {
            let instances = env.host.stats().instances();
            let output = env.call(&tool.name, bad.clone()).await;
            if env.host.stats().instances() != instances {
                return Err(format!("{} ran the guest for arguments {bad}", tool.name));
            }
            if !output.is_error || output.value.get("code").and_then(Value::as_str) != Some("INVALID_ARGUMENTS") {
                return Err(format!("{} answered arguments {bad} with {}", tool.name, output.value));
            }
            refusals.push(output.value);
        }
    }
    Ok(())
}

fn well_formed<'a>(errors: impl Iterator<Item = &'a Value>) -> Result<(), String> {
    for error in errors {
        if let Some(fault) = error_object_fault(error) {
            return Err(format!("{error} is not an error object: {fault}"));
        }
        if error.get("code").and_then(Value::as_str) == Some(toolshed_runtime::reflect::answer::MALFORMED_ERROR_CODE) {
            return Err(format!("the plugin answered an error the host had to replace: {error}"));
        }
    }
    Ok(())
}

async fn smoke_call(env: &TestEnv, plugin: &str, smoke: Option<&toolshed_runtime::policy::Smoke>) -> Result<(), String> {
    let Some(smoke) = smoke else {
        return Err(format!("policy.toml gives plugin {plugin} no smoke call: add `smoke = {{ tool = \"...\", arguments = {{}} }}` under [plugins.{plugin}]"));
    };
    let output = env.call(&smoke.tool, smoke.arguments.clone()).await;
    if output.is_error { Err(format!("{} answered {}", smoke.tool, output.value)) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_without_a_description_is_named_and_variant_cases_are_not() {
        let described = json!({ "type": "object", "properties": { "name": { "type": "string", "description": "Who." } } });
        assert_eq!(undescribed_field(&described, "greet arguments"), None);
        let bare = json!({ "type": "object", "properties": { "who": { "type": "object", "description": "x", "properties": { "name": { "type": "string" } } } } });
        assert_eq!(undescribed_field(&bare, "greet arguments").as_deref(), Some("greet arguments.who.name"));
        let variant = json!({ "oneOf": [{ "type": "object", "properties": { "tag": { "const": "a" }, "value": { "type": "string" } } }] });
        assert_eq!(undescribed_field(&variant, "v"), None);
    }

    #[test]
    fn an_error_missing_a_field_of_the_contract_is_not_well_formed() {
        let good = json!({ "error": "e", "category": "validation_failed", "code": "NAME_REQUIRED", "recoverable": true });
        assert!(well_formed([&good].into_iter()).is_ok());
        let bad = json!({ "error": "e", "code": "NAME_REQUIRED" });
        assert!(well_formed([&bad].into_iter()).is_err());
    }
}
