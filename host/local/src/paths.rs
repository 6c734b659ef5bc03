//! Paths made from names and ids: checked, and always under the data
//! directory.

use std::path::{Component, Path, PathBuf};

const MAX_NAME: usize = 32;
const RESERVED: [&str; 2] = ["new", "create"];

/// Why `name` is not a workspace name (SPEC 3.5), if it is not: 1 to 32
/// letters and digits in groups joined by single dashes, and not a reserved
/// word in any case.
pub fn invalid_workspace_name(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Some(format!("must be 1 to {MAX_NAME} characters long"));
    }
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Some(format!("{name:?} is reserved"));
    }
    if !name.split('-').all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric())) {
        return Some("must be letters and digits in groups joined by single dashes".into());
    }
    None
}

/// `root` joined with `parts`, each a single plain path component, and the
/// result checked to lie under `root`.
///
/// # Errors
///
/// What is wrong with the first part that is not a plain component.
pub fn under(root: &Path, parts: &[&str]) -> Result<PathBuf, String> {
    let mut path = root.to_path_buf();
    for part in parts {
        let mut components = Path::new(part).components();
        match (components.next(), components.next()) {
            (Some(Component::Normal(c)), None) if c == *part => path.push(c),
            _ => return Err(format!("{:?} is not a plain name", toolshed_runtime::text::clip(part, 80))),
        }
    }
    if !path.starts_with(root) {
        return Err("the path leaves the data directory".into());
    }
    Ok(path)
}

/// The directory an owner's workspaces live in, under `workspaces/`: the
/// owner's name made safe, then a hash of the owner's id, so two owners of
/// one name never share a directory and no id becomes a path.
pub fn owner_dir(owner_id: &str, owner_name: &str) -> String {
    let name: String = owner_name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c.to_ascii_lowercase() } else { '-' })
        .take(32)
        .collect();
    // FNV-1a: stable across processes and releases.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in owner_id.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    let name = name.trim_matches('-');
    format!("{}-{hash:016x}", if name.is_empty() { "owner" } else { name })
}

/// The directory of workspace `name` of `owner`.
///
/// # Errors
///
/// Why the name cannot name a workspace.
pub fn workspace_dir(data_dir: &Path, owner: &str, name: &str) -> Result<PathBuf, String> {
    if let Some(reason) = invalid_workspace_name(name) {
        return Err(format!("{:?}: {reason}", toolshed_runtime::text::clip(name, 80)));
    }
    under(data_dir, &["workspaces", owner, name])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_leave_the_data_directory_are_refused() {
        let root = Path::new("/data");
        assert_eq!(workspace_dir(root, "local", "app-1").unwrap(), Path::new("/data/workspaces/local/app-1"));
        assert_ne!(owner_dir("id-1", "ada"), owner_dir("id-2", "ada"), "two owners of one name never share a directory");
        assert!(under(root, &[&owner_dir("a/../../etc", "../..")]).is_ok(), "no id or name becomes a path");
        for bad in ["../x", "/tmp/x", "a/b", "..", ".", "", "NEW", "Create", "a--b", &"a".repeat(33)] {
            assert!(workspace_dir(root, "local", bad).is_err(), "{bad:?} was accepted");
        }
        assert!(under(root, &["registries", ".."]).is_err());
        assert!(under(root, &["registries", "/etc"]).is_err());
    }
}
