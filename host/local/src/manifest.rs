//! Template manifests (`template.toml`) and checking parameter values
//! against a version's parameters.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use toolshed_infra::{ParameterOption, TemplateParameter, Validation};

/// A template directory's `template.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The template's unique name.
    pub name: String,
    /// A friendlier name.
    #[serde(default)]
    pub display_name: String,
    /// What the template provides.
    #[serde(default)]
    pub description: String,
    /// Whether starting a workspace always moves it to the active version.
    #[serde(default)]
    pub require_active_version: bool,
    /// The name of the workspace's agent.
    #[serde(default = "default_agent")]
    pub agent: String,
    /// The parameters workspaces of this version take.
    #[serde(default)]
    pub parameters: Vec<ParameterManifest>,
    /// The shell scripts of the template.
    pub scripts: Scripts,
}

fn default_agent() -> String {
    "main".into()
}

/// Shell scripts run with `sh -c` in the workspace directory, with each
/// parameter in `TOOLSHED_PARAM_<NAME>`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scripts {
    /// The build of a start.
    #[serde(default)]
    pub start: String,
    /// The build of a stop.
    #[serde(default)]
    pub stop: String,
    /// What the agent runs once the workspace is up.
    #[serde(default)]
    pub startup: String,
}

/// One parameter in a manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ParameterManifest {
    /// The key in the `parameters` object.
    pub name: String,
    /// string, number, bool or list(string).
    #[serde(rename = "type", default = "default_type")]
    pub type_: String,
    /// Whether a value must be given when there is no default.
    #[serde(default)]
    pub required: bool,
    /// A friendlier name.
    #[serde(default)]
    pub display_name: String,
    /// What it controls.
    #[serde(default)]
    pub description: String,
    /// The value used when none is given.
    pub default: Option<String>,
    /// Whether the value may change after creation.
    #[serde(default)]
    pub mutable: bool,
    /// Whether the value applies to one build only.
    #[serde(default)]
    pub ephemeral: bool,
    /// How a form shows it.
    #[serde(default)]
    pub form_type: String,
    /// The allowed values.
    #[serde(default)]
    pub options: Vec<OptionManifest>,
    /// A regular expression the value must match.
    pub validation_regex: Option<String>,
    /// The smallest allowed number.
    pub validation_min: Option<i64>,
    /// The largest allowed number.
    pub validation_max: Option<i64>,
}

fn default_type() -> String {
    "string".into()
}

/// One allowed value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OptionManifest {
    /// What the user sees.
    pub name: String,
    /// The value.
    pub value: String,
    /// What it means.
    #[serde(default)]
    pub description: String,
}

impl Manifest {
    /// Reads `dir/template.toml`.
    ///
    /// # Errors
    ///
    /// When the file is missing or not a valid manifest.
    pub fn read(dir: &Path) -> anyhow::Result<Manifest> {
        let path = dir.join("template.toml");
        let text = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        let manifest: Manifest = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        for p in &manifest.parameters {
            if let Some(regex) = &p.validation_regex {
                regex::Regex::new(regex).map_err(|e| anyhow::anyhow!("parameter {}: bad validation_regex: {e}", p.name))?;
            }
        }
        Ok(manifest)
    }

    /// The parameters as the database interface shows them.
    pub fn template_parameters(&self) -> Vec<TemplateParameter> {
        self.parameters
            .iter()
            .map(|p| TemplateParameter {
                name: p.name.clone(),
                type_: p.type_.clone(),
                required: p.required,
                display_name: p.display_name.clone(),
                description: p.description.clone(),
                default_value: p.default.clone(),
                mutable: p.mutable,
                ephemeral: p.ephemeral,
                form_type: p.form_type.clone(),
                options: p
                    .options
                    .iter()
                    .map(|o| ParameterOption { name: o.name.clone(), value: o.value.clone(), description: o.description.clone() })
                    .collect(),
                validation_regex: p.validation_regex.clone(),
                validation_min: p.validation_min,
                validation_max: p.validation_max,
            })
            .collect()
    }

    /// The values a build of this version runs with: earlier values, then
    /// the new ones, then defaults; or the fields that fail validation.
    pub fn resolve(&self, earlier: &BTreeMap<String, String>, given: &[(String, String)]) -> Result<BTreeMap<String, String>, Vec<Validation>> {
        let mut values = BTreeMap::new();
        let mut problems = Vec::new();
        let given: BTreeMap<&str, &str> = given.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        for name in given.keys() {
            if !self.parameters.iter().any(|p| p.name == *name) {
                problems.push(Validation { field: name.to_string(), detail: "this template version has no such parameter".into() });
            }
        }
        for p in &self.parameters {
            let value = given
                .get(p.name.as_str())
                .map(|v| v.to_string())
                .or_else(|| (!p.ephemeral).then(|| earlier.get(&p.name).cloned()).flatten())
                .or_else(|| p.default.clone());
            let Some(value) = value else {
                if p.required {
                    problems.push(Validation { field: p.name.clone(), detail: "a value is required".into() });
                }
                continue;
            };
            if let Some(detail) = invalid(p, &value) {
                problems.push(Validation { field: p.name.clone(), detail });
            }
            values.insert(p.name.clone(), value);
        }
        if problems.is_empty() { Ok(values) } else { Err(problems) }
    }
}

/// Why `value` does not fit `p`, if it does not.
fn invalid(p: &ParameterManifest, value: &str) -> Option<String> {
    if !p.options.is_empty() && !p.options.iter().any(|o| o.value == value) {
        let allowed: Vec<&str> = p.options.iter().map(|o| o.value.as_str()).collect();
        return Some(format!("{value:?} is not one of {}", allowed.join(", ")));
    }
    if let Some(regex) = &p.validation_regex
        && regex::Regex::new(regex).is_ok_and(|r| !r.is_match(value)) {
            return Some(format!("{value:?} does not match {regex}"));
        }
    if p.type_ == "number" {
        let Ok(number) = value.parse::<i64>() else { return Some(format!("{value:?} is not a number")) };
        if p.validation_min.is_some_and(|min| number < min) || p.validation_max.is_some_and(|max| number > max) {
            return Some(format!("{number} is outside {}..={}", p.validation_min.unwrap_or(i64::MIN), p.validation_max.unwrap_or(i64::MAX)));
        }
    }
    if p.type_ == "bool" && value != "true" && value != "false" {
        return Some(format!("{value:?} is not true or false"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(parameters: &str) -> Manifest {
        toml::from_str(&format!("name = \"t\"\n{parameters}\n[scripts]\nstart = \"true\"\n")).unwrap()
    }

    #[test]
    fn required_values_come_from_the_request_earlier_builds_or_defaults() {
        let m = manifest("[[parameters]]\nname = \"region\"\nrequired = true\n[[parameters]]\nname = \"size\"\ndefault = \"s\"\n");
        let missing = m.resolve(&BTreeMap::new(), &[]).unwrap_err();
        assert_eq!(missing[0].field, "region");
        let earlier = BTreeMap::from([("region".to_string(), "eu".to_string())]);
        let values = m.resolve(&earlier, &[]).unwrap();
        assert_eq!(values["region"], "eu");
        assert_eq!(values["size"], "s");
        let values = m.resolve(&earlier, &[("region".into(), "us".into())]).unwrap();
        assert_eq!(values["region"], "us");
    }

    #[test]
    fn options_regex_and_bounds_are_checked() {
        let m = manifest(
            "[[parameters]]\nname = \"n\"\ntype = \"number\"\nvalidation_min = 1\nvalidation_max = 4\n\
             [[parameters]]\nname = \"r\"\nvalidation_regex = \"^[a-z]+$\"\n\
             [[parameters]]\nname = \"o\"\noptions = [{ name = \"A\", value = \"a\" }]\n",
        );
        let problems = m.resolve(&BTreeMap::new(), &[("n".into(), "9".into()), ("r".into(), "X1".into()), ("o".into(), "b".into())]).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["n", "r", "o"]);
        assert!(m.resolve(&BTreeMap::new(), &[("zzz".into(), "1".into())]).is_err());
    }
}
