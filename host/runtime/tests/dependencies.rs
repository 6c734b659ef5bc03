//! An embedder of the runtime, or of the test harness, builds none of the
//! backends, servers or command-line crates: `cargo tree` of each names
//! none of them.

use std::process::Command;

/// What only the local backend, the MCP server, the command line or the
/// guests need.
const NOT_FOR_EMBEDDERS: [&str; 10] = [
    "sqlx ",
    "rusqlite ",
    "libsqlite3-sys ",
    "rmcp ",
    "hyper ",
    "clap ",
    "indicatif ",
    "workspace-tools ",
    "registry-tools ",
    "toolshed-guest ",
];

fn normal_dependencies(package: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "--offline", "-e", "normal", "--prefix", "none", "-p", package])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo tree");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_runtime_and_the_harness_pull_in_no_backend_server_or_command_line_crate() {
    // The harness hosts the standard capability set, whose network
    // capability sends plugins' requests through hyper's client
    // (wasmtime-wasi-http): hyper is the one crate of the list it may have.
    for (package, allowed) in [("toolshed-runtime", None), ("toolshed-infra", None), ("toolshed-platform", None), ("toolshed-harness", Some("hyper "))] {
        let tree = normal_dependencies(package);
        assert!(tree.contains("wasmtime "), "{package}: the tree was not read: {tree}");
        for crate_name in NOT_FOR_EMBEDDERS.into_iter().filter(|c| Some(*c) != allowed) {
            assert!(!tree.lines().any(|l| l.starts_with(crate_name)), "{package} depends on {crate_name}");
        }
    }
}
