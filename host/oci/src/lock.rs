//! `plugins.toml` names each plugin's source (by tag or digest) with its
//! policy entry, and the keys trusted per registry or namespace;
//! `plugins.lock`, beside it, pins each to the digests that verified.
//!
//! ```toml
//! [trust."registry.example/tools"]
//! key = "tools.pub"
//!
//! [plugins.hello]
//! source = "oci://registry.example/tools/hello:1.0"
//! grants = ["toolshed:runtime/*"]          # the policy entry, as in a policy file
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pull::{Verified, pull_verified};
use crate::registry::Registries;
use crate::store::{BlobStore, write_atomically};
use crate::trust::TrustEntry;
use crate::{OciError, PluginRef, TrustPolicy};

/// The lock's name beside `plugins.toml`.
pub const LOCK_FILE: &str = "plugins.lock";

/// One plugin of `plugins.toml`.
#[derive(Debug, Clone)]
pub struct PluginSource {
    /// Where it comes from.
    pub source: PluginRef,
    /// Its policy entry: the keys of a policy file's `[plugins.NAME]`.
    pub policy: toml::Table,
}

/// `plugins.toml`, read.
#[derive(Debug, Clone)]
pub struct PluginsFile {
    /// The file.
    pub path: PathBuf,
    /// The keys trusted per registry or namespace.
    pub trust: TrustPolicy,
    /// The plugins by name.
    pub plugins: BTreeMap<String, PluginSource>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginsText {
    #[serde(default)]
    trust: BTreeMap<String, TrustEntry>,
    #[serde(default)]
    plugins: BTreeMap<String, toml::Table>,
}

impl PluginsFile {
    /// Reads `path`; a missing file has no plugins and trusts nothing.
    ///
    /// # Errors
    ///
    /// [`OciError::Config`] naming the file and what is wrong.
    pub fn read(path: &Path) -> Result<PluginsFile, OciError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(OciError::io(format!("reading {}", path.display()), e)),
        };
        let parsed: PluginsText = toml::from_str(&text).map_err(|e| OciError::Config(format!("{}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let trust = TrustPolicy::from_entries(&parsed.trust, base).map_err(|e| OciError::Config(format!("{}: {e}", path.display())))?;
        let mut plugins = BTreeMap::new();
        for (name, mut policy) in parsed.plugins {
            let source = match policy.remove("source") {
                Some(toml::Value::String(source)) => PluginRef::parse(&source).map_err(|e| OciError::Config(format!("{}: plugin {name}: {e}", path.display())))?,
                _ => return Err(OciError::Config(format!("{}: plugin {name} needs source = \"oci://HOST/REPOSITORY:TAG\"", path.display()))),
            };
            plugins.insert(name, PluginSource { source, policy });
        }
        Ok(PluginsFile { path: path.to_path_buf(), trust, plugins })
    }

    /// The lock beside this file.
    pub fn lock_path(&self) -> PathBuf {
        self.path.parent().unwrap_or(Path::new(".")).join(LOCK_FILE)
    }

    /// The policy entries of every plugin, as a policy file's text.
    pub fn policy_toml(&self) -> String {
        let mut plugins = toml::Table::new();
        for (name, source) in &self.plugins {
            plugins.insert(name.clone(), toml::Value::Table(source.policy.clone()));
        }
        let mut root = toml::Table::new();
        root.insert("plugins".into(), toml::Value::Table(plugins));
        toml::to_string(&root).expect("a table serializes")
    }

    /// Adds plugin `name` from `source` to the file, keeping all it says.
    ///
    /// # Errors
    ///
    /// When it names `name` already with another source, or cannot be written.
    pub fn add(path: &Path, name: &str, source: &PluginRef) -> Result<(), OciError> {
        let file = PluginsFile::read(path)?;
        if let Some(existing) = file.plugins.get(name) {
            if existing.source == *source {
                return Ok(());
            }
            return Err(OciError::Config(format!("{} names plugin {name} already, from {}: change its source there", path.display(), existing.source)));
        }
        let mut text = std::fs::read_to_string(path).unwrap_or_default();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        let quoted = |s: &str| serde_json::to_string(s).expect("a string serializes");
        let bare = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let key = if bare { name.to_string() } else { quoted(name) };
        text.push_str(&format!("\n[plugins.{key}]\nsource = {}\n", quoted(&source.to_string())));
        write_atomically(path, text.as_bytes())
    }
}

/// One pinned plugin.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LockedPlugin {
    /// The source as `plugins.toml` names it.
    pub source: String,
    /// The manifest digest that verified.
    pub digest: String,
    /// The component's digest.
    pub wasm: String,
}

impl LockedPlugin {
    /// The source pinned to the locked digest.
    ///
    /// # Errors
    ///
    /// When the source does not parse.
    pub fn pinned(&self) -> Result<PluginRef, OciError> {
        Ok(PluginRef::parse(&self.source)?.pinned(&self.digest))
    }
}

/// `plugins.lock`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LockFile {
    /// The lock's format.
    #[serde(default = "version")]
    pub version: u32,
    /// The plugins by name.
    #[serde(default)]
    pub plugins: BTreeMap<String, LockedPlugin>,
}

fn version() -> u32 {
    1
}

impl LockFile {
    /// Reads `path`; a missing lock pins nothing.
    ///
    /// # Errors
    ///
    /// [`OciError::Config`] naming the file.
    pub fn read(path: &Path) -> Result<LockFile, OciError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let lock: LockFile = toml::from_str(&text).map_err(|e| OciError::Config(format!("{}: {e}", path.display())))?;
                if lock.version != 1 {
                    return Err(OciError::Config(format!("{}: lock version {} is not 1", path.display(), lock.version)));
                }
                Ok(lock)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LockFile { version: 1, plugins: BTreeMap::new() }),
            Err(e) => Err(OciError::io(format!("reading {}", path.display()), e)),
        }
    }

    /// Writes the lock to `path` in one rename.
    ///
    /// # Errors
    ///
    /// When it cannot be written.
    pub fn write(&self, path: &Path) -> Result<(), OciError> {
        let text = format!(
            "# Written by `toolshed plugin install` and `toolshed plugin update`: the digests each source resolved to and verified.\n{}",
            toml::to_string(self).expect("a lock serializes")
        );
        write_atomically(path, text.as_bytes())
    }
}

/// What locking one plugin gave.
pub struct Locked {
    /// Its lock entry.
    pub entry: LockedPlugin,
    /// The component, verified.
    pub verified: Verified,
}

/// Resolves plugin `source` (its tag's digest now) and verifies it.
///
/// # Errors
///
/// Every refusal of [`OciError`].
pub async fn lock_source(source: &PluginRef, registries: &Registries, store: &BlobStore, trust: &TrustPolicy) -> Result<Locked, OciError> {
    let verified = pull_verified(source, registries, store, trust, true).await?;
    let entry = LockedPlugin { source: source.to_string(), digest: verified.digest.clone(), wasm: verified.wasm_digest.clone() };
    Ok(Locked { entry, verified })
}

/// The component a lock entry pins, from the store or, when `online`, the
/// registry, verified again.
///
/// # Errors
///
/// Every refusal of [`OciError`], and a component that is not the
/// locked one.
pub async fn locked_component(entry: &LockedPlugin, registries: &Registries, store: &BlobStore, trust: &TrustPolicy, online: bool) -> Result<Verified, OciError> {
    let pinned = entry.pinned()?;
    let verified = pull_verified(&pinned, registries, store, trust, online).await?;
    if verified.wasm_digest != entry.wasm {
        return Err(OciError::DigestMismatch {
            reference: pinned.to_string(),
            what: "layer named by the lock".into(),
            expected: entry.wasm.clone(),
            actual: verified.wasm_digest,
        });
    }
    Ok(verified)
}
