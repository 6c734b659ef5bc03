//! Builds the adversarial and versioned fixture plugins the suites load.

use std::path::PathBuf;

use toolshed_pack::{Guest, build_plugin};

const FIXTURE_WIT: &[&str] = &["tests/fixtures/wit"];

const FIXTURES: &[Guest<'static>] = &[
    Guest { extra_wit: FIXTURE_WIT, ..Guest::new("fixture-hostile", "toolshed:fixtures/hostile@0.1.0") },
    Guest { extra_wit: FIXTURE_WIT, features: &["v1"], output: "versioned-v1", ..Guest::new("fixture-versioned", "toolshed:fixtures/versioned@0.1.0") },
    Guest { extra_wit: FIXTURE_WIT, features: &["v2"], output: "versioned-v2", ..Guest::new("fixture-versioned", "toolshed:fixtures/versioned@0.1.0") },
    Guest { extra_wit: FIXTURE_WIT, features: &["v3"], output: "versioned-v3", ..Guest::new("fixture-versioned", "toolshed:fixtures/versioned@0.1.0") },
    Guest { extra_wit: FIXTURE_WIT, ..Guest::new("fixture-ungranted", "toolshed:fixtures/ungranted@0.1.0") },
];

fn main() -> anyhow::Result<()> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest.parent().expect("tests/ sits in the workspace").to_path_buf();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let target_dir = workspace.join("target").join("guests");
    for watched in ["wit", "tests/fixtures"] {
        println!("cargo:rerun-if-changed={}", workspace.join(watched).display());
    }
    let mut constants = String::new();
    for fixture in FIXTURES {
        let path = build_plugin(&workspace, &target_dir, &out_dir.join("fixtures"), fixture)?;
        let name = if fixture.output.is_empty() { fixture.package.trim_start_matches("fixture-") } else { fixture.output };
        let constant = name.to_uppercase().replace('-', "_");
        constants.push_str(&format!(
            "/// The `{name}` fixture plugin.\npub const {constant}: &[u8] = include_bytes!({:?});\n",
            path.display().to_string()
        ));
    }
    std::fs::write(out_dir.join("fixtures.rs"), constants)?;
    Ok(())
}
