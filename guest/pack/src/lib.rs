//! Builds toolshed plugins from their guest crates.
//!
//! Used from build scripts: [`build_plugin`] compiles a guest crate for
//! `wasm32-wasip2` (installing the target when the toolchain lacks it),
//! reads the `///` docs of the world's exported functions from the WIT, and
//! writes them into the component's `toolshed:docs` custom section, because
//! wit-bindgen does not carry them into the binary. It also writes the API
//! version the plugin was built for (its world's package version) into
//! `toolshed:api-version`, which the host reads before linking.

#![deny(missing_docs)]

mod docs;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

pub use docs::{WorldDocs, docs_for_world, embed_docs, embed_section};

/// The target guests are compiled for.
pub const TARGET: &str = "wasm32-wasip2";

/// One guest crate to build into a plugin.
#[derive(Debug, Clone)]
pub struct Guest<'a> {
    /// The cargo package name, such as `workspace-tools`.
    pub package: &'a str,
    /// The world the plugin targets, such as `toolshed:tools/workspace-plugin@0.1.0`.
    pub world: &'a str,
    /// Cargo features to build with.
    pub features: &'a [&'a str],
    /// The plugin's file name, without `.wasm`; the package name when empty.
    pub output: &'a str,
    /// The WIT package directory holding the world (its dependencies in its
    /// `deps/`), relative to the workspace.
    pub wit: &'a str,
}

impl<'a> Guest<'a> {
    /// The guest crate `package`, targeting `world` of the workspace's `wit/tools`.
    pub const fn new(package: &'a str, world: &'a str) -> Self {
        Self { package, world, features: &[], output: "", wit: "wit/tools" }
    }
}

/// `component`, built by any toolchain for `world` of the WIT package in
/// `wit_dir` (the package's only world when `None`), with the world's docs
/// and its toolshed API version embedded as the host reads them.
///
/// # Errors
///
/// When the WIT cannot be read, the world is not found, or the bytes are
/// not a component.
pub fn pack(component: Vec<u8>, wit_dir: &Path, world: Option<&str>) -> anyhow::Result<Vec<u8>> {
    // A component starts with the magic and a layer of 1; a core module's layer is 0.
    anyhow::ensure!(
        component.len() >= 8 && component[..4] == *b"\0asm" && component[6..8] == [1, 0],
        "not a WebAssembly component (a core module must be made a component first, e.g. by wasm-tools component new)"
    );
    let world = docs_for_world(wit_dir, world)?;
    let plugin = embed_docs(component, &world.docs);
    Ok(match &world.version {
        Some(version) => embed_section(plugin, toolshed_contract::API_VERSION_SECTION, version.as_bytes()),
        None => plugin,
    })
}

/// Environment variables a parent cargo sets for build scripts that must not
/// leak into the nested build, which has its own target and flags.
const PARENT_ONLY_ENV: [&str; 7] = [
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
];

/// Makes sure the active toolchain can build for [`TARGET`].
///
/// # Errors
///
/// When the target is missing and `rustup` cannot add it.
pub fn ensure_target() -> anyhow::Result<()> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc).args(["--print", "sysroot"]).output().context("running rustc --print sysroot")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(TARGET).exists() {
        return Ok(());
    }
    let mut rustup = Command::new("rustup");
    rustup.args(["target", "add", TARGET]);
    if let Ok(toolchain) = std::env::var("RUSTUP_TOOLCHAIN") {
        rustup.args(["--toolchain", &toolchain]);
    }
    let status = rustup.status().context("running rustup to add the wasm32-wasip2 target")?;
    if !status.success() {
        bail!("rustup target add {TARGET} failed ({status}); install the target and build again");
    }
    Ok(())
}

/// Compiles `guest` from the workspace at `workspace` into `target_dir`, embeds
/// its docs, and writes the plugin to `out_dir/<package>.wasm`.
///
/// # Errors
///
/// When the build fails or the WIT cannot be read.
pub fn build_plugin(workspace: &Path, target_dir: &Path, out_dir: &Path, guest: &Guest<'_>) -> anyhow::Result<PathBuf> {
    ensure_target()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--release", "--target", TARGET, "-p", guest.package, "--target-dir"])
        .arg(target_dir)
        .arg(format!("--features={}", guest.features.join(",")))
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo")
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "3");
    for name in PARENT_ONLY_ENV {
        command.env_remove(name);
    }
    let status = command.status().with_context(|| format!("running cargo build for {}", guest.package))?;
    if !status.success() {
        bail!("building guest {} for {TARGET} failed ({status})", guest.package);
    }
    let artifact = target_dir.join(TARGET).join("release").join(format!("{}.wasm", guest.package.replace('-', "_")));
    let component = std::fs::read(&artifact).with_context(|| format!("reading {}", artifact.display()))?;
    let plugin = pack(component, &workspace.join(guest.wit), Some(guest.world))?;
    std::fs::create_dir_all(out_dir)?;
    let name = if guest.output.is_empty() { guest.package } else { guest.output };
    let out = out_dir.join(format!("{name}.wasm"));
    std::fs::write(&out, plugin).with_context(|| format!("writing {}", out.display()))?;
    Ok(out)
}
