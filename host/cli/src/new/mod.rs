//! `toolshed new NAME`: a plugin crate to start from. It has a WIT world,
//! tool logic over a small `Host` trait (so it also compiles natively for
//! unit tests), the wit-bindgen adapter, a build script that builds the
//! component for the tests, and one test through the real host.
//!
//! `guest/hello` in this repository is exactly what `toolshed new hello
//! --toolshed ../..` writes; the workspace builds and tests it, and a test
//! checks the generator still writes it byte for byte.

use std::path::{Path, PathBuf};

/// One file of a new plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A file with this text.
    File(String),
    /// A symbolic link to this target.
    Link(String),
}

/// Why a name cannot name a plugin.
pub fn invalid_name(name: &str) -> Option<String> {
    let words_ok = name.split('-').all(|w| w.starts_with(|c: char| c.is_ascii_lowercase()) && w.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    if name.is_empty() || name.len() > 40 || !words_ok {
        return Some(format!(
            "{:?} is not a plugin name: use 1 to 40 lowercase letters and digits in words joined by '-', each word starting with a letter",
            toolshed_runtime::text::clip(name, 60)
        ));
    }
    None
}

/// The files of plugin `name`, depending on the toolshed checkout at
/// `toolshed` (written as given, relative to the new crate or absolute).
pub fn files(name: &str, toolshed: &str) -> Vec<(PathBuf, Entry)> {
    let snake = name.replace('-', "_");
    let upper = snake.to_uppercase();
    let render = |template: &str| render(template, &[("name", name), ("snake", &snake), ("upper", &upper), ("toolshed", toolshed)]);
    let mut files = vec![
        ("Cargo.toml".into(), Entry::File(render(include_str!("template/Cargo.toml.in")))),
        ("build.rs".into(), Entry::File(render(include_str!("template/build.rs.in")))),
        ("src/lib.rs".into(), Entry::File(render(include_str!("template/lib.rs.in")))),
        ("src/component.rs".into(), Entry::File(render(include_str!("template/component.rs.in")))),
        ("tests/tools.rs".into(), Entry::File(render(include_str!("template/test.rs.in")))),
        ("wit/world.wit".into(), Entry::File(render(include_str!("template/world.wit.in")))),
    ];
    // The toolshed WIT packages the world uses, linked from the checkout.
    let wit = if Path::new(toolshed).is_absolute() { format!("{toolshed}/wit") } else { format!("../../{toolshed}/wit") };
    for package in ["builds", "infra", "platform", "runtime", "tools"] {
        files.push((PathBuf::from("wit/deps").join(package), Entry::Link(format!("{wit}/{package}"))));
    }
    files
}

/// Writes plugin `name` into `dir/name`.
///
/// # Errors
///
/// When the name is not a plugin name, the directory exists, or a file
/// cannot be written.
pub fn create(name: &str, dir: &Path, toolshed: &str) -> anyhow::Result<PathBuf> {
    if let Some(reason) = invalid_name(name) {
        anyhow::bail!(reason);
    }
    let root = dir.join(name);
    anyhow::ensure!(!root.exists(), "{} already exists", root.display());
    for (path, entry) in files(name, toolshed) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().expect("every file is in the crate"))?;
        match entry {
            Entry::File(text) => std::fs::write(&path, text)?,
            Entry::Link(target) => std::os::unix::fs::symlink(target, &path)?,
        }
    }
    Ok(root)
}

/// `template` with `{key}` replaced by its value, and `{{` and `}}` by
/// single braces.
fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(tail) = rest.strip_prefix("{{") {
            out.push('{');
            rest = tail;
        } else if let Some(tail) = rest.strip_prefix("}}") {
            out.push('}');
            rest = tail;
        } else if rest.starts_with('{') {
            let end = rest.find('}').expect("a template placeholder is closed");
            let key = &rest[1..end];
            let value = values.iter().find(|(k, _)| *k == key).unwrap_or_else(|| panic!("unknown template placeholder {key}")).1;
            out.push_str(value);
            rest = &rest[end + 1..];
        } else {
            panic!("a lone '}}' in a template");
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_doubled_braces_render() {
        assert_eq!(render("{{a}} {name} }}", &[("name", "x")]), "{a} x }");
    }

    #[test]
    fn plugin_names_are_lowercase_words() {
        assert!(invalid_name("hello-tools").is_none());
        for bad in ["", "Hello", "hello_tools", "1st", "a--b", "-a", "tools-2x"] {
            assert!(invalid_name(bad).is_some(), "{bad:?} was accepted");
        }
    }
}
