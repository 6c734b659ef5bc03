//! The caller's MCP client as a call reaches it
//! ([`toolshed_runtime::client::Client`]): the call's log records go to
//! this caller only, as `notifications/message` at or above the level its
//! session set with `logging/setLevel`; questions go to it as
//! `elicitation/create` when it said it can answer them; prompts for its
//! model go as `sampling/createMessage` when it offers sampling.

#![allow(deprecated)] // rmcp marks logging deprecated for a draft revision; every served revision has it.

use std::sync::{Arc, Mutex};

use rmcp::model::{CustomRequest, LoggingLevel, LoggingMessageNotificationParam, ServerRequest};
use rmcp::service::{Peer, RoleServer};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use toolshed_runtime::call_log::Level;
use toolshed_runtime::client::{Answer, AskError, Asking, Client, Sampling};

/// How many log records of one call may wait for the client; more are
/// dropped, so a plugin's flood or a slow client never grows a queue.
pub const LOG_QUEUE: usize = 64;

/// The level a session asked for with `logging/setLevel`; none until it asks,
/// and until then no record is sent.
#[derive(Debug, Default)]
pub struct SessionLevel(Mutex<Option<LoggingLevel>>);

impl SessionLevel {
    /// Sets the level.
    pub fn set(&self, level: LoggingLevel) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(level);
    }

    /// Whether a record at `level` goes to the client.
    pub fn admits(&self, level: LoggingLevel) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).is_some_and(|wanted| rank(level) >= rank(wanted))
    }
}

/// Severity, lowest first, as RFC 5424 orders the levels MCP names.
fn rank(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

fn mcp_level(level: Level) -> LoggingLevel {
    match level {
        Level::Debug => LoggingLevel::Debug,
        Level::Info => LoggingLevel::Info,
        Level::Warn => LoggingLevel::Warning,
        Level::Error => LoggingLevel::Error,
    }
}

/// One call's view of its caller's client.
pub struct CallClient {
    level: Arc<SessionLevel>,
    logs: mpsc::Sender<LoggingMessageNotificationParam>,
    asker: Option<Peer<RoleServer>>,
    sampler: Option<Peer<RoleServer>>,
}

impl CallClient {
    /// The client of one call: log records at or above `level` go to
    /// `peer` from a task of the call's own, ending when the call does
    /// (await the handle to have them all sent); questions go to `peer`
    /// when `can_ask`, and prompts for its model when `can_sample`.
    pub fn new(peer: Peer<RoleServer>, level: Arc<SessionLevel>, can_ask: bool, can_sample: bool) -> (Arc<CallClient>, tokio::task::JoinHandle<()>) {
        let (logs, mut queued) = mpsc::channel::<LoggingMessageNotificationParam>(LOG_QUEUE);
        let sender = peer.clone();
        let forwarder = tokio::spawn(async move {
            while let Some(record) = queued.recv().await {
                if sender.notify_logging_message(record).await.is_err() {
                    break;
                }
            }
        });
        let sampler = can_sample.then(|| peer.clone());
        (Arc::new(CallClient { level, logs, asker: can_ask.then_some(peer), sampler }), forwarder)
    }
}

impl Client for CallClient {
    fn log(&self, level: Level, logger: &str, message: &str) {
        let level = mcp_level(level);
        if self.level.admits(level) {
            // Full: the record is dropped, as the operator's log drops lines
            // it cannot keep up with.
            let _ = self.logs.try_send(LoggingMessageNotificationParam::new(level, Value::String(message.to_string())).with_logger(logger));
        }
    }

    fn can_ask(&self) -> bool {
        self.asker.is_some()
    }

    fn ask(&self, message: String, schema: Value) -> Option<Asking> {
        let peer = self.asker.clone()?;
        Some(Box::pin(async move {
            // Sent as the plain request so the schema reaches the client as
            // the tool wrote it (defaults, titles, enum names included).
            let params = json!({ "mode": "form", "message": message, "requestedSchema": schema });
            let request = ServerRequest::CustomRequest(CustomRequest::new("elicitation/create", Some(params)));
            let result = peer.send_request(request).await.map_err(|e| AskError::NoAnswer(format!("the client failed: {e}")))?;
            let result = serde_json::to_value(result).map_err(|e| AskError::NoAnswer(e.to_string()))?;
            match result.get("action").and_then(Value::as_str) {
                Some("accept") => match result.get("content") {
                    Some(Value::Object(fields)) => Ok(Answer::Accept(fields.clone())),
                    None | Some(Value::Null) => Ok(Answer::Accept(Default::default())),
                    Some(_) => Err(AskError::AnswerMismatch("the answer's content is not an object".into())),
                },
                Some("decline") => Ok(Answer::Decline),
                Some("cancel") => Ok(Answer::Cancel),
                _ => Err(AskError::NoAnswer("the client's answer has no action".into())),
            }
        }))
    }

    fn sample(&self, prompt: String, max_tokens: u32) -> Option<Sampling> {
        let peer = self.sampler.clone()?;
        Some(Box::pin(async move {
            let params = json!({
                "messages": [{ "role": "user", "content": { "type": "text", "text": prompt } }],
                "maxTokens": max_tokens,
            });
            let request = ServerRequest::CustomRequest(CustomRequest::new("sampling/createMessage", Some(params)));
            let result = peer.send_request(request).await.map_err(|e| AskError::NoAnswer(format!("the client failed: {e}")))?;
            let result = serde_json::to_value(result).map_err(|e| AskError::NoAnswer(e.to_string()))?;
            // One content block, or (2025-11-25) a list of them: the text ones, joined.
            let content = result.get("content").cloned().unwrap_or_default();
            let blocks = match content {
                Value::Array(blocks) => blocks,
                block => vec![block],
            };
            let text: Vec<&str> = blocks.iter().filter(|b| b.get("type").and_then(Value::as_str) == Some("text")).filter_map(|b| b.get("text")?.as_str()).collect();
            if text.is_empty() {
                return Err(AskError::NoAnswer("the model answered no text".into()));
            }
            Ok(text.join("\n"))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_go_out_at_or_above_the_sessions_level_and_none_before_it_asks() {
        let level = SessionLevel::default();
        assert!(!level.admits(LoggingLevel::Emergency), "nothing is sent before logging/setLevel");
        level.set(LoggingLevel::Warning);
        assert!(level.admits(LoggingLevel::Warning));
        assert!(level.admits(LoggingLevel::Error));
        assert!(!level.admits(LoggingLevel::Info));
        level.set(LoggingLevel::Debug);
        assert!(level.admits(LoggingLevel::Debug));
    }
}
