//! A ready-to-call host over a fake backend.

use std::sync::{Arc, OnceLock};

use serde_json::Value;
use toolshed::{CallContext, Plugin, Runtime, TokioClock, ToolOutput, Toolshed};

use crate::fake::{FakeBackend, default_context};
use crate::ids;

/// The virtual clock's reading when a test starts: 2026-01-01T00:00:00Z.
pub const EPOCH_MS: u64 = 1_767_225_600_000;

/// One runtime and one compiled copy of each plugin for the whole test
/// process: compiling a component costs tens of milliseconds.
pub fn shared() -> &'static (Arc<Runtime>, Arc<Plugin>) {
    static SHARED: OnceLock<(Arc<Runtime>, Arc<Plugin>)> = OnceLock::new();
    SHARED.get_or_init(|| {
        let runtime = Runtime::new().expect("building the runtime");
        let plugin = runtime.compile("workspace-tools", toolshed::builtin::WORKSPACE_TOOLS).expect("loading workspace-tools");
        (Arc::new(runtime), Arc::new(plugin))
    })
}

/// A host serving the workspace tools over a [`FakeBackend`] on a virtual clock.
///
/// Build it inside a tokio runtime with paused time (`#[tokio::test(start_paused = true)]`):
/// then every wait the tools make completes as soon as nothing else can run.
pub struct TestEnv {
    /// The scripted backend; set up scenarios and read the record here.
    pub backend: FakeBackend,
    /// The host under test.
    pub host: Toolshed,
}

impl TestEnv {
    /// A host with the workspace-tools plugin and an empty backend.
    pub fn new() -> TestEnv {
        let (runtime, plugin) = shared();
        let clock = Arc::new(TokioClock::starting_at(EPOCH_MS));
        let backend = FakeBackend::new(clock.clone());
        let mut host = Toolshed::new(runtime.clone(), Arc::new(backend.clone()), clock);
        host.add_plugin(plugin.clone());
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
        self.host.call_value(&self.context(), tool, &arguments).await
    }

    /// Calls `tool` in the chat of `cx`.
    pub async fn call_in(&self, cx: &CallContext, tool: &str, arguments: Value) -> ToolOutput {
        self.host.call_value(cx, tool, &arguments).await
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
