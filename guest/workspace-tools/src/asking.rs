//! Asking the user for template parameters whose values are not obvious
//! (SPEC 3.6: ask rather than guess), when the caller's client can ask. A
//! client that cannot gets the error it always got.

use serde_json::{Map, Value, json};
use toolshed_guest::types::ErrorCategory;

use crate::capabilities::{Asked, Capabilities};
use crate::errors::error;
use crate::wit::exports::toolshed::tools::workspace_tools::ToolError;
use crate::wit::toolshed::infra::types::TemplateParameter;

/// The JSON Schema type a form shows a parameter of type `ty` with.
fn form_type(ty: &str) -> &'static str {
    match ty {
        "number" => "number",
        "bool" | "boolean" => "boolean",
        _ => "string",
    }
}

/// A form asking for `parameters`: one field each, titled with its display
/// name, described, and offering its options when it has any.
pub fn form(parameters: &[&TemplateParameter]) -> String {
    let mut properties = Map::new();
    for p in parameters {
        let mut field = json!({ "type": form_type(&p.type_) });
        let title = if p.display_name.is_empty() { &p.name } else { &p.display_name };
        field["title"] = json!(title);
        if !p.description.is_empty() {
            field["description"] = json!(p.description);
        }
        if !p.options.is_empty() && form_type(&p.type_) == "string" {
            field["oneOf"] = p.options.iter().map(|o| json!({ "const": o.value, "title": if o.name.is_empty() { &o.value } else { &o.name } })).collect();
        }
        properties.insert(p.name.clone(), field);
    }
    let required: Vec<&str> = parameters.iter().map(|p| p.name.as_str()).collect();
    json!({ "type": "object", "properties": properties, "required": required }).to_string()
}

/// The answer's values as the parameters' strings.
fn values(answer: &Map<String, Value>) -> Vec<(String, String)> {
    answer
        .iter()
        .map(|(name, value)| (name.clone(), match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        }))
        .collect()
}

/// Asks the user for `parameters` with `message`: the values given, or
/// `None` when the client cannot ask (the caller answers as it would
/// without them).
///
/// # Errors
///
/// `USER_DECLINED` when the user declines or dismisses the form.
pub fn ask_for<C: Capabilities>(host: &C, message: &str, parameters: &[&TemplateParameter]) -> Result<Option<Vec<(String, String)>>, ToolError> {
    if parameters.is_empty() {
        return Ok(None);
    }
    match host.ask(message, &form(parameters)) {
        Asked::Answer(answer) => Ok(Some(values(&answer))),
        Asked::Declined => {
            let names: Vec<&str> = parameters.iter().map(|p| p.name.as_str()).collect();
            let mut err = error(
                ErrorCategory::UserCancelled,
                "USER_DECLINED",
                format!("the user was asked for {} and did not give them; ask them what they want, or pass the values in `parameters`", names.join(", ")),
            );
            err.suggestions = Some(vec!["Ask the user which values to use, then call the tool again with a `parameters` object.".into()]);
            Err(err)
        }
        Asked::Unavailable => Ok(None),
    }
}

/// Adds `more` to `parameters`, replacing values of the same name.
pub fn merged(parameters: &[(String, String)], more: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = parameters.iter().filter(|(k, _)| !more.iter().any(|(m, _)| m == k)).cloned().collect();
    out.extend(more);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wit::toolshed::infra::types::ParameterOption;

    fn parameter(name: &str, ty: &str, options: &[&str]) -> TemplateParameter {
        TemplateParameter {
            name: name.into(),
            type_: ty.into(),
            required: true,
            display_name: String::new(),
            description: format!("the {name}"),
            default_value: None,
            mutable: true,
            ephemeral: false,
            form_type: String::new(),
            options: options.iter().map(|o| ParameterOption { name: o.to_uppercase(), value: (*o).into(), description: String::new() }).collect(),
            validation_regex: None,
            validation_min: None,
            validation_max: None,
        }
    }

    #[test]
    fn the_form_offers_each_parameters_options_and_requires_them_all() {
        let (region, cpus) = (parameter("region", "string", &["eu", "us"]), parameter("cpus", "number", &[]));
        let form: Value = serde_json::from_str(&form(&[&region, &cpus])).unwrap();
        assert_eq!(form["required"], json!(["region", "cpus"]));
        assert_eq!(form["properties"]["region"]["oneOf"], json!([{ "const": "eu", "title": "EU" }, { "const": "us", "title": "US" }]));
        assert_eq!(form["properties"]["cpus"]["type"], "number");
        assert_eq!(form["properties"]["cpus"]["title"], "cpus");
    }

    #[test]
    fn answers_become_parameter_strings_over_what_was_given() {
        let answer: Map<String, Value> = serde_json::from_value(json!({ "region": "eu", "cpus": 4 })).unwrap();
        let given = vec![("region".to_string(), "us".to_string()), ("disk".to_string(), "10".to_string())];
        let mut out = merged(&given, values(&answer));
        out.sort();
        assert_eq!(out, vec![("cpus".into(), "4".into()), ("disk".into(), "10".into()), ("region".into(), "eu".into())]);
    }
}
