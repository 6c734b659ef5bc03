//! The thin adapter between the WIT bindings and the tool logic.

use crate::Platform;
use crate::wit::exports::toolshed::tools::registry_tools::{Guest, ProvisionRegistryArgs, ProvisionRegistryResult, ToolError};
use crate::wit::toolshed::platform::registry::{self, PlatformError, ProvisionRequest, Task};
use crate::wit::toolshed::runtime::{call, clock, events};

struct ComponentHost;

impl Platform for ComponentHost {
    fn now(&self) -> u64 {
        clock::now()
    }
    fn sleep(&self, ms: u64) {
        clock::sleep(ms)
    }
    fn progress(&self, message: &str) {
        events::progress(message)
    }
    fn wait_budget(&self) -> Option<u64> {
        call::wait_budget()
    }
    fn start(&self, request: &ProvisionRequest) -> Result<Task, PlatformError> {
        registry::start_provisioning(request)
    }
    fn task(&self, id: &str) -> Result<Task, PlatformError> {
        registry::get_task(id)
    }
}

struct Plugin;

impl Guest for Plugin {
    fn provision_registry(args: ProvisionRegistryArgs) -> Result<ProvisionRegistryResult, ToolError> {
        crate::provision_registry(&ComponentHost, args)
    }
}

crate::wit::export!(Plugin with_types_in crate::wit);
