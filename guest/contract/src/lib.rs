//! What toolshed's host and its guests must agree on, written once: the
//! API versions, the custom sections a plugin carries, the host settings the
//! contract fixes, and the wire names of the WIT enums.
//!
//! The host and the guests use different generated types for the same WIT
//! enums (wasmtime's and wit-bindgen's), so the names live here, indexed by
//! case order, and a test checks every table against the WIT.
//!
//! ```
//! use toolshed_contract::{JOB_STATUS, name};
//! assert_eq!(name(&JOB_STATUS, 1), "running");
//! ```

#![no_std]
#![deny(missing_docs)]

/// The API version guests built from this repository target.
pub const API_VERSION: &str = "0.3.0";

/// Every API version a host built from this repository loads, oldest first.
pub const SUPPORTED_API_VERSIONS: [&str; 3] = ["0.1.0", "0.2.0", "0.3.0"];

/// The custom section holding the API version a plugin was built for.
pub const API_VERSION_SECTION: &str = "toolshed:api-version";

/// The custom section holding a plugin's WIT docs, as JSON.
pub const DOCS_SECTION: &str = "toolshed:docs";

/// How long after its last heartbeat an agent still counts as connected
/// (SPEC 3.2), in milliseconds.
pub const INACTIVE_DISCONNECT_MS: u64 = 30_000;

/// The wire names of `toolshed:infra/types.job-status`, in case order.
pub const JOB_STATUS: [&str; 7] = ["pending", "running", "succeeded", "canceling", "canceled", "failed", "unknown"];

/// The wire names of `toolshed:infra/types.lifecycle-state`, in case order.
pub const LIFECYCLE_STATE: [&str; 9] =
    ["created", "starting", "start_timeout", "start_error", "ready", "shutting_down", "shutdown_timeout", "shutdown_error", "off"];

/// The wire names of `toolshed:infra/types.transition`, in case order.
pub const TRANSITION: [&str; 3] = ["start", "stop", "delete"];

/// The wire names of `toolshed:platform/registry.task-status`, in case
/// order. The WIT spells the last case `cancelled`, where a provisioner
/// job's status (Coder's word) is `canceled`: each keeps its own package's
/// spelling.
pub const TASK_STATUS: [&str; 5] = ["pending", "running", "completed", "failed", "cancelled"];

/// The wire names of `toolshed:tools/types.error-category`, in case order:
/// the categories of the contract's error object (SPEC §0).
pub const ERROR_CATEGORY: [&str; 12] = [
    "file_not_found",
    "permission_denied",
    "path_outside_boundary",
    "validation_failed",
    "serialization_error",
    "external_command_failed",
    "command_rejected",
    "timeout",
    "network_error",
    "resource_unavailable",
    "internal_error",
    "user_cancelled",
];

/// The name at `index` of `table`, or `"unknown"` past its end.
pub fn name<const N: usize>(table: &[&'static str; N], index: usize) -> &'static str {
    table.get(index).copied().unwrap_or("unknown")
}

/// The index of `name` in `table`.
pub fn index<const N: usize>(table: &[&'static str; N], name: &str) -> Option<usize> {
    table.iter().position(|n| *n == name)
}
