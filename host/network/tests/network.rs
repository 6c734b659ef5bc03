//! Outgoing HTTP from a plugin, against servers on loopback: the
//! allow-list, the ways around it, the bounds, and the secrets the host
//! adds. Every server here listens on 127.0.0.1, reached by the name
//! `localhost`, so "a name that resolves into a private range" is
//! `localhost` without `addresses = ["loopback"]`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use toolshed_network::{Config, Network, NetworkProviders, SecretStore, Secrets};
use toolshed_runtime::{CallContext, Policy, Runtime, Toolshed};

/// What the server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: BTreeMap<String, String>,
}

/// A loopback HTTP server answering by path, recording what it is sent.
struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<AtomicUsize>,
}

impl Server {
    async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (log, count) = (seen.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                count.fetch_add(1, Ordering::SeqCst);
                let log = log.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, port, log).await;
                });
            }
        });
        Server { port, seen, connections }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn serve(stream: tokio::net::TcpStream, port: u16, log: Arc<Mutex<Vec<Seen>>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let mut parts = line.split_whitespace();
    let path = parts.nth(1).unwrap_or("").to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).await? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.trim_end().split_once(':') {
            headers.insert(name.to_ascii_lowercase(), value.trim().to_string());
        }
    }
    if let Some(length) = headers.get("content-length").and_then(|l| l.parse::<usize>().ok()) {
        let mut body = vec![0; length.min(1 << 20)];
        reader.read_exact(&mut body).await?;
    }
    log.lock().unwrap().push(Seen { path: path.clone(), headers });
    let mut stream = reader.into_inner();
    let plain = |status: &str, extra: &str, body: &str| format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}", body.len());
    match path.as_str() {
        "/v1/redirect-in" => stream.write_all(plain("302 Found", &format!("location: http://localhost:{port}/v1/ok\r\n"), "").as_bytes()).await?,
        "/v1/redirect-out" => stream.write_all(plain("302 Found", &format!("location: http://localhost:{port}/admin\r\n"), "").as_bytes()).await?,
        "/v1/endless" => {
            stream.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").await?;
            let chunk = format!("{:x}\r\n{}\r\n", 1024, "x".repeat(1024));
            loop {
                stream.write_all(chunk.as_bytes()).await?;
            }
        }
        "/v1/hold" => {
            stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n").await?;
            std::future::pending::<()>().await;
        }
        "/v1/silent" => std::future::pending::<()>().await,
        "/v1/slow" => {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            stream.write_all(plain("200 OK", "", "hello").as_bytes()).await?;
        }
        _ => stream.write_all(plain("200 OK", "", "hello").as_bytes()).await?,
    }
    stream.shutdown().await
}

/// Every log record of the test process, at trace level.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber per process");
        logs
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logged() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap()).into_owned()
}

/// The compiled fixture, shared by every test through one cache directory.
fn cache_dir() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

fn cx(chat: &str, owner: &str) -> CallContext {
    CallContext { chat_id: chat.into(), owner_id: owner.into(), owner_name: owner.into(), organization_id: "org".into() }
}

/// A host serving the network fixture as plugin `net` under `policy`
/// (the text after `[plugins.net]`'s grants), with `secrets`.
async fn host_with(policy: &str, secrets: Arc<dyn Secrets>) -> Toolshed {
    logs();
    let text = format!("[plugins.net]\ngrants = [\"toolshed:runtime/*\", \"wasi:http/*\", \"wasi:config/*\"]\n{policy}");
    let policy = Policy::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let runtime = Arc::new(Runtime::builder().capability(Network).capability(Config).policy(policy).cache_dir(cache_dir()).build().unwrap());
    let host = Toolshed::builder(runtime).provide(NetworkProviders::new(secrets)).build().unwrap();
    host.install("net", toolshed_fixtures::NETWORK.to_vec()).await.unwrap();
    host
}

async fn host(policy: &str) -> Toolshed {
    host_with(policy, Arc::new(SecretStore::new())).await
}

/// The allow entry for the test server's `/v1/` as `localhost`, loopback named.
fn allow(port: u16, extra: &str) -> String {
    format!("[[plugins.net.network.allow]]\nurl = \"http://localhost:{port}/v1/\"\nmethods = [\"GET\"]\naddresses = [\"loopback\"]\n{extra}")
}

/// The fixture's text for an error code, such as `ErrorCode::HttpRequestDenied`.
fn code(name: &str) -> String {
    format!("ErrorCode::{name}")
}

async fn fetch(host: &Toolshed, cx: &CallContext, request: Value) -> Value {
    // A tool whose one parameter is a record takes its fields as the arguments.
    let mut args = json!({ "method": "GET", "follow": false });
    for (key, value) in request.as_object().unwrap() {
        args[key] = value.clone();
    }
    let out = host.call(cx, "fetch", &args.to_string()).await;
    assert!(!out.is_error, "{}", out.value);
    out.value
}

#[tokio::test]
async fn an_allowed_get_reaches_the_server_and_the_plugin_reads_the_answer() {
    let server = Server::start().await;
    let host = host(&allow(server.port, "")).await;
    let out = fetch(&host, &cx("chat-ok", "u"), json!({ "url": format!("http://localhost:{}/v1/ok", server.port) })).await;
    assert_eq!(out["status"], 200, "{out}");
    assert_eq!(out["body"], "hello");
    assert_eq!(server.seen()[0].path, "/v1/ok");
}

#[tokio::test]
async fn a_plugin_not_granted_wasi_http_is_refused_at_load_naming_it() {
    let policy = Policy::from_toml("[plugins.net]\ngrants = [\"toolshed:runtime/*\", \"wasi:config/*\"]\n").unwrap();
    let runtime = Arc::new(Runtime::builder().capability(Network).capability(Config).policy(policy).cache_dir(cache_dir()).build().unwrap());
    let host = Toolshed::builder(runtime).provide(NetworkProviders::new(Arc::new(SecretStore::new()))).build().unwrap();
    let err = host.install("net", toolshed_fixtures::NETWORK.to_vec()).await.err().expect("refused").to_string();
    assert!(err.contains("wasi:http/") && err.contains("does not grant"), "{err}");
}

#[tokio::test]
async fn a_host_granting_wasi_http_without_network_providers_refuses_to_start() {
    let policy = Policy::from_toml("[plugins.net]\ngrants = [\"wasi:http/*\"]\n").unwrap();
    let runtime = Arc::new(Runtime::builder().capability(Network).policy(policy).build().unwrap());
    let err = Toolshed::builder(runtime).build().err().expect("refused").to_string();
    assert!(err.contains("network"), "{err}");
}

#[tokio::test]
async fn requests_outside_the_list_are_refused_before_any_connection_and_logged() {
    let server = Server::start().await;
    let host = host(&allow(server.port, "")).await;
    let port = server.port;
    let chat = cx("chat-refused-7f3a", "u");
    for (method, url) in [
        ("POST", format!("http://localhost:{port}/v1/ok")),
        ("GET", format!("http://localhost:{port}/v2/ok")),
        ("GET", format!("http://localhost:{}/v1/ok", port.wrapping_add(1).max(1))),
        ("GET", format!("https://localhost:{port}/v1/ok")),
        ("GET", format!("http://localhost:{port}/v1/../admin")),
        ("GET", format!("http://other.localhost:{port}/v1/ok")),
    ] {
        let out = fetch(&host, &chat, json!({ "method": method, "url": url })).await;
        assert_eq!(out["error"], code("HttpRequestDenied"), "{method} {url}: {out}");
    }
    assert_eq!(server.connections(), 0, "no refused request reached the server");
    let logs = logged();
    let refusals: Vec<&str> = logs.lines().filter(|l| l.contains("outgoing request refused") && l.contains("chat=chat-refused-7f3a")).collect();
    assert_eq!(refusals.len(), 6, "one record per refused request: {refusals:#?}");
    assert!(refusals.iter().all(|l| l.contains("plugin=net") && l.contains("tool=fetch")), "{refusals:#?}");
    assert!(refusals.iter().any(|l| l.contains("/v2/ok") && l.contains("matches no allow entry")), "{refusals:#?}");
}

#[tokio::test]
async fn a_name_resolving_into_loopback_is_refused_unless_its_entry_names_loopback() {
    let server = Server::start().await;
    let url = format!("http://localhost:{}/v1/ok", server.port);
    let unnamed = host(&format!("[[plugins.net.network.allow]]\nurl = \"http://localhost:{}/v1/\"\nmethods = [\"GET\"]\n", server.port)).await;
    let out = fetch(&unnamed, &cx("chat-dns", "u"), json!({ "url": url })).await;
    assert_eq!(out["error"], code("HttpRequestDenied"), "{out}");
    assert_eq!(server.connections(), 0);
    assert!(logged().contains("in the loopback range"));

    let named = host(&allow(server.port, "")).await;
    let out = fetch(&named, &cx("chat-dns", "u"), json!({ "url": url })).await;
    assert_eq!(out["status"], 200, "{out}");
}

#[tokio::test]
async fn address_literals_in_any_spelling_do_not_pass_even_with_loopback_named() {
    let server = Server::start().await;
    let port = server.port;
    let host = host(&format!("{}[[plugins.net.network.allow]]\nurl = \"http://*.localhost:{port}/\"\nmethods = [\"GET\"]\naddresses = [\"loopback\"]\n", allow(port, ""))).await;
    for authority in ["127.0.0.1", "2130706433", "0177.0.0.1", "0x7f.0.0.1", "127.1", "[::ffff:127.0.0.1]", "[::1]", "169.254.169.254"] {
        let out = fetch(&host, &cx("chat-literal", "u"), json!({ "url": format!("http://{authority}:{port}/v1/ok") })).await;
        assert_eq!(out["error"], code("HttpRequestDenied"), "{authority}: {out}");
    }
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn a_redirect_is_followed_only_within_the_list() {
    let server = Server::start().await;
    let host = host(&allow(server.port, "")).await;
    let port = server.port;
    let inside = fetch(&host, &cx("chat-redirect", "u"), json!({ "url": format!("http://localhost:{port}/v1/redirect-in"), "follow": true })).await;
    assert_eq!((inside["status"].as_u64(), inside["body"].as_str()), (Some(200), Some("hello")), "{inside}");
    let outside = fetch(&host, &cx("chat-redirect", "u"), json!({ "url": format!("http://localhost:{port}/v1/redirect-out"), "follow": true })).await;
    assert_eq!(outside["error"], code("HttpRequestDenied"), "{outside}");
    let paths: Vec<String> = server.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, ["/v1/redirect-in", "/v1/ok", "/v1/redirect-out"], "the host follows nothing itself");
}

#[tokio::test]
async fn a_response_that_never_ends_is_cut_at_its_cap() {
    let server = Server::start().await;
    let host = host(&allow(server.port, "[plugins.net.network]\nresponse_body_kib = 64\n")).await;
    let out = fetch(&host, &cx("chat-endless", "u"), json!({ "url": format!("http://localhost:{}/v1/endless", server.port) })).await;
    assert_eq!(out["status"], 200, "{out}");
    // The stream's error, as the plugin reads it.
    assert!(out["error"].as_str().unwrap().contains("response body size exceeds limit: 65536"), "{out}");
    assert!(out["bytes"].as_u64().unwrap() <= 64 << 10, "{out}");
}

#[tokio::test]
async fn a_request_body_over_its_cap_is_not_sent_whole() {
    let server = Server::start().await;
    let entry = format!(
        "[plugins.net.network]\nrequest_body_kib = 1\n[[plugins.net.network.allow]]\nurl = \"http://localhost:{}/v1/\"\nmethods = [\"POST\"]\naddresses = [\"loopback\"]\n",
        server.port
    );
    let host = host(&entry).await;
    let url = format!("http://localhost:{}/v1/ok", server.port);
    let small = fetch(&host, &cx("chat-body", "u"), json!({ "method": "POST", "url": url, "body": "x".repeat(1000) })).await;
    assert_eq!(small["status"], 200, "{small}");
    let large = fetch(&host, &cx("chat-body", "u"), json!({ "method": "POST", "url": url, "body": "x".repeat(5000) })).await;
    assert_ne!(large["error"], "", "{large}");
    assert_ne!(large["status"], 200, "{large}");
}

#[tokio::test]
async fn a_call_makes_at_most_max_requests() {
    let server = Server::start().await;
    let host = host(&allow(server.port, "[plugins.net.network]\nmax_requests = 2\n")).await;
    let url = format!("http://localhost:{}/v1/ok", server.port);
    let out = host.call(&cx("chat-count", "u"), "fetch_many", &json!({ "url": url, "count": 3, "hold": false }).to_string()).await;
    assert_eq!(out.value["errors"], json!(["", "", code("HttpRequestDenied")]), "{}", out.value);
    assert_eq!(server.seen().len(), 2);
    // The count is the call's: the next call starts again.
    let out = host.call(&cx("chat-count", "u"), "fetch_many", &json!({ "url": url, "count": 1, "hold": false }).to_string()).await;
    assert_eq!(out.value["errors"], json!([""]), "{}", out.value);
}

#[tokio::test]
async fn a_plugin_holds_at_most_max_connections() {
    let server = Server::start().await;
    let host = host(&allow(server.port, "[plugins.net.network]\nmax_connections = 2\n")).await;
    let url = format!("http://localhost:{}/v1/hold", server.port);
    let out = host.call(&cx("chat-conns", "u"), "fetch_many", &json!({ "url": url, "count": 3, "hold": true }).to_string()).await;
    assert_eq!(out.value["errors"], json!(["", "", code("ConnectionLimitReached")]), "{}", out.value);
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn a_request_that_gets_no_answer_times_out_at_the_wait_asked_for() {
    let server = Server::start().await;
    let host = host(&allow(server.port, "")).await;
    let out = fetch(&host, &cx("chat-silent", "u"), json!({ "url": format!("http://localhost:{}/v1/silent", server.port), "timeout_ms": 100 })).await;
    assert_eq!(out["error"], code("ConnectionReadTimeout"), "{out}");
}

#[tokio::test]
async fn waiting_on_the_network_is_not_computation() {
    // 50 ms of compute; the server takes 500 ms to answer.
    let server = Server::start().await;
    let host = host(&format!("limits = {{ compute_ms = 50 }}\n{}", allow(server.port, ""))).await;
    let out = fetch(&host, &cx("chat-slow", "u"), json!({ "url": format!("http://localhost:{}/v1/slow", server.port) })).await;
    assert_eq!(out["status"], 200, "{out}");
}

/// `text` with every byte one higher: what the fixture scans memory for,
/// so the needle itself never matches.
fn shifted(text: &str) -> String {
    text.bytes().map(|b| char::from(b + 1)).collect()
}

#[tokio::test]
async fn the_secret_reaches_the_server_and_never_the_plugin_or_the_log() {
    const SECRET: &str = "tok-5Qz8-never-shown";
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secrets.toml");
    toolshed_network::secrets::write_secret(&file, None, "PLATFORM_TOKEN", SECRET).unwrap();
    let header = "header = { name = \"Authorization\", value = \"Bearer {secret}\", secret = \"PLATFORM_TOKEN\" }\n";
    let host = host_with(&allow(server.port, header), Arc::new(SecretStore::from_file(&file).unwrap())).await;
    let out = fetch(
        &host,
        &cx("chat-secret", "u"),
        json!({
            "url": format!("http://localhost:{}/v1/ok", server.port),
            "header": ["Authorization", "Bearer the-plugins-own"],
            "scan_for": shifted(SECRET),
        }),
    )
    .await;
    assert_eq!(out["status"], 200, "{out}");
    assert_eq!(server.seen()[0].headers["authorization"], format!("Bearer {SECRET}"), "the host's header replaces the plugin's");
    assert_eq!(out["found"], false, "the secret is nowhere in the plugin's memory: {out}");
    assert!(!out.to_string().contains(SECRET));
    // The scan finds what the plugin did receive.
    let control = fetch(&host, &cx("chat-secret", "u"), json!({ "url": format!("http://localhost:{}/v1/ok", server.port), "scan_for": shifted("hello") })).await;
    assert_eq!(control["found"], true, "{control}");
    assert!(!logged().contains(SECRET), "the secret is in the logs");
    assert!(logged().contains("TRACE"), "the logs are at trace level");
}

#[tokio::test]
async fn each_principal_sends_its_own_secret() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secrets.toml");
    toolshed_network::secrets::write_secret(&file, Some("user-a"), "TOKEN", "token-of-a").unwrap();
    toolshed_network::secrets::write_secret(&file, Some("user-b"), "TOKEN", "token-of-b").unwrap();
    let header = "header = { name = \"Authorization\", value = \"Bearer {secret}\", secret = \"TOKEN\" }\n";
    let host = host_with(&allow(server.port, header), Arc::new(SecretStore::from_file(&file).unwrap())).await;
    let url = format!("http://localhost:{}/v1/ok", server.port);
    for owner in ["user-a", "user-b"] {
        let out = fetch(&host, &cx("chat-principal", owner), json!({ "url": url })).await;
        assert_eq!(out["status"], 200, "{out}");
    }
    let sent: Vec<String> = server.seen().iter().map(|s| s.headers["authorization"].clone()).collect();
    assert_eq!(sent, ["Bearer token-of-a", "Bearer token-of-b"]);
    // A caller with no token of their own is refused, never given another's.
    let out = fetch(&host, &cx("chat-principal", "user-c"), json!({ "url": url })).await;
    assert!(out["error"].as_str().unwrap().contains("InternalError"), "{out}");
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn a_plugin_reads_its_configuration_from_its_policy() {
    let host = host("config = { base_url = \"https://platform.example.com/v1\", organization = \"acme\" }\n").await;
    let out = host.call(&cx("chat-config", "u"), "read_setting", &json!({ "key": "organization" }).to_string()).await;
    assert_eq!(out.value["value"], "acme", "{}", out.value);
    let out = host.call(&cx("chat-config", "u"), "read_setting", &json!({ "key": "token" }).to_string()).await;
    assert_eq!(out.value, json!({}), "an unset key reads as none");
}
