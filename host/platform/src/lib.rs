//! toolshed-platform: `toolshed:platform/registry`, provisioning container
//! registries on a deployment platform. Register [`Platform`] on the
//! runtime and give each host a [`PlatformProviders`].

#![deny(missing_docs)]

mod host;
pub mod names;

use std::sync::Arc;

use async_trait::async_trait;
use toolshed_runtime::state::{Call, CallState};
use toolshed_runtime::wasmtime::component::{HasData, Linker};
use toolshed_runtime::{CallContext, Capability, Providers};
pub use toolshed_runtime::quota::Refused;

/// Bindings generated from `toolshed:platform@0.1.0`.
#[allow(missing_docs)]
pub mod bindings {
    toolshed_runtime::wasmtime::component::bindgen!({
        path: "../../wit/platform",
        inline: "
            package toolshed:platform-host;
            world host { import toolshed:platform/registry@0.1.0; }
        ",
        world: "toolshed:platform-host/host",
        imports: { default: async | trappable },
        require_store_data_send: true,
        wasmtime_crate: toolshed_runtime::wasmtime,
    });

    pub use self::toolshed::platform::registry::{ApiFailure, PlatformError, ProvisionRequest, Task, TaskStatus};
}

pub use bindings::{ApiFailure, PlatformError, ProvisionRequest, Task, TaskStatus};

/// Provisions registries, scoped to the caller: another owner's task reads
/// as not found.
#[async_trait]
pub trait Registry: Send + Sync + 'static {
    /// Starts provisioning a container registry; refused with a quota when
    /// the registry would take the caller past what it may store.
    async fn start_provisioning(&self, cx: &CallContext, request: ProvisionRequest) -> Result<Task, Refused<PlatformError>>;
    /// Reads a provisioning task of the caller.
    async fn task(&self, cx: &CallContext, id: &str) -> Result<Task, PlatformError>;
}

/// The provider of the platform interface on one host.
#[derive(Clone)]
pub struct PlatformProviders {
    /// Answers `registry`.
    pub registry: Arc<dyn Registry>,
}

impl PlatformProviders {
    /// `registry` answering the platform interface.
    pub fn new<R: Registry>(registry: Arc<R>) -> Self {
        Self { registry }
    }
}

/// A platform that is not there: every request says it cannot be reached.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoPlatform;

#[async_trait]
impl Registry for NoPlatform {
    async fn start_provisioning(&self, _: &CallContext, _: ProvisionRequest) -> Result<Task, Refused<PlatformError>> {
        Err(PlatformError::Connection("this host has no deployment platform".into()).into())
    }
    async fn task(&self, _: &CallContext, _: &str) -> Result<Task, PlatformError> {
        Err(PlatformError::Connection("this host has no deployment platform".into()))
    }
}

/// The platform capability, to register on a runtime.
#[derive(Debug, Default, Clone, Copy)]
pub struct Platform;

/// The unversioned names of the platform interfaces.
pub const INTERFACES: [&str; 1] = ["toolshed:platform/registry"];

/// What the platform host functions work with in one call.
pub struct PlatformView<'a> {
    call: &'a mut Call,
    providers: Option<&'a PlatformProviders>,
}

struct PlatformData;

impl HasData for PlatformData {
    type Data<'a> = PlatformView<'a>;
}

impl Capability for Platform {
    fn name(&self) -> &str {
        "platform"
    }

    fn interfaces(&self) -> &[&'static str] {
        &INTERFACES
    }

    fn add_to_linker(&self, linker: &mut Linker<CallState>) -> toolshed_runtime::wasmtime::Result<()> {
        bindings::Host_::add_to_linker::<CallState, PlatformData>(linker, |state| {
            let (call, providers) = state.split();
            PlatformView { call, providers: providers.get::<PlatformProviders>() }
        })
    }

    fn empty_providers(&self, providers: &mut Providers) {
        providers.insert(PlatformProviders::new(Arc::new(NoPlatform)));
    }

    fn provided(&self, providers: &Providers) -> bool {
        providers.get::<PlatformProviders>().is_some()
    }
}
