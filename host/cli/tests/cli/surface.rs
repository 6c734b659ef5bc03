//! `toolshed serve` over stdio, driven by rmcp's client, serving the
//! conformance fixture: log records at the level the session set, content
//! blocks, a question answered by the client, resources and prompts. The
//! official suite drives the same over HTTP (`tests/conformance/run.sh`).

#![allow(deprecated)] // rmcp marks logging deprecated for a draft revision.

use std::sync::{Arc, Mutex};

use rmcp::ErrorData as McpError;
use rmcp::handler::client::ClientHandler;
use rmcp::model::{
    CallToolRequestParams, ClientConfig, ElicitRequestParams, ElicitResult, ElicitationAction, GetPromptRequestParams, LoggingLevel,
    LoggingMessageNotificationParam, ReadResourceRequestParams, SetLevelRequestParams,
};
use rmcp::service::{NotificationContext, RequestContext, RoleClient};
use rmcp::transport::TokioChildProcess;
use rmcp::ServiceExt;
use serde_json::{Value, json};

use crate::support::{TOOLSHED, data_dir};

/// A client that can ask its user, who answers every question with
/// `{"response": "yes"}`; it records the log records it hears.
#[derive(Clone, Default)]
struct AskingClient {
    logs: Arc<Mutex<Vec<String>>>,
    asked: Arc<Mutex<Vec<String>>>,
}

impl ClientHandler for AskingClient {
    async fn on_logging_message(&self, params: LoggingMessageNotificationParam, _context: NotificationContext<RoleClient>) {
        self.logs.lock().unwrap().push(params.data.as_str().unwrap_or_default().to_string());
    }

    async fn create_elicitation(&self, request: ElicitRequestParams, _context: RequestContext<RoleClient>) -> Result<ElicitResult, McpError> {
        let asked = serde_json::to_value(&request).unwrap();
        self.asked.lock().unwrap().push(asked["message"].as_str().unwrap_or_default().to_string());
        Ok(ElicitResult::new(ElicitationAction::Accept).with_content(json!({ "response": "yes" })))
    }

    fn get_info(&self) -> ClientConfig {
        let mut config = ClientConfig::default();
        config.capabilities = serde_json::from_value(json!({ "elicitation": {} })).unwrap();
        config
    }
}

fn call(name: &str, arguments: Value) -> CallToolRequestParams {
    CallToolRequestParams::new(name.to_string()).with_arguments(arguments.as_object().unwrap().clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_stdio_a_client_gets_logs_content_questions_resources_and_prompts() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::write(plugins.join("conformance.wasm"), toolshed_fixtures::CONFORMANCE).unwrap();
    let policy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance/policy.toml");
    let mut command = tokio::process::Command::new(TOOLSHED);
    command.arg("--data-dir").arg(data_dir(dir.path())).arg("--plugins").arg(&plugins).arg("--policy").arg(&policy).arg("serve");
    let handler = AskingClient::default();
    let client = handler.clone().serve(TokioChildProcess::new(command).unwrap()).await.unwrap();

    // Nothing is logged to a session before it asks for a level.
    client.call_tool(call("test_tool_with_logging", json!({}))).await.unwrap();
    assert!(handler.logs.lock().unwrap().is_empty(), "{:?}", handler.logs.lock().unwrap());
    client.set_level(SetLevelRequestParams::new(LoggingLevel::Info)).await.unwrap();
    client.call_tool(call("test_tool_with_logging", json!({}))).await.unwrap();
    assert_eq!(*handler.logs.lock().unwrap(), ["Tool execution started", "Tool processing data", "Tool execution completed"], "sent before the answer");

    let mixed = serde_json::to_value(client.call_tool(call("test_multiple_content_types", json!({}))).await.unwrap()).unwrap();
    let kinds: Vec<&str> = mixed["content"].as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["text", "image", "resource", "text"], "the blocks, then the result as JSON text: {mixed}");
    assert_eq!(mixed["structuredContent"]["text"], "text, an image and a resource");

    let asked = serde_json::to_value(client.call_tool(call("test_elicitation", json!({ "message": "Proceed?" }))).await.unwrap()).unwrap();
    assert_eq!(asked["structuredContent"]["text"], r#"User response: action=accept, content={"response":"yes"}"#, "{asked}");
    assert_eq!(*handler.asked.lock().unwrap(), ["Proceed?"]);

    let read = client.read_resource(ReadResourceRequestParams::new("test://template/7/data")).await.unwrap();
    assert!(serde_json::to_string(&read).unwrap().contains("Data for ID: 7"));
    let missing = client.read_resource(ReadResourceRequestParams::new("test://nothing-here")).await.unwrap_err();
    assert!(missing.to_string().contains("-32002") || missing.to_string().contains("Resource not found"), "{missing}");

    let prompt = client.get_prompt(GetPromptRequestParams::new("test_prompt_with_image")).await.unwrap();
    let prompt = serde_json::to_value(prompt).unwrap();
    assert_eq!(prompt["messages"][0]["content"]["type"], "image", "{prompt}");
    client.cancel().await.unwrap();
}
