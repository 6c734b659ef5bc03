//! The path of one call: find the tool once (waiting for a plugin still
//! installing), check the arguments against its types, run it in a fresh
//! instance under its plugin's limits (again after each park), and render
//! the answer, held to the tool's output schema.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use wasmtime::Store;
use wasmtime::component::Val;

use super::Toolshed;
use super::generation::ServedTool;
use crate::context::CallContext;
use crate::error::{Category, HostError};
use crate::limiter::Limit;
use crate::plugin::{Plugin, Tool};
use crate::progress::ProgressSink;
use crate::reflect::{answer, json_size_estimate, val_into_json, val_to_json};
use crate::sandbox;
use crate::state::{CallIdentity, CallSetup, CallState, Shared};

/// What a tool call returned: a result object, or an error object per SPEC §0.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    /// Whether `value` is an error object.
    pub is_error: bool,
    /// The result or error object.
    pub value: Value,
    /// Content blocks the tool added beside it (`toolshed:runtime/content`).
    pub content: Vec<crate::content::Block>,
}

impl ToolOutput {
    pub(super) fn error(err: HostError) -> ToolOutput {
        ToolOutput { is_error: true, value: err.to_json(), content: Vec::new() }
    }

    /// An answer of `value` alone, without content blocks.
    pub fn new(is_error: bool, value: Value) -> ToolOutput {
        ToolOutput { is_error, value, content: Vec::new() }
    }

    /// Whether this is the answer for a tool no plugin serves, which a
    /// transport may answer in its own way (MCP: a protocol error).
    pub fn is_unknown_tool(&self) -> bool {
        self.is_error && self.value.get("code").and_then(Value::as_str) == Some(crate::error::UNKNOWN_TOOL)
    }
}

/// A call's arguments: JSON text as a client sent it, or a parsed value.
#[derive(Debug, Clone, Copy)]
pub enum Arguments<'a> {
    /// JSON text; an empty text is an empty object.
    Text(&'a str),
    /// A JSON value whose size is not known; it is counted, not rendered.
    Json(&'a Value),
    /// A JSON value parsed from a text of at most this many bytes, such as
    /// the request body holding it: counted only when that bound is over
    /// the limit.
    JsonWithin(&'a Value, usize),
}

/// How to run one call, beyond its tool and arguments.
#[derive(Clone, Default)]
pub struct CallOptions {
    /// Where the call's progress goes; without one it is dropped.
    pub progress: Option<Arc<dyn ProgressSink>>,
    /// How long the caller will wait for the answer; the tool reads it
    /// (`toolshed:runtime/call.wait-budget`) and answers in time with how to
    /// continue. `None`: the caller waits as long as the call may take.
    pub wait_budget: Option<std::time::Duration>,
    /// The caller's client: where the call's log records go, and who asks
    /// the user. Without one, logs stay the operator's and the tool cannot ask.
    pub client: Option<Arc<dyn crate::client::Client>>,
}

/// Counts an instance, or a call, as live until it is dropped, however the
/// call ends (returned, trapped, timed out or cancelled).
struct Live<'a>(&'a AtomicU64);

impl<'a> Live<'a> {
    fn new(live: &'a AtomicU64) -> Self {
        live.fetch_add(1, Ordering::Relaxed);
        Self(live)
    }
}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts the bytes of a JSON rendering without keeping them.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The length of `value` as compact JSON text.
fn json_len(value: &Value) -> usize {
    let mut count = ByteCount(0);
    serde_json::to_writer(&mut count, value).map_or(usize::MAX, |()| count.0)
}

impl Toolshed {
    /// Calls `tool` with `arguments`, a JSON text.
    pub async fn call(&self, cx: &CallContext, tool: &str, arguments: &str) -> ToolOutput {
        self.call_with(cx, tool, Arguments::Text(arguments), CallOptions::default()).await
    }

    /// Calls `tool` with `arguments`, a JSON value.
    pub async fn call_value(&self, cx: &CallContext, tool: &str, arguments: &Value) -> ToolOutput {
        self.call_with(cx, tool, Arguments::Json(arguments), CallOptions::default()).await
    }

    /// Calls `tool` with `arguments`, sending its progress where `options`
    /// say. A tool of a plugin still installing is waited for; a tool no
    /// plugin serves is answered with `UNKNOWN_TOOL`.
    pub async fn call_with(&self, cx: &CallContext, tool: &str, arguments: Arguments<'_>, options: CallOptions) -> ToolOutput {
        let Some((tool, plugin)) = self.resolve(tool).await else {
            let served: Vec<String> = self.served.current.load().tool_names();
            return ToolOutput::error(HostError::unknown_tool(tool, &served));
        };
        let limits = &plugin.policy.limits;
        let too_large = || ToolOutput::error(Limit::ArgumentSize.error(&plugin.name, &tool.name, limits));
        let parsed;
        let arguments = match arguments {
            Arguments::Json(value) => {
                if json_len(value) > limits.max_argument_bytes {
                    return too_large();
                }
                value
            }
            Arguments::JsonWithin(value, bound) => {
                if bound > limits.max_argument_bytes && json_len(value) > limits.max_argument_bytes {
                    return too_large();
                }
                value
            }
            Arguments::Text(text) => {
                if text.len() > limits.max_argument_bytes {
                    return too_large();
                }
                parsed = if text.trim().is_empty() {
                    Value::Object(Default::default())
                } else {
                    match serde_json::from_str::<Value>(text) {
                        Ok(value) => value,
                        Err(e) => {
                            return ToolOutput::error(
                                HostError::new(Category::ValidationFailed, "MALFORMED_JSON", format!("the arguments of {} are not valid JSON: {e}", tool.name))
                                    .suggest("Send the arguments as one JSON object, such as {\"template_id\": \"...\"}."),
                            );
                        }
                    }
                };
                &parsed
            }
        };
        let params = match tool.parameters(arguments) {
            Ok(params) => params,
            Err(e) => {
                return ToolOutput::error(
                    HostError::new(Category::ValidationFailed, "INVALID_ARGUMENTS", format!("invalid arguments for {}: {e}", tool.name))
                        .suggest("Check the tool's input schema and call it again."),
                );
            }
        };
        match tokio::time::timeout(limits.deadline, self.run(&self.shared, cx, &tool, &plugin, &params, options)).await {
            Ok(Ok(output)) => output,
            Ok(Err(err)) => ToolOutput::error(err),
            // The timed-out call's store, and every lock it held, is dropped here.
            Err(_) => ToolOutput::error(Limit::Deadline.error(&plugin.name, &tool.name, limits)),
        }
    }

    /// Tool `name` and the plugin version serving it, found once for the
    /// whole call; a tool of a plugin still installing is waited for.
    pub(crate) async fn resolve(&self, name: &str) -> Option<ServedTool> {
        if let Some(found) = self.served.current.load().tools.get(name) {
            return Some(found.clone());
        }
        if !self.wait_for_tool(name).await {
            return None;
        }
        self.served.current.load().tools.get(name).cloned()
    }

    /// Waits until tool `name` is served, or no install is running any more
    /// (then it will not come); returns whether it is served.
    pub async fn wait_for_tool(&self, name: &str) -> bool {
        let mut changes = self.subscribe();
        let mut count = self.installing.subscribe();
        loop {
            if self.served.current.load().tools.contains_key(name) {
                return true;
            }
            if *count.borrow_and_update() == 0 {
                return false;
            }
            tokio::select! {
                _ = changes.recv() => {}
                _ = count.changed() => {}
            }
        }
    }

    /// Makes the Store a call of `plugin` would get, instantiates the plugin
    /// in it and drops both: what every call costs before its guest runs.
    /// For benchmarks.
    ///
    /// # Errors
    ///
    /// When the plugin cannot be instantiated.
    pub async fn instantiate_only(&self, plugin: &Plugin) -> wasmtime::Result<()> {
        let cx = CallContext { chat_id: "probe".into(), owner_id: "probe".into(), owner_name: "probe".into(), organization_id: "probe".into() };
        let who = CallIdentity { cx, plugin: plugin.name.clone(), tool: "instance".into() };
        let setup = CallSetup {
            limits: &plugin.policy.limits,
            epoch: self.runtime.epoch.clone(),
            progress: None,
            client: None,
            wait_until: None,
            deadline: tokio::time::Instant::now() + plugin.policy.limits.deadline,
            network: plugin.policy.network.clone(),
            config: plugin.policy.config.clone(),
        };
        let mut store = Store::new(plugin.pre.engine(), CallState::new(self.shared.clone(), who, setup));
        sandbox::arm(&mut store);
        plugin.pre.instantiate_async(&mut store).await?;
        Ok(())
    }

    pub(super) async fn run(
        &self,
        shared: &Arc<Shared>,
        cx: &CallContext,
        tool: &Tool,
        plugin: &Plugin,
        params: &[Val],
        options: CallOptions,
    ) -> Result<ToolOutput, HostError> {
        let _call = Live::new(&self.stats.calls);
        let limits = &plugin.policy.limits;
        let wait_until = options.wait_budget.map(|budget| shared.clock.now_ms().saturating_add(budget.as_millis() as u64));
        // The deadline `call_with` holds the whole call to, from about now.
        let deadline = tokio::time::Instant::now() + limits.deadline;
        // A call runs once, or once more after each time it parks; between
        // runs it holds no instance and no slot, only what it carries.
        let mut carried = None;
        let content;
        let results = loop {
            // Wait for a free instance slot before taking one; a full host
            // answers "busy" instead of failing inside the pool.
            let admitted = self.runtime.admission().admit(plugin.slots).await?;
            let who = CallIdentity { cx: cx.clone(), plugin: plugin.name.clone(), tool: tool.name.as_str().into() };
            let setup = CallSetup {
                limits,
                epoch: self.runtime.epoch.clone(),
                progress: options.progress.clone(),
                client: options.client.clone(),
                wait_until,
                deadline,
                network: plugin.policy.network.clone(),
                config: plugin.policy.config.clone(),
            };
            let mut state = CallState::new(shared.clone(), who, setup);
            if let Some(carried) = carried.take() {
                state.resume(carried);
            }
            // Declared before the store, so it is dropped after it.
            let live = Live::new(&self.stats.live);
            let mut store = Store::new(plugin.pre.engine(), state);
            sandbox::arm(&mut store);

            self.stats.instances.fetch_add(1, Ordering::Relaxed);
            let outcome: wasmtime::Result<Vec<Val>> = async {
                let instance = plugin.pre.instantiate_async(&mut store).await?;
                let func = instance
                    .get_func(&mut store, tool.export)
                    .ok_or_else(|| wasmtime::format_err!("the instance does not export {}", tool.name))?;
                let mut results = vec![Val::Bool(false); usize::from(tool.ok.is_some() || tool.err.is_some())];
                func.call_async(&mut store, params, &mut results).await?;
                wasmtime::Result::Ok(results)
            }
            .await;
            match outcome {
                Ok(results) => {
                    content = std::mem::take(&mut store.data_mut().content).into_blocks();
                    break results;
                }
                Err(e) => {
                    let Some(park) = store.data_mut().park.take().filter(|_| e.is::<crate::park::Parked>()) else {
                        let hit = store.data().call.limiter.hit();
                        return Err(sandbox::trap_error(&plugin.name, &tool.name, limits, hit, &e));
                    };
                    // The instance goes back to the pool and the slot to the
                    // next call before the wait starts.
                    carried = Some(store.into_data().park_out(park.state));
                    drop((live, admitted));
                    shared.clock.sleep(std::time::Duration::from_millis(park.ms)).await;
                }
            }
        };
        // Check the size before rendering, so a huge result is never copied twice.
        if results.iter().map(json_size_estimate).sum::<usize>() > limits.max_result_bytes
            && results.iter().map(|v| exact_size(v, tool)).sum::<usize>() > limits.max_result_bytes
        {
            return Err(Limit::ResultSize.error(&plugin.name, &tool.name, limits));
        }
        // The results are not needed after this, so their strings move into the JSON.
        // Every answer is held to the tool's output schema here, whatever
        // the plugin returned: clients check structured content against it.
        let output = match results.into_iter().next() {
            Some(Val::Result(Ok(value))) => ToolOutput {
                is_error: false,
                content,
                value: match (value, &tool.ok) {
                    (Some(v), Some(ty)) => answer::conform_result(val_into_json(*v, ty)),
                    _ => Value::Object(Default::default()),
                },
            },
            Some(Val::Result(Err(value))) => ToolOutput {
                is_error: true,
                content,
                value: match (value, &tool.err) {
                    (Some(v), Some(ty)) => answer::conform_error(val_into_json(*v, ty), &plugin.name, &tool.name),
                    _ => HostError::new(Category::InternalError, "TOOL_FAILED", format!("{} failed", tool.name)).to_json(),
                },
            },
            Some(other) => ToolOutput { is_error: false, value: answer::conform_result(tool.ok.as_ref().map_or(Value::Null, |ty| val_into_json(other, ty))), content },
            None => ToolOutput { is_error: false, value: Value::Object(Default::default()), content },
        };
        Ok(output)
    }
}

/// The exact JSON size of a result, for results the estimate puts near the limit.
fn exact_size(val: &Val, tool: &Tool) -> usize {
    let rendered = match (val, &tool.ok, &tool.err) {
        (Val::Result(Ok(Some(v))), Some(ty), _) | (Val::Result(Err(Some(v))), _, Some(ty)) => val_to_json(v, ty),
        _ => return json_size_estimate(val),
    };
    serde_json::to_string(&rendered).map_or(usize::MAX, |s| s.len())
}

