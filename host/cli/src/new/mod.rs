//! `toolshed new NAME --lang rust|python|javascript`: a plugin project to
//! start from. Every language gets the WIT world, the tool logic, a policy
//! (grants and smoke call), `tests/cases.json` for `toolshed test`, and a
//! README. A Rust crate also has its logic over a small `Host` trait (so it
//! compiles natively for unit tests), the wit-bindgen adapter, a build
//! script that builds the component, and one test through the real host.
//!
//! `guest/hello`, `guest/hello-python` and `guest/hello-javascript` in this
//! repository are exactly what `toolshed new hello --toolshed ../..` writes
//! in each language; a test checks the generator still writes them byte
//! for byte, and `toolshed test` builds and tests each.

use std::path::{Path, PathBuf};

/// One file of a new plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A file with this text.
    File(String),
    /// A symbolic link to this target.
    Link(String),
}

/// The language a plugin is written in, and so the toolchain that builds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    /// Rust, built by cargo for wasm32-wasip2.
    Rust,
    /// Python, built by componentize-py.
    Python,
    /// JavaScript, built by componentize-js.
    Javascript,
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

/// The files of the Rust plugin `name`: see [`files_in`].
pub fn files(name: &str, toolshed: &str) -> Vec<(PathBuf, Entry)> {
    files_in(Language::Rust, name, toolshed)
}

/// The files of plugin `name` in `language`, depending on the toolshed
/// checkout at `toolshed` (written as given, relative to the new project or
/// absolute).
pub fn files_in(language: Language, name: &str, toolshed: &str) -> Vec<(PathBuf, Entry)> {
    let snake = name.replace('-', "_");
    let upper = snake.to_uppercase();
    let camel: String = name.split('-').map(|word| word[..1].to_uppercase() + &word[1..]).collect();
    let lower_camel = name[..1].to_string() + &camel[1..];
    let values = [("name", name), ("snake", snake.as_str()), ("upper", &upper), ("camel", &camel), ("lower_camel", &lower_camel), ("toolshed", toolshed)];
    let render = |template: &str| Entry::File(render(template, &values));
    let mut files: Vec<(PathBuf, Entry)> = match language {
        Language::Rust => vec![
            ("Cargo.toml".into(), render(include_str!("template/Cargo.toml.in"))),
            ("build.rs".into(), render(include_str!("template/build.rs.in"))),
            ("src/lib.rs".into(), render(include_str!("template/lib.rs.in"))),
            ("src/component.rs".into(), render(include_str!("template/component.rs.in"))),
            ("tests/tools.rs".into(), render(include_str!("template/test.rs.in"))),
        ],
        Language::Python => vec![
            ("app.py".into(), render(include_str!("template/python/app.py.in"))),
            ("requirements.txt".into(), render(include_str!("template/python/requirements.txt"))),
            ("README.md".into(), render(include_str!("template/python/README.md.in"))),
        ],
        Language::Javascript => vec![
            ("app.js".into(), render(include_str!("template/javascript/app.js.in"))),
            ("package.json".into(), render(include_str!("template/javascript/package.json.in"))),
            ("package-lock.json".into(), Entry::File(package_lock(name))),
            ("README.md".into(), render(include_str!("template/javascript/README.md.in"))),
        ],
    };
    files.extend([
        ("wit/world.wit".into(), render(include_str!("template/world.wit.in"))),
        ("policy.toml".into(), render(include_str!("template/common/policy.toml.in"))),
        ("tests/cases.json".into(), render(include_str!("template/common/cases.json.in"))),
        (".gitignore".into(), render(include_str!("template/common/gitignore"))),
    ]);
    // The toolshed WIT packages the world uses, linked from the checkout.
    let wit = if Path::new(toolshed).is_absolute() { format!("{toolshed}/wit") } else { format!("../../{toolshed}/wit") };
    for package in ["builds", "infra", "platform", "runtime", "tools"] {
        files.push((PathBuf::from("wit/deps").join(package), Entry::Link(format!("{wit}/{package}"))));
    }
    files
}

/// The npm lockfile pinning the JavaScript toolchain, for project `name`:
/// npm names the project in its first entries.
fn package_lock(name: &str) -> String {
    include_str!("template/javascript/package-lock.json").replacen("\"name\": \"plugin\",", &format!("\"name\": \"{name}\","), 2)
}

/// Writes plugin `name` in `language` into `dir/name`.
///
/// # Errors
///
/// When the name is not a plugin name, the directory exists, or a file
/// cannot be written.
pub fn create(language: Language, name: &str, dir: &Path, toolshed: &str) -> anyhow::Result<PathBuf> {
    if let Some(reason) = invalid_name(name) {
        anyhow::bail!(reason);
    }
    let root = dir.join(name);
    anyhow::ensure!(!root.exists(), "{} already exists", root.display());
    for (path, entry) in files_in(language, name, toolshed) {
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
