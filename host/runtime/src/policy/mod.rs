//! What each plugin may do: the host interfaces it is granted and the limits
//! its calls run under. Read from a TOML file; anything not granted is denied.
//!
//! ```toml
//! [limits]                      # defaults for every plugin
//! memory_mib = 64
//! compute_ms = 1000
//!
//! [plugins.my-tools]
//! grants = ["toolshed:runtime/*", "toolshed:infra/db"]
//! limits = { memory_mib = 128 }
//! smoke = { tool = "list_things", arguments = {} }
//! ```

mod grant;
mod limits;
pub mod network;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

pub use grant::{Grant, is_wasi};
pub use network::NetworkPolicy;

/// The interface a plugin must be granted to send HTTP requests.
pub const OUTGOING_HTTP: &str = "wasi:http/outgoing-handler";

/// The interface a plugin reads its configuration through.
pub const CONFIG: &str = "wasi:config/store";

/// Whether `grants` let a plugin import `import` (WASI is always linked,
/// and denies everything by default).
pub fn grant_allows(grants: &[Grant], import: &str) -> bool {
    grant::is_wasi(import) || grants.iter().any(|g| g.allows(import))
}
pub use limits::{Limits, LimitsFile};

/// A call made to check a new plugin version before it goes live.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Smoke {
    /// The tool to call.
    pub tool: String,
    /// Its arguments.
    #[serde(default = "empty_object")]
    pub arguments: serde_json::Value,
    /// How long the call may take (`deadline_s`; at most the plugin's own
    /// deadline). A version whose smoke call does not answer in time is
    /// refused.
    #[serde(default = "smoke_deadline", rename = "deadline_s", deserialize_with = "seconds")]
    pub deadline: std::time::Duration,
}

/// How long a smoke call may take unless its policy says otherwise.
pub const SMOKE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

fn smoke_deadline() -> std::time::Duration {
    SMOKE_DEADLINE
}

fn seconds<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<std::time::Duration, D::Error> {
    u64::deserialize(deserializer).map(std::time::Duration::from_secs)
}

/// The policy of one plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginPolicy {
    /// The host interfaces it may import.
    pub grants: Vec<Grant>,
    /// The limits its calls run under.
    pub limits: Limits,
    /// The call that checks a new version, if any.
    pub smoke: Option<Smoke>,
    /// Where it may send HTTP requests (with `wasi:http` granted); none
    /// without a `network` section.
    pub network: Option<std::sync::Arc<NetworkPolicy>>,
    /// Its configuration (base URLs, organization names: nothing secret),
    /// read through `wasi:config/store` when granted.
    pub config: std::sync::Arc<BTreeMap<String, String>>,
}

/// Every plugin's policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    defaults: Limits,
    plugins: BTreeMap<String, PluginPolicy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    limits: LimitsFile,
    #[serde(default)]
    plugins: BTreeMap<String, PluginFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginFile {
    #[serde(default)]
    grants: Vec<String>,
    #[serde(default)]
    limits: LimitsFile,
    smoke: Option<Smoke>,
    network: Option<network::NetworkFile>,
    #[serde(default)]
    config: BTreeMap<String, String>,
}

/// A policy file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("reading policy {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown keys.
    #[error("policy: {0}")]
    Parse(#[from] toml::de::Error),
    /// A grant is not an interface name.
    #[error("policy: plugin {plugin}: {reason}")]
    Grant {
        /// The plugin.
        plugin: String,
        /// What is wrong.
        reason: String,
    },
}

impl Policy {
    /// Parses a policy from TOML text.
    ///
    /// # Errors
    ///
    /// [`PolicyError`] naming the bad key or grant.
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        let file: PolicyFile = toml::from_str(text)?;
        let defaults = file.limits.over(&Limits::default());
        let mut plugins = BTreeMap::new();
        for (name, plugin) in file.plugins {
            let grants = plugin
                .grants
                .iter()
                .map(|g| g.parse::<Grant>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|reason| PolicyError::Grant { plugin: name.clone(), reason })?;
            let network = match &plugin.network {
                None => None,
                Some(section) => {
                    let grant = |reason: String| PolicyError::Grant { plugin: name.clone(), reason };
                    if !grants.iter().any(|g| g.allows(OUTGOING_HTTP)) {
                        return Err(grant(format!("it has a network section but is not granted {OUTGOING_HTTP}: add \"wasi:http/*\" to its grants")));
                    }
                    Some(std::sync::Arc::new(section.parse().map_err(grant)?))
                }
            };
            if !plugin.config.is_empty() && !grants.iter().any(|g| g.allows(CONFIG)) {
                return Err(PolicyError::Grant {
                    plugin: name.clone(),
                    reason: format!("it has a config section but is not granted {CONFIG}: add \"wasi:config/*\" to its grants"),
                });
            }
            let config = std::sync::Arc::new(plugin.config);
            let policy = PluginPolicy { grants, limits: plugin.limits.over(&defaults), smoke: plugin.smoke, network, config };
            plugins.insert(name, policy);
        }
        Ok(Policy { defaults, plugins })
    }

    /// Reads a policy file.
    ///
    /// # Errors
    ///
    /// [`PolicyError`] when it cannot be read or parsed.
    pub fn from_file(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read { path: path.display().to_string(), source })?;
        Self::from_toml(&text)
    }

    /// Adds the plugin entries of `other`, replacing entries of the same
    /// plugins; the default limits stay this policy's.
    pub fn extend(&mut self, other: Policy) {
        self.plugins.extend(other.plugins);
    }

    /// The policy of plugin `name`: its own entry, or the defaults with the
    /// runtime interfaces only.
    pub fn plugin(&self, name: &str) -> PluginPolicy {
        self.plugins.get(name).cloned().unwrap_or_else(|| PluginPolicy {
            grants: vec![Grant::Package("toolshed:runtime".into())],
            limits: self.defaults.clone(),
            smoke: None,
            network: None,
            config: Default::default(),
        })
    }

    /// Whether some plugin's entry grants `interface` (unversioned, such
    /// as `toolshed:infra/db`). A plugin without an entry gets the runtime
    /// interfaces only.
    pub fn grants_anywhere(&self, interface: &str) -> bool {
        self.plugins.values().any(|p| p.grants.iter().any(|g| g.allows(interface)))
    }

    /// Sets the policy of plugin `name`.
    pub fn set_plugin(&mut self, name: &str, policy: PluginPolicy) {
        self.plugins.insert(name.to_string(), policy);
    }

    /// The limits every plugin without its own gets.
    pub fn defaults(&self) -> &Limits {
        &self.defaults
    }

    /// The largest memory limit of any plugin, which sizes the instance pool.
    pub fn largest_memory(&self) -> usize {
        self.plugins.values().map(|p| p.limits.memory_bytes).chain([self.defaults.memory_bytes]).max().unwrap_or(0)
    }
}

impl Default for Policy {
    /// The built-in limits for every plugin, and the runtime interfaces only.
    fn default() -> Self {
        Policy { defaults: Limits::default(), plugins: BTreeMap::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_limits_fall_back_to_the_file_defaults_then_the_built_in_ones() {
        let policy = Policy::from_toml(
            "[limits]\nmemory_mib = 32\n[plugins.a]\ngrants = [\"toolshed:infra/db\"]\nlimits = { compute_ms = 50 }\n",
        )
        .unwrap();
        let a = policy.plugin("a");
        assert_eq!(a.limits.memory_bytes, 32 << 20);
        assert_eq!(a.limits.compute.as_millis(), 50);
        assert_eq!(a.limits.deadline, Limits::default().deadline);
        assert_eq!(a.grants, [Grant::Interface { package: "toolshed:infra".into(), name: "db".into() }]);
        assert_eq!(policy.plugin("unknown").grants, [Grant::Package("toolshed:runtime".into())]);
    }

    #[test]
    fn unknown_keys_and_bad_grants_are_refused_with_their_name() {
        let err = Policy::from_toml("[limits]\nmemroy_mib = 1\n").unwrap_err().to_string();
        assert!(err.contains("memroy_mib"), "{err}");
        let err = Policy::from_toml("[plugins.a]\ngrants = [\"db\"]\n").unwrap_err().to_string();
        assert!(err.contains("plugin a") && err.contains("db"), "{err}");
    }

    #[test]
    fn wasi_http_needs_a_grant_and_a_network_section_needs_wasi_http() {
        assert!(grant_allows(&[], "wasi:cli/environment@0.2.6"), "the rest of WASI is linked, denying by default");
        assert!(!grant_allows(&[], "wasi:http/outgoing-handler@0.2.6"));
        let granted = Policy::from_toml("[plugins.a]\ngrants = [\"wasi:http/*\"]\n").unwrap();
        assert!(grant_allows(&granted.plugin("a").grants, "wasi:http/types@0.2.6"));
        assert_eq!(granted.plugin("a").network, None, "granted, but no destination listed");
        let err = Policy::from_toml("[plugins.a]\ngrants = []\n[[plugins.a.network.allow]]\nurl = \"https://a.com/\"\nmethods = [\"GET\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("plugin a") && err.contains("wasi:http/outgoing-handler"), "{err}");
        let err = Policy::from_toml("[plugins.a]\ngrants = [\"wasi:http/*\"]\n[[plugins.a.network.allow]]\nurl = \"https://127.0.0.1/\"\nmethods = [\"GET\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("plugin a") && err.contains("127.0.0.1"), "{err}");
    }

    #[test]
    fn configuration_is_strings_and_needs_wasi_config() {
        let policy = Policy::from_toml("[plugins.a]\ngrants = [\"wasi:config/*\"]\nconfig = { base_url = \"https://a.com\", org = \"acme\" }\n").unwrap();
        assert_eq!(policy.plugin("a").config.get("org").map(String::as_str), Some("acme"));
        assert!(grant_allows(&policy.plugin("a").grants, "wasi:config/store@0.2.0-draft"));
        assert!(!grant_allows(&[], "wasi:config/store@0.2.0-draft"));
        let err = Policy::from_toml("[plugins.a]\nconfig = { org = \"acme\" }\n").unwrap_err().to_string();
        assert!(err.contains("wasi:config/store"), "{err}");
        let err = Policy::from_toml("[plugins.a]\ngrants = [\"wasi:config/*\"]\nconfig = { port = 5 }\n").unwrap_err().to_string();
        assert!(err.contains("string"), "{err}");
    }

    #[test]
    fn extending_a_policy_adds_and_replaces_plugin_entries() {
        let mut policy = Policy::from_toml("[plugins.a]\ngrants = [\"toolshed:infra/db\"]\n[plugins.b]\ngrants = []\n").unwrap();
        policy.extend(Policy::from_toml("[plugins.b]\ngrants = [\"toolshed:infra/control\"]\n").unwrap());
        assert!(policy.plugin("a").grants.iter().any(|g| g.allows("toolshed:infra/db@0.1.0")));
        assert!(policy.plugin("b").grants.iter().any(|g| g.allows("toolshed:infra/control@0.1.0")));
        assert!(!policy.plugin("other").grants.iter().any(|g| g.allows("toolshed:infra/control@0.1.0")));
    }
}
