//! The author's cases, `tests/cases.json`: calls and what they answer,
//! run against the real host and the scripted fake backend on virtual time.
//!
//! ```json
//! [
//!   { "name": "greet greets by name", "tool": "greet", "arguments": { "name": "Ada" },
//!     "result": { "text": "Hello, Ada!" } },
//!   { "name": "a template is listed", "given": { "templates": ["docker"] },
//!     "tool": "list_templates", "result": { "templates": [{ "id": "$template.docker", "name": "docker" }] } }
//! ]
//! ```
//!
//! `result` or `error` is matched field by field: every field it names must
//! be in the answer with that value (objects recursively, lists whole).
//! `given.templates` adds templates of the caller's organization to the
//! fake backend; `$template.NAME` anywhere in a case stands for its id.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;
use toolshed_harness::{TestEnv, ids};
use toolshed_runtime::ToolOutput;

/// One case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What the case shows, as a sentence.
    pub name: String,
    /// What the fake backend holds before the call.
    #[serde(default)]
    pub given: Given,
    /// The tool called.
    pub tool: String,
    /// Its arguments.
    #[serde(default = "empty_object")]
    pub arguments: Value,
    /// Fields the result must have.
    pub result: Option<Value>,
    /// Fields the error object must have.
    pub error: Option<Value>,
}

/// The fake backend's state before a case's call.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Given {
    /// Templates of the caller's organization, by name.
    #[serde(default)]
    pub templates: Vec<String>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// Reads the cases in `text`.
///
/// # Errors
///
/// When the text is not a list of cases, naming what is wrong.
pub fn parse(text: &str) -> anyhow::Result<Vec<Case>> {
    let cases: Vec<Case> = serde_json::from_str(text).map_err(|e| anyhow::anyhow!("tests/cases.json: {e}"))?;
    for case in &cases {
        anyhow::ensure!(
            case.result.is_some() != case.error.is_some(),
            "tests/cases.json: case {:?} must give exactly one of \"result\" and \"error\"",
            case.name
        );
    }
    Ok(cases)
}

/// Runs `case` on `env`: the answer, and `Err` saying how it differs
/// from what the case expects.
pub async fn run(env: &TestEnv, case: &Case) -> (ToolOutput, Result<(), String>) {
    let output = call(env, case).await;
    let verdict = judge(case, &output.1, &output.0);
    (output.0, verdict)
}

/// Sets up the backend and makes the case's call; the answer and the ids
/// the case's names stand for.
async fn call(env: &TestEnv, case: &Case) -> (ToolOutput, HashMap<String, Value>) {
    let mut ids = HashMap::new();
    for name in &case.given.templates {
        let template = env.backend.add_template(name, ids::ORG, 1);
        ids.insert(format!("$template.{name}"), Value::String(template.id));
    }
    let arguments = substitute(&case.arguments, &ids);
    (env.call(&case.tool, arguments).await, ids)
}

fn judge(case: &Case, ids: &HashMap<String, Value>, output: &ToolOutput) -> Result<(), String> {
    let (expected, kind) = match (&case.result, &case.error) {
        (Some(result), _) => (result, "a result"),
        (None, Some(error)) => (error, "an error"),
        (None, None) => unreachable!("parse checks every case has one"),
    };
    if output.is_error != case.error.is_some() {
        return Err(format!("expected {kind}, got {}", output.value));
    }
    let expected = substitute(expected, ids);
    match mismatch(&expected, &output.value, "$") {
        None => Ok(()),
        Some(at) => Err(format!("{at}; the answer was {}", output.value)),
    }
}

/// `value` with every string naming a given id replaced by the id.
fn substitute(value: &Value, ids: &HashMap<String, Value>) -> Value {
    match value {
        Value::String(s) => ids.get(s).cloned().unwrap_or_else(|| value.clone()),
        Value::Array(items) => Value::Array(items.iter().map(|v| substitute(v, ids)).collect()),
        Value::Object(fields) => Value::Object(fields.iter().map(|(k, v)| (k.clone(), substitute(v, ids))).collect()),
        other => other.clone(),
    }
}

/// Where `actual` lacks what `expected` names, if anywhere: objects match
/// field by field, lists item by item and whole, anything else exactly.
fn mismatch(expected: &Value, actual: &Value, path: &str) -> Option<String> {
    match (expected, actual) {
        (Value::Object(want), Value::Object(got)) => want.iter().find_map(|(key, value)| match got.get(key) {
            Some(have) => mismatch(value, have, &format!("{path}.{key}")),
            None => Some(format!("{path}.{key} is missing")),
        }),
        (Value::Array(want), Value::Array(got)) if want.len() == got.len() => {
            want.iter().zip(got).enumerate().find_map(|(i, (w, g))| mismatch(w, g, &format!("{path}[{i}]")))
        }
        (Value::Array(want), Value::Array(got)) => Some(format!("{path} has {} items, not {}", got.len(), want.len())),
        _ if expected == actual => None,
        _ => Some(format!("{path} is {actual}, not {expected}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_answer_matches_the_fields_a_case_names_and_says_where_it_differs() {
        let answer = json!({ "text": "Hello, Ada!", "extra": 1, "list": [{ "a": 1, "b": 2 }] });
        assert_eq!(mismatch(&json!({ "text": "Hello, Ada!" }), &answer, "$"), None);
        assert_eq!(mismatch(&json!({ "list": [{ "a": 1 }] }), &answer, "$"), None);
        assert_eq!(mismatch(&json!({ "text": "Hi" }), &answer, "$").unwrap(), "$.text is \"Hello, Ada!\", not \"Hi\"");
        assert_eq!(mismatch(&json!({ "missing": 1 }), &answer, "$").unwrap(), "$.missing is missing");
        assert_eq!(mismatch(&json!({ "list": [] }), &answer, "$").unwrap(), "$.list has 1 items, not 0");
    }

    #[test]
    fn a_case_needs_exactly_one_expectation() {
        assert!(parse(r#"[{ "name": "n", "tool": "t" }]"#).unwrap_err().to_string().contains("exactly one"));
        assert!(parse(r#"[{ "name": "n", "tool": "t", "result": {}, "bogus": 1 }]"#).unwrap_err().to_string().contains("bogus"));
        assert_eq!(parse(r#"[{ "name": "n", "tool": "t", "error": { "code": "X" } }]"#).unwrap().len(), 1);
    }
}
