//! MCP over streamable HTTP, as outside clients meet it: bearer tokens of
//! every kind of wrong, another owner's chat id, floods of one caller, odd
//! hosts, origins and bodies; and rmcp's own HTTP client, with sessions and
//! without, doing what it does over stdio.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rmcp::ServiceExt;
use rmcp::service::{ClientLifecycleMode, serve_client_with_lifecycle};
use rmcp::model::{CallToolRequestParams, ClientConfig, RequestMetaObject};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use toolshed_mcp::auth::{Auth, Jwks, JwtIssuer, TokenFile, hash_token};
use toolshed_mcp::http::HttpConfig;
use toolshed_mcp::{Principal, ServerSettings};

use crate::support::Local;

pub(crate) const ISSUER: &str = "https://issuer.test";
pub(crate) const OWNER_A: &str = "a2000000-0000-4000-8000-00000000000a";
pub(crate) const OWNER_B: &str = "a2000000-0000-4000-8000-00000000000b";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Signing keys made for this test run, and their public JWKS.
pub(crate) struct Keys {
    pub(crate) rsa: EncodingKey,
    pub(crate) ec: EncodingKey,
    pub(crate) stranger: EncodingKey,
    pub(crate) jwks: Value,
}

pub(crate) fn keys() -> Keys {
    use p256::pkcs8::EncodePrivateKey;
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::traits::PublicKeyParts;
    let mut rng = rand::thread_rng();
    let rsa = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let stranger = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let ec = p256::SecretKey::random(&mut rng);
    let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&ec.public_key(), false);
    let jwks = json!({ "keys": [
        { "kty": "RSA", "kid": "rsa-1", "alg": "RS256", "use": "sig", "n": b64(&rsa.n().to_bytes_be()), "e": b64(&rsa.e().to_bytes_be()) },
        { "kty": "EC", "kid": "ec-1", "alg": "ES256", "use": "sig", "crv": "P-256", "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()) },
    ]});
    Keys {
        rsa: EncodingKey::from_rsa_der(rsa.to_pkcs1_der().unwrap().as_bytes()),
        ec: EncodingKey::from_ec_der(ec.to_pkcs8_der().unwrap().as_bytes()),
        stranger: EncodingKey::from_rsa_der(stranger.to_pkcs1_der().unwrap().as_bytes()),
        jwks,
    }
}

pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

pub(crate) fn claims(owner: &str, audience: &str, expires: u64, scope: &str) -> Value {
    json!({ "iss": ISSUER, "sub": owner, "aud": audience, "exp": expires, "iat": now(), "preferred_username": owner.rsplit('-').next().unwrap(), "scope": scope })
}

pub(crate) fn sign(key: &EncodingKey, alg: Algorithm, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// A server on loopback over a fresh local backend, authenticating with
/// `auth`, `calls` calls per caller.
async fn server(local: &Local, auth: Option<Auth>, calls: usize, max_body: Option<usize>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let principal = Principal { owner_id: OWNER_A.into(), owner_name: "local-a".into(), organization_id: toolshed_local::LOCAL_ORG.into(), scopes: vec![] };
    let mut settings = ServerSettings::new(principal, Some(local.backend.clone()));
    settings.calls_per_principal = calls;
    let config = HttpConfig { auth, max_body_bytes: max_body, ..HttpConfig::default() };
    tokio::spawn(toolshed_mcp::http::serve_listener(local.host.clone(), Arc::new(settings), listener, config));
    addr
}

/// A server on loopback over a fresh local backend, exposed as `config` says.
async fn server_with(local: &Local, config: HttpConfig) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let principal = Principal { owner_id: OWNER_A.into(), owner_name: "local-a".into(), organization_id: toolshed_local::LOCAL_ORG.into(), scopes: vec![] };
    let settings = ServerSettings::new(principal, Some(local.backend.clone()));
    tokio::spawn(toolshed_mcp::http::serve_listener(local.host.clone(), Arc::new(settings), listener, config));
    addr
}

async fn jwt_auth(jwks: &Value, audience: &str) -> Auth {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks.to_string()).unwrap();
    let issuer = JwtIssuer::new(ISSUER, audience, toolshed_local::LOCAL_ORG, Jwks::File(path)).await.unwrap();
    Auth { tokens: None, jwt: Some(Arc::new(issuer)), required_scope: toolshed_mcp::auth::DEFAULT_SCOPE.into() }
}

pub(crate) fn initialize() -> Value {
    json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "curl", "version": "1" } } })
}

/// POSTs `body` to `/mcp` with `headers`; returns the status, the
/// `WWW-Authenticate` header and the body text.
pub(crate) async fn post(addr: SocketAddr, headers: &[(&str, &str)], body: String) -> (u16, String, String) {
    toolshed_mcp::tls::ensure_provider();
    let mut request = reqwest::Client::new()
        .post(format!("http://{addr}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.body(body).send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (status, challenge, response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_token_is_refused_with_its_reason_and_good_ones_get_in() {
    let local = Local::new().await;
    let keys = keys();
    let audience = "toolshed-under-test";
    let addr = server(&local, Some(jwt_auth(&keys.jwks, audience).await), 8, None).await;
    let metadata = format!("resource_metadata=\"http://{addr}/.well-known/oauth-protected-resource\"");
    let live = now() + 600;
    let scope = "toolshed:tools";

    let (status, challenge, _) = post(addr, &[], initialize().to_string()).await;
    assert_eq!(status, 401);
    assert!(challenge.starts_with("Bearer ") && challenge.contains(&metadata), "no token: {challenge}");

    let cases: [(&str, String, &str); 6] = [
        ("expired", sign(&keys.rsa, Algorithm::RS256, "rsa-1", &claims(OWNER_A, audience, now() - 3_600, scope)), "expired"),
        ("wrong audience", sign(&keys.rsa, Algorithm::RS256, "rsa-1", &claims(OWNER_A, "someone-else", live, scope)), "audience"),
        ("wrong signature", sign(&keys.stranger, Algorithm::RS256, "rsa-1", &claims(OWNER_A, audience, live, scope)), "signature"),
        ("unknown key", sign(&keys.stranger, Algorithm::RS256, "rsa-9", &claims(OWNER_A, audience, live, scope)), "not one of the issuer's"),
        ("malformed", "not.a.jwt".to_string(), "not a JWT"),
        ("unsigned", format!("{}.{}.", b64(br#"{"alg":"none","kid":"rsa-1"}"#), b64(claims(OWNER_A, audience, live, scope).to_string().as_bytes())), "not a JWT"),
    ];
    for (what, token, reason) in cases {
        let bearer = format!("Bearer {token}");
        let (status, challenge, body) = post(addr, &[("authorization", &bearer)], initialize().to_string()).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert!(challenge.contains("error=\"invalid_token\"") && challenge.contains(&metadata), "{what}: {challenge}");
        assert!(body.contains(reason), "{what}: {body}");
    }

    let unscoped = sign(&keys.rsa, Algorithm::RS256, "rsa-1", &claims(OWNER_A, audience, live, "openid"));
    let (status, challenge, _) = post(addr, &[("authorization", &format!("Bearer {unscoped}"))], initialize().to_string()).await;
    assert_eq!(status, 403, "a token without the scope");
    assert!(challenge.contains("insufficient_scope") && challenge.contains(scope), "{challenge}");

    for (key, alg, kid) in [(&keys.rsa, Algorithm::RS256, "rsa-1"), (&keys.ec, Algorithm::ES256, "ec-1")] {
        let good = sign(key, alg, kid, &claims(OWNER_A, audience, live, scope));
        let (status, _, body) = post(addr, &[("authorization", &format!("Bearer {good}"))], initialize().to_string()).await;
        assert_eq!(status, 200, "{alg:?}: {body}");
        assert!(body.contains("serverInfo"), "{body}");
    }

    toolshed_mcp::tls::ensure_provider();
    let metadata: Value = reqwest::get(format!("http://{addr}/.well-known/oauth-protected-resource")).await.unwrap().json().await.unwrap();
    assert_eq!(metadata["resource"], format!("http://{addr}/mcp"));
    assert_eq!(metadata["authorization_servers"], json!([ISSUER]));
    assert_eq!(metadata["scopes_supported"], json!([scope]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_token_file_lets_its_tokens_in_as_their_owners() {
    let local = Local::new().await;
    let file = format!(
        "[[token]]\nsha256 = \"{}\"\nowner_id = \"{OWNER_B}\"\nowner_name = \"bee\"\norganization_id = \"{}\"\n",
        hash_token("token-of-b"),
        toolshed_local::LOCAL_ORG
    );
    let auth = Auth { tokens: Some(Arc::new(TokenFile::parse(&file).unwrap())), jwt: None, required_scope: "toolshed:tools".into() };
    let addr = server(&local, Some(auth), 8, None).await;
    assert_eq!(post(addr, &[("authorization", "Bearer token-of-b")], initialize().to_string()).await.0, 200);
    let (status, _, body) = post(addr, &[("authorization", "Bearer token-of-c")], initialize().to_string()).await;
    assert_eq!(status, 401, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_beyond_loopback_needs_authentication() {
    let local = Local::new().await;
    let settings = Arc::new(ServerSettings::new(
        Principal { owner_id: OWNER_A.into(), owner_name: "a".into(), organization_id: "o".into(), scopes: vec![] },
        None,
    ));
    let err = toolshed_mcp::http::serve(local.host.clone(), settings, "0.0.0.0:0".parse().unwrap(), HttpConfig::default()).await.unwrap_err();
    assert!(err.to_string().contains("needs authentication"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_origins_and_hosts_and_oversized_bodies_are_refused() {
    let local = Local::new().await;
    let addr = server(&local, None, 8, Some(64 << 10)).await;
    let (status, _, _) = post(addr, &[("origin", "https://evil.example")], initialize().to_string()).await;
    assert_eq!(status, 403, "a foreign origin");
    let own = format!("http://{addr}");
    let (status, _, body) = post(addr, &[("origin", &own)], initialize().to_string()).await;
    assert_eq!(status, 200, "the server's own origin: {body}");
    let (status, _, _) = post(addr, &[("host", "evil.example")], initialize().to_string()).await;
    assert!(status == 403 || status == 400 || status == 421, "a foreign Host got {status}");
    let mut huge = initialize();
    huge["params"]["clientInfo"]["name"] = json!("x".repeat(200 << 10));
    let (status, _, _) = post(addr, &[], huge.to_string()).await;
    assert_eq!(status, 413, "a body past the limit");
}

/// The README's rule: a browser origin is accepted when it is the public
/// URL's or one listed; listing one does not drop the public URL's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_urls_origin_is_accepted_beside_the_listed_ones() {
    let local = Local::new().await;
    let config = HttpConfig {
        public_url: Some("https://tools.example/mcp".into()),
        auth: Some(tokens_for(&[("ta", OWNER_A, "ay")])),
        allowed_origins: vec!["https://app.example".into()],
        ..HttpConfig::default()
    };
    let addr = server_with(&local, config).await;
    for (origin, expected) in [("https://tools.example", 200), ("https://app.example", 200), ("https://evil.example", 403), ("http://tools.example", 403)] {
        let (status, _, body) = post(addr, &[("authorization", "Bearer ta"), ("origin", origin)], initialize().to_string()).await;
        assert_eq!(status, expected, "Origin {origin}: {body}");
    }
}

/// RFC 9728 §3.1: the metadata of `…/mcp` is at
/// `/.well-known/oauth-protected-resource/mcp`, which clients try first;
/// the root, where the challenge points, serves the same document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_is_served_at_the_root_and_at_the_resources_own_path() {
    toolshed_mcp::tls::ensure_provider();
    let local = Local::new().await;
    let config = HttpConfig { public_url: Some("https://tools.example/team/mcp".into()), auth: Some(tokens_for(&[("ta", OWNER_A, "ay")])), ..HttpConfig::default() };
    let addr = server_with(&local, config).await;
    let fetch = |path: &'static str| async move {
        let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap_or(Value::Null))
    };
    let (status, root) = fetch("/.well-known/oauth-protected-resource").await;
    assert_eq!(status, 200);
    assert_eq!(root["resource"], "https://tools.example/team/mcp", "{root}");
    for path in ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource/team/mcp"] {
        let (status, document) = fetch(path).await;
        assert_eq!((status, &document), (200, &root), "{path}");
    }
    // Another path is no metadata (behind the gate, it asks for a token).
    assert_ne!(fetch("/.well-known/oauth-protected-resource/other").await.0, 200);
}

/// `--public-url` says clients reach the server from beyond this machine
/// (through a proxy to a loopback bind, say): without authentication
/// `serve` refuses to start and says why, instead of serving the public
/// host as the local user.
#[test]
fn serve_refuses_a_public_url_without_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = std::process::Command::new(crate::support::TOOLSHED)
        .arg("--data-dir")
        .arg(crate::support::data_dir(dir.path()))
        .args(["serve", "--http", "127.0.0.1:0", "--public-url", "https://tools.example/mcp"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = serve.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            serve.kill().unwrap();
            serve.wait().unwrap();
            panic!("serve with a public URL and no authentication was still serving after 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(serve.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("--public-url") && stderr.contains("needs authentication"), "{stderr}");
}

/// An rmcp client over HTTP: legacy sessions when `legacy`, else MCP
/// 2026-07-28 requests without sessions; `token` as its bearer token.
pub(crate) async fn client(addr: SocketAddr, token: Option<&str>, legacy: bool) -> rmcp::service::RunningService<rmcp::RoleClient, ClientConfig> {
    toolshed_mcp::tls::ensure_provider();
    let mut config = StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp"));
    if let Some(token) = token {
        config = config.auth_header(token.to_string());
    }
    let transport = StreamableHttpClientTransport::from_config(config);
    if legacy {
        let mut info = ClientConfig::default();
        info.protocol_version = rmcp::model::ProtocolVersion::V_2025_06_18;
        info.serve(transport).await.unwrap()
    } else {
        // MCP 2026-07-28: discovery instead of a handshake, and no session.
        let modern = ClientLifecycleMode::Discover { preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28] };
        serve_client_with_lifecycle(ClientConfig::default(), transport, modern).await.unwrap()
    }
}

pub(crate) fn call(tool: &str, arguments: Value, chat: Option<&str>) -> CallToolRequestParams {
    let mut request = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments.as_object().unwrap().clone());
    if let Some(chat) = chat {
        let mut meta = RequestMetaObject::default();
        meta.insert("chat_id".into(), json!(chat));
        request.meta = Some(meta);
    }
    request
}

pub(crate) fn tokens_for(owners: &[(&str, &str, &str)]) -> Auth {
    let file: String = owners
        .iter()
        .map(|(token, owner, name)| {
            format!("[[token]]\nsha256 = \"{}\"\nowner_id = \"{owner}\"\nowner_name = \"{name}\"\norganization_id = \"{}\"\n", hash_token(token), toolshed_local::LOCAL_ORG)
        })
        .collect();
    Auth { tokens: Some(Arc::new(TokenFile::parse(&file).unwrap())), jwt: None, required_scope: "toolshed:tools".into() }
}

/// Chats are keyed by (owner, chat id): B naming A's chat id gets a chat of
/// B's own, which reaches nothing of A's, and B is never shut out of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_naming_another_owners_chat_gets_a_chat_of_its_own() {
    let local = Local::new().await;
    let t = local.push("app", &crate::support::template("app", "true", "true", "")).await;
    let addr = server(&local, Some(tokens_for(&[("ta", OWNER_A, "ay"), ("tb", OWNER_B, "bee")])), 8, None).await;
    let a = client(addr, Some("ta"), false).await;
    let b = client(addr, Some("tb"), false).await;
    let created = a.call_tool(call("create_workspace", json!({ "template_id": t.template_id, "name": "mine" }), Some("chat-of-a"))).await.unwrap();
    assert_eq!(created.structured_content.as_ref().unwrap()["workspace_name"], "ay/mine", "{created:?}");

    for tool in ["start_workspace", "stop_workspace"] {
        let answer = b.call_tool(call(tool, json!({}), Some("chat-of-a"))).await.unwrap().structured_content.unwrap();
        assert_ne!(answer["code"], "CHAT_NOT_FOUND", "B is not shut out of its own chat: {answer}");
        assert!(!answer.to_string().contains("ay/mine"), "{tool} reached A's workspace: {answer}");
        assert!(answer["error"].as_str().is_some_and(|e| e.contains("create_workspace")), "B's chat of that id has no workspace: {answer}");
    }
    let listed = b.call_tool(call("list_templates", json!({}), Some("chat-of-a"))).await.unwrap();
    assert_eq!(listed.structured_content.unwrap()["count"], 1);
    let theirs = b.call_tool(call("create_workspace", json!({ "template_id": t.template_id, "name": "mine" }), Some("chat-of-a"))).await.unwrap();
    assert_eq!(theirs.structured_content.as_ref().unwrap()["workspace_name"], "bee/mine", "B's own workspace, in B's own chat: {theirs:?}");

    let of_a = crate::support::chat_of(&local.backend, "chat-of-a", OWNER_A).await;
    let of_b = crate::support::chat_of(&local.backend, "chat-of-a", OWNER_B).await;
    assert!(of_a.workspace_id.is_some() && of_b.workspace_id.is_some() && of_a.workspace_id != of_b.workspace_id, "two chats: {of_a:?} {of_b:?}");
    let stopped = a.call_tool(call("stop_workspace", json!({}), Some("chat-of-a"))).await.unwrap();
    assert_eq!(stopped.structured_content.as_ref().unwrap()["workspace_name"], "ay/mine", "A's chat still reaches A's workspace: {stopped:?}");
    local.backend.stop_all_agents().await;
}

/// The attack on default chats: B names A's default chat id before A ever
/// calls. B gets a chat of its own; A's sessionless calls still reach A's
/// default chat, and only A's workspace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naming_another_owners_default_chat_first_neither_reaches_it_nor_shuts_its_owner_out() {
    let local = Local::new().await;
    let t = local.push("app", &crate::support::template("app", "true", "true", "")).await;
    let addr = server(&local, Some(tokens_for(&[("ta", OWNER_A, "ay"), ("tb", OWNER_B, "bee")])), 8, None).await;
    let default_of_a = toolshed_runtime::chats::default_chat(OWNER_A);
    let b = client(addr, Some("tb"), false).await;
    let squat = b.call_tool(call("create_workspace", json!({ "template_id": t.template_id, "name": "squat" }), Some(&default_of_a))).await.unwrap();
    assert_eq!(squat.structured_content.as_ref().unwrap()["workspace_name"], "bee/squat", "{squat:?}");

    // A, without a session or a chat named: its default chat.
    let started = client(addr, Some("ta"), false).await.call_tool(call("start_workspace", json!({}), None)).await.unwrap();
    let answer = started.structured_content.unwrap();
    assert_ne!(answer["code"], "CHAT_NOT_FOUND", "A is not shut out of its default chat: {answer}");
    assert!(!answer.to_string().contains("squat"), "A reached B's workspace: {answer}");
    let created = client(addr, Some("ta"), false).await.call_tool(call("create_workspace", json!({ "template_id": t.template_id, "name": "own" }), None)).await.unwrap();
    assert_eq!(created.structured_content.as_ref().unwrap()["workspace_name"], "ay/own", "{created:?}");
    let stopped = client(addr, Some("ta"), false).await.call_tool(call("stop_workspace", json!({}), None)).await.unwrap();
    assert_eq!(stopped.structured_content.as_ref().unwrap()["workspace_name"], "ay/own", "A's default chat reaches A's workspace: {stopped:?}");
    let again = b.call_tool(call("stop_workspace", json!({}), Some(&default_of_a))).await.unwrap();
    assert_eq!(again.structured_content.as_ref().unwrap()["workspace_name"], "bee/squat", "B's chat of that id is B's: {again:?}");
    local.backend.stop_all_agents().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_sessions_reach_the_callers_default_chat_every_time() {
    let local = Local::new().await;
    let t = local.push("app", &crate::support::template("app", "true", "true", "")).await;
    let addr = server(&local, Some(tokens_for(&[("ta", OWNER_A, "ay")])), 8, None).await;
    // A new client per call: no session, no chat named.
    let probe = client(addr, Some("ta"), false).await;
    assert_eq!(probe.peer_info().unwrap().protocol_version, rmcp::model::ProtocolVersion::V_2026_07_28, "the client has no session");
    let created = client(addr, Some("ta"), false).await.call_tool(call("create_workspace", json!({ "template_id": t.template_id }), None)).await.unwrap();
    assert_eq!(created.structured_content.as_ref().unwrap()["created"], true, "{created:?}");
    let stopped = client(addr, Some("ta"), false).await.call_tool(call("stop_workspace", json!({}), None)).await.unwrap();
    assert_eq!(stopped.structured_content.as_ref().unwrap()["stopped"], true, "the stop found the workspace the create made: {stopped:?}");
    let started = client(addr, Some("ta"), false).await.call_tool(call("start_workspace", json!({}), None)).await.unwrap();
    assert_eq!(started.structured_content.as_ref().unwrap()["started"], true, "{started:?}");
    let default = toolshed_runtime::chats::default_chat(OWNER_A);
    assert!(crate::support::chat_of(&local.backend, &default, OWNER_A).await.workspace_id.is_some());
    assert_eq!(local.backend.store().workspaces().await.unwrap().len(), 1, "one chat, one workspace");
    local.backend.stop_all_agents().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_callers_calls_are_capped_and_others_are_not_held_back() {
    let local = Local::new().await;
    let t = local.push("slow", &crate::support::template("slow", "sleep 3", "true", "")).await;
    let addr = server(&local, Some(tokens_for(&[("ta", OWNER_A, "ay"), ("tb", OWNER_B, "bee")])), 1, None).await;
    let a = Arc::new(client(addr, Some("ta"), true).await);
    let first = {
        let a = a.clone();
        let template = t.template_id.clone();
        tokio::spawn(async move { a.call_tool(call("create_workspace", json!({ "template_id": template }), Some("a-1"))).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = a.call_tool(call("list_templates", json!({}), Some("a-2"))).await.unwrap();
    assert_eq!(second.structured_content.as_ref().unwrap()["code"], "TOO_MANY_CALLS", "{second:?}");
    let other = client(addr, Some("tb"), true).await.call_tool(call("list_templates", json!({}), Some("b-1"))).await.unwrap();
    assert_eq!(other.is_error, Some(false), "another caller is not held back: {other:?}");
    assert_eq!(first.await.unwrap().unwrap().structured_content.unwrap()["created"], true);
    local.backend.stop_all_agents().await;
}

/// Records progress and tool-list changes.
#[derive(Clone, Default)]
struct Heard {
    progress: Arc<Mutex<Vec<String>>>,
    list_changed: Arc<tokio::sync::Notify>,
}

impl rmcp::handler::client::ClientHandler for Heard {
    async fn on_progress(&self, params: rmcp::model::ProgressNotificationParam, _: rmcp::service::NotificationContext<rmcp::RoleClient>) {
        self.progress.lock().unwrap().push(params.message.unwrap_or_default());
    }
    async fn on_tool_list_changed(&self, _: rmcp::service::NotificationContext<rmcp::RoleClient>) {
        self.list_changed.notify_one();
    }
    fn get_info(&self) -> ClientConfig {
        let mut info = ClientConfig::default();
        info.protocol_version = rmcp::model::ProtocolVersion::V_2025_06_18;
        info
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_clients_list_call_get_errors_progress_cancellation_and_list_changes() {
    let local = Local::new().await;
    let t = local.push("app", &crate::support::template("app", "sleep 1", "true", "")).await;
    let addr = server(&local, None, 8, None).await;

    for legacy in [false, true] {
        let client = client(addr, None, legacy).await;
        let tools = client.list_all_tools().await.unwrap();
        assert!(tools.iter().any(|t| t.name == "create_workspace"), "legacy={legacy}");
        let listed = client.call_tool(call("list_templates", json!({}), Some(&format!("list-{legacy}")))).await.unwrap();
        assert_eq!(listed.structured_content.as_ref().unwrap()["count"], 1);
        let bad = client.call_tool(call("read_template", json!({ "template_id": "nope" }), None)).await.unwrap();
        assert_eq!((bad.is_error, bad.structured_content.as_ref().unwrap()["code"].clone()), (Some(true), json!("INVALID_TEMPLATE_ID")));
    }

    // Without a session: progress rides on the call's own response stream.
    toolshed_mcp::tls::ensure_provider();
    let stateless = Heard::default();
    let transport = StreamableHttpClientTransport::from_config(StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp")));
    let modern = ClientLifecycleMode::Discover { preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28] };
    let client = serve_client_with_lifecycle(stateless.clone(), transport, modern).await.unwrap();
    let created = client.call_tool(call("create_workspace", json!({ "template_id": t.template_id }), Some("stateless-progress"))).await.unwrap();
    assert_eq!(created.structured_content.as_ref().unwrap()["created"], true, "{created:?}");
    assert!(stateless.progress.lock().unwrap().iter().any(|m| m.contains("build")), "{:?}", stateless.progress.lock().unwrap());

    // A legacy session: progress while a build runs, and a list change.
    toolshed_mcp::tls::ensure_provider();
    let heard = Heard::default();
    let transport = StreamableHttpClientTransport::from_config(StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp")));
    let session = heard.clone().serve(transport).await.unwrap();
    let created = session.call_tool(call("create_workspace", json!({ "template_id": t.template_id }), Some("progress"))).await.unwrap();
    assert_eq!(created.structured_content.as_ref().unwrap()["created"], true, "{created:?}");
    assert!(heard.progress.lock().unwrap().iter().any(|m| m.contains("build")), "{:?}", heard.progress.lock().unwrap());
    let changed = heard.list_changed.notified();
    local.host.remove("registry-tools");
    tokio::time::timeout(Duration::from_secs(30), changed).await.expect("list_changed over the session");

    // Cancellation ends the call.
    let slow = local.push("slower", &crate::support::template("slower", "exec sleep 60", "true", "")).await;
    let request = rmcp::model::ClientRequest::CallToolRequest(rmcp::model::Request::new(call("create_workspace", json!({ "template_id": slow.template_id }), Some("cancel"))));
    let handle = session.send_cancellable_request(request, rmcp::service::PeerRequestOptions::no_options()).await.unwrap();
    let waiting = async {
        while local.host.stats().calls() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), waiting).await.expect("the call started");
    handle.cancel(Some("changed my mind".into())).await.unwrap();
    let ended = async {
        while local.host.stats().calls() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), ended).await.expect("the cancelled call ended");
    local.backend.stop_all_agents().await;
}

#[test]
fn toolshed_token_prints_the_token_once_and_writes_only_its_hash_to_the_file() {
    let out = std::process::Command::new(crate::support::TOOLSHED)
        .args(["token", "--owner-id", OWNER_B, "--owner-name", "bee", "--organization-id", toolshed_local::LOCAL_ORG])
        .output()
        .unwrap();
    assert!(out.status.success());
    let (entry, shown) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    let token = shown.lines().last().unwrap().trim();
    assert!(token.len() >= 32, "{shown}");
    assert!(!entry.contains(token), "the file entry holds the token itself: {entry}");
    let file = TokenFile::parse(&entry).unwrap();
    assert_eq!(file.principal(token).unwrap().owner_id, OWNER_B);
}

/// A call that reports no progress is answered as one JSON object, not an
/// event stream; a call that reports progress to a client that asked for it
/// still streams, progress first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_without_progress_is_answered_as_json_and_one_with_progress_as_a_stream() {
    toolshed_mcp::tls::ensure_provider();
    let local = Local::new().await;
    // A build that is still running at the first poll, whose heartbeat is
    // the progress.
    let t = local.push("app", &crate::support::template("app", "sleep 0.2", "true", "")).await;
    let addr = server(&local, None, 8, None).await;
    let meta = json!({ "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {} });
    let mut with_progress = meta.clone();
    with_progress["progressToken"] = json!("p-1");
    let cases = [
        ("list_templates", json!({}), meta, "application/json"),
        ("create_workspace", json!({ "template_id": t.template_id, "name": "streamed" }), with_progress, "text/event-stream"),
    ];
    for (tool, arguments, meta, expected) in cases {
        let body = json!({ "jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": { "name": tool, "arguments": arguments, "_meta": meta } });
        let response = reqwest::Client::new()
            .post(format!("http://{addr}/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", tool)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
        let text = response.text().await.unwrap();
        assert!(content_type.starts_with(expected), "{tool}: {content_type}: {text}");
        let messages: Vec<Value> = text
            .lines()
            .filter_map(|l| if expected == "application/json" { Some(l) } else { l.strip_prefix("data: ") })
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {text}")))
            .collect();
        let answer = messages.last().unwrap();
        assert_eq!(answer["id"], 7, "{text}");
        assert_eq!(answer["result"]["isError"], false, "{text}");
        if expected == "text/event-stream" {
            assert_eq!(messages[0]["method"], "notifications/progress", "progress comes first: {text}");
        }
    }
    local.backend.stop_all_agents().await;
}

/// A sessionless client that hangs up while its call waits on a build: the
/// answer would have been JSON, and the call's instance ends with the
/// connection instead of waiting out the build for nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_mid_call_ends_the_call() {
    use tokio::io::AsyncWriteExt;
    let local = Local::new().await;
    let slow = local.push("slow", &crate::support::template("slow", "exec sleep 60", "true", "")).await;
    let addr = server(&local, None, 8, None).await;
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "create_workspace", "arguments": { "template_id": slow.template_id },
        "_meta": { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {} } } })
    .to_string();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\n\
         mcp-protocol-version: 2026-07-28\r\nmcp-method: tools/call\r\nmcp-name: create_workspace\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut connection = tokio::net::TcpStream::connect(addr).await.unwrap();
    connection.write_all(request.as_bytes()).await.unwrap();
    let started = async {
        while local.host.stats().calls() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), started).await.expect("the call started");
    drop(connection);
    let ended = async {
        while local.host.stats().calls() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), ended).await.expect("the call ended with its connection");
    local.backend.stop_all_agents().await;
}

/// The event stream of one request in a session, as (event ids, messages).
async fn session_stream(addr: SocketAddr, session: &str, body: Value) -> (Vec<String>, Vec<Value>) {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let ids = text.lines().filter_map(|l| l.strip_prefix("id:")).map(|id| id.trim().to_string()).collect();
    let messages = text.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim).filter(|l| !l.is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect();
    (ids, messages)
}

/// The spec asks for SSE event ids unique across all the streams of a
/// session, since a client resumes with the last one it saw: two calls of
/// one session that stream progress never share an id, and the session
/// names toolshed as its server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_ids_are_unique_across_the_streams_of_a_session() {
    toolshed_mcp::tls::ensure_provider();
    let local = Local::new().await;
    let t = local.push("app", &crate::support::template("app", "sleep 0.3", "true", "")).await;
    let addr = server(&local, None, 8, None).await;
    let init = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "raw", "version": "1" } } });
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(init.to_string())
        .send()
        .await
        .unwrap();
    let session = response.headers()["mcp-session-id"].to_str().unwrap().to_string();
    let text = response.text().await.unwrap();
    let mut seen: Vec<String> = text.lines().filter_map(|l| l.strip_prefix("id:")).map(|id| id.trim().to_string()).collect();
    let line = text.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim).find(|l| !l.is_empty()).unwrap_or(text.as_str());
    let answer: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(answer["result"]["serverInfo"]["name"], "toolshed", "{answer}");
    assert_eq!(answer["result"]["serverInfo"]["version"], env!("CARGO_PKG_VERSION"), "{answer}");
    let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    reqwest::Client::new()
        .post(format!("http://{addr}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .body(initialized.to_string())
        .send()
        .await
        .unwrap();

    // The session's own stream, for server messages outside any request:
    // the id of its first event.
    let mut standalone = reqwest::Client::new()
        .get(format!("http://{addr}/mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(standalone.status(), 200);
    // A new plugin version: its list_changed goes out on that stream.
    local.host.install("registry-tools", crate::mcp::distinct(toolshed_builtin::REGISTRY_TOOLS)).await.unwrap();
    let announced = async {
        loop {
            let chunk = standalone.chunk().await.unwrap().expect("the stream stays open");
            let text = String::from_utf8_lossy(&chunk).to_string();
            if text.contains("notifications/tools/list_changed") {
                return text;
            }
        }
    };
    let announced = tokio::time::timeout(Duration::from_secs(10), announced).await.expect("list_changed on the standalone stream");
    seen.extend(announced.lines().filter_map(|l| l.strip_prefix("id:")).map(|id| id.trim().to_string()));

    for (id, chat) in [(2, "events-a"), (3, "events-b")] {
        let call = json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": { "name": "create_workspace",
            "arguments": { "template_id": t.template_id }, "_meta": { "progressToken": format!("p-{id}"), "chat_id": chat } } });
        let (ids, messages) = session_stream(addr, &session, call).await;
        assert!(messages.iter().any(|m| m["method"] == "notifications/progress"), "the call streamed progress: {messages:?}");
        assert_eq!(messages.last().unwrap()["result"]["isError"], false, "{messages:?}");
        assert!(!ids.is_empty(), "the stream carries event ids");
        seen.extend(ids);
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "an event id repeats within the session: {seen:?}");
    local.backend.stop_all_agents().await;
}
