//! A ready-to-call host over a fake backend.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use serde_json::Value;
use toolshed_runtime::{Arguments, CallContext, CallOptions, Plugin, Policy, Runtime, TokioClock, ToolOutput, Toolshed};

use crate::fake::{FakeBackend, default_context};
use crate::ids;

/// The virtual clock's reading when a test starts: 2026-01-01T00:00:00Z.
pub const EPOCH_MS: u64 = 1_767_225_600_000;

/// A runtime for tests under `policy`, offering the infra and platform
/// capabilities.
///
/// # Panics
///
/// When the engine cannot be built.
pub fn runtime_under(policy: Policy) -> Arc<Runtime> {
    let runtime = toolshed_standard::runtime()
        .policy(policy)
        .concurrent_calls(1_000)
        .build()
        .expect("building the runtime");
    Arc::new(runtime)
}

/// Plugin `name` compiled once per test process on `runtime`: compiling
/// costs tens of milliseconds, and every test shares the result.
///
/// # Panics
///
/// When the plugin does not load; use [`Runtime::compile`] to test refusals.
pub fn plugin_on(runtime: &Arc<Runtime>, name: &str, bytes: &[u8]) -> Arc<Plugin> {
    type Compiled = (Weak<Runtime>, Arc<Plugin>);
    static PLUGINS: OnceLock<Mutex<HashMap<(usize, String), Compiled>>> = OnceLock::new();
    let key = (Arc::as_ptr(runtime) as usize, name.to_string());
    let plugins = PLUGINS.get_or_init(Default::default);
    // A runtime dropped by an earlier test may have left its address to this
    // one: a plugin is reused only while the runtime it was compiled on lives.
    let same = |(compiled_on, _): &Compiled| compiled_on.upgrade().is_some_and(|r| Arc::ptr_eq(&r, runtime));
    if let Some(compiled) = plugins.lock().unwrap().get(&key).filter(|c| same(c)) {
        return compiled.1.clone();
    }
    let plugin = Arc::new(runtime.compile(name, bytes).unwrap_or_else(|e| panic!("loading {name}: {e}")));
    let mut plugins = plugins.lock().unwrap();
    match plugins.get(&key).filter(|c| same(c)) {
        Some(compiled) => compiled.1.clone(),
        None => {
            plugins.insert(key, (Arc::downgrade(runtime), plugin.clone()));
            plugin
        }
    }
}

/// A host serving plugins over a [`FakeBackend`] on a virtual clock.
///
/// Build it inside a tokio runtime with paused time (`#[tokio::test(start_paused = true)]`):
/// then every wait the tools make completes as soon as nothing else can run.
pub struct TestEnv {
    /// The scripted backend; set up scenarios and read the record here.
    pub backend: FakeBackend,
    /// The host under test.
    pub host: Arc<Toolshed>,
}

impl TestEnv {
    /// A host on `runtime` serving `plugins`, compiled on it.
    ///
    /// # Panics
    ///
    /// When two plugins serve a tool of the same name.
    pub fn on(runtime: Arc<Runtime>, plugins: &[Arc<Plugin>]) -> TestEnv {
        let clock = Arc::new(TokioClock::starting_at(EPOCH_MS));
        let backend = FakeBackend::new(clock.clone());
        let host = Arc::new(Toolshed::builder(runtime).clock(clock).backend(&Arc::new(backend.clone())).build().unwrap_or_else(|e| panic!("{e}")));
        for plugin in plugins {
            host.publish(plugin.clone()).unwrap_or_else(|e| panic!("{e}"));
        }
        TestEnv { backend, host }
    }

    /// A host under `policy` serving `plugins` given as `(name, component bytes)`.
    pub fn serving(policy: Policy, plugins: &[(&str, &[u8])]) -> TestEnv {
        let runtime = runtime_under(policy);
        let compiled: Vec<Arc<Plugin>> = plugins.iter().map(|(name, bytes)| plugin_on(&runtime, name, bytes)).collect();
        Self::on(runtime, &compiled)
    }

    /// The calling context of the default chat.
    pub fn context(&self) -> CallContext {
        default_context()
    }

    /// The context of another chat of the same owner.
    pub fn other_chat(&self) -> CallContext {
        CallContext { chat_id: ids::OTHER_CHAT.into(), ..default_context() }
    }

    /// Calls `tool` in the default chat.
    pub async fn call(&self, tool: &str, arguments: Value) -> ToolOutput {
        self.call_in(&self.context(), tool, arguments).await
    }

    /// Calls `tool` in the chat of `cx`; its progress is recorded.
    pub async fn call_in(&self, cx: &CallContext, tool: &str, arguments: Value) -> ToolOutput {
        self.call_waiting(cx, tool, arguments, None).await
    }

    /// Calls `tool` in the chat of `cx` for a caller that waits at most
    /// `budget` (`None`: as long as the call takes); its progress is recorded.
    pub async fn call_waiting(&self, cx: &CallContext, tool: &str, arguments: Value, budget: Option<std::time::Duration>) -> ToolOutput {
        let options = CallOptions { progress: Some(self.backend.recorder().progress_sink(cx)), wait_budget: budget, client: None };
        let output = self.host.call_with(cx, tool, Arguments::Json(&arguments), options).await;
        assert_answer_fits_schema(&self.host, tool, &output);
        output
    }
}

/// Panics unless `output` is what the output schema of `tool` admits: the
/// schema a client checks structured content against. Every call a suite
/// makes through [`TestEnv`] is held to it.
///
/// # Panics
///
/// When the answer does not fit, or the schema does not compile.
pub fn assert_answer_fits_schema(host: &Toolshed, tool: &str, output: &ToolOutput) {
    let Some(served) = host.tools().into_iter().find(|t| t.name == tool) else { return };
    let validator = jsonschema::validator_for(&served.output_schema).unwrap_or_else(|e| panic!("{tool}: the output schema does not compile: {e}"));
    if let Err(e) = validator.validate(&output.value) {
        panic!("{tool} answered outside its output schema ({e}): {}", output.value);
    }
}

/// Helpers to read a tool output in assertions.
pub trait OutputExt {
    /// The result object; panics with the error object if the call failed.
    fn ok(&self) -> &Value;
    /// The error object; panics with the result if the call succeeded.
    fn err(&self) -> &Value;
    /// The error message of an error object.
    fn message(&self) -> &str;
}

impl OutputExt for ToolOutput {
    fn ok(&self) -> &Value {
        assert!(!self.is_error, "expected a result, got error {}", self.value);
        &self.value
    }

    fn err(&self) -> &Value {
        assert!(self.is_error, "expected an error, got result {}", self.value);
        &self.value
    }

    fn message(&self) -> &str {
        self.err()["error"].as_str().unwrap_or_default()
    }
}
