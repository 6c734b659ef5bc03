//! No crate of the workspace has an import cycle between its top-level
//! modules: a module that uses another never finds itself used back, by any
//! path. A cycle is how two ideas grow into one; this test names the first
//! it finds, with the `use` lines that close it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every crate root (`src/`) of the workspace.
fn crate_sources(root: &Path) -> Vec<PathBuf> {
    let mut sources = Vec::new();
    for group in ["host", "guest", "tests"] {
        let Ok(entries) = std::fs::read_dir(root.join(group)) else { continue };
        for entry in entries.flatten() {
            let src = entry.path().join("src");
            if src.is_dir() {
                sources.push(src);
            }
        }
    }
    if root.join("tests/src").is_dir() {
        sources.push(root.join("tests/src"));
    }
    sources.sort();
    sources.dedup();
    sources
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The module path of `file` under `src`: `a::b` for `src/a/b.rs` and for
/// `src/a/b/mod.rs`; empty for the crate root.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// The source without its unit-test module, which may use anything.
fn without_tests(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    }
}

/// The names following `prefix` in `text`, such as `state` in `crate::state::X`.
fn names_after<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.match_indices(prefix)
        .filter(|(at, _)| *at == 0 || !text.as_bytes()[at - 1].is_ascii_alphanumeric() && text.as_bytes()[at - 1] != b'_')
        .filter_map(|(at, _)| {
            let rest = &text[at + prefix.len()..];
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            (end > 0).then(|| &rest[..end])
        })
        .collect()
}

/// Edges between the top-level modules of the crate at `src`, each with
/// the file that makes it.
fn top_level_edges(src: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let tops: BTreeSet<String> = files.iter().filter_map(|f| module_of(src, f).first().cloned()).collect();
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(src, file);
        let Some(from) = module.first().cloned() else { continue };
        let text = std::fs::read_to_string(file).unwrap();
        let text = without_tests(&text);
        let mut targets: Vec<String> = names_after(text, "crate::").into_iter().map(str::to_string).collect();
        // `super::x` from a top-level module is the crate's `x`.
        if module.len() == 1 {
            targets.extend(names_after(text, "super::").into_iter().map(str::to_string));
        }
        for to in targets {
            if to != from && tops.contains(&to) {
                edges.entry(from.clone()).or_default().entry(to).or_insert_with(|| file.display().to_string());
            }
        }
    }
    edges
}

/// A cycle in `edges`, as the modules along it, if there is one.
fn find_cycle(edges: &BTreeMap<String, BTreeMap<String, String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeMap<String, String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flat_map(|e| e.keys()) {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges.keys().find_map(|start| visit(start, edges, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let sources = crate_sources(&root);
    assert!(sources.len() >= 10, "the crates were not found under {}", root.display());
    let mut cycles = Vec::new();
    for src in &sources {
        let edges = top_level_edges(src);
        if let Some(cycle) = find_cycle(&edges) {
            let steps: Vec<String> = cycle.windows(2).map(|w| format!("{} -> {} (in {})", w[0], w[1], edges[&w[0]][&w[1]])).collect();
            cycles.push(format!("{}: {}", src.display(), steps.join("; ")));
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_cycle_finder_finds_a_cycle_and_only_a_cycle() {
    let edge = |pairs: &[(&str, &str)]| {
        let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (from, to) in pairs {
            edges.entry(from.to_string()).or_default().insert(to.to_string(), "f.rs".into());
        }
        edges
    };
    assert_eq!(find_cycle(&edge(&[("a", "b"), ("b", "c"), ("a", "c")])), None);
    assert_eq!(find_cycle(&edge(&[("a", "b"), ("b", "c"), ("c", "a")])), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
    assert_eq!(names_after("use crate::state::X; xcrate::no; crate::limiter", "crate::"), ["state", "limiter"]);
}
