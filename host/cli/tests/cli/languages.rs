//! Plugins built by Python's and JavaScript's own toolchains, served by one
//! `toolshed serve` beside a Rust plugin: listed together, each answering
//! as its Rust counterpart does, and many calls of each at once within the
//! host's default capacity (a Python instance holds several call slots).
//!
//! The components are those `.ci/languages` builds (`toolshed test
//! guest/hello-python guest/templates-javascript`). Where they are not
//! built, the test says so and checks nothing else; CI builds them first
//! and sets `TOOLSHED_REQUIRE_LANGUAGES`, which makes their absence a
//! failure.

use std::path::{Path, PathBuf};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

use crate::support::{TOOLSHED, data_dir, push_with_cli, template};

fn guest(project: &str, file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest").join(project).join("build").join(file)
}

/// The Python hello plugin and the JavaScript templates plugin, as built.
fn language_builds() -> Option<(Vec<u8>, Vec<u8>)> {
    let python = std::fs::read(guest("hello-python", "hello.wasm"));
    let javascript = std::fs::read(guest("templates-javascript", "templates.wasm"));
    if let (Ok(python), Ok(javascript)) = (python.as_ref(), javascript.as_ref()) {
        return Some((python.clone(), javascript.clone()));
    }
    let missing: Vec<&str> =
        [(python.is_err(), "guest/hello-python"), (javascript.is_err(), "guest/templates-javascript")].into_iter().filter(|m| m.0).map(|m| m.1).collect();
    let message = format!("not built: {} (run .ci/languages target/debug/toolshed)", missing.join(", "));
    if std::env::var_os("TOOLSHED_REQUIRE_LANGUAGES").is_some() {
        panic!("TOOLSHED_REQUIRE_LANGUAGES is set: {message}");
    }
    eprintln!("not run: {message}");
    None
}

/// One policy for the three: the built-in one (limits, registry-tools)
/// with each language project's own entry, as its author wrote it.
fn mixed_policy() -> String {
    let project = |name: &str| std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest").join(name).join("policy.toml")).unwrap();
    [toolshed_builtin::POLICY_TOML.to_string(), project("hello-python"), project("templates-javascript")].join("\n")
}

async fn serve(data: &Path, extra: &[&std::ffi::OsStr]) -> RunningService<RoleClient, ()> {
    let mut command = tokio::process::Command::new(TOOLSHED);
    command.arg("--data-dir").arg(data).args(extra).arg("serve");
    ().serve(TokioChildProcess::new(command).unwrap()).await.unwrap()
}

async fn answer(client: &RunningService<RoleClient, ()>, tool: &str, arguments: Value) -> (bool, Value) {
    let params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments.as_object().unwrap().clone());
    let out = client.call_tool(params).await.unwrap_or_else(|e| panic!("{tool} over MCP: {e}"));
    (out.is_error == Some(true), out.structured_content.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_javascript_plugins_serve_beside_a_rust_one_and_answer_as_the_rust_tools_do() {
    let Some((python, javascript)) = language_builds() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let template_id = push_with_cli(&data, dir.path(), "docker", &template("docker", "exit 0", "exit 0", ""));
    let calls = [
        ("list_templates", json!({})),
        ("list_templates", json!({ "query": "DOCK" })),
        ("read_template", json!({ "template_id": template_id })),
        ("read_template", json!({ "template_id": "not an id" })),
        ("read_template", json!({ "template_id": "00000000-0000-4000-8000-000000000000" })),
    ];

    // The built-in Rust workspace tools, over the same data directory.
    let rust = serve(&data, &[]).await;
    let mut expected = Vec::new();
    for (tool, arguments) in &calls {
        expected.push(answer(&rust, tool, arguments.clone()).await);
    }
    rust.cancel().await.unwrap();

    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::write(plugins.join("registry-tools.wasm"), toolshed_builtin::REGISTRY_TOOLS).unwrap();
    std::fs::write(plugins.join("hello.wasm"), &python).unwrap();
    std::fs::write(plugins.join("templates.wasm"), &javascript).unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, mixed_policy()).unwrap();
    let mixed = serve(&data, &["--plugins".as_ref(), plugins.as_os_str(), "--policy".as_ref(), policy.as_os_str()]).await;

    // The initial load installs in the background: wait until all three serve.
    let mut names = Vec::new();
    for _ in 0..600 {
        names = mixed.list_all_tools().await.unwrap().iter().map(|t| t.name.to_string()).collect();
        names.sort();
        if names.len() >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(names, ["greet", "list_templates", "provision_registry", "read_template"], "the three plugins' tools, and no toolchain's helper export");

    for ((tool, arguments), expected) in calls.iter().zip(&expected) {
        assert_eq!(&answer(&mixed, tool, arguments.clone()).await, expected, "{tool} {arguments} in JavaScript against Rust");
    }
    assert_eq!(answer(&mixed, "greet", json!({ "name": "Ada" })).await, (false, json!({ "text": "Hello, Ada!" })));
    let (refused, error) = answer(&mixed, "greet", json!({ "name": " " })).await;
    assert!(refused && error["code"] == "NAME_REQUIRED", "{error}");
    let (refused, error) = answer(&mixed, "provision_registry", json!({ "bogus": 1 })).await;
    assert!(refused && error["code"] == "INVALID_ARGUMENTS", "the Rust plugin serves beside them: {error}");

    // As many calls at once as one caller may have (32), half Python, half
    // JavaScript: each Python call holds several call slots, and none is
    // refused for want of pool or mappings.
    let client = std::sync::Arc::new(mixed);
    let mut at_once = tokio::task::JoinSet::new();
    for i in 0..32 {
        let client = client.clone();
        at_once.spawn(async move {
            if i % 2 == 0 {
                answer(&client, "greet", json!({ "name": format!("caller {i}") })).await
            } else {
                answer(&client, "list_templates", json!({})).await
            }
        });
    }
    let mut greeted = 0;
    while let Some(joined) = at_once.join_next().await {
        let (is_error, value) = joined.unwrap();
        assert!(!is_error, "a call at once failed: {value}");
        greeted += usize::from(value.get("text").is_some());
    }
    assert_eq!(greeted, 16);
}
