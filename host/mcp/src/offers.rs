//! Resources and prompts, as plugins offer them (`toolshed:tools/resources`
//! and `toolshed:tools/prompts`), mapped to MCP. Every request runs on the
//! caller's behalf in each offering plugin, which answers only what that
//! caller may see: another owner's resource reads as one that does not
//! exist.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rmcp::ErrorData as McpError;
use serde_json::{Map, Value, json};
use toolshed_runtime::{CallContext, CallOptions, ToolOutput, Toolshed};

/// The most resources one session may be subscribed to at once.
pub const MAX_SUBSCRIPTIONS: usize = 256;

/// The code a plugin answers for a resource it does not serve, or one the
/// caller may not read.
pub const RESOURCE_NOT_FOUND: &str = "RESOURCE_NOT_FOUND";
/// The code a plugin answers for a prompt it does not offer.
pub const PROMPT_NOT_FOUND: &str = "PROMPT_NOT_FOUND";

/// MCP's error code for a resource that does not exist (or is not yours).
const MCP_RESOURCE_NOT_FOUND: i32 = -32002;

/// What one call of an offer answered: its value, or the error object's
/// code and message.
fn answered(out: ToolOutput) -> Result<Value, (String, String)> {
    if out.is_error {
        let code = out.value.get("code").and_then(Value::as_str).unwrap_or("ERROR").to_string();
        let message = out.value.get("error").and_then(Value::as_str).unwrap_or("the plugin failed").to_string();
        Err((code, message))
    } else {
        Ok(out.value)
    }
}

/// Calls `function` of every plugin offering it, in name order, and keeps
/// the answers that succeeded.
async fn from_each(host: &Toolshed, cx: &CallContext, function: &str, arguments: &Value) -> Vec<Value> {
    let mut answers = Vec::new();
    for plugin in host.offering(function) {
        match answered(host.call_offer(cx, &plugin, function, arguments, CallOptions::default()).await) {
            Ok(value) => answers.push(value),
            Err((code, message)) => tracing::warn!(plugin, function, code, "an offer failed: {message}"),
        }
    }
    answers
}

/// A field that is `null` in the reflected JSON is left out in MCP's.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(object) => Value::Object(object.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (camel(k), without_nulls(v))).collect()),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// A reflected snake_case name in MCP's camelCase.
fn camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn parse<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, McpError> {
    serde_json::from_value(value).map_err(|e| McpError::internal_error(format!("a plugin's answer does not fit MCP: {e}"), None))
}

/// Every resource the caller can read, from every plugin offering them.
pub(crate) async fn list_resources(host: &Toolshed, cx: &CallContext) -> Result<rmcp::model::ListResourcesResult, McpError> {
    let mut resources = Vec::new();
    for listing in from_each(host, cx, "list_resources", &json!({})).await {
        resources.extend(listing.get("resources").and_then(Value::as_array).into_iter().flatten().map(without_nulls));
    }
    parse(json!({ "resources": resources }))
}

/// Every resource template, from every plugin offering them.
pub(crate) async fn list_templates(host: &Toolshed, cx: &CallContext) -> Result<rmcp::model::ListResourceTemplatesResult, McpError> {
    let mut templates = Vec::new();
    for listing in from_each(host, cx, "list_resources", &json!({})).await {
        templates.extend(listing.get("templates").and_then(Value::as_array).into_iter().flatten().map(without_nulls));
    }
    parse(json!({ "resourceTemplates": templates }))
}

/// A reflected `body` variant as MCP resource contents' text or blob.
fn body_json(body: &Value) -> Option<(&'static str, Value)> {
    match (body.get("tag")?.as_str()?, body.get("value")?) {
        ("text", Value::String(text)) => Some(("text", Value::String(text.clone()))),
        ("blob", Value::Array(bytes)) => {
            let bytes: Vec<u8> = bytes.iter().filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok())).collect();
            Some(("blob", Value::String(STANDARD.encode(bytes))))
        }
        _ => None,
    }
}

/// Reads `uri` for the caller from the first plugin that serves it.
///
/// # Errors
///
/// MCP's resource-not-found error when no plugin serves it to this caller.
pub(crate) async fn read_resource(host: &Toolshed, cx: &CallContext, uri: &str) -> Result<rmcp::model::ReadResourceResult, McpError> {
    if toolshed_runtime::content::check_uri(uri).is_err() {
        return Err(McpError::invalid_params(format!("{} is not a URI: it needs a scheme and at most 2048 bytes", toolshed_runtime::text::clip(uri, 100)), None));
    }
    for plugin in host.offering("read_resource") {
        match answered(host.call_offer(cx, &plugin, "read_resource", &json!({ "uri": uri }), CallOptions::default()).await) {
            Ok(answer) => {
                let mut contents = Vec::new();
                for part in answer.get("contents").and_then(Value::as_array).into_iter().flatten() {
                    let mut item = Map::new();
                    item.insert("uri".into(), part.get("uri").cloned().unwrap_or_else(|| uri.into()));
                    if let Some(mime) = part.get("mime_type").filter(|m| !m.is_null()) {
                        item.insert("mimeType".into(), mime.clone());
                    }
                    if let Some((key, value)) = part.get("body").and_then(body_json) {
                        item.insert(key.into(), value);
                    }
                    contents.push(Value::Object(item));
                }
                return parse(json!({ "contents": contents }));
            }
            Err((code, _)) if code == RESOURCE_NOT_FOUND => continue,
            Err((code, message)) => return Err(McpError::internal_error(format!("reading the resource failed ({code}): {message}"), None)),
        }
    }
    Err(not_found(uri))
}

fn not_found(uri: &str) -> McpError {
    McpError::new(
        rmcp::model::ErrorCode(MCP_RESOURCE_NOT_FOUND),
        format!("Resource not found: {}", toolshed_runtime::text::clip(uri, 200)),
        Some(json!({ "uri": toolshed_runtime::text::clip(uri, 200) })),
    )
}

/// How often a session's subscribed resources are read again, to tell
/// its client which changed.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// A digest of what a resource read answered, to tell a change (not a
/// security boundary: it only decides whether to notify).
pub(crate) fn digest(read: &rmcp::model::ReadResourceResult) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(&read.contents).unwrap_or_default().hash(&mut hasher);
    hasher.finish()
}

/// The resources one session is subscribed to, each with the digest of
/// what it last read as; at most [`MAX_SUBSCRIPTIONS`].
#[derive(Debug, Default)]
pub struct Subscriptions {
    held: Mutex<HashMap<String, u64>>,
    watching: AtomicBool,
}

impl Subscriptions {
    /// Subscribes to `uri`, which the caller can read (checked by reading
    /// it, which also sets what a change is measured from); at most
    /// [`MAX_SUBSCRIPTIONS`] at once.
    pub(crate) async fn subscribe(&self, host: &Toolshed, cx: &CallContext, uri: &str) -> Result<(), McpError> {
        if !self.has_room_for(uri) {
            return Err(too_many());
        }
        let read = read_resource(host, cx, uri).await?;
        self.hold(uri, digest(&read))
    }

    /// Whether `uri` is held or there is room for it.
    fn has_room_for(&self, uri: &str) -> bool {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.contains_key(uri) || held.len() < MAX_SUBSCRIPTIONS
    }

    /// Holds `uri`, last read as `digest`, unless the session is at
    /// [`MAX_SUBSCRIPTIONS`].
    fn hold(&self, uri: &str, digest: u64) -> Result<(), McpError> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.len() >= MAX_SUBSCRIPTIONS && !held.contains_key(uri) {
            return Err(too_many());
        }
        held.insert(uri.to_string(), digest);
        Ok(())
    }

    /// Ends the subscription to `uri`, if there is one.
    pub(crate) fn unsubscribe(&self, uri: &str) {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).remove(uri);
    }

    /// How many resources the session is subscribed to.
    pub fn len(&self) -> usize {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether the session is subscribed to nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the session is subscribed to `uri`.
    pub fn contains(&self, uri: &str) -> bool {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).contains_key(uri)
    }

    /// The URIs held now.
    fn uris(&self) -> Vec<String> {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect()
    }

    /// Whether `uri`, still held, now reads as `digest` after reading as
    /// something else; remembers `digest`.
    fn changed(&self, uri: &str, digest: u64) -> bool {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        match held.get_mut(uri) {
            Some(last) if *last != digest => {
                *last = digest;
                true
            }
            _ => false,
        }
    }

    /// Marks the session's watcher as started; false when it already was.
    pub(crate) fn start_watching(&self) -> bool {
        !self.watching.swap(true, Ordering::SeqCst)
    }
}

/// Reads every subscribed resource again each [`WATCH_INTERVAL`] with
/// `read` (its digest, or `None` when it cannot be read now), and tells the
/// client of each that changed with `notify`, until `notify` fails.
pub(crate) async fn watch<R, RF, N, NF>(subscriptions: Arc<Subscriptions>, read: R, notify: N)
where
    R: Fn(String) -> RF,
    RF: Future<Output = Option<u64>>,
    N: Fn(String) -> NF,
    NF: Future<Output = bool>,
{
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        for uri in subscriptions.uris() {
            let Some(now) = read(uri.clone()).await else { continue };
            if subscriptions.changed(&uri, now) && !notify(uri).await {
                return;
            }
        }
    }
}

fn too_many() -> McpError {
    McpError::invalid_request(format!("this session is subscribed to {MAX_SUBSCRIPTIONS} resources, the most it may be; unsubscribe from one first"), None)
}

/// Every prompt, from every plugin offering them.
pub(crate) async fn list_prompts(host: &Toolshed, cx: &CallContext) -> Result<rmcp::model::ListPromptsResult, McpError> {
    let mut prompts = Vec::new();
    for listing in from_each(host, cx, "list_prompts", &json!({})).await {
        prompts.extend(listing.get("prompts").and_then(Value::as_array).into_iter().flatten().map(without_nulls));
    }
    parse(json!({ "prompts": prompts }))
}

/// A reflected content `block` variant as MCP content, or what is wrong with it.
fn block_json(block: &Value) -> Result<Value, String> {
    let block = crate::content::reflected_block(block)?;
    serde_json::to_value(crate::content::mcp_block(block)).map_err(|e| e.to_string())
}

/// Prompt `name` filled in with `arguments`, from the plugin offering it.
pub(crate) async fn get_prompt(host: &Toolshed, cx: &CallContext, name: &str, arguments: Map<String, Value>) -> Result<rmcp::model::GetPromptResult, McpError> {
    // Prompt arguments are strings; anything else is given as its JSON text.
    let arguments: Map<String, Value> =
        arguments.into_iter().map(|(k, v)| (k, match v { Value::String(s) => Value::String(s), other => Value::String(other.to_string()) })).collect();
    let call = json!({ "name": name, "arguments": arguments });
    for plugin in host.offering("get_prompt") {
        match answered(host.call_offer(cx, &plugin, "get_prompt", &call, CallOptions::default()).await) {
            Ok(answer) => {
                let mut messages = Vec::new();
                for message in answer.get("messages").and_then(Value::as_array).into_iter().flatten() {
                    let content = block_json(message.get("content").unwrap_or(&Value::Null))
                        .map_err(|e| McpError::internal_error(format!("prompt {name} of plugin {plugin} has a bad block: {e}"), None))?;
                    messages.push(json!({ "role": message.get("role").cloned().unwrap_or_else(|| "user".into()), "content": content }));
                }
                let mut result = json!({ "messages": messages });
                if let Some(description) = answer.get("description").filter(|d| !d.is_null()) {
                    result["description"] = description.clone();
                }
                return parse(result);
            }
            Err((code, _)) if code == PROMPT_NOT_FOUND => continue,
            Err((code, message)) => return Err(McpError::invalid_params(format!("prompt {name} failed ({code}): {message}"), None)),
        }
    }
    Err(McpError::invalid_params(format!("Unknown prompt: {}", toolshed_runtime::text::clip(name, 100)), None))
}

/// A reflected block from a content block as the runtime holds it; for
/// tests of the mapping.
#[cfg(test)]
fn reflected(block: &toolshed_runtime::content::Block) -> Value {
    use toolshed_runtime::content::{Block, Body};
    match block {
        Block::Text(text) => json!({ "tag": "text", "value": text }),
        Block::Image { data, mime_type } => json!({ "tag": "image", "value": { "data": data, "mime_type": mime_type } }),
        Block::Resource { uri, mime_type, body: Body::Text(text) } => {
            json!({ "tag": "resource", "value": { "uri": uri, "mime_type": mime_type, "body": { "tag": "text", "value": text } } })
        }
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use toolshed_runtime::content::{Block, Body};

    use super::*;

    #[test]
    fn a_flood_of_subscriptions_stays_bounded() {
        let subscriptions = Subscriptions::default();
        let mut refused = 0;
        for i in 0..MAX_SUBSCRIPTIONS * 40 {
            let uri = format!("test://template/{i}/data");
            if !subscriptions.has_room_for(&uri) || subscriptions.hold(&uri, 0).is_err() {
                refused += 1;
            }
        }
        assert_eq!(subscriptions.len(), MAX_SUBSCRIPTIONS);
        assert_eq!(refused, MAX_SUBSCRIPTIONS * 39);
        assert!(subscriptions.hold("test://template/0/data", 0).is_ok(), "a resource already held is no new subscription");
        subscriptions.unsubscribe("test://template/0/data");
        assert!(subscriptions.hold("test://another", 0).is_ok(), "unsubscribing makes room");
        let refusal = subscriptions.hold("test://one-too-many", 0).unwrap_err();
        assert!(refusal.message.contains("256 resources"), "{}", refusal.message);
    }

    /// Watches `uri`, which reads as each of `reads` in turn (then as the
    /// last), for `ticks` intervals; answers the notifications sent.
    async fn watched(reads: Vec<Option<u64>>, ticks: u32, notify_works: bool) -> Vec<String> {
        let subscriptions = Arc::new(Subscriptions::default());
        subscriptions.hold("build://b/output", 1).unwrap();
        let reads = Arc::new(Mutex::new(reads.into_iter().collect::<std::collections::VecDeque<_>>()));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let (shared_reads, shared_sent) = (reads.clone(), sent.clone());
        let read = move |_uri: String| {
            let reads = shared_reads.clone();
            async move {
                let mut reads = reads.lock().unwrap();
                if reads.len() > 1 { reads.pop_front().unwrap() } else { reads.front().copied().flatten() }
            }
        };
        let notify = move |uri: String| {
            let sent = shared_sent.clone();
            async move {
                sent.lock().unwrap().push(uri);
                notify_works
            }
        };
        let watcher = tokio::spawn(watch(subscriptions, read, notify));
        tokio::time::sleep(WATCH_INTERVAL * ticks + WATCH_INTERVAL / 2).await;
        let ended = watcher.is_finished();
        watcher.abort();
        let sent = sent.lock().unwrap().clone();
        assert_eq!(ended, !notify_works && !sent.is_empty(), "the watcher ends exactly when a notification fails");
        sent
    }

    #[tokio::test(start_paused = true)]
    async fn a_subscriber_hears_of_each_change_once_and_of_nothing_else() {
        let sent = watched(vec![Some(1), Some(2), Some(2), None, Some(3), Some(3)], 8, true).await;
        assert_eq!(sent, ["build://b/output", "build://b/output"], "1 -> 2 and 2 -> 3, an unreadable moment skipped");
        assert!(watched(vec![Some(1)], 5, true).await.is_empty(), "no change, no notification");
    }

    #[tokio::test(start_paused = true)]
    async fn a_watcher_whose_client_is_gone_ends() {
        let sent = watched(vec![Some(2), Some(3), Some(4)], 6, false).await;
        assert_eq!(sent.len(), 1, "the first failed notification ends the watcher");
    }

    #[test]
    fn reflected_names_and_nulls_become_mcps() {
        let listed = without_nulls(&json!({ "uri_template": "build://{id}/output", "name": "n", "title": null, "mime_type": "text/plain" }));
        assert_eq!(listed, json!({ "uriTemplate": "build://{id}/output", "name": "n", "mimeType": "text/plain" }));
    }

    #[test]
    fn prompt_blocks_map_to_mcp_content() {
        let image = block_json(&reflected(&Block::Image { data: vec![1, 2, 3], mime_type: "image/png".into() })).unwrap();
        assert!(block_json(&reflected(&Block::Image { data: vec![1], mime_type: "text/html".into() })).unwrap_err().contains("MIME"));
        assert_eq!(image, json!({ "type": "image", "data": "AQID", "mimeType": "image/png" }));
        let resource = block_json(&reflected(&Block::Resource { uri: "test://x".into(), mime_type: Some("text/plain".into()), body: Body::Text("t".into()) })).unwrap();
        assert_eq!(resource["type"], "resource");
        assert_eq!(resource["resource"]["text"], "t");
    }
}
