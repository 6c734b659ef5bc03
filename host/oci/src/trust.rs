//! Which key is trusted where: a public key per registry (`HOST`) or
//! namespace (`HOST/PATH`). A reference is checked against the entry with
//! the longest prefix that matches it at a `/` boundary; a reference no
//! entry matches is refused.
//!
//! ```toml
//! [trust."registry.example/tools"]
//! key = "keys/tools.pub"           # relative to the file, or key_pem = "..."
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use p256::ecdsa::VerifyingKey;
use serde::Deserialize;

use crate::{OciError, PluginRef};

/// One entry of a trust policy as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustEntry {
    /// A PEM public key file, relative to the file naming it.
    pub key: Option<String>,
    /// The PEM public key itself.
    pub key_pem: Option<String>,
}

/// The keys trusted per registry or namespace.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    keys: Vec<(String, VerifyingKey)>,
}

impl TrustPolicy {
    /// The policy of `entries`, with key files read relative to `base`.
    ///
    /// # Errors
    ///
    /// [`OciError::Key`] naming the entry whose key cannot be used.
    pub fn from_entries(entries: &BTreeMap<String, TrustEntry>, base: &Path) -> Result<TrustPolicy, OciError> {
        let mut keys = Vec::new();
        for (prefix, entry) in entries {
            let prefix = prefix.trim_start_matches("oci://").trim_end_matches('/').to_string();
            let pem = match (&entry.key, &entry.key_pem) {
                (Some(file), None) => {
                    let path = base.join(file);
                    std::fs::read_to_string(&path).map_err(|e| OciError::Key(format!("trust {prefix:?}: reading {}: {e}", path.display())))?
                }
                (None, Some(pem)) => pem.clone(),
                _ => return Err(OciError::Key(format!("trust {prefix:?}: give either key (a file) or key_pem"))),
            };
            keys.push((prefix.clone(), crate::signature::parse_public_key(&format!("the key trusted for {prefix}"), &pem)?));
        }
        Ok(TrustPolicy { keys })
    }

    /// Trusts `key` for `prefix`.
    pub fn trust(&mut self, prefix: &str, key: VerifyingKey) {
        self.keys.push((prefix.to_string(), key));
    }

    /// The entry trusted for `reference`: its prefix and key.
    ///
    /// # Errors
    ///
    /// [`OciError::Untrusted`] when no entry matches.
    pub fn key_for(&self, reference: &PluginRef) -> Result<(&str, &VerifyingKey), OciError> {
        let path = reference.repository_path();
        self.keys
            .iter()
            .filter(|(prefix, _)| path == *prefix || path.strip_prefix(prefix.as_str()).is_some_and(|rest| rest.starts_with('/')))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(prefix, key)| (prefix.as_str(), key))
            .ok_or_else(|| OciError::Untrusted { reference: reference.to_string(), repository: path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_matching_prefix_names_the_key_and_a_partial_name_matches_nothing() {
        let registry = crate::signature::generate();
        let namespace = crate::signature::generate();
        let entries: BTreeMap<String, TrustEntry> = toml::from_str(&format!(
            "[\"127.0.0.1:5000\"]\nkey_pem = '''{}'''\n[\"127.0.0.1:5000/tools\"]\nkey_pem = '''{}'''\n",
            registry.public_pem, namespace.public_pem
        ))
        .unwrap();
        let policy = TrustPolicy::from_entries(&entries, Path::new(".")).unwrap();
        let at = |r: &str| policy.key_for(&PluginRef::parse(r).unwrap()).map(|(prefix, _)| prefix.to_string());
        assert_eq!(at("127.0.0.1:5000/tools/hello:1").unwrap(), "127.0.0.1:5000/tools");
        assert_eq!(at("127.0.0.1:5000/toolsmith/hello:1").unwrap(), "127.0.0.1:5000");
        assert!(at("127.0.0.1:5001/tools/hello:1").unwrap_err().to_string().contains("no key is trusted for 127.0.0.1:5001/tools/hello"));
    }
}
