//! The environment of workspace processes (build scripts, the agent's
//! startup script, and all they start): built from an allow-list, never
//! inherited.
//!
//! The host's own environment holds what no workspace may see: the database
//! URL with its password, tokens, cloud credentials. So every workspace
//! process starts from an empty environment and gets exactly:
//!
//! - `PATH`, a fixed value ([`SAFE_PATH`]), not the host's;
//! - `HOME`, the workspace directory;
//! - `TERM=dumb`, since no terminal is attached;
//! - `LANG` and `LC_ALL`, copied from the host when set, so tools speak the
//!   operator's locale;
//! - the workspace's own variables: `TOOLSHED_WORKSPACE_DIR`,
//!   `TOOLSHED_WORKSPACE_NAME`, and for builds `TOOLSHED_TRANSITION` and
//!   `TOOLSHED_BUILD_ID`;
//! - `TOOLSHED_PARAM_<NAME>` for each of the build's parameter values.

use std::collections::BTreeMap;
use std::path::Path;

/// The `PATH` of every workspace process: the system's directories, in the
/// usual order, and nothing the host's `PATH` adds.
pub const SAFE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Copied from the host when set.
const FROM_HOST: [&str; 2] = ["LANG", "LC_ALL"];

/// Set by the backend to what the workspace is.
const WORKSPACE: [&str; 4] = ["TOOLSHED_WORKSPACE_DIR", "TOOLSHED_WORKSPACE_NAME", "TOOLSHED_TRANSITION", "TOOLSHED_BUILD_ID"];

/// The prefix of parameter values.
const PARAMETER: &str = "TOOLSHED_PARAM_";

/// Whether a workspace process may be given variable `name`.
pub fn allows(name: &str) -> bool {
    matches!(name, "PATH" | "HOME" | "TERM")
        || FROM_HOST.contains(&name)
        || WORKSPACE.contains(&name)
        || name.strip_prefix(PARAMETER).is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
}

/// The variable a parameter's value is passed in: `TOOLSHED_PARAM_` and the
/// name upper-cased, anything but letters, digits and `_` made `_`.
pub fn parameter_variable(name: &str) -> String {
    let name: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("{PARAMETER}{name}")
}

/// The whole environment of a workspace process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptEnvironment {
    vars: BTreeMap<String, String>,
}

impl ScriptEnvironment {
    /// The environment of a process in workspace directory `dir`, with the
    /// locale looked up in the host's environment by `host`.
    pub fn new(dir: &Path, host: impl Fn(&str) -> Option<String>) -> ScriptEnvironment {
        let dir = dir.display().to_string();
        let mut vars = BTreeMap::from([
            ("PATH".to_string(), SAFE_PATH.to_string()),
            ("HOME".to_string(), dir.clone()),
            ("TERM".to_string(), "dumb".to_string()),
            ("TOOLSHED_WORKSPACE_DIR".to_string(), dir),
        ]);
        for name in FROM_HOST {
            if let Some(value) = host(name) {
                vars.insert(name.to_string(), value);
            }
        }
        ScriptEnvironment { vars }
    }

    /// The environment the agent was started with, passed on to its startup
    /// script: only allowed variables, and the fixed ones fixed again, so an
    /// agent started with more passes none of it on.
    pub fn passed_on(dir: &Path, agent: impl IntoIterator<Item = (String, String)>) -> ScriptEnvironment {
        let mut environment = ScriptEnvironment::new(dir, |_| None);
        for (name, value) in agent {
            if allows(&name) && !environment.vars.contains_key(&name) {
                environment.vars.insert(name, value);
            }
        }
        environment
    }

    /// Sets the workspace's variable `name`, one of the workspace
    /// variables the module describes.
    ///
    /// # Panics
    ///
    /// When `name` is not a workspace variable: only what the allow-list
    /// names is ever set.
    pub fn workspace(mut self, name: &str, value: &str) -> ScriptEnvironment {
        assert!(WORKSPACE.contains(&name), "{name} is not a workspace variable");
        self.vars.insert(name.to_string(), value.to_string());
        self
    }

    /// Adds each parameter value as `TOOLSHED_PARAM_<NAME>`.
    pub fn parameters(mut self, values: &BTreeMap<String, String>) -> ScriptEnvironment {
        for (name, value) in values {
            self.vars.insert(parameter_variable(name), value.clone());
        }
        self
    }

    /// The variables, by name.
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// Gives `command` exactly this environment, and nothing of this
    /// process's.
    pub fn apply(&self, command: &mut tokio::process::Command) {
        command.env_clear().envs(&self.vars);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_allow_list_is_set_and_nothing_else_passes_on() {
        let host = |name: &str| match name {
            "LANG" => Some("C.UTF-8".to_string()),
            "TOOLSHED_DATABASE" => Some("postgres://u:secret@h/db".to_string()),
            _ => None,
        };
        let dir = Path::new("/data/workspaces/o/app");
        let values = BTreeMap::from([("region".to_string(), "eu".to_string()), ("odd-name=x".to_string(), "1".to_string())]);
        let built = ScriptEnvironment::new(dir, host).workspace("TOOLSHED_WORKSPACE_NAME", "app").parameters(&values);
        let names: Vec<&str> = built.vars().keys().map(String::as_str).collect();
        assert_eq!(names, ["HOME", "LANG", "PATH", "TERM", "TOOLSHED_PARAM_ODD_NAME_X", "TOOLSHED_PARAM_REGION", "TOOLSHED_WORKSPACE_DIR", "TOOLSHED_WORKSPACE_NAME"]);
        assert!(built.vars().keys().all(|name| allows(name)));

        let agent = [
            ("TOOLSHED_DATABASE".to_string(), "postgres://u:secret@h/db".to_string()),
            ("PATH".to_string(), "/home/attacker/bin".to_string()),
            ("HOME".to_string(), "/root".to_string()),
            ("TOOLSHED_PARAM_REGION".to_string(), "eu".to_string()),
            ("TOOLSHED_PARAM_".to_string(), "empty".to_string()),
            ("LD_PRELOAD".to_string(), "/tmp/x.so".to_string()),
        ];
        let passed = ScriptEnvironment::passed_on(dir, agent);
        assert_eq!(passed.vars().get("PATH").map(String::as_str), Some(SAFE_PATH));
        assert_eq!(passed.vars().get("HOME").map(String::as_str), Some("/data/workspaces/o/app"));
        assert_eq!(passed.vars().get("TOOLSHED_PARAM_REGION").map(String::as_str), Some("eu"));
        for refused in ["TOOLSHED_DATABASE", "LD_PRELOAD", "TOOLSHED_PARAM_"] {
            assert!(!passed.vars().contains_key(refused), "{refused} passed on");
        }
    }
}
