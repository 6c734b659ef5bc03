//! A ready-to-call host over a fake backend.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;
use toolshed::{Arguments, CallContext, CallOptions, Plugin, Policy, Runtime, TokioClock, ToolOutput, Toolshed};

use crate::fake::{FakeBackend, default_context};
use crate::ids;

/// The virtual clock's reading when a test starts: 2026-01-01T00:00:00Z.
pub const EPOCH_MS: u64 = 1_767_225_600_000;

/// The policy the harness runs plugins under.
pub fn harness_policy() -> Policy {
    Policy::from_toml(include_str!("policy.toml")).expect("the harness policy parses")
}

/// One runtime for the whole test process.
pub fn runtime() -> &'static Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME.get_or_init(|| Arc::new(Runtime::builder().policy(harness_policy()).concurrent_calls(1_000).build().expect("building the runtime")))
}

/// Plugin `name` compiled once per test process: compiling costs tens of
/// milliseconds, and every test shares the result.
///
/// # Panics
///
/// When the plugin does not load; use [`Runtime::compile`] to test refusals.
pub fn plugin(name: &str, bytes: &[u8]) -> Arc<Plugin> {
    static PLUGINS: OnceLock<Mutex<HashMap<String, Arc<Plugin>>>> = OnceLock::new();
    let plugins = PLUGINS.get_or_init(Default::default);
    if let Some(plugin) = plugins.lock().unwrap().get(name) {
        return plugin.clone();
    }
    let plugin = Arc::new(runtime().compile(name, bytes).unwrap_or_else(|e| panic!("loading {name}: {e}")));
    plugins.lock().unwrap().entry(name.to_string()).or_insert(plugin).clone()
}

/// The runtime and the workspace-tools plugin every [`TestEnv`] serves.
pub fn shared() -> (&'static Arc<Runtime>, Arc<Plugin>) {
    (runtime(), plugin("workspace-tools", toolshed::builtin::WORKSPACE_TOOLS))
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
    /// A host with the workspace-tools plugin and an empty backend.
    pub fn new() -> TestEnv {
        let env = Self::empty();
        env.host.publish(shared().1).expect("workspace-tools serves alone");
        env
    }

    /// A host serving the plugins given as `(name, component bytes)`.
    pub fn with_plugins(plugins: &[(&str, &[u8])]) -> TestEnv {
        let env = Self::empty();
        for (name, bytes) in plugins {
            env.host.publish(plugin(name, bytes)).unwrap_or_else(|e| panic!("{e}"));
        }
        env
    }

    /// A host serving no plugins yet.
    pub fn empty() -> TestEnv {
        Self::on(runtime().clone(), &[])
    }

    /// A host on a runtime of your own (another policy, say) serving `plugins`
    /// compiled on it.
    pub fn on(runtime: Arc<Runtime>, plugins: &[Arc<Plugin>]) -> TestEnv {
        let clock = Arc::new(TokioClock::starting_at(EPOCH_MS));
        let backend = FakeBackend::new(clock.clone());
        let host = Arc::new(Toolshed::new(runtime, Arc::new(backend.clone()), clock));
        for plugin in plugins {
            host.publish(plugin.clone()).unwrap_or_else(|e| panic!("{e}"));
        }
        TestEnv { backend, host }
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
        let options = CallOptions { progress: Some(self.backend.recorder().progress_sink(cx)) };
        self.host.call_with(cx, tool, Arguments::Json(&arguments), options).await
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
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
