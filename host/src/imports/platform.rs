//! The deployment platform, delegated to the backend with the call's context.

use crate::bindings::toolshed::platform::registry;
use crate::bindings::{PlatformError, ProvisionRequest, Task};
use crate::state::CallState;

impl registry::Host for CallState {
    async fn start_provisioning(&mut self, request: ProvisionRequest) -> wasmtime::Result<Result<Task, PlatformError>> {
        import!(self, self.shared.backend.start_registry(&self.cx, request).await)
    }

    async fn get_task(&mut self, id: String) -> wasmtime::Result<Result<Task, PlatformError>> {
        import!(self, self.shared.backend.registry_task(&self.cx, &id).await)
    }
}
