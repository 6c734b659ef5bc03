//! A static token file: the SHA-256 of each token and who it is. The file
//! never holds a token itself.
//!
//! ```toml
//! [[token]]
//! sha256 = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
//! owner_id = "a1000000-0000-4000-8000-000000000002"
//! owner_name = "ada"
//! organization_id = "b1000000-0000-4000-8000-000000000001"
//! scopes = ["toolshed:tools"]     # optional; every scope when absent
//! ```

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::DEFAULT_SCOPE;
use crate::identity::Principal;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    token: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    sha256: String,
    owner_id: String,
    owner_name: String,
    organization_id: String,
    scopes: Option<Vec<String>>,
}

/// Tokens by the hex SHA-256 of their text.
#[derive(Debug, Default)]
pub struct TokenFile {
    by_hash: HashMap<String, Principal>,
}

/// The hex SHA-256 of `token`, as a token file names it.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

impl TokenFile {
    /// Parses a token file.
    ///
    /// # Errors
    ///
    /// When it is not valid TOML of the expected shape, a hash is not 64
    /// hex digits, or a hash or owner name appears twice.
    pub fn parse(text: &str) -> anyhow::Result<TokenFile> {
        let file: File = toml::from_str(text)?;
        let mut by_hash = HashMap::new();
        let mut names = HashMap::new();
        for entry in file.token {
            let hash = entry.sha256.to_ascii_lowercase();
            anyhow::ensure!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()), "token of {}: sha256 must be 64 hex digits", entry.owner_name);
            if let Some(other) = names.insert(entry.owner_name.clone(), entry.owner_id.clone()) {
                anyhow::ensure!(other == entry.owner_id, "two owners are named {}", entry.owner_name);
            }
            let principal = Principal {
                owner_id: entry.owner_id,
                owner_name: entry.owner_name,
                organization_id: entry.organization_id,
                scopes: entry.scopes.unwrap_or_else(|| vec![DEFAULT_SCOPE.to_string()]),
            };
            anyhow::ensure!(by_hash.insert(hash, principal).is_none(), "a token hash appears twice");
        }
        Ok(TokenFile { by_hash })
    }

    /// Reads a token file.
    ///
    /// # Errors
    ///
    /// When it cannot be read or parsed.
    pub fn read(path: &Path) -> anyhow::Result<TokenFile> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("reading token file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("token file {}: {e}", path.display()))
    }

    /// Who `token` is, if it is in the file.
    pub fn principal(&self, token: &str) -> Option<Principal> {
        self.by_hash.get(&hash_token(token)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_found_by_hash_and_the_file_is_checked() {
        let text = format!(
            "[[token]]\nsha256 = \"{}\"\nowner_id = \"u1\"\nowner_name = \"ada\"\norganization_id = \"o1\"\n",
            hash_token("secret")
        );
        let file = TokenFile::parse(&text).unwrap();
        assert_eq!(file.principal("secret").unwrap().owner_name, "ada");
        assert!(file.principal("other").is_none());
        assert!(TokenFile::parse("[[token]]\nsha256 = \"xyz\"\nowner_id = \"u\"\nowner_name = \"n\"\norganization_id = \"o\"\n").is_err());
        assert!(TokenFile::parse(&format!("{text}{}", text.replace("u1", "u2"))).is_err(), "two owners of one name");
    }
}
