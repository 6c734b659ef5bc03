//! Enforcing a plugin's limits on one call: the compute budget armed on
//! its store, and the error object for a call that trapped.

use wasmtime::{Store, Trap, UpdateDeadline};

use crate::error::{Category, HostError};
use crate::limiter::Limit;
use crate::locks::LockMisuse;
use crate::park::ParkMisuse;
use crate::policy::Limits;
use crate::state::CallState;

/// Installs the compute budget on a call's store: every epoch tick the guest
/// yields to other calls, and a guest that computed past its budget since
/// the last host import returned is interrupted.
pub fn arm(store: &mut Store<CallState>) {
    store.limiter(|state| &mut state.call.limiter);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut cx| {
        let limiter = &mut cx.data_mut().call.limiter;
        if limiter.over_budget() {
            return Ok(UpdateDeadline::Interrupt);
        }
        Ok(UpdateDeadline::YieldCustom(1, Box::pin(limiter.yield_to_executor())))
    });
}

/// The error object for a call that trapped: one line for the model, with
/// the whole error, wasm backtrace included, written to the log only.
pub fn trap_error(plugin: &str, tool: &str, limits: &Limits, hit: Option<Limit>, err: &wasmtime::Error) -> HostError {
    if let Some(limit) = hit {
        return limit.error(plugin, tool, limits);
    }
    // A host function refused the call's request for a quota of its
    // caller's: the answer says which, and what to stop or delete.
    if let Some(quota) = err.downcast_ref::<crate::quota::QuotaExceeded>() {
        return quota.error();
    }
    if let Some(misuse) = err.downcast_ref::<LockMisuse>() {
        return HostError::new(
            Category::InternalError,
            misuse.code(),
            format!("plugin {plugin} misused its locks in tool {tool}: {}; the call was stopped", crate::text::clip(&misuse.to_string(), 400)),
        )
        .field("plugin", plugin)
        .field("tool", tool);
    }
    if let Some(misuse) = err.downcast_ref::<ParkMisuse>() {
        return HostError::new(
            Category::InternalError,
            misuse.code(),
            format!("plugin {plugin} misused parking in tool {tool}: {misuse}; the call was stopped"),
        )
        .field("plugin", plugin)
        .field("tool", tool);
    }
    if let Some(reason) = host_out_of_resources(err) {
        tracing::warn!(plugin, tool, "a call could not get the memory it needs from the system: {err:?}");
        return HostError::new(
            Category::ResourceUnavailable,
            "HOST_OUT_OF_MEMORY",
            format!("the host could not give tool {tool} of plugin {plugin} the memory a call needs ({reason}); the call was not completed"),
        )
        .field("plugin", plugin)
        .field("tool", tool)
        .suggest("Wait a few seconds, then make the same call again.");
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => Limit::Stack.error(plugin, tool, limits),
        Some(Trap::UnreachableCodeReached) => {
            tracing::warn!(plugin, tool, "the plugin panicked: {err:?}");
            HostError::new(Category::InternalError, "PLUGIN_PANICKED", format!("plugin {plugin} panicked in tool {tool}; the call was stopped"))
                .field("plugin", plugin)
                .field("tool", tool)
        }
        _ => {
            tracing::warn!(plugin, tool, "the plugin trapped: {err:?}");
            HostError::new(
                Category::InternalError,
                "PLUGIN_TRAPPED",
                format!("plugin {plugin} failed in tool {tool}: {}; the call was stopped", one_line_reason(err)),
            )
            .field("plugin", plugin)
            .field("tool", tool)
        }
    }
}

/// Why the system refused a call's instance, stack or memory, if that is
/// what `err` is: the host's condition (too many mappings, no memory), not
/// the plugin's fault, so it is reported as a recoverable error and never
/// as a trap. A plugin growing past its own memory limit is caught earlier,
/// as [`Limit::Memory`].
fn host_out_of_resources(err: &wasmtime::Error) -> Option<String> {
    err.chain().find_map(|cause| {
        #[cfg(unix)]
        if let Some(errno) = cause.downcast_ref::<rustix::io::Errno>() {
            return (*errno == rustix::io::Errno::NOMEM).then(|| std::io::Error::from(*errno).to_string());
        }
        let io = cause.downcast_ref::<std::io::Error>()?;
        (io.kind() == std::io::ErrorKind::OutOfMemory).then(|| io.to_string())
    })
}

/// The reason of a trap in one short line, without the backtrace (whose
/// function names are the plugin's business, not the model's).
fn one_line_reason(err: &wasmtime::Error) -> String {
    let reason = match err.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => err.root_cause().to_string(),
    };
    let first = reason.lines().next().unwrap_or("").trim();
    crate::text::one_line(&crate::text::clip(first, 200))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        crate::policy::Policy::default().defaults().clone()
    }

    #[cfg(unix)]
    #[test]
    fn a_mapping_the_system_refuses_is_the_hosts_condition_not_a_plugin_trap() {
        let refused = wasmtime::Error::new(rustix::io::Errno::NOMEM).context("failed to protect stack guard page");
        let err = trap_error("tools", "wait", &limits(), None, &refused).to_json();
        assert_eq!(err["code"], "HOST_OUT_OF_MEMORY", "{err}");
        assert_eq!(err["category"], "resource_unavailable");
        assert_eq!(err["recoverable"], true);
        assert!(err["suggestions"].to_string().contains("make the same call again"), "{err}");
    }


    #[test]
    fn other_failures_stay_plugin_traps() {
        let other = wasmtime::Error::new(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        let err = trap_error("tools", "wait", &limits(), None, &other).to_json();
        assert_eq!(err["code"], "PLUGIN_TRAPPED", "{err}");
        assert_eq!(err["recoverable"], false);
    }
}
