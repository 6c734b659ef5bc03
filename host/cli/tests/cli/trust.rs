//! Trust boundaries as a caller that means harm meets them: quotas that
//! answer `QUOTA_EXCEEDED` through the real tools and MCP server, and a
//! failing store whose SQL, URL and password never reach the answer.

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::{Value, json};
use toolshed_mcp::http::HttpConfig;
use toolshed_mcp::{Principal, ServerSettings};
use toolshed_runtime::CallContext;
use toolshed_runtime::quota::Quotas;

use crate::http::{call, client};
use crate::support::{Local, template};

const OWNER_A: &str = "a4000000-0000-4000-8000-00000000000a";
const OWNER_B: &str = "a4000000-0000-4000-8000-00000000000b";

/// A server on loopback over `local`, whose unauthenticated callers are
/// `owner`.
async fn server_as(local: &Local, owner: &str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let principal = Principal { owner_id: owner.into(), owner_name: "caller".into(), organization_id: toolshed_local::LOCAL_ORG.into(), scopes: vec![] };
    let settings = ServerSettings::new(principal, Some(local.backend.clone()));
    tokio::spawn(toolshed_mcp::http::serve_listener(local.host.clone(), Arc::new(settings), listener, HttpConfig::default()));
    addr
}

fn context(owner: &str, chat: &str) -> CallContext {
    CallContext { owner_id: owner.into(), ..toolshed_local::local_context(chat) }
}

fn assert_quota(answer: &Value, name: &str, limit: u64) {
    assert_eq!(answer["code"], "QUOTA_EXCEEDED", "{answer}");
    assert_eq!(answer["category"], "resource_unavailable");
    assert_eq!(answer["recoverable"], true);
    assert_eq!(answer["quota"], json!({ "name": name, "limit": limit }));
    assert!(answer["suggestions"][0].as_str().is_some_and(|s| !s.is_empty()), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_past_the_live_workspace_quota_answers_quota_exceeded_and_a_stop_frees_it() {
    let local = Local::open_with(tempfile::tempdir().unwrap(), |config| config.quotas = Quotas { live_workspaces: 1, ..Quotas::default() }).await;
    let t = local.push("app", &template("app", "true", "true", "")).await;
    let first = local.host.call_value(&context(OWNER_A, "one"), "create_workspace", &json!({ "template_id": t.template_id })).await;
    assert_eq!(first.value["created"], true, "{}", first.value);
    let second = local.host.call_value(&context(OWNER_A, "two"), "create_workspace", &json!({ "template_id": t.template_id })).await;
    assert!(second.is_error);
    assert_quota(&second.value, "live_workspaces", 1);
    assert!(second.value["suggestions"][0].as_str().unwrap().contains("stop_workspace"), "{}", second.value);
    assert_eq!(local.backend.store().workspaces().await.unwrap().len(), 1, "nothing past the quota was made");

    let theirs = local.host.call_value(&context(OWNER_B, "two"), "create_workspace", &json!({ "template_id": t.template_id })).await;
    assert_eq!(theirs.value["created"], true, "another owner is not held back: {}", theirs.value);

    let stopped = local.host.call_value(&context(OWNER_A, "one"), "stop_workspace", &json!({})).await;
    assert_eq!(stopped.value["stopped"], true, "{}", stopped.value);
    let again = local.host.call_value(&context(OWNER_A, "two"), "create_workspace", &json!({ "template_id": t.template_id })).await;
    assert_eq!(again.value["created"], true, "a stopped workspace frees its slot: {}", again.value);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_chat_past_the_chat_quota_is_refused_and_the_default_chat_never_is() {
    let local = Local::open_with(tempfile::tempdir().unwrap(), |config| config.quotas = Quotas { chats: 1, ..Quotas::default() }).await;
    let t = local.push("app", &template("app", "true", "true", "")).await;
    let a = client(server_as(&local, OWNER_A).await, None, false).await;
    let created = a.call_tool(call("create_workspace", json!({ "template_id": t.template_id, "name": "one" }), Some("first"))).await.unwrap();
    assert_eq!(created.structured_content.unwrap()["created"], true);
    let refused = a.call_tool(call("list_templates", json!({}), Some("second"))).await.unwrap();
    assert_eq!(refused.is_error, Some(true));
    assert_quota(&refused.structured_content.unwrap(), "chats", 1);
    // The chat it has, and its default chat, still answer.
    let kept = a.call_tool(call("list_templates", json!({}), Some("first"))).await.unwrap();
    assert_eq!(kept.structured_content.unwrap()["count"], 1);
    let default = a.call_tool(call("create_workspace", json!({ "template_id": t.template_id, "name": "two" }), None)).await.unwrap();
    assert_eq!(default.structured_content.unwrap()["created"], true, "the default chat is never refused");
    // Another owner is not held back.
    let b = client(server_as(&local, OWNER_B).await, None, false).await;
    let theirs = b.call_tool(call("list_templates", json!({}), Some("second"))).await.unwrap();
    assert_eq!(theirs.structured_content.unwrap()["count"], 1);
}

/// A store that fails mid-flight (its tables dropped under it) on a
/// database whose URL carries a password: the answers say the store failed
/// and nothing of the query, the server or the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_failures_reach_callers_without_sql_the_database_url_or_its_password() {
    use sqlx::Connection;
    let scratch = toolshed_local::scratch::ScratchDatabase::create().await.unwrap();
    let password = "hunter2-not-a-real-secret";
    let url = scratch.url().replacen("://postgres@", &format!("://postgres:{password}@"), 1);
    assert!(url.contains(password), "the test server's URL names the postgres user: {}", scratch.url());
    let local = Local::open_with(tempfile::tempdir().unwrap(), |config| config.database = Some(url.clone())).await;
    local.push("app", &template("app", "true", "true", "")).await;
    let mut admin = sqlx::postgres::PgConnection::connect(scratch.url()).await.unwrap();
    sqlx::raw_sql("DROP TABLE templates; DROP TABLE chats; DROP TABLE tasks").execute(&mut admin).await.unwrap();

    let a = client(server_as(&local, OWNER_A).await, None, false).await;
    let in_default = a.call_tool(call("list_templates", json!({}), None)).await.unwrap();
    let in_named = a.call_tool(call("list_templates", json!({}), Some("named"))).await.unwrap();
    let direct = local.host.call_value(&context(OWNER_A, "direct"), "create_workspace", &json!({ "template_id": uuid::Uuid::new_v4().to_string() })).await;
    let answers = [in_default.structured_content.unwrap(), in_named.structured_content.unwrap(), direct.value];
    assert_eq!(answers[1]["code"], "CHAT_DIRECTORY_FAILED", "{}", answers[1]);
    for answer in &answers {
        assert!(answer["error"].is_string(), "a failure: {answer}");
        let text = answer.to_string();
        for leak in ["SELECT", "FROM", "relation", "does not exist", "postgres://", password, "127.0.0.1", "5432", &scratch.url()[..20]] {
            assert!(!text.contains(leak), "the answer holds {leak:?}: {text}");
        }
    }
}
