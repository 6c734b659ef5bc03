//! Builds the default plugins from the guest crates, so the host embeds them
//! and a fresh `cargo run` needs no separate build step.

use std::path::PathBuf;

use toolshed_pack::{Guest, build_plugin};

const GUESTS: &[Guest<'static>] = &[
    Guest::new("workspace-tools", "toolshed:tools/workspace-plugin@0.3.0"),
    Guest::new("registry-tools", "toolshed:tools/registry-plugin@0.3.0"),
];

fn main() -> anyhow::Result<()> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest.ancestors().nth(2).expect("host/builtin sits two levels down").to_path_buf();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // The guests get their own target directory: the parent build holds the
    // lock on the main one.
    let target_dir = workspace.join("target").join("guests");
    // Only what the embedded guests are built from: the other projects
    // under guest/ (Python virtualenvs, node_modules, build outputs) change
    // without touching them.
    for watched in ["wit", "guest/workspace-tools", "guest/registry-tools", "guest/support", "guest/contract", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(watched).display());
    }

    let mut constants = String::new();
    for guest in GUESTS {
        let path = build_plugin(&workspace, &target_dir, &out_dir.join("plugins"), guest)?;
        let constant = guest.package.to_uppercase().replace('-', "_");
        constants.push_str(&format!(
            "/// The `{}` plugin, built from its guest crate.\npub const {constant}: &[u8] = include_bytes!({:?});\n",
            guest.package,
            path.display().to_string()
        ));
    }
    std::fs::write(out_dir.join("plugins.rs"), constants)?;
    Ok(())
}
