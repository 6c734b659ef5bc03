//! The client of the caller, as a call reaches it: where the call's log
//! records go (MCP `notifications/message`), and how it asks the user (MCP
//! elicitation). A transport gives one with each call
//! ([`crate::CallOptions::client`]); without one, logs stay the operator's
//! and asking answers "cannot ask".

use std::future::Future;
use std::pin::Pin;

use serde_json::{Map, Value};

use crate::call_log::Level;

/// What the user did with a question.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// They answered with this object.
    Accept(Map<String, Value>),
    /// They chose not to answer.
    Decline,
    /// They dismissed the question.
    Cancel,
}

/// Why a question got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    /// The client cannot ask its user.
    #[error("the caller's client cannot ask its user")]
    CannotAsk,
    /// The requested schema is not one MCP lets a server ask with.
    #[error("the requested schema is not a flat object of strings, numbers, integers, booleans and enums: {0}")]
    BadSchema(String),
    /// The answer does not fit the requested schema.
    #[error("the answer does not fit the requested schema: {0}")]
    AnswerMismatch(String),
    /// No answer came: the client failed, or the call's deadline passed.
    #[error("no answer came: {0}")]
    NoAnswer(String),
}

/// A question on its way to the user, answered by the client.
pub type Asking = Pin<Box<dyn Future<Output = Result<Answer, AskError>> + Send>>;

/// A prompt on its way to the caller's model, answered with its text.
pub type Sampling = Pin<Box<dyn Future<Output = Result<String, AskError>> + Send>>;

/// The caller's client.
pub trait Client: Send + Sync + 'static {
    /// A log record of the call's plugin at `level`. Called on the call's
    /// own task, so it must return at once: queue or drop, never wait.
    fn log(&self, level: Level, logger: &str, message: &str);

    /// Whether [`Client::ask`] can reach the user.
    fn can_ask(&self) -> bool;

    /// Asks the user `message` with a form described by `schema` (already
    /// checked with [`check_schema`]); `None` when the client cannot ask.
    fn ask(&self, message: String, schema: Value) -> Option<Asking>;

    /// Asks the caller's model to answer `prompt` in at most `max_tokens`
    /// tokens; `None` when the client offers no sampling.
    fn sample(&self, prompt: String, max_tokens: u32) -> Option<Sampling> {
        let _ = (prompt, max_tokens);
        None
    }
}

/// The most bytes of schema a tool may ask with.
pub const MAX_SCHEMA_BYTES: usize = 16 << 10;
/// The most bytes of message a tool may ask with.
pub const MAX_MESSAGE_BYTES: usize = 4 << 10;
/// The most bytes of prompt a tool may send its caller's model, and of the
/// answer it gets back.
pub const MAX_PROMPT_BYTES: usize = 64 << 10;

/// Checks that `schema` is what MCP lets a server ask with: an object whose
/// properties are strings (plain, with a format, or single-select enums),
/// numbers, integers, booleans, or arrays of enum values (multi-select).
///
/// # Errors
///
/// The first thing that is not, named.
pub fn check_schema(schema: &Value) -> Result<(), String> {
    let object = schema.as_object().ok_or("the schema is not an object")?;
    if object.get("type").and_then(Value::as_str) != Some("object") {
        return Err("the schema's type is not \"object\"".into());
    }
    let properties = object.get("properties").and_then(Value::as_object).ok_or("the schema has no properties object")?;
    for (name, property) in properties {
        let ty = property.get("type").and_then(Value::as_str).ok_or_else(|| format!("property {name:?} has no type"))?;
        match ty {
            "string" | "number" | "integer" | "boolean" => {}
            "array" => {
                let items = property.get("items").and_then(Value::as_object).ok_or_else(|| format!("property {name:?} is an array without items"))?;
                if items.get("enum").is_none() && items.get("anyOf").is_none() {
                    return Err(format!("property {name:?} is an array of something other than enum values"));
                }
            }
            other => return Err(format!("property {name:?} is of type {other:?}, which a form cannot ask for")),
        }
    }
    if let Some(required) = object.get("required") {
        let names = required.as_array().ok_or("required is not a list")?;
        if let Some(unknown) = names.iter().find(|n| n.as_str().is_none_or(|n| !properties.contains_key(n))) {
            return Err(format!("required names {unknown}, which is not a property"));
        }
    }
    Ok(())
}

/// The values a single-select property allows, if it is an enum.
fn allowed(property: &Value) -> Option<Vec<&Value>> {
    if let Some(values) = property.get("enum").and_then(Value::as_array) {
        return Some(values.iter().collect());
    }
    let choices = property.get("oneOf").or_else(|| property.get("anyOf"))?.as_array()?;
    Some(choices.iter().filter_map(|c| c.get("const")).collect())
}

/// Checks an accepted answer against the schema it was asked with (checked
/// by [`check_schema`]): an object, every required property given, no
/// property the schema does not name, each of its type and among its
/// allowed values.
///
/// # Errors
///
/// The first field that does not fit, named.
pub fn check_answer(schema: &Value, answer: &Map<String, Value>) -> Result<(), String> {
    let empty = Map::new();
    let properties = schema.get("properties").and_then(Value::as_object).unwrap_or(&empty);
    for name in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        if !answer.contains_key(name) {
            return Err(format!("{name} is required and was not given"));
        }
    }
    for (name, value) in answer {
        let property = properties.get(name).ok_or_else(|| format!("{name} is not a field of the form"))?;
        let ty = property.get("type").and_then(Value::as_str).unwrap_or_default();
        let fits = match ty {
            "string" => value.is_string(),
            "number" => value.is_number(),
            "integer" => value.is_i64() || value.is_u64(),
            "boolean" => value.is_boolean(),
            "array" => value.is_array(),
            _ => false,
        };
        if !fits {
            return Err(format!("{name} should be of type {ty}"));
        }
        let in_choices = |value: &Value, property: &Value| allowed(property).is_none_or(|choices| choices.contains(&value));
        let fits_choices = match (value, ty) {
            (Value::Array(items), "array") => {
                let item_schema = property.get("items").cloned().unwrap_or_default();
                items.iter().all(|item| in_choices(item, &item_schema))
            }
            _ => in_choices(value, property),
        };
        if !fits_choices {
            return Err(format!("{name} is not one of the values the form offers"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn form() -> Value {
        json!({
            "type": "object",
            "properties": {
                "region": { "type": "string", "enum": ["eu", "us"] },
                "cpus": { "type": "integer" },
                "tags": { "type": "array", "items": { "anyOf": [{ "const": "a" }, { "const": "b" }] } }
            },
            "required": ["region"]
        })
    }

    fn answer(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn a_form_is_a_flat_object_of_primitives() {
        assert_eq!(check_schema(&form()), Ok(()));
        assert!(check_schema(&json!({ "type": "object", "properties": { "x": { "type": "object" } } })).is_err());
        assert!(check_schema(&json!({ "type": "string" })).is_err());
        assert!(check_schema(&json!({ "type": "object", "properties": {}, "required": ["x"] })).is_err());
        assert!(check_schema(&json!("not an object")).is_err());
    }

    #[test]
    fn an_answer_must_fit_the_form() {
        let form = form();
        assert_eq!(check_answer(&form, &answer(json!({ "region": "eu", "cpus": 2, "tags": ["a"] }))), Ok(()));
        for (bad, why) in [
            (json!({ "cpus": 2 }), "required"),
            (json!({ "region": "mars" }), "not one of"),
            (json!({ "region": "eu", "cpus": 2.5 }), "integer"),
            (json!({ "region": "eu", "tags": ["c"] }), "not one of"),
            (json!({ "region": "eu", "username": "x" }), "not a field"),
        ] {
            let err = check_answer(&form, &answer(bad.clone())).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
