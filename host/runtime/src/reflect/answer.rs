//! The shape of every answer a tool gives: its result, or the error object
//! of the contract (SPEC §0). A tool's output schema admits both, so a
//! client that checks structured content against the schema, as the
//! TypeScript SDK does even for error results, accepts either; and the host
//! holds every answer to that schema, whatever the plugin returns.

use serde_json::{Map, Value, json};

/// The error categories of the contract, snake_case.
pub use toolshed_contract::ERROR_CATEGORY as ERROR_CATEGORIES;

/// The code an error object gets when the plugin's own is unusable.
pub const MALFORMED_ERROR_CODE: &str = "MALFORMED_TOOL_ERROR";

/// The JSON Schema of the error object: the four fields every error has,
/// typed, and the optional fields of the contract, described. Other fields
/// (a limit that was hit, the plugin's own) are allowed.
pub fn error_object_schema() -> Value {
    json!({
        "type": "object",
        "description": "The call failed (isError is true). Read error, then follow suggestions; retry only when recoverable is true.",
        "properties": {
            "error": { "type": "string", "description": "What went wrong, and what to do about it." },
            "category": { "type": "string", "enum": ERROR_CATEGORIES, "description": "The broad kind of failure." },
            "code": { "type": "string", "pattern": "^[A-Z][A-Z0-9_]*$", "description": "A stable machine-readable code in UPPER_SNAKE case." },
            "recoverable": { "type": "boolean", "description": "Whether retrying, possibly with other arguments, can succeed." },
            "suggestions": { "type": "array", "items": { "type": "string" }, "description": "Concrete next steps worth trying, in order." },
            "detail": { "description": "More detail from the system that failed." },
            "validations": { "description": "Fields that failed validation, each with field and detail." },
            "build_id": { "description": "The build the failure concerns; its log explains a build failure." },
            "template_id": { "description": "The template whose parameters read_template shows." },
            "task_id": { "description": "A long-running task the failure concerns; it may still finish." },
        },
        "required": ["error", "category", "code", "recoverable"],
        "additionalProperties": true,
    })
}

/// A tool's output schema from the schema of its result: an object that is
/// either the result or the error object.
///
/// A result that is not an object itself (a string, a list) is served as
/// `{"result": ...}`: structured content is always an object in MCP.
pub fn output_schema(result: Value) -> Value {
    let result = if is_object_schema(&result) { result } else { wrapped_result_schema(result) };
    let description = result.get("description").cloned();
    let mut schema = json!({ "type": "object", "anyOf": [result, error_object_schema()] });
    if let Some(description) = description {
        schema["description"] = description;
    }
    schema
}

/// Whether `schema` describes a JSON object and nothing else.
pub fn is_object_schema(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("object")
}

fn wrapped_result_schema(result: Value) -> Value {
    json!({
        "type": "object",
        "properties": { "result": result },
        "required": ["result"],
        "additionalProperties": false,
    })
}

/// Why `value` is not an error object, or `None` when it is one.
pub fn error_object_fault(value: &Value) -> Option<&'static str> {
    let Value::Object(object) = value else { return Some("it is not a JSON object") };
    if !object.get("error").is_some_and(Value::is_string) {
        return Some("its error is not a string");
    }
    if !object.get("category").and_then(Value::as_str).is_some_and(|c| ERROR_CATEGORIES.contains(&c)) {
        return Some("its category is not one of the contract's");
    }
    if !object.get("code").and_then(Value::as_str).is_some_and(is_upper_snake) {
        return Some("its code is not UPPER_SNAKE text");
    }
    if !object.get("recoverable").is_some_and(Value::is_boolean) {
        return Some("its recoverable is not a boolean");
    }
    match object.get("suggestions") {
        None => None,
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => None,
        Some(_) => Some("its suggestions are not a list of strings"),
    }
}

fn is_upper_snake(code: &str) -> bool {
    let mut bytes = code.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_uppercase()) && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// `value` as an error object: itself when it is one, else an error object
/// of the host's that keeps the plugin's answer under `plugin_error`, so no
/// plugin can send a client an error its schema does not admit.
pub fn conform_error(value: Value, plugin: &str, tool: &str) -> Value {
    let Some(fault) = error_object_fault(&value) else { return value };
    tracing::debug!(plugin, tool, fault, "the plugin's error object was not one of the contract's; the host wrapped it");
    let mut object = Map::new();
    object.insert("error".into(), format!("{tool} failed, and its error object was malformed ({fault}); plugin_error holds what it returned").into());
    object.insert("category".into(), "internal_error".into());
    object.insert("code".into(), MALFORMED_ERROR_CODE.into());
    object.insert("recoverable".into(), false.into());
    object.insert("plugin".into(), plugin.into());
    object.insert("plugin_error".into(), value);
    Value::Object(object)
}

/// A result as structured content: objects as they are, anything else
/// under `result`, matching [`output_schema`].
pub fn conform_result(value: Value) -> Value {
    match value {
        Value::Object(_) => value,
        other => json!({ "result": other }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_schema_requires_what_the_check_requires() {
        let validator = jsonschema::validator_for(&error_object_schema()).unwrap();
        let good = json!({ "error": "x", "category": "timeout", "code": "A_1", "recoverable": true, "suggestions": ["y"], "limit": 3 });
        assert!(validator.is_valid(&good));
        assert_eq!(error_object_fault(&good), None);
        let bad = [
            json!("text"),
            json!({ "category": "timeout", "code": "A", "recoverable": true }),
            json!({ "error": "x", "category": "Timeout", "code": "A", "recoverable": true }),
            json!({ "error": "x", "category": "timeout", "code": "a", "recoverable": true }),
            json!({ "error": "x", "category": "timeout", "code": "", "recoverable": true }),
            json!({ "error": "x", "category": "timeout", "code": "A", "recoverable": "yes" }),
            json!({ "error": "x", "category": "timeout", "code": "A", "recoverable": true, "suggestions": [1] }),
            json!({ "error": "x", "category": "timeout", "code": "A", "recoverable": true, "suggestions": "do it" }),
        ];
        for value in bad {
            assert!(!validator.is_valid(&value), "the schema admits {value}");
            assert!(error_object_fault(&value).is_some(), "the check admits {value}");
        }
    }

    #[test]
    fn a_malformed_error_is_wrapped_into_one_the_schema_admits() {
        let validator = jsonschema::validator_for(&output_schema(json!({ "type": "object", "properties": {}, "additionalProperties": false }))).unwrap();
        let wrapped = conform_error(json!({ "error": 7, "code": "nope" }), "p", "t");
        assert!(validator.is_valid(&wrapped), "{wrapped}");
        assert_eq!(wrapped["code"], MALFORMED_ERROR_CODE);
        assert_eq!(wrapped["plugin_error"], json!({ "error": 7, "code": "nope" }));
        let good = json!({ "error": "x", "category": "timeout", "code": "A", "recoverable": true });
        assert_eq!(conform_error(good.clone(), "p", "t"), good, "a good error is kept as it is");
    }

    #[test]
    fn a_result_that_is_not_an_object_is_served_under_result() {
        let schema = output_schema(json!({ "type": "string" }));
        let validator = jsonschema::validator_for(&schema).unwrap();
        assert!(validator.is_valid(&conform_result(json!("hi"))));
        assert!(!validator.is_valid(&json!("hi")));
        assert_eq!(schema["type"], "object");
    }
}
