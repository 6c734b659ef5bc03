//! Container registries on the local backend: an OCI image layout directory
//! in the data directory.

use std::path::{Path, PathBuf};

use serde_json::json;

/// Where the registry `name` of `project` lives: each cleaned to letters,
/// digits, `-` and `_`, and kept under the data directory.
///
/// # Errors
///
/// When a cleaned part is empty or too long to name a directory.
pub fn registry_dir(data_dir: &Path, project: &str, name: &str) -> Result<PathBuf, String> {
    let clean = |s: &str| s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect::<String>();
    let (project, name) = (clean(project), clean(name));
    for (what, part) in [("project id", &project), ("registry name", &name)] {
        if part.is_empty() || part.len() > 128 {
            return Err(format!("the {what} must be 1 to 128 characters"));
        }
    }
    super::paths::under(data_dir, &["registries", &project, &name])
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
