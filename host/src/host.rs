//! [`Toolshed`]: the tools of a set of plugins, served over one backend.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use wasmtime::component::{Linker, Val};
use wasmtime::{Engine, Store};

use crate::backend::{Backend, CallContext, Clock};
use crate::engine::{self, PoolSize};
use crate::error::{Category, HostError};
use crate::locks::LockTable;
use crate::plugin::{LoadError, Plugin, Tool};
use crate::reflect::val_to_json;
use crate::state::{CallState, Shared};

/// The engine and linker plugins are compiled for. One runtime can serve
/// many [`Toolshed`]s, and a plugin compiled once can be shared by all.
pub struct Runtime {
    engine: Engine,
    linker: Linker<CallState>,
    pool: PoolSize,
}

impl Runtime {
    /// A runtime with the default pool.
    ///
    /// # Errors
    ///
    /// When the engine cannot be built or the imports cannot be linked.
    pub fn new() -> wasmtime::Result<Runtime> {
        Self::with_pool(PoolSize::default())
    }

    /// A runtime with an instance pool of the given size.
    ///
    /// # Errors
    ///
    /// When the engine cannot be built or the imports cannot be linked.
    pub fn with_pool(pool: PoolSize) -> wasmtime::Result<Runtime> {
        let engine = engine::build(&pool)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        crate::imports::add_to_linker(&mut linker)?;
        Ok(Runtime { engine, linker, pool })
    }

    /// Compiles and links a plugin.
    ///
    /// # Errors
    ///
    /// [`LoadError`] when the bytes are not a usable plugin.
    pub fn compile(&self, name: &str, bytes: &[u8]) -> Result<Plugin, LoadError> {
        Plugin::compile(&self.engine, &self.linker, name, bytes)
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

/// What a tool call returned: a result object, or an error object per SPEC §0.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    /// Whether `value` is an error object.
    pub is_error: bool,
    /// The result or error object.
    pub value: Value,
}

impl ToolOutput {
    fn error(err: HostError) -> ToolOutput {
        ToolOutput { is_error: true, value: err.to_json() }
    }
}

/// Counters a host keeps about its calls.
#[derive(Debug, Default)]
pub struct Stats {
    instances: AtomicU64,
}

impl Stats {
    /// How many plugin instances calls have created; a call rejected before
    /// the guest runs creates none.
    pub fn instances(&self) -> u64 {
        self.instances.load(Ordering::Relaxed)
    }
}

/// Serves the tools of its plugins: checks arguments, runs each call in a
/// fresh instance, and renders the outcome as JSON.
pub struct Toolshed {
    runtime: Arc<Runtime>,
    shared: Arc<Shared>,
    tools: HashMap<String, (Arc<Tool>, Arc<Plugin>)>,
    stats: Stats,
}

impl Toolshed {
    /// A host with no plugins yet, answering imports from `backend` on `clock`.
    pub fn new(runtime: Arc<Runtime>, backend: Arc<dyn Backend>, clock: Arc<dyn Clock>) -> Toolshed {
        let shared = Arc::new(Shared { backend, clock, locks: LockTable::default() });
        Toolshed { runtime, shared, tools: HashMap::new(), stats: Stats::default() }
    }

    /// Serves the tools of `plugin`; a tool of the same name is replaced.
    pub fn add_plugin(&mut self, plugin: Arc<Plugin>) {
        for tool in &plugin.tools {
            self.tools.insert(tool.name.clone(), (tool.clone(), plugin.clone()));
        }
    }

    /// The tools served, sorted by name.
    pub fn tools(&self) -> Vec<Arc<Tool>> {
        let mut tools: Vec<_> = self.tools.values().map(|(t, _)| t.clone()).collect();
        tools.sort_by(|a, b| a.name.cmp(&b.name));
        tools
    }

    /// The host's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Calls `tool` with `arguments`, a JSON text.
    pub async fn call(&self, cx: &CallContext, tool: &str, arguments: &str) -> ToolOutput {
        let arguments = if arguments.trim().is_empty() {
            Value::Object(Default::default())
        } else {
            match serde_json::from_str::<Value>(arguments) {
                Ok(value) => value,
                Err(e) => {
                    return ToolOutput::error(HostError::new(
                        Category::ValidationFailed,
                        "MALFORMED_JSON",
                        format!("the arguments of {tool} are not valid JSON: {e}"),
                    ).suggest("Send the arguments as one JSON object, such as {\"template_id\": \"...\"}."));
                }
            }
        };
        self.call_value(cx, tool, &arguments).await
    }

    /// Calls `tool` with `arguments`, a JSON value.
    pub async fn call_value(&self, cx: &CallContext, tool: &str, arguments: &Value) -> ToolOutput {
        let Some((tool, plugin)) = self.tools.get(tool) else {
            let mut names: Vec<&str> = self.tools.keys().map(String::as_str).collect();
            names.sort();
            return ToolOutput::error(
                HostError::new(Category::ValidationFailed, "UNKNOWN_TOOL", format!("there is no tool named {tool:?}"))
                    .suggest(format!("Use one of: {}.", names.join(", "))),
            );
        };
        let params = match tool.parameters(arguments) {
            Ok(params) => params,
            Err(e) => {
                return ToolOutput::error(HostError::new(
                    Category::ValidationFailed,
                    "INVALID_ARGUMENTS",
                    format!("invalid arguments for {}: {e}", tool.name),
                ).suggest("Check the tool's input schema and call it again."));
            }
        };
        match self.run(cx, tool, plugin, &params).await {
            Ok(output) => output,
            Err(err) => ToolOutput::error(err),
        }
    }

    async fn run(&self, cx: &CallContext, tool: &Tool, plugin: &Plugin, params: &[Val]) -> Result<ToolOutput, HostError> {
        let state = CallState::new(self.shared.clone(), cx.clone(), plugin.name.clone(), self.runtime.pool.memory_bytes);
        let mut store = Store::new(&self.runtime.engine, state);
        store.limiter(|state| &mut state.limits);
        // Long guest computations yield to other calls every epoch tick.
        store.epoch_deadline_async_yield_and_update(1);

        let trapped = |stage: &str, e: wasmtime::Error| {
            HostError::new(
                Category::InternalError,
                "PLUGIN_TRAPPED",
                format!("plugin {} failed while {stage} tool {}: {e:#}", plugin.name, tool.name),
            )
        };
        self.stats.instances.fetch_add(1, Ordering::Relaxed);
        let instance = plugin.pre.instantiate_async(&mut store).await.map_err(|e| trapped("instantiating", e))?;
        let func = instance.get_func(&mut store, tool.export).ok_or_else(|| {
            HostError::new(Category::InternalError, "TOOL_MISSING", format!("plugin {} no longer exports {}", plugin.name, tool.name))
        })?;
        let mut results = vec![Val::Bool(false); usize::from(tool.ok.is_some() || tool.err.is_some())];
        func.call_async(&mut store, params, &mut results).await.map_err(|e| trapped("running", e))?;

        Ok(match results.first() {
            Some(Val::Result(Ok(value))) => ToolOutput {
                is_error: false,
                value: match (value, &tool.ok) {
                    (Some(v), Some(ty)) => val_to_json(v, ty),
                    _ => Value::Object(Default::default()),
                },
            },
            Some(Val::Result(Err(value))) => ToolOutput {
                is_error: true,
                value: match (value, &tool.err) {
                    (Some(v), Some(ty)) => val_to_json(v, ty),
                    _ => HostError::new(Category::InternalError, "TOOL_FAILED", format!("{} failed", tool.name)).to_json(),
                },
            },
            Some(other) => ToolOutput { is_error: false, value: tool.ok.as_ref().map_or(Value::Null, |ty| val_to_json(other, ty)) },
            None => ToolOutput { is_error: false, value: Value::Object(Default::default()) },
        })
    }
}
