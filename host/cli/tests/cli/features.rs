//! `cargo run -p toolshed` resolves the same features as `cargo test
//! --workspace`, so running the README's second command after the first
//! builds no dependency again: every crate the binary uses is built with
//! the features the whole workspace turns on.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// The platform this test runs on, as rustc names it: the binary's
/// dependencies for other platforms are never built here.
fn host_target() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc).arg("-vV").output().expect("running rustc -vV");
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines().find_map(|l| l.strip_prefix("host: ")).expect("rustc names its host").to_string()
}

/// Each package of a `cargo tree` listing with the feature sets it is built with.
fn features(args: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "--offline", "-f", "{p} [{f}]", "--prefix", "none", "--target", &host_target()])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo tree");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut packages: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let (Some(open), Some(close)) = (line.find(" ["), line.rfind(']')) else { continue };
        let package = line[..open].split(" (").next().unwrap().to_string();
        packages.entry(package).or_default().insert(line[open + 2..close].to_string());
    }
    packages
}

#[test]
fn the_binary_builds_its_dependencies_with_the_features_the_tests_build_them_with() {
    let run = features(&["-p", "toolshed", "-e", "normal,build"]);
    let test = features(&["--workspace", "-e", "normal,build,dev"]);
    assert!(run.keys().any(|p| p.starts_with("wasmtime ")), "the tree was not read");
    let differing: Vec<String> = run
        .iter()
        .filter(|(package, sets)| test.get(*package).is_some_and(|t| t != *sets))
        .map(|(package, sets)| format!("{package}: run {sets:?}, test {:?}", test[package]))
        .collect();
    assert!(differing.is_empty(), "pin these features in host/cli/Cargo.toml:\n{}", differing.join("\n"));
}
