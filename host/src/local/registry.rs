//! Container registries on the local backend: an OCI image layout directory
//! in the data directory.

use std::path::{Path, PathBuf};

use serde_json::json;

/// Where the registry `name` of `project` lives.
pub fn registry_dir(data_dir: &Path, project: &str, name: &str) -> PathBuf {
    let clean = |s: &str| s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect::<String>();
    data_dir.join("registries").join(clean(project)).join(clean(name))
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
