//! Plugin references: `oci://HOST/REPOSITORY:TAG` or
//! `oci://HOST/REPOSITORY@sha256:DIGEST` (the `oci://` is optional).

use std::fmt;

use crate::OciError;

/// A plugin in a registry, by tag or by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRef {
    /// The registry's host, with its port when it has one.
    pub registry: String,
    /// The repository, such as `tools/hello`.
    pub repository: String,
    /// The tag, when named by one.
    pub tag: Option<String>,
    /// The manifest digest, when pinned.
    pub digest: Option<String>,
}

impl PluginRef {
    /// Parses a reference. A registry must be named (no Docker Hub default):
    /// plugins are never fetched from a registry nobody wrote down.
    ///
    /// # Errors
    ///
    /// [`OciError::BadReference`] saying what is wrong.
    pub fn parse(text: &str) -> Result<PluginRef, OciError> {
        let bad = |reason: &str| OciError::BadReference { reference: text.to_string(), reason: reason.to_string() };
        let rest = text.strip_prefix("oci://").unwrap_or(text);
        let (registry, path) = rest.split_once('/').ok_or_else(|| bad("it names no repository"))?;
        if registry.is_empty() || !(registry.contains('.') || registry.contains(':') || registry == "localhost") {
            return Err(bad("it must start with the registry's host, such as registry.example or 127.0.0.1:5000"));
        }
        let (path, digest) = match path.split_once('@') {
            Some((path, digest)) => (path, Some(parse_digest(digest).map_err(|reason| bad(&reason))?)),
            None => (path, None),
        };
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => (repository, Some(tag)),
            _ => (path, None),
        };
        if repository.is_empty()
            || !repository.split('/').all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)))
        {
            return Err(bad("a repository is lowercase letters, digits, '.', '_', '-' in parts joined by '/'"));
        }
        if let Some(tag) = tag
            && (tag.is_empty() || tag.len() > 128 || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)))
        {
            return Err(bad("a tag is up to 128 letters, digits, '.', '_' or '-'"));
        }
        if tag.is_none() && digest.is_none() {
            return Err(bad("it names neither a tag nor a digest"));
        }
        Ok(PluginRef { registry: registry.to_string(), repository: repository.to_string(), tag: tag.map(str::to_string), digest })
    }

    /// This reference pinned to `digest`, keeping its tag for display.
    pub fn pinned(&self, digest: &str) -> PluginRef {
        PluginRef { digest: Some(digest.to_string()), ..self.clone() }
    }

    /// This repository at `tag`.
    pub fn with_tag(&self, tag: &str) -> PluginRef {
        PluginRef { tag: Some(tag.to_string()), digest: None, ..self.clone() }
    }

    /// `HOST/REPOSITORY`, what trust entries are matched against.
    pub fn repository_path(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What a manifest request names: the digest when pinned, else the tag.
    pub fn manifest_name(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }

    /// The same reference as oci-client spells it.
    pub(crate) fn to_oci(&self) -> oci_client::Reference {
        match (&self.tag, &self.digest) {
            (Some(tag), Some(digest)) => oci_client::Reference::with_tag_and_digest(self.registry.clone(), self.repository.clone(), tag.clone(), digest.clone()),
            (None, Some(digest)) => oci_client::Reference::with_digest(self.registry.clone(), self.repository.clone(), digest.clone()),
            (tag, None) => oci_client::Reference::with_tag(self.registry.clone(), self.repository.clone(), tag.clone().unwrap_or_else(|| "latest".into())),
        }
    }
}

impl fmt::Display for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci://{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Checks a `sha256:HEX` digest, the only algorithm accepted.
///
/// # Errors
///
/// Saying what is wrong.
pub fn parse_digest(text: &str) -> Result<String, String> {
    let hex = text.strip_prefix("sha256:").ok_or_else(|| format!("digest {text:?} is not sha256:HEX"))?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(format!("digest {text:?} is not sha256: and 64 lowercase hex digits"));
    }
    Ok(text.to_string())
}

/// Whether `registry` (a host with an optional port) is on loopback, where
/// plain HTTP is used: a test or development registry.
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.rsplit_once(':').map_or(registry, |(host, _)| host),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_by_tag_and_digest_parse_and_print_back() {
        let tagged = PluginRef::parse("oci://127.0.0.1:5000/tools/hello:1.0").unwrap();
        assert_eq!((tagged.registry.as_str(), tagged.repository.as_str(), tagged.tag.as_deref()), ("127.0.0.1:5000", "tools/hello", Some("1.0")));
        assert_eq!(tagged.to_string(), "oci://127.0.0.1:5000/tools/hello:1.0");
        let digest = format!("sha256:{}", "a".repeat(64));
        let pinned = PluginRef::parse(&format!("registry.example/tools/hello@{digest}")).unwrap();
        assert_eq!(pinned.digest.as_deref(), Some(digest.as_str()));
        assert_eq!(pinned.manifest_name(), digest);
    }

    #[test]
    fn references_without_a_registry_tag_or_valid_digest_are_refused_saying_why() {
        for (text, why) in [
            ("hello:1.0", "no repository"),
            ("tools/hello:1.0", "registry's host"),
            ("oci://127.0.0.1:5000/tools/hello", "neither a tag nor a digest"),
            ("oci://127.0.0.1:5000/tools/hello@sha256:abc", "64 lowercase hex"),
            ("oci://127.0.0.1:5000/Tools/hello:1", "lowercase"),
        ] {
            let error = PluginRef::parse(text).unwrap_err().to_string();
            assert!(error.contains(why), "{text}: {error}");
        }
    }

    #[test]
    fn only_loopback_registries_are_plain_http() {
        assert!(is_loopback("127.0.0.1:5000") && is_loopback("localhost:5000") && is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.example") && !is_loopback("10.0.0.1:5000"));
    }
}
