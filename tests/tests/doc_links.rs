//! Every link in the README and in `docs/` resolves: a relative link names a
//! file of the repository, and a `#fragment` names a heading of the page it
//! points to, slugged as GitHub slugs headings.

use std::path::{Path, PathBuf};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap()
}

/// The pages checked: the README and every Markdown file under `docs/`.
fn pages(root: &Path) -> Vec<PathBuf> {
    let mut pages = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "md") {
            pages.push(entry.path());
        }
    }
    pages.sort();
    pages
}

/// The text outside fenced code blocks, where links are links.
fn prose(text: &str) -> String {
    let mut fenced = false;
    let mut kept = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    kept
}

/// The targets of the inline links `[text](target)` in `text`.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        if let Some(end) = after.find(')') {
            let target = after[..end].trim();
            if !target.is_empty() && !target.contains(' ') {
                targets.push(target.to_string());
            }
        }
        rest = after;
    }
    targets
}

/// A heading's anchor as GitHub makes it: lower case, punctuation dropped
/// (but `-` and `_`), spaces as dashes.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(page: &str) -> Vec<String> {
    prose(page).lines().filter_map(|l| l.strip_prefix('#')).map(|l| slug(l.trim_start_matches('#'))).collect()
}

#[test]
fn every_link_in_the_readme_and_the_docs_resolves() {
    let root = repository();
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in pages(&root) {
        let text = std::fs::read_to_string(&page).unwrap();
        for target in link_targets(&prose(&text)) {
            if target.starts_with("http://") || target.starts_with("https://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (file, fragment) = match target.split_once('#') {
                Some((file, fragment)) => (file, Some(fragment)),
                None => (target.as_str(), None),
            };
            let path = if file.is_empty() { page.clone() } else { page.parent().unwrap().join(file) };
            let name = page.strip_prefix(&root).unwrap().display().to_string();
            if !path.exists() {
                broken.push(format!("{name}: {target}: no such file"));
                continue;
            }
            if let Some(fragment) = fragment
                && path.extension().is_some_and(|e| e == "md")
                && !anchors(&std::fs::read_to_string(&path).unwrap()).iter().any(|a| a == fragment)
            {
                broken.push(format!("{name}: {target}: no such heading"));
            }
        }
    }
    assert!(checked >= 20, "only {checked} links were found: is the parser broken?");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_is_a_landing_page() {
    let readme = std::fs::read_to_string(repository().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(lines <= 250, "the README has {lines} lines; reference text belongs in docs/");
    let commands: Vec<&str> = readme.lines().skip_while(|l| !l.starts_with("```")).skip(1).take(2).collect();
    assert!(commands[0].starts_with("cargo run -p toolshed -- demo") && commands[1].starts_with("cargo test --workspace"), "{commands:?}");
}

#[test]
fn the_link_checker_reads_links_and_slugs_as_github_does() {
    assert_eq!(link_targets("see [a](b.md#c) and [d](https://e) [x](y z)"), ["b.md#c", "https://e"]);
    assert_eq!(slug("What the host keeps for a plugin, and its bounds"), "what-the-host-keeps-for-a-plugin-and-its-bounds");
    assert_eq!(slug("§1 build poll interval"), "1-build-poll-interval");
    assert_eq!(prose("a\n```\n[x](nope)\n```\nb\n"), "a\nb\n");
}
