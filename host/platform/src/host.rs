//! The host side of the registry interface.

use toolshed_runtime::wasmtime;

use crate::bindings::toolshed::platform::registry;
use crate::{PlatformError, PlatformView, ProvisionRequest, Task};

impl registry::Host for PlatformView<'_> {
    async fn start_provisioning(&mut self, request: ProvisionRequest) -> wasmtime::Result<Result<Task, PlatformError>> {
        let registry = self.registry()?;
        // A quota of the caller's ends the call with its own answer.
        toolshed_runtime::quota::settle(self.call.import(async |cx| registry.start_provisioning(cx, request).await).await?)
    }

    async fn get_task(&mut self, id: String) -> wasmtime::Result<Result<Task, PlatformError>> {
        let registry = self.registry()?;
        self.call.import(async |cx| registry.task(cx, &id).await).await
    }
}

impl PlatformView<'_> {
    fn registry(&self) -> wasmtime::Result<std::sync::Arc<dyn crate::Registry>> {
        self.providers
            .map(|p| p.registry.clone())
            .ok_or_else(|| wasmtime::format_err!("this host grants the platform interface but provides no platform for it"))
    }
}
