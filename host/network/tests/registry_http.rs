//! The example plugin `guest/registry-http` against a fake platform API on
//! loopback: it provisions a registry and polls its task, with the token
//! the host adds, and answers 401, 404 and 429 with what to do next.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use toolshed_network::{Config, Network, NetworkProviders, Secret, Secrets};
use toolshed_runtime::{CallContext, Policy, Runtime, Toolshed};

const TOKEN: &str = "platform-token-of-ada";

/// What the fake platform was sent: path, authorization and body.
type Log = Arc<Mutex<Vec<(String, String, Value)>>>;

/// A fake platform API: provisioning tasks that complete on their second
/// read, and the errors a real one gives.
async fn platform() -> (u16, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log: Log = Arc::default();
    let reads = Arc::new(AtomicUsize::new(0));
    let seen = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (seen, reads) = (seen.clone(), reads.clone());
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                reader.read_line(&mut line).await.unwrap();
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let (mut auth, mut length) = (String::new(), 0);
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).await.unwrap() == 0 || header.trim().is_empty() {
                        break;
                    }
                    let (name, value) = header.trim_end().split_once(':').unwrap();
                    match name.to_ascii_lowercase().as_str() {
                        "authorization" => auth = value.trim().to_string(),
                        "content-length" => length = value.trim().parse().unwrap(),
                        _ => {}
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).await.unwrap();
                seen.lock().unwrap().push((path.clone(), auth.clone(), serde_json::from_slice(&body).unwrap_or(Value::Null)));
                let (status, extra, answer) = if auth != format!("Bearer {TOKEN}") {
                    ("401 Unauthorized", "", json!({ "error": "the token has expired" }))
                } else if path.starts_with("/v1/projects/proj-unknown/") {
                    ("404 Not Found", "", json!({ "error": "no such project", "suggestions": ["proj-known"] }))
                } else if path.starts_with("/v1/projects/proj-busy/") {
                    ("429 Too Many Requests", "retry-after: 17\r\n", json!({ "error": "slow down" }))
                } else if path.starts_with("/v1/projects/") {
                    ("202 Accepted", "", json!({ "task_id": "task-1" }))
                } else if reads.fetch_add(1, Ordering::SeqCst) == 0 {
                    ("200 OK", "", json!({ "status": "running" }))
                } else {
                    ("200 OK", "", json!({ "status": "completed", "registry_url": "registry.example.com/acme/main" }))
                };
                let text = answer.to_string();
                let reply = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{text}", text.len());
                let mut stream = reader.into_inner();
                stream.write_all(reply.as_bytes()).await.unwrap();
                let _ = stream.shutdown().await;
            });
        }
    });
    (port, log)
}

/// Ada's token for Ada's calls; nobody else has one.
struct Tokens;

impl Secrets for Tokens {
    fn secret(&self, cx: &CallContext, name: &str) -> Option<Secret> {
        (name == "PLATFORM_TOKEN" && cx.owner_id == "ada").then(|| Secret::new(TOKEN))
    }
}

async fn host(port: u16) -> Toolshed {
    host_with(port, Arc::new(Tokens)).await
}

async fn host_with(port: u16, secrets: Arc<dyn Secrets>) -> Toolshed {
    let policy = Policy::from_toml(&format!(
        r#"[plugins.registry-http]
grants = ["toolshed:runtime/*", "wasi:http/*", "wasi:config/*"]
config = {{ base_url = "http://localhost:{port}/v1", organization = "acme", poll_ms = "0" }}

[[plugins.registry-http.network.allow]]
url = "http://localhost:{port}/v1/"
methods = ["GET", "POST"]
addresses = ["loopback"]
header = {{ name = "Authorization", value = "Bearer {{secret}}", secret = "PLATFORM_TOKEN" }}
"#
    ))
    .unwrap();
    let runtime = Arc::new(Runtime::builder().capability(Network).capability(Config).policy(policy).build().unwrap());
    let host = Toolshed::builder(runtime).provide(NetworkProviders::new(secrets)).build().unwrap();
    host.install("registry-http", toolshed_fixtures::REGISTRY_HTTP.to_vec()).await.unwrap();
    host
}

fn cx(owner: &str) -> CallContext {
    CallContext { chat_id: "chat-registry".into(), owner_id: owner.into(), owner_name: owner.into(), organization_id: "acme".into() }
}

async fn provision(host: &Toolshed, owner: &str, project: &str) -> Value {
    let args = json!({ "project_id": project, "cluster_id": "c-1", "region": "fsn1" });
    host.call(&cx(owner), "provision_registry_http", &args.to_string()).await.value
}

#[tokio::test]
async fn provisions_a_registry_and_polls_its_task_with_the_token_the_host_adds() {
    let (port, log) = platform().await;
    let host = host(port).await;
    let out = provision(&host, "ada", "proj-a").await;
    assert_eq!(out["registry_url"], "registry.example.com/acme/main", "{out}");
    assert_eq!(out["task_id"], "task-1");
    let log = log.lock().unwrap().clone();
    let paths: Vec<&str> = log.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(paths, ["/v1/projects/proj-a/registries", "/v1/tasks/task-1", "/v1/tasks/task-1"]);
    assert!(log.iter().all(|(_, auth, _)| auth == &format!("Bearer {TOKEN}")));
    assert_eq!(log[0].2, json!({ "organization": "acme", "cluster_id": "c-1", "region": "fsn1", "name": "main" }), "the organization comes from the configuration");
}

#[tokio::test]
async fn a_caller_without_a_token_sends_nothing() {
    let (port, log) = platform().await;
    let host = host(port).await;
    let out = provision(&host, "bob", "proj-a").await;
    assert_eq!(out["code"], "PLATFORM_UNREACHABLE", "{out}");
    assert!(log.lock().unwrap().is_empty(), "no request left without its token");
}

#[tokio::test]
async fn an_expired_token_is_answered_with_log_in() {
    struct Expired;
    impl Secrets for Expired {
        fn secret(&self, _: &CallContext, _: &str) -> Option<Secret> {
            Some(Secret::new("expired"))
        }
    }
    let (port, _) = platform().await;
    let host = host_with(port, Arc::new(Expired)).await;
    let out = provision(&host, "ada", "proj-a").await;
    assert_eq!(out["code"], "PLATFORM_UNAUTHORIZED", "{out}");
    assert!(out["suggestions"][0].as_str().unwrap().contains("log in"), "{out}");
}

#[tokio::test]
async fn an_unknown_project_is_answered_with_the_platforms_suggestions() {
    let (port, _) = platform().await;
    let host = host(port).await;
    let out = provision(&host, "ada", "proj-unknown").await;
    assert_eq!(out["code"], "PROJECT_NOT_FOUND", "{out}");
    assert!(out["suggestions"][0].as_str().unwrap().contains("proj-known"), "{out}");
}

#[tokio::test]
async fn a_rate_limit_is_answered_with_the_wait_retry_after_names() {
    let (port, _) = platform().await;
    let host = host(port).await;
    let out = provision(&host, "ada", "proj-busy").await;
    assert_eq!(out["code"], "PLATFORM_RATE_LIMITED", "{out}");
    assert_eq!(out["recoverable"], true);
    assert!(out["suggestions"][0].as_str().unwrap().contains("Wait 17 seconds"), "{out}");
}
