//! `toolshed secret set`: the value is read without echo (from stdin when
//! it is not a terminal), never printed, and kept in a file only its
//! owner may read; a host refuses a secrets file others may read.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use crate::support::toolshed_on;

#[test]
fn secret_set_reads_stdin_prints_nothing_of_the_value_and_writes_a_file_only_its_owner_may_read() {
    const VALUE: &str = "v4lue-from-stdin-9Kq";
    let data = tempfile::tempdir().unwrap();
    let mut child = toolshed_on(data.path())
        .args(["secret", "set", "PLATFORM_TOKEN"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{VALUE}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{printed}");
    assert!(!printed.contains(VALUE), "{printed}");
    let file = data.path().join("secrets.toml");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&file).unwrap().contains(VALUE));

    // A host will not start over a secrets file others may read.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = toolshed_on(data.path()).args(["tools"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("secrets.toml") && stderr.contains("chmod 600"), "{stderr}");
    assert!(!stderr.contains(VALUE), "{stderr}");
}

#[test]
fn secret_set_refuses_a_name_a_policy_cannot_name() {
    let data = tempfile::tempdir().unwrap();
    let mut child = toolshed_on(data.path()).args(["secret", "set", "no spaces"]).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"x\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no spaces"));
}

/// A loopback server that answers every request 200 and keeps each one's
/// `Authorization` header (empty when there was none).
async fn recording_server() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let authorization = head
                    .lines()
                    .find_map(|line| line.split_once(':').filter(|(name, _)| name.eq_ignore_ascii_case("authorization")).map(|(_, v)| v.trim().to_string()))
                    .unwrap_or_default();
                record.lock().unwrap().push(authorization);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
            });
        }
    });
    (port, seen)
}

fn set_secret(data: &std::path::Path, name: &str, principal: &str, value: &str) {
    let mut child = toolshed_on(data).args(["secret", "set", name, "--principal", principal]).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(format!("{value}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Through `serve --http` with two users' tokens: each authenticated
/// caller's request carries that caller's own secret, set with `secret set
/// --principal`, and a third caller with none of its own sends none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_http_serve_each_authenticated_caller_sends_their_own_secret() {
    use toolshed_mcp::auth::hash_token;
    let (port, seen) = recording_server().await;
    let root = tempfile::tempdir().unwrap();
    let data = crate::support::data_dir(root.path());
    std::fs::create_dir_all(&data).unwrap();
    set_secret(&data, "PLATFORM_TOKEN", "u-1", "token-of-one");
    set_secret(&data, "PLATFORM_TOKEN", "u-2", "token-of-two");
    let plugins = root.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::write(plugins.join("net.wasm"), toolshed_fixtures::NETWORK).unwrap();
    let policy = root.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[plugins.net]\ngrants = [\"toolshed:runtime/*\", \"wasi:http/*\", \"wasi:config/*\"]\n\
             [[plugins.net.network.allow]]\nurl = \"http://localhost:{port}/v1/\"\nmethods = [\"GET\"]\naddresses = [\"loopback\"]\n\
             header = {{ name = \"Authorization\", value = \"Bearer {{secret}}\", secret = \"PLATFORM_TOKEN\" }}\n"
        ),
    )
    .unwrap();
    let org = toolshed_local::LOCAL_ORG;
    let mut tokens = String::new();
    for (token, owner) in [("t-one", "u-1"), ("t-two", "u-2"), ("t-three", "u-3")] {
        tokens.push_str(&format!("[[token]]\nsha256 = \"{}\"\nowner_id = \"{owner}\"\nowner_name = \"{owner}\"\norganization_id = \"{org}\"\n", hash_token(token)));
    }
    let tokens_file = root.path().join("tokens.toml");
    std::fs::write(&tokens_file, tokens).unwrap();

    let mut command = tokio::process::Command::new(crate::support::TOOLSHED);
    command.arg("--data-dir").arg(&data).args(["serve", "--http", "127.0.0.1:0", "--auth-tokens"]).arg(&tokens_file);
    command.arg("--plugins").arg(&plugins).arg("--policy").arg(&policy);
    let (_serve, addr) = crate::support::serving_http(command).await;

    let url = format!("http://localhost:{port}/v1/registries");
    let arguments = serde_json::json!({ "method": "GET", "url": url, "follow": false });
    for token in ["t-one", "t-two", "t-three"] {
        let client = crate::http::client(addr, Some(token), false).await;
        let answer = client.call_tool(crate::http::call("fetch", arguments.clone(), None)).await.unwrap();
        let answer = answer.structured_content.unwrap();
        let status = answer["status"].as_u64().unwrap_or_default();
        // The third caller has no secret of its own: its request is refused
        // before it is sent, never sent with another's.
        assert_eq!(status == 200, token != "t-three", "{token}: {answer}");
    }
    assert_eq!(*seen.lock().unwrap(), ["Bearer token-of-one", "Bearer token-of-two"]);
}
