//! Plugins from a real registry (Debian's docker-registry on loopback,
//! htpasswd auth) through the binary: an author pushes and signs, an
//! operator installs and serves from the lock, with and without the
//! registry, and `plugin update` moves running servers with no failed call.

use std::path::Path;
use std::process::Output;

use serde_json::json;
use toolshed_harness::registry::{PASSWORD, TestRegistry, USERNAME};

use crate::http::{call, client};
use crate::support::{TOOLSHED, data_dir, serving_http};

/// The policy entry of the versioned plugin.
const GRANTS: &str = "grants = [\"toolshed:runtime/*\"]\n";

/// `toolshed` logged in to the test registry, with `plugins.toml` in `dir`.
fn toolshed(dir: &Path, data: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(TOOLSHED);
    command
        .arg("--data-dir")
        .arg(data)
        .arg("--plugins-toml")
        .arg(dir.join("plugins.toml"))
        .args(["--registry-username", USERNAME])
        .env("TOOLSHED_REGISTRY_PASSWORD", PASSWORD)
        .env("DOCKER_CONFIG", dir.join("no-docker-config"))
        .current_dir(dir)
        .stdin(std::process::Stdio::null());
    command
}

fn run(mut command: std::process::Command, args: &[&str]) -> Output {
    command.args(args).output().unwrap()
}

fn succeeded(out: &Output) -> String {
    assert!(out.status.success(), "exit {:?}\nstdout: {}\nstderr: {}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Pushes `wasm` to `reference` and, with the key in `dir`, signs it;
/// returns the digest.
fn push_and_sign(dir: &Path, data: &Path, reference: &str, wasm: &[u8], sign: bool) -> String {
    let file = dir.join(format!("{}.wasm", toolshed_oci::digest_of(wasm).trim_start_matches("sha256:")));
    std::fs::write(&file, wasm).unwrap();
    let pushed = succeeded(&run(toolshed(dir, data), &["plugin", "push", file.to_str().unwrap(), reference]));
    let digest = pushed.trim().rsplit('@').next().unwrap().to_string();
    if sign {
        let signed = succeeded(&run(toolshed(dir, data), &["plugin", "sign", reference, "--key", "author.key"]));
        assert!(signed.contains(&digest), "{signed}");
    }
    digest
}

/// A registry, an author's key, and `plugins.toml` trusting it for `tools`.
fn operator_setup() -> (TestRegistry, tempfile::TempDir) {
    let registry = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    succeeded(&run(toolshed(dir.path(), &data_dir(dir.path())), &["plugin", "keygen", "author"]));
    std::fs::write(dir.path().join("plugins.toml"), format!("[trust.\"{}/tools\"]\nkey = \"author.pub\"\n", registry.host())).unwrap();
    (registry, dir)
}

#[test]
fn an_author_pushes_and_signs_and_an_operator_installs_and_calls_it_with_and_without_the_registry() {
    let (registry, dir) = operator_setup();
    let data = data_dir(dir.path());
    let reference = format!("oci://{}/tools/versioned:stable", registry.host());
    let digest = push_and_sign(dir.path(), &data, &reference, toolshed_fixtures::VERSIONED_V1, true);

    let installed = succeeded(&run(toolshed(dir.path(), &data), &["plugin", "install", &reference]));
    assert!(installed.contains(&format!("versioned: {reference} pinned at {digest}")), "{installed}");
    let lock = std::fs::read_to_string(dir.path().join("plugins.lock")).unwrap();
    assert!(lock.contains(&digest) && lock.contains(&toolshed_oci::digest_of(toolshed_fixtures::VERSIONED_V1)), "{lock}");
    let plugins_toml = std::fs::read_to_string(dir.path().join("plugins.toml")).unwrap();
    assert!(plugins_toml.ends_with(&format!("[plugins.versioned]\nsource = \"{reference}\"\n")), "{plugins_toml}");
    // The operator adds the policy entry under the source install wrote.
    std::fs::write(dir.path().join("plugins.toml"), plugins_toml + GRANTS).unwrap();

    let answer = succeeded(&run(toolshed(dir.path(), &data), &["call", "version"]));
    assert!(answer.contains("\"v1\""), "{answer}");

    // A restart without the registry serves from the data directory.
    drop(registry);
    let answer = succeeded(&run(toolshed(dir.path(), &data), &["call", "version"]));
    assert!(answer.contains("\"v1\""), "{answer}");
}

#[test]
fn install_refuses_an_unsigned_plugin_naming_it_and_pins_nothing() {
    let (registry, dir) = operator_setup();
    let data = data_dir(dir.path());
    let reference = format!("oci://{}/tools/versioned:stable", registry.host());
    let digest = push_and_sign(dir.path(), &data, &reference, toolshed_fixtures::VERSIONED_V1, false);
    let out = run(toolshed(dir.path(), &data), &["plugin", "install", &reference]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refused versioned") && stderr.contains("unsigned") && stderr.contains(&digest) && stderr.contains(&reference), "{stderr}");
    assert!(!std::fs::read_to_string(dir.path().join("plugins.lock")).unwrap_or_default().contains(&digest));
}

#[tokio::test(flavor = "multi_thread")]
async fn update_moves_two_running_replicas_to_the_new_tag_with_no_failed_call_and_an_unsigned_one_is_refused() {
    let (registry, dir) = operator_setup();
    let data = data_dir(dir.path());
    let reference = format!("oci://{}/tools/versioned:stable", registry.host());
    push_and_sign(dir.path(), &data, &reference, toolshed_fixtures::VERSIONED_V1, true);
    let mut plugins_toml = std::fs::read_to_string(dir.path().join("plugins.toml")).unwrap();
    plugins_toml.push_str(&format!("[plugins.versioned]\nsource = \"{reference}\"\n{GRANTS}"));
    std::fs::write(dir.path().join("plugins.toml"), plugins_toml).unwrap();
    succeeded(&run(toolshed(dir.path(), &data), &["plugin", "install"]));

    // Two replicas, each with its own data directory, sharing the lock.
    let mut replicas = Vec::new();
    for replica in ["a", "b"] {
        let mut command = tokio::process::Command::from(toolshed(dir.path(), &dir.path().join(replica)));
        command.args(["serve", "--http", "127.0.0.1:0"]);
        let (child, addr) = serving_http(command).await;
        let client = client(addr, None, false).await;
        replicas.push((child, client));
    }
    let version = |result: rmcp::model::CallToolResult| -> String {
        assert_ne!(result.is_error, Some(true), "a call failed: {result:?}");
        result.structured_content.as_ref().and_then(|v| v["version"].as_str()).map(str::to_string).unwrap_or_else(|| panic!("no version in {result:?}"))
    };
    for (_, client) in &replicas {
        assert_eq!(version(client.call_tool(call("version", json!({}), None)).await.unwrap()), "v1");
    }

    let v2 = push_and_sign(dir.path(), &data, &reference, toolshed_fixtures::VERSIONED_V2, true);
    let update = tokio::process::Command::from(toolshed(dir.path(), &data)).args(["plugin", "update"]).output();
    // Calls keep going on both replicas while the lock moves, until each
    // answers from v2; every one of them must succeed.
    let (updated, answered) = tokio::join!(update, async {
        let mut answered = 0;
        for (_, client) in &replicas {
            loop {
                answered += 1;
                if version(client.call_tool(call("version", json!({}), None)).await.unwrap()) == "v2" {
                    break;
                }
                assert!(answered < 200_000, "the replica never moved to v2");
            }
        }
        answered
    });
    let updated = updated.unwrap();
    let stdout = succeeded(&updated);
    assert!(stdout.contains(&format!("-> {v2}")), "{stdout}");
    assert!(answered >= 2);

    // An unsigned version on the tag is refused; both keep serving v2.
    let v3 = push_and_sign(dir.path(), &data, &reference, toolshed_fixtures::VERSIONED_V3, false);
    let refused = run(toolshed(dir.path(), &data), &["plugin", "update"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("unsigned") && stderr.contains(&v3), "{stderr}");
    assert!(std::fs::read_to_string(dir.path().join("plugins.lock")).unwrap().contains(&v2));
    for (_, client) in &replicas {
        assert_eq!(version(client.call_tool(call("version", json!({}), None)).await.unwrap()), "v2");
    }
    drop(replicas);
}
