//! What a plugin shows besides its structured result, through API 0.3.0:
//! content blocks, log records for the caller's client, questions to the
//! user, resources and prompts. Bad input from the plugin or the client is
//! refused with a clear error and never grows the host's memory.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};
use toolshed_fixtures as fixtures;
use toolshed_harness::{OutputExt, TestEnv};
use toolshed_runtime::call_log::Level;
use toolshed_runtime::client::{Answer, AskError, Asking, Client};
use toolshed_runtime::content::{Block, Body, MAX_BLOCK_BYTES};
use toolshed_runtime::{Arguments, CallOptions, ToolOutput};

fn conformance_env() -> TestEnv {
    crate::support::env_with(&[("conformance", fixtures::CONFORMANCE)])
}

/// How the fake user answers.
#[derive(Clone)]
enum User {
    /// With this object.
    Answers(Value),
    /// Never.
    NeverAnswers,
}

/// A client that records what reaches it and answers as its user does.
struct FakeClient {
    user: Option<User>,
    logs: Mutex<Vec<(Level, String, String)>>,
    asked: Mutex<Vec<(String, Value)>>,
}

impl FakeClient {
    fn new(user: Option<User>) -> Arc<FakeClient> {
        Arc::new(FakeClient { user, logs: Mutex::default(), asked: Mutex::default() })
    }
}

impl Client for FakeClient {
    fn log(&self, level: Level, logger: &str, message: &str) {
        self.logs.lock().unwrap().push((level, logger.to_string(), message.to_string()));
    }

    fn can_ask(&self) -> bool {
        self.user.is_some()
    }

    fn ask(&self, message: String, schema: Value) -> Option<Asking> {
        let user = self.user.clone()?;
        self.asked.lock().unwrap().push((message, schema));
        Some(match user {
            User::Answers(Value::Object(fields)) => Box::pin(async move { Ok(Answer::Accept(fields)) }),
            User::Answers(_) => Box::pin(async { Ok(Answer::Decline) }),
            User::NeverAnswers => Box::pin(std::future::pending::<Result<Answer, AskError>>()),
        })
    }
}

async fn call_with_client(env: &TestEnv, tool: &str, arguments: Value, client: Option<Arc<FakeClient>>) -> ToolOutput {
    let options = CallOptions { client: client.map(|c| c as Arc<dyn Client>), ..CallOptions::default() };
    env.host.call_with(&env.context(), tool, Arguments::Json(&arguments), options).await
}

fn reply(out: &ToolOutput) -> String {
    out.ok()["text"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(start_paused = true)]
async fn content_blocks_come_back_beside_the_result_in_order() {
    let env = conformance_env();
    let out = env.call("test_multiple_content_types", json!({})).await;
    assert!(!out.is_error, "{}", out.value);
    assert_eq!(out.value["text"], "text, an image and a resource", "the structured result is kept");
    let [Block::Text(text), Block::Image { data, mime_type }, Block::Resource { uri, mime_type: resource_mime, body: Body::Text(body) }] = out.content.as_slice() else {
        panic!("{:?}", out.content);
    };
    assert_eq!(text, "Multiple content types test:");
    assert_eq!((&data[..4], mime_type.as_str()), (&[137, 80, 78, 71][..], "image/png"));
    assert_eq!((uri.as_str(), resource_mime.as_deref()), ("test://mixed-content-resource", Some("application/json")));
    assert!(body.contains("123"));
}

#[tokio::test(start_paused = true)]
async fn an_oversized_content_block_is_refused_and_the_call_goes_on() {
    let env = conformance_env();
    let out = env.call("add_text_block", json!({ "bytes": MAX_BLOCK_BYTES + 1 })).await;
    assert_eq!(reply(&out), "too-large");
    assert!(out.content.is_empty(), "nothing of the refused block is kept");
    let out = env.call("add_text_block", json!({ "bytes": 10 })).await;
    assert_eq!(reply(&out), "ok");
    assert_eq!(out.content, vec![Block::Text("x".repeat(10))]);
}

#[tokio::test(start_paused = true)]
async fn an_image_with_a_bad_mime_type_is_refused() {
    let env = conformance_env();
    for bad in ["text/html", "png", "image/", "audio/wav", "image/png\r\nX-Injected: 1"] {
        let out = env.call("add_image", json!({ "mime_type": bad })).await;
        assert_eq!(reply(&out), "bad-mime-type", "{bad:?}");
        assert!(out.content.is_empty(), "{bad:?}");
    }
    let out = env.call("add_image", json!({ "mime_type": "image/png" })).await;
    assert_eq!(reply(&out), "ok");
    assert_eq!(out.content.len(), 1);
    let out = env.call("add_link", json!({ "uri": "no scheme here" })).await;
    assert_eq!(reply(&out), "bad-uri");
}

#[tokio::test(start_paused = true)]
async fn log_records_go_to_the_callers_client_only() {
    let env = conformance_env();
    let (caller, other) = (FakeClient::new(None), FakeClient::new(None));
    let out = call_with_client(&env, "test_tool_with_logging", json!({}), Some(caller.clone())).await;
    assert!(!out.is_error, "{}", out.value);
    let logs = caller.logs.lock().unwrap().clone();
    let lines: Vec<&str> = logs.iter().map(|(_, _, line)| line.as_str()).collect();
    assert_eq!(lines, ["Tool execution started", "Tool processing data", "Tool execution completed"]);
    assert!(logs.iter().all(|(level, logger, _)| *level == Level::Info && logger == "conformance"), "{logs:?}");
    assert!(other.logs.lock().unwrap().is_empty(), "another caller's client hears nothing");
}

#[tokio::test(start_paused = true)]
async fn a_question_reaches_the_user_with_its_form_and_the_answer_reaches_the_tool() {
    let env = conformance_env();
    let client = FakeClient::new(Some(User::Answers(json!({ "response": "yes" }))));
    let out = call_with_client(&env, "test_elicitation", json!({ "message": "Proceed?" }), Some(client.clone())).await;
    assert_eq!(out.value["text"], r#"User response: action=accept, content={"response":"yes"}"#);
    let asked = client.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].0, "Proceed?");
    assert_eq!(asked[0].1["required"], json!(["response"]));

    let client = FakeClient::new(Some(User::Answers(json!({ "name": "Jane Smith", "age": 25, "score": 88.0, "status": "inactive", "verified": false }))));
    let out = call_with_client(&env, "test_elicitation_sep1034_defaults", json!({}), Some(client.clone())).await;
    assert!(out.value["text"].as_str().unwrap().contains("action=accept"), "{}", out.value);
    assert_eq!(client.asked.lock().unwrap()[0].1["properties"]["name"]["default"], "John Doe", "the form reaches the client as written");
}

#[tokio::test(start_paused = true)]
async fn an_answer_that_does_not_fit_the_form_never_reaches_the_tool() {
    let env = conformance_env();
    let client = FakeClient::new(Some(User::Answers(json!({ "username": "testuser", "email": "test@example.com" }))));
    let out = call_with_client(&env, "test_elicitation", json!({ "message": "Who are you?" }), Some(client)).await;
    assert_eq!(out.value["text"], "User response: no answer: answer-mismatch");
    let form = r#"{"type":"object","properties":{"cpus":{"type":"integer"}}}"#;
    let client = FakeClient::new(Some(User::Answers(json!({ "cpus": "four" }))));
    let out = call_with_client(&env, "ask_form", json!({ "message": "How many?", "schema": form }), Some(client)).await;
    assert_eq!(reply(&out), "no answer: answer-mismatch");
}

#[tokio::test(start_paused = true)]
async fn a_form_a_client_cannot_show_is_refused_before_anyone_is_asked() {
    let env = conformance_env();
    let client = FakeClient::new(Some(User::Answers(json!({}))));
    for bad in ["not json", r#"{"type":"object","properties":{"nested":{"type":"object"}}}"#, r#"{"type":"array"}"#] {
        let out = call_with_client(&env, "ask_form", json!({ "message": "?", "schema": bad }), Some(client.clone())).await;
        assert_eq!(reply(&out), "no answer: bad-schema", "{bad}");
    }
    assert!(client.asked.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_client_that_cannot_ask_gets_cannot_ask_at_once() {
    let env = conformance_env();
    let out = call_with_client(&env, "test_elicitation", json!({ "message": "?" }), Some(FakeClient::new(None))).await;
    assert_eq!(out.value["text"], "User response: no answer: cannot-ask");
    let out = call_with_client(&env, "test_elicitation", json!({ "message": "?" }), None).await;
    assert_eq!(out.value["text"], "User response: no answer: cannot-ask", "no client at all is a client that cannot ask");
}

#[tokio::test(start_paused = true)]
async fn a_user_who_never_answers_holds_the_call_no_longer_than_its_deadline() {
    let env = conformance_env();
    let deadline = env.host.plugin_for("test_elicitation").unwrap().policy.limits.deadline;
    let started = tokio::time::Instant::now();
    let out = call_with_client(&env, "test_elicitation", json!({ "message": "?" }), Some(FakeClient::new(Some(User::NeverAnswers)))).await;
    let waited = started.elapsed();
    assert!(waited <= deadline + Duration::from_secs(1), "waited {waited:?} past the {deadline:?} deadline");
    assert!(waited >= deadline - Duration::from_secs(1), "gave up early, after {waited:?}");
    // The ask ends at the deadline the whole call ends at: whichever of the
    // two the host sees first, the caller gets an answer, not a hang.
    let text = out.value.to_string();
    assert!(text.contains("no answer: no-answer") || out.value["code"] == "DEADLINE_EXCEEDED", "{text}");
}

#[tokio::test(start_paused = true)]
async fn resources_and_prompts_are_offers_not_tools() {
    let env = conformance_env();
    let tools: Vec<String> = env.host.tools().iter().map(|t| t.name.clone()).collect();
    assert!(!tools.iter().any(|t| t.contains("resource") && !t.starts_with("test_") || t == "get_prompt" || t == "list_prompts"), "{tools:?}");
    assert_eq!(env.host.offering("read_resource"), ["conformance"]);
    assert_eq!(env.host.offering("get_prompt"), ["conformance"]);

    let read = |uri: &str| {
        let (host, cx, uri) = (env.host.clone(), env.context(), uri.to_string());
        async move { host.call_offer(&cx, "conformance", "read_resource", &json!({ "uri": uri }), CallOptions::default()).await }
    };
    let out = read("test://template/123/data").await;
    assert!(!out.is_error, "{}", out.value);
    assert!(out.value["contents"][0]["body"]["value"].as_str().unwrap().contains("123"), "{}", out.value);
    let out = read("test://not-here").await;
    assert!(out.is_error);
    assert_eq!(out.value["code"], "RESOURCE_NOT_FOUND");

    let mut arguments = Map::new();
    arguments.insert("arg1".into(), json!("testValue1"));
    arguments.insert("arg2".into(), json!("testValue2"));
    let out = env
        .host
        .call_offer(&env.context(), "conformance", "get_prompt", &json!({ "name": "test_prompt_with_arguments", "arguments": arguments }), CallOptions::default())
        .await;
    let text = out.value["messages"][0]["content"]["value"].as_str().unwrap_or_default().to_string();
    assert!(text.contains("testValue1") && text.contains("testValue2"), "{}", out.value);
    let out = env.host.call_offer(&env.context(), "conformance", "list_prompts", &json!({}), CallOptions::default()).await;
    assert_eq!(out.value["prompts"].as_array().map(Vec::len), Some(4), "{}", out.value);
}

/// The workspace tools with a client, in the test's chat.
async fn call_tools(env: &TestEnv, tool: &str, arguments: Value, client: Option<Arc<FakeClient>>) -> ToolOutput {
    call_with_client(env, tool, arguments, client).await
}

/// The parameters of every create and start the backend was asked for.
fn requested_parameters(env: &TestEnv) -> Vec<Vec<(String, String)>> {
    env.backend
        .recorder()
        .calls()
        .into_iter()
        .filter_map(|(_, call)| match call {
            toolshed_harness::Call::CreateWorkspace(request) => Some(request.parameters),
            toolshed_harness::Call::CreateBuild(request) if request.transition == toolshed_harness::Transition::Start => Some(request.parameters),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn create_workspace_asks_for_a_required_parameter_without_a_default() {
    let (env, template) = crate::support::env_with_template();
    env.backend.set_parameters(&template.active_version_id, vec![crate::support::parameter("region", true)]);
    let client = FakeClient::new(Some(User::Answers(json!({ "region": "eu" }))));
    let out = call_tools(&env, "create_workspace", json!({ "template_id": template.id }), Some(client.clone())).await;
    assert_eq!(out.ok()["created"], true);
    let asked = client.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1, "asked once");
    assert!(asked[0].0.contains("docker"), "the question names the template: {}", asked[0].0);
    assert_eq!(asked[0].1["required"], json!(["region"]));
    assert_eq!(requested_parameters(&env), vec![vec![("region".to_string(), "eu".to_string())]]);
}

#[tokio::test(start_paused = true)]
async fn create_workspace_does_not_ask_for_what_it_was_given() {
    let (env, template) = crate::support::env_with_template();
    env.backend.set_parameters(&template.active_version_id, vec![crate::support::parameter("region", true)]);
    let client = FakeClient::new(Some(User::Answers(json!({ "region": "us" }))));
    let out = call_tools(&env, "create_workspace", json!({ "template_id": template.id, "parameters": { "region": "eu" } }), Some(client.clone())).await;
    assert_eq!(out.ok()["created"], true);
    assert!(client.asked.lock().unwrap().is_empty());
}

/// A stopped workspace whose template's new active version needs `region`.
fn outdated_env() -> TestEnv {
    let (env, template) = crate::support::env_with_template();
    env.backend.require_active_version(&template.id, true);
    env.backend.add_workspace(&template, toolshed_harness::Transition::Stop, toolshed_harness::BuildPlan::job(toolshed_harness::JobScript::succeeded()));
    env.backend.new_template_version(&template.id, vec![crate::support::parameter("region", true)]);
    env
}

#[tokio::test(start_paused = true)]
async fn start_workspace_asks_for_the_new_versions_parameter_and_starts() {
    let env = outdated_env();
    let client = FakeClient::new(Some(User::Answers(json!({ "region": "eu" }))));
    let out = call_tools(&env, "start_workspace", json!({}), Some(client.clone())).await;
    assert_eq!(out.ok()["updated_to_active_version"], true);
    assert_eq!(client.asked.lock().unwrap()[0].1["required"], json!(["region"]));
    assert_eq!(requested_parameters(&env).last().unwrap(), &vec![("region".to_string(), "eu".to_string())]);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_cannot_ask_gets_the_manual_update_error() {
    let env = outdated_env();
    for client in [None, Some(FakeClient::new(None))] {
        let out = call_tools(&env, "start_workspace", json!({}), client).await;
        assert_eq!(out.err()["code"], "TEMPLATE_PARAMETERS_REQUIRED");
    }
}

#[tokio::test(start_paused = true)]
async fn a_user_who_declines_is_not_guessed_for() {
    let env = outdated_env();
    let out = call_tools(&env, "start_workspace", json!({}), Some(FakeClient::new(Some(User::Answers(json!("no")))))).await;
    let err = out.err();
    assert_eq!(err["code"], "USER_DECLINED");
    assert_eq!(err["category"], "user_cancelled");
    assert!(err["error"].as_str().unwrap().contains("region"), "{err}");
    assert_eq!(requested_parameters(&env).len(), 1, "no start after the refusal but the first");
}

#[tokio::test(start_paused = true)]
async fn the_workspace_tools_offer_a_prompt_that_walks_through_create_wait_and_recover() {
    let env = crate::support::env();
    assert_eq!(env.host.offering("get_prompt"), ["workspace-tools"]);
    let listed = env.host.call_offer(&env.context(), "workspace-tools", "list_prompts", &json!({}), CallOptions::default()).await;
    assert_eq!(listed.value["prompts"][0]["name"], "provision_workspace", "{}", listed.value);
    let call = json!({ "name": "provision_workspace", "arguments": { "template": "docker" } });
    let out = env.host.call_offer(&env.context(), "workspace-tools", "get_prompt", &call, CallOptions::default()).await;
    let text = out.value["messages"][0]["content"]["value"].as_str().unwrap_or_default();
    for step in ["\"docker\"", "create_workspace", "STILL_IN_PROGRESS", "TEMPLATE_PARAMETERS_REQUIRED"] {
        assert!(text.contains(step), "{step}: {}", out.value);
    }
    let out = env.host.call_offer(&env.context(), "workspace-tools", "get_prompt", &json!({ "name": "nope", "arguments": {} }), CallOptions::default()).await;
    assert_eq!(out.value["code"], "PROMPT_NOT_FOUND");
}

#[tokio::test(start_paused = true)]
async fn a_builds_output_is_a_resource_only_its_owner_can_read_and_answers_link_to_it() {
    let (env, template) = crate::support::env_with_template();
    let script = toolshed_harness::JobScript::succeeded().printing("Step 9/9 : done");
    env.backend.push_plan(toolshed_harness::BuildPlan::job(script));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    let build_id = out.ok()["build_id"].as_str().unwrap().to_string();
    let uri = format!("build://{build_id}/output");
    assert!(out.content.iter().any(|block| matches!(block, Block::ResourceLink { uri: linked, .. } if *linked == uri)), "{:?}", out.content);

    let read = |cx: toolshed_runtime::CallContext, uri: String| {
        let host = env.host.clone();
        async move { host.call_offer(&cx, "workspace-tools", "read_resource", &json!({ "uri": uri }), CallOptions::default()).await }
    };
    let mine = read(env.context(), uri.clone()).await;
    assert_eq!(mine.ok()["contents"][0]["body"]["value"], "Step 9/9 : done");

    let bob = toolshed_runtime::CallContext {
        owner_id: toolshed_harness::ids::OTHER_OWNER.into(),
        chat_id: "c-other".into(),
        owner_name: "bob".into(),
        organization_id: toolshed_harness::ids::ORG.into(),
    };
    let theirs = read(bob.clone(), uri).await;
    let nobodys = read(bob, "build://00000000-0000-4000-8000-000000000000/output".into()).await;
    assert_eq!(theirs.err()["code"], "RESOURCE_NOT_FOUND");
    assert_eq!(theirs.value, nobodys.value, "another owner's build reads exactly as one that does not exist");
}
