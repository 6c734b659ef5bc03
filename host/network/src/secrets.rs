//! Secrets the host adds to requests: read from a secrets file only its
//! owner may read, or from the host's environment, as the policy names
//! them. A [`Secret`] never prints its value.
//!
//! The file is TOML: a secret for every caller, and secrets of one
//! principal (an owner id) under `principals`. A secret some principal has
//! is that principal's alone: another caller gets none, not a shared one.
//!
//! ```toml
//! PLATFORM_TOKEN = "shared token"
//! [principals.user-a]
//! REGISTRY_TOKEN = "a's token"
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toolshed_runtime::CallContext;

/// A secret's value. Its `Debug` and `Display` print a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret holding `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, to write into a request.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(secret)")
    }
}

/// Where secrets come from.
pub trait Secrets: Send + Sync + 'static {
    /// The secret `name` for a call by `cx`, if there is one.
    fn secret(&self, cx: &CallContext, name: &str) -> Option<Secret>;
}

/// No secrets at all.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoSecrets;

impl Secrets for NoSecrets {
    fn secret(&self, _: &CallContext, _: &str) -> Option<Secret> {
        None
    }
}

/// The prefix of a secret name that reads the host's environment:
/// `env:GITHUB_TOKEN` is the variable `GITHUB_TOKEN`.
pub const ENV_PREFIX: &str = "env:";

/// Secrets from a file and the environment.
#[derive(Default, Clone)]
pub struct SecretStore {
    shared: BTreeMap<String, Secret>,
    principals: BTreeMap<String, BTreeMap<String, Secret>>,
}

#[derive(Deserialize)]
struct SecretsFile {
    #[serde(default)]
    principals: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(flatten)]
    shared: BTreeMap<String, toml::Value>,
}

/// A secrets file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The file could not be read.
    #[error("secrets file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Others than its owner may read it.
    #[error("secrets file {path} may be read by others than its owner (mode {mode:o}); run chmod 600 {path}")]
    Readable {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// It is not a TOML table of strings.
    #[error("secrets file {path}: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong (never a value).
        reason: String,
    },
    /// A name is not one a policy can name.
    #[error("secret name {0:?} is not valid: use letters, digits and _ only")]
    Name(String),
}

/// Whether `name` can name a secret: letters, digits and `_`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl SecretStore {
    /// Only the environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the secrets file at `path`, refusing it when its group or
    /// others may read it.
    ///
    /// # Errors
    ///
    /// [`SecretsError`] naming the file and what is wrong, never a value.
    pub fn from_file(path: &Path) -> Result<Self, SecretsError> {
        let shown = path.display().to_string();
        let read = |source| SecretsError::Read { path: shown.clone(), source };
        let file = std::fs::File::open(path).map_err(read)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = file.metadata().map_err(read)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(SecretsError::Readable { path: shown, mode });
            }
        }
        let text = std::io::read_to_string(file).map_err(read)?;
        Self::from_toml(&text).map_err(|reason| SecretsError::Parse { path: shown, reason })
    }

    fn from_toml(text: &str) -> Result<Self, String> {
        // The parser's own message could quote a value: say only where.
        let file: SecretsFile = toml::from_str(text).map_err(|e| match e.span() {
            Some(span) => format!("not valid TOML at byte {}; write NAME = \"value\" lines", span.start),
            None => "not valid TOML; write NAME = \"value\" lines".into(),
        })?;
        let mut store = Self::default();
        for (name, value) in file.shared {
            let toml::Value::String(value) = value else { return Err(format!("secret {name} is not a string")) };
            if !valid_name(&name) {
                return Err(format!("secret name {name:?} is not valid: use letters, digits and _ only"));
            }
            store.shared.insert(name, Secret(value));
        }
        for (principal, secrets) in file.principals {
            let own = store.principals.entry(principal).or_default();
            for (name, value) in secrets {
                own.insert(name, Secret(value));
            }
        }
        Ok(store)
    }
}

impl Secrets for SecretStore {
    fn secret(&self, cx: &CallContext, name: &str) -> Option<Secret> {
        if let Some(variable) = name.strip_prefix(ENV_PREFIX) {
            return std::env::var(variable).ok().map(Secret);
        }
        let per_principal = self.principals.values().any(|own| own.contains_key(name));
        if per_principal {
            return self.principals.get(&cx.owner_id).and_then(|own| own.get(name)).cloned();
        }
        self.shared.get(name).cloned()
    }
}

/// Writes secret `name` = `value` into the secrets file at `path` (for
/// `principal`, when given), making the file 0600 if it is new and keeping
/// every other secret in it.
///
/// # Errors
///
/// [`SecretsError`] when the file cannot be read or written.
pub fn write_secret(path: &Path, principal: Option<&str>, name: &str, value: &str) -> Result<(), SecretsError> {
    if !valid_name(name) {
        return Err(SecretsError::Name(name.into()));
    }
    let shown = path.display().to_string();
    let mut table: toml::Table = if path.exists() {
        let text = {
            // Refuse a readable file before adding a secret to it.
            SecretStore::from_file(path)?;
            std::fs::read_to_string(path).map_err(|source| SecretsError::Read { path: shown.clone(), source })?
        };
        text.parse().map_err(|_| SecretsError::Parse { path: shown.clone(), reason: "not valid TOML".into() })?
    } else {
        toml::Table::new()
    };
    let target = match principal {
        None => &mut table,
        Some(principal) => {
            let principals = table.entry("principals").or_insert_with(|| toml::Value::Table(Default::default()));
            let toml::Value::Table(principals) = principals else { return Err(SecretsError::Parse { path: shown, reason: "principals is not a table".into() }) };
            let own = principals.entry(principal).or_insert_with(|| toml::Value::Table(Default::default()));
            let toml::Value::Table(own) = own else { return Err(SecretsError::Parse { path: shown, reason: format!("principals.{principal} is not a table") }) };
            own
        }
    };
    target.insert(name.to_string(), toml::Value::String(value.to_string()));
    let text = toml::to_string(&table).map_err(|e| SecretsError::Parse { path: shown.clone(), reason: e.to_string() })?;
    let tmp = path.with_extension("tmp");
    let write = |source| SecretsError::Read { path: shown.clone(), source };
    {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(write)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(write)?;
        }
        file.write_all(text.as_bytes()).map_err(write)?;
        file.sync_all().map_err(write)?;
    }
    std::fs::rename(&tmp, path).map_err(write)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx(owner: &str) -> CallContext {
        CallContext { chat_id: "c".into(), owner_id: owner.into(), owner_name: owner.into(), organization_id: "o".into() }
    }

    #[test]
    fn a_secret_of_principals_is_theirs_alone_and_shared_ones_are_everyones() {
        let store = SecretStore::from_toml("SHARED = \"s\"\n[principals.a]\nTOKEN = \"ta\"\n[principals.b]\nTOKEN = \"tb\"\n").unwrap();
        assert_eq!(store.secret(&cx("a"), "TOKEN"), Some(Secret::new("ta")));
        assert_eq!(store.secret(&cx("b"), "TOKEN"), Some(Secret::new("tb")));
        assert_eq!(store.secret(&cx("c"), "TOKEN"), None, "no fallback to another's");
        assert_eq!(store.secret(&cx("c"), "SHARED"), Some(Secret::new("s")));
        assert_eq!(format!("{:?} {}", Secret::new("ta"), Secret::new("ta")), "Secret(..) (secret)");
    }

    #[test]
    fn a_file_others_may_read_is_refused_and_set_writes_one_they_may_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.toml");
        write_secret(&path, None, "TOKEN", "t0p").unwrap();
        write_secret(&path, Some("a"), "TOKEN", "mine").unwrap();
        let store = SecretStore::from_file(&path).unwrap();
        assert_eq!(store.secret(&cx("a"), "TOKEN"), Some(Secret::new("mine")));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
            let err = SecretStore::from_file(&path).err().unwrap().to_string();
            assert!(err.contains("640") && err.contains("chmod 600"), "{err}");
            assert!(write_secret(&path, None, "OTHER", "x").is_err(), "nothing is added to a readable file");
        }
        assert!(write_secret(&path, None, "bad name", "x").is_err());
    }

    #[test]
    fn a_name_with_env_reads_the_hosts_environment_and_nothing_else_does() {
        // SAFETY: no other test reads or writes this variable.
        unsafe { std::env::set_var("TOOLSHED_TEST_SECRET_7Q", "from-env") };
        let store = SecretStore::from_toml("TOOLSHED_TEST_SECRET_7Q = \"from-file\"\n").unwrap();
        assert_eq!(store.secret(&cx("a"), "env:TOOLSHED_TEST_SECRET_7Q"), Some(Secret::new("from-env")));
        assert_eq!(store.secret(&cx("a"), "TOOLSHED_TEST_SECRET_7Q"), Some(Secret::new("from-file")), "a plain name reads the file");
        assert_eq!(SecretStore::new().secret(&cx("a"), "TOOLSHED_TEST_SECRET_7Q"), None, "and never the environment");
        assert_eq!(SecretStore::new().secret(&cx("a"), "env:TOOLSHED_TEST_UNSET_7Q"), None);
    }

    #[test]
    fn a_malformed_file_is_refused_without_quoting_it() {
        let err = SecretStore::from_toml("TOKEN = \"sekrit\nOTHER = 1").err().unwrap();
        assert!(!err.contains("sekrit"), "{err}");
        let err = SecretStore::from_toml("TOKEN = 5").err().unwrap();
        assert!(err.contains("TOKEN") && !err.contains('5'), "{err}");
    }
}
