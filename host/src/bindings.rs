//! Host-side bindings for every import a plugin may use.
//!
//! Imports are async so a guest that sleeps or waits on a build parks its
//! call on tokio instead of a thread.

wasmtime::component::bindgen!({
    path: ["../wit/runtime", "../wit/infra", "../wit/platform", "../wit/tools"],
    world: "toolshed:tools/host",
    imports: { default: async | trappable },
    with: {
        "toolshed:runtime/locks.lock-guard": crate::locks::HeldLock,
    },
    require_store_data_send: true,
});

pub use self::toolshed::infra::control::{CreateBuildRequest, CreateWorkspaceRequest, CreatedWorkspace};
pub use self::toolshed::infra::db::ChatBinding;
pub use self::toolshed::infra::types::{
    Agent, ApiError, Build, Chat, ControlError, Job, JobStatus, LifecycleState, ParameterOption,
    QueryError, Template, TemplateParameter, Transition, Validation, Workspace,
};
pub use self::toolshed::platform::registry::{ApiFailure, PlatformError, ProvisionRequest, Task, TaskStatus};
pub use self::toolshed::runtime::log::Level;
