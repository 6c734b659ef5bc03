//! Builds this crate into a toolshed plugin for the harness test: a
//! wasm32-wasip2 component with its WIT docs embedded. The build for
//! wasm32 itself skips this.

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    if std::env::var("TARGET")?.starts_with("wasm32") {
        return Ok(());
    }
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // OUT_DIR is <target>/<profile>/build/<crate>/out: build the guest
    // beside, in <target>/guests, where other guests' artifacts are reused.
    let target_dir = out_dir.ancestors().nth(4).map_or_else(|| out_dir.join("guests"), |target| target.join("guests"));
    let guest = toolshed_pack::Guest { wit: "wit", ..toolshed_pack::Guest::new("hello", "plugins:hello/hello-plugin@0.1.0") };
    let plugin = toolshed_pack::build_plugin(&manifest, &target_dir, &out_dir, &guest)?;
    println!("cargo:rustc-env=HELLO_WASM={}", plugin.display());
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=wit");
    Ok(())
}
