//! `toolshed pack` gives a component built by any toolchain what
//! `toolshed-pack` gives a Rust build: its WIT docs and its API version.

use std::path::Path;
use std::process::Command;

use toolshed_harness::HandMade;
use toolshed_runtime::reflect::Metadata;

use crate::support::TOOLSHED;

const WORLD: &str = "package plugins:hand@0.1.0;

interface tools {
    /// Answers the question everyone asks.
    answer: func() -> u32;
}

world hand-plugin {
    import toolshed:runtime/log@0.3.0;
    export tools;
}
";

/// A plugin directory: a component without sections, and its WIT.
fn plugin_without_docs(dir: &Path) -> std::path::PathBuf {
    let wasm = dir.join("hand.wasm");
    std::fs::write(&wasm, HandMade::new().export("plugins:hand/tools@0.1.0", &["answer"]).build()).unwrap();
    std::fs::create_dir_all(dir.join("wit/deps")).unwrap();
    std::fs::write(dir.join("wit/world.wit"), WORLD).unwrap();
    let runtime = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit/runtime").canonicalize().unwrap();
    std::os::unix::fs::symlink(runtime, dir.join("wit/deps/runtime")).unwrap();
    wasm
}

#[test]
fn toolshed_pack_embeds_the_docs_and_api_version_into_a_component_of_any_toolchain() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = plugin_without_docs(dir.path());
    assert!(Metadata::from_component(&std::fs::read(&wasm).unwrap()).unwrap().api_version.is_none());

    let out = Command::new(TOOLSHED).arg("pack").arg(&wasm).arg("--wit").arg(dir.path().join("wit")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let packed = Metadata::from_component(&std::fs::read(&wasm).unwrap()).unwrap();
    assert_eq!(packed.docs.get("answer"), Some("Answers the question everyone asks."));
    // The API of the toolshed packages it uses, not its own package's version.
    assert_eq!(packed.api_version.as_deref(), Some(toolshed_contract::API_VERSION));
}

#[test]
fn toolshed_pack_refuses_what_is_not_a_component_and_an_unknown_world_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = plugin_without_docs(dir.path());
    let module = dir.path().join("module.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    let out = Command::new(TOOLSHED).arg("pack").arg(&module).arg("--wit").arg(dir.path().join("wit")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a WebAssembly component"), "{}", String::from_utf8_lossy(&out.stderr));

    let out = Command::new(TOOLSHED).arg("pack").arg(&wasm).args(["--world", "nowhere"]).arg("--wit").arg(dir.path().join("wit")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere"), "{}", String::from_utf8_lossy(&out.stderr));
}
