//! Reflected schemas: valid JSON Schema, fully described, and in agreement
//! with the argument converter.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use crate::support::shared;

/// Every tool of every built-in plugin.
fn tools() -> Vec<std::sync::Arc<toolshed_runtime::Tool>> {
    toolshed_builtin::all().into_iter().flat_map(|(name, bytes)| crate::support::plugin(name, bytes).tools.clone()).collect()
}

/// Every property of every object in `schema` has a description.
fn undescribed(schema: &Value, path: &str, missing: &mut Vec<String>) {
    let Value::Object(object) = schema else { return };
    if let Some(Value::Object(properties)) = object.get("properties") {
        for (name, property) in properties {
            let property_path = format!("{path}.{name}");
            if property.get("description").and_then(Value::as_str).is_none_or(str::is_empty) {
                missing.push(property_path.clone());
            }
            undescribed(property, &property_path, missing);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(inner) = object.get(key) {
            undescribed(inner, path, missing);
        }
    }
    for key in ["anyOf", "oneOf", "prefixItems"] {
        if let Some(Value::Array(options)) = object.get(key) {
            for option in options {
                undescribed(option, path, missing);
            }
        }
    }
}

#[test]
fn the_workspace_plugin_exports_the_five_workspace_tools() {
    let mut names: Vec<String> = shared().1.tools.iter().map(|t| t.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["create_workspace", "list_templates", "read_template", "start_workspace", "stop_workspace"]);
}

#[test]
fn every_schema_is_valid_json_schema() {
    for tool in tools() {
        for schema in [&tool.input_schema, &tool.output_schema] {
            jsonschema::meta::validate(schema).unwrap_or_else(|e| panic!("{}: {e}\n{schema:#}", tool.name));
            jsonschema::validator_for(schema).unwrap_or_else(|e| panic!("{}: {e}", tool.name));
            assert_eq!(schema["type"], "object", "{}: MCP wants object schemas", tool.name);
        }
    }
}

#[test]
fn every_tool_and_every_field_has_a_description() {
    for tool in tools() {
        assert!(tool.description.len() > 20, "{} has no real description", tool.name);
        let mut missing = Vec::new();
        undescribed(&tool.input_schema, &format!("{}(input)", tool.name), &mut missing);
        undescribed(&tool.output_schema, &format!("{}(output)", tool.name), &mut missing);
        assert!(missing.is_empty(), "fields without a description: {missing:?}");
    }
}

#[test]
fn integers_carry_their_bounds_and_maps_are_objects() {
    let list = tools().into_iter().find(|t| t.name == "list_templates").unwrap();
    let page = &list.input_schema["properties"]["page"];
    assert_eq!(page["minimum"], i32::MIN);
    assert_eq!(page["maximum"], i32::MAX);
    let create = tools().into_iter().find(|t| t.name == "create_workspace").unwrap();
    let parameters = &create.input_schema["properties"]["parameters"];
    assert_eq!(parameters["type"], json!(["object", "null"]));
    assert_eq!(parameters["additionalProperties"]["type"], "string");
    assert_eq!(create.input_schema["required"], json!(["template_id"]));
    let status = &create.output_schema["anyOf"][0]["properties"]["status"];
    assert_eq!(status["enum"], json!(["already_exists", "stopped", null]));
}

/// SPEC §0: a client that checks structured content against the output
/// schema, even for error results (the TypeScript SDK does), accepts both
/// the tool's results and its error objects: the schema admits either, and
/// nothing else.
#[test]
fn every_output_schema_admits_the_result_and_the_error_object_and_nothing_else() {
    let error = json!({ "error": "template_id is required", "category": "validation_failed", "code": "TEMPLATE_ID_REQUIRED", "recoverable": true,
        "suggestions": ["Call list_templates."], "template_id": "t" });
    for tool in tools() {
        let validator = jsonschema::validator_for(&tool.output_schema).unwrap();
        assert!(validator.is_valid(&error), "{}: the error object is refused", tool.name);
        for wrong in [json!({}), json!({ "error": "x" }), json!({ "error": "x", "category": "nope", "code": "A", "recoverable": true }), json!("text")] {
            assert!(!validator.is_valid(&wrong), "{}: admits {wrong}", tool.name);
        }
    }
    let list = tools().into_iter().find(|t| t.name == "list_templates").unwrap();
    let page = json!({ "templates": [], "count": 0, "page": 1, "total_pages": 1, "total_count": 0 });
    assert!(jsonschema::validator_for(&list.output_schema).unwrap().is_valid(&page));
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("template_id".to_string()),
        Just("name".to_string()),
        Just("parameters".to_string()),
        Just("query".to_string()),
        Just("page".to_string()),
        Just("project_id".to_string()),
        Just("provider".to_string()),
        "[a-z_]{1,6}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-100i64..100).prop_map(Value::from),
        (-1e10f64..1e10).prop_map(|f| json!(f)),
        "[a-zA-Z0-9 -]{0,10}".prop_map(Value::from),
        Just(json!("123e4567-e89b-12d3-a456-426614174000")),
    ];
    leaf.prop_recursive(3, 32, 5, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn the_schema_and_the_converter_agree_on_every_argument() {
    let accepted = std::cell::Cell::new(0);
    let rejected = std::cell::Cell::new(0);
    for tool in tools() {
        let validator = jsonschema::validator_for(&tool.input_schema).unwrap();
        let mut runner = TestRunner::new(Config { cases: 1_500, ..Config::default() });
        runner
            .run(&arbitrary_json(), |arguments| {
                let schema_says = validator.is_valid(&arguments);
                let converted = tool.parameters(&arguments);
                match &converted {
                    Ok(_) => accepted.set(accepted.get() + 1),
                    Err(e) => {
                        rejected.set(rejected.get() + 1);
                        prop_assert!(e.path.starts_with('$'), "path {:?}", e.path);
                    }
                }
                prop_assert_eq!(schema_says, converted.is_ok(), "{}: {} -> {:?}", tool.name, arguments, converted.err());
                Ok(())
            })
            .unwrap();
    }
    let (accepted, rejected) = (accepted.get(), rejected.get());
    assert!(accepted > 100 && rejected > 100, "both sides exercised: {accepted} accepted, {rejected} rejected");
}
