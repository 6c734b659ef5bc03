//! Grants: which host interfaces a plugin may import.

use std::str::FromStr;

/// One grant, parsed from `namespace:package/interface` or `namespace:package/*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// One interface of a package, such as `toolshed:infra/db`.
    Interface {
        /// `namespace:package`.
        package: String,
        /// The interface.
        name: String,
    },
    /// Every interface of a package, such as `toolshed:runtime/*`.
    Package(String),
}

impl FromStr for Grant {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("grant {text:?} is not of the form namespace:package/interface or namespace:package/*");
        let (package, name) = text.split_once('/').ok_or_else(bad)?;
        if !package.contains(':') || package.starts_with(':') || package.ends_with(':') || name.is_empty() {
            return Err(bad());
        }
        Ok(if name == "*" {
            Grant::Package(package.to_string())
        } else {
            Grant::Interface { package: package.to_string(), name: name.to_string() }
        })
    }
}

impl Grant {
    /// Whether this grant allows importing `import`, a component import name
    /// such as `toolshed:infra/db@0.1.0`.
    pub fn allows(&self, import: &str) -> bool {
        let unversioned = import.split('@').next().unwrap_or(import);
        let Some((package, name)) = unversioned.split_once('/') else { return false };
        match self {
            Grant::Package(p) => p == package,
            Grant::Interface { package: p, name: n } => p == package && n == name,
        }
    }
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Grant::Interface { package, name } => write!(f, "{package}/{name}"),
            Grant::Package(package) => write!(f, "{package}/*"),
        }
    }
}

/// Whether `import` is a WASI interface that is always linked and denies
/// by default. `wasi:http` and `wasi:config` are not: they are linked only
/// for plugins granted them.
pub fn is_wasi(import: &str) -> bool {
    import.starts_with("wasi:") && !import.starts_with("wasi:http/") && !import.starts_with("wasi:config/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_match_interfaces_and_packages_at_any_version() {
        let db: Grant = "toolshed:infra/db".parse().unwrap();
        assert!(db.allows("toolshed:infra/db@0.1.0"));
        assert!(!db.allows("toolshed:infra/control@0.1.0"));
        let runtime: Grant = "toolshed:runtime/*".parse().unwrap();
        assert!(runtime.allows("toolshed:runtime/clock@0.2.0"));
        assert!(!runtime.allows("toolshed:infra/db@0.1.0"));
        assert!("nonsense".parse::<Grant>().is_err());
        assert_eq!(db.to_string(), "toolshed:infra/db");
        assert_eq!(runtime.to_string(), "toolshed:runtime/*");
        assert!(":x/y".parse::<Grant>().is_err());
    }
}
