//! Container registries on the local backend: an OCI image layout directory
//! in the data directory, one tree per owner.

use std::path::{Path, PathBuf};

use serde_json::json;

/// The longest project id or registry name taken, in bytes.
const MAX_PART: usize = 128;

/// Longer encodings are replaced by a hash, to fit a file name.
const MAX_ENCODED: usize = 120;

/// Where the registry `name` of `project` of an owner lives:
/// `registries/OWNER/PROJECT/NAME`, with the owner's directory as
/// [`super::paths::owner_dir`] makes it (so two owners never share a
/// registry) and each part encoded without collisions ([`component`]), so
/// `a.b` and `a-b` are two registries.
///
/// # Errors
///
/// When a part is empty or longer than 128 bytes.
pub fn registry_dir(data_dir: &Path, owner_id: &str, owner_name: &str, project: &str, name: &str) -> Result<PathBuf, String> {
    for (what, part) in [("project id", project), ("registry name", name)] {
        if part.is_empty() || part.len() > MAX_PART {
            return Err(format!("the {what} must be 1 to {MAX_PART} characters"));
        }
    }
    super::paths::under(data_dir, &["registries", &super::paths::owner_dir(owner_id, owner_name), &component(project), &component(name)])
}

/// `part` as one file name, injectively: ASCII letters, digits and `-`
/// stay; every other byte (`_` too, the escape) becomes `_` and two hex
/// digits. An encoding too long for a file name becomes `~` and the
/// SHA-256 of `part`; `~` never starts an encoding, so the two kinds never
/// meet.
pub fn component(part: &str) -> String {
    let mut encoded = String::with_capacity(part.len());
    for byte in part.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("_{byte:02x}"));
        }
    }
    if encoded.len() <= MAX_ENCODED {
        return encoded;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(part.as_bytes());
    format!("~{}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Creates an empty OCI image layout at `dir` (or keeps the one there).
///
/// # Errors
///
/// When the directory cannot be written.
pub fn create_layout(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir.join("blobs").join("sha256"))?;
    let layout = dir.join("oci-layout");
    if !layout.exists() {
        std::fs::write(&layout, json!({ "imageLayoutVersion": "1.0.0" }).to_string())?;
    }
    let index = dir.join("index.json");
    if !index.exists() {
        std::fs::write(&index, json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [] }).to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_cleaned_alike_get_their_own_directories() {
        let data = Path::new("/data");
        let dir = |owner: &str, project: &str, name: &str| registry_dir(data, owner, "ada", project, name).unwrap();
        assert_ne!(dir("o1", "p", "a.b"), dir("o1", "p", "a-b"));
        assert_ne!(dir("o1", "p", "a_b"), dir("o1", "p", "a-b"));
        assert_ne!(dir("o1", "p", "a_2eb"), dir("o1", "p", "a.b"), "the escape is escaped");
        assert_ne!(dir("o1", "p.q", "r"), dir("o1", "p-q", "r"));
        assert_ne!(dir("o1", "p", "main"), dir("o2", "p", "main"), "two owners never share a registry");
        assert_eq!(dir("o1", "proj", "my-registry"), data.join("registries").join(crate::paths::owner_dir("o1", "ada")).join("proj/my-registry"));
        for hostile in ["..", ".", "/etc", "a/../../b", "\0"] {
            let path = dir("o1", hostile, hostile);
            assert!(path.starts_with(data.join("registries")) && path.components().count() == 6, "{}", path.display());
        }
        let long = "é".repeat(64);
        assert!(component(&long).starts_with('~') && component(&long).len() == 65);
        assert_ne!(component(&long), component(&"è".repeat(64)));
        assert!(registry_dir(data, "o1", "ada", "", "x").is_err());
        assert!(registry_dir(data, "o1", "ada", "p", &"x".repeat(129)).is_err());
    }
}
