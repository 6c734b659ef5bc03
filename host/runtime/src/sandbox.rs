//! Enforcing a plugin's limits on one call, and naming the limit it hit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::{ResourceLimiter, Store, Trap, UpdateDeadline};

use crate::engine::EPOCH_TICK;
use crate::error::{Category, HostError};
use crate::locks::LockMisuse;
use crate::park::ParkMisuse;
use crate::policy::Limits;
use crate::state::CallState;

/// Which limit stopped a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Linear memory.
    Memory,
    /// Continuous guest computation.
    Compute,
    /// Time for the whole call.
    Deadline,
    /// Number of host imports.
    ImportCalls,
    /// Size of the arguments.
    ArgumentSize,
    /// Size of the result.
    ResultSize,
    /// The wasm call stack.
    Stack,
}

impl Limit {
    /// The limit's name in error objects.
    pub fn name(self) -> &'static str {
        match self {
            Limit::Memory => "memory",
            Limit::Compute => "compute",
            Limit::Deadline => "deadline",
            Limit::ImportCalls => "import_calls",
            Limit::ArgumentSize => "argument_size",
            Limit::ResultSize => "result_size",
            Limit::Stack => "stack",
        }
    }

    fn code(self) -> &'static str {
        match self {
            Limit::Memory => "LIMIT_MEMORY",
            Limit::Compute => "LIMIT_COMPUTE",
            Limit::Deadline => "LIMIT_DEADLINE",
            Limit::ImportCalls => "LIMIT_IMPORT_CALLS",
            Limit::ArgumentSize => "LIMIT_ARGUMENT_SIZE",
            Limit::ResultSize => "LIMIT_RESULT_SIZE",
            Limit::Stack => "LIMIT_STACK",
        }
    }

    fn category(self) -> Category {
        match self {
            Limit::Compute | Limit::Deadline => Category::Timeout,
            Limit::ArgumentSize => Category::ValidationFailed,
            _ => Category::InternalError,
        }
    }

    fn amount(self, limits: &Limits) -> String {
        match self {
            Limit::Memory => format!("{} MiB", limits.memory_bytes >> 20),
            Limit::Compute => format!("{} ms of continuous computation", limits.compute.as_millis()),
            Limit::Deadline => format!("{} s per call", limits.deadline.as_secs()),
            Limit::ImportCalls => format!("{} host calls", limits.max_import_calls),
            Limit::ArgumentSize => format!("{} bytes of arguments", limits.max_argument_bytes),
            Limit::ResultSize => format!("{} bytes of result", limits.max_result_bytes),
            Limit::Stack => "the wasm stack".to_string(),
        }
    }

    /// The error object for a call of `tool` in `plugin` stopped by this limit.
    pub fn error(self, plugin: &str, tool: &str, limits: &Limits) -> HostError {
        let message = format!(
            "plugin {plugin} hit its {} limit ({}) in tool {tool}; the call was stopped",
            self.name(),
            self.amount(limits)
        );
        let mut err = HostError::new(self.category(), self.code(), message)
            .field("limit", self.name())
            .field("plugin", plugin)
            .field("tool", tool);
        if self == Limit::ArgumentSize {
            err = err.suggest("Send smaller arguments.");
        }
        err
    }
}

/// The per-call bookkeeping behind the limits.
pub struct CallLimiter {
    memory_max: usize,
    max_import_calls: u64,
    compute_ticks: u64,
    epoch: Arc<AtomicU64>,
    import_calls: u64,
    compute_since: u64,
    /// Ticks since `compute_since` the guest spent yielded, waiting for the
    /// executor to run it again: a busy host's queue, not computation.
    queued: Arc<AtomicU64>,
    hit: Option<Limit>,
}

impl CallLimiter {
    /// Bookkeeping for one call under `limits`; `epoch` counts engine ticks.
    pub fn new(limits: &Limits, epoch: Arc<AtomicU64>) -> Self {
        let tick = EPOCH_TICK.as_millis().max(1);
        let compute_since = epoch.load(Ordering::Relaxed);
        Self {
            memory_max: limits.memory_bytes,
            max_import_calls: limits.max_import_calls,
            compute_ticks: (limits.compute.as_millis() / tick).max(1) as u64,
            epoch,
            import_calls: 0,
            compute_since,
            queued: Arc::new(AtomicU64::new(0)),
            hit: None,
        }
    }

    /// The limit that stopped the call, if one did.
    pub fn hit(&self) -> Option<Limit> {
        self.hit
    }

    /// Counts a host import; refuses it past the limit.
    pub fn enter_import(&mut self) -> wasmtime::Result<()> {
        self.import_calls += 1;
        if self.import_calls > self.max_import_calls {
            self.hit = Some(Limit::ImportCalls);
            wasmtime::bail!("import call limit reached");
        }
        Ok(())
    }

    /// Goes on counting from the `import_calls` of the call's earlier runs.
    pub(crate) fn carry_imports(&mut self, import_calls: u64) {
        self.import_calls = import_calls;
    }

    /// How many host imports the call has made, in every run.
    pub(crate) fn import_calls(&self) -> u64 {
        self.import_calls
    }

    /// A host import returned: guest computation starts afresh.
    pub fn leave_import(&mut self) {
        self.compute_since = self.epoch.load(Ordering::Relaxed);
        self.queued.store(0, Ordering::Relaxed);
    }

    /// One epoch tick reached the running guest: whether its computation
    /// since the last host import, not counting time it spent yielded in
    /// the executor's queue, is past its budget.
    pub fn over_budget(&mut self) -> bool {
        let now = self.epoch.load(Ordering::Relaxed);
        let computed = now.saturating_sub(self.compute_since).saturating_sub(self.queued.load(Ordering::Relaxed));
        if computed > self.compute_ticks {
            self.hit = Some(Limit::Compute);
        }
        self.hit == Some(Limit::Compute)
    }

    /// A yield to the executor that counts the ticks until the guest runs
    /// again as queued, not computed. On a host with thousands of calls
    /// ready, a guest may wait longer than its whole budget to be run again.
    pub fn yield_to_executor(&self) -> impl Future<Output = ()> + Send + 'static {
        let (epoch, queued) = (self.epoch.clone(), self.queued.clone());
        async move {
            let yielded_at = epoch.load(Ordering::Relaxed);
            tokio::task::yield_now().await;
            queued.fetch_add(epoch.load(Ordering::Relaxed).saturating_sub(yielded_at), Ordering::Relaxed);
        }
    }
}

impl ResourceLimiter for CallLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_max {
            self.hit = Some(Limit::Memory);
            wasmtime::bail!("memory limit reached: {desired} bytes wanted, {} allowed", self.memory_max);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

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

    fn limiter(epoch: &Arc<AtomicU64>) -> CallLimiter {
        // 1000 ms of computation: 100 ticks of 10 ms.
        CallLimiter::new(&limits(), epoch.clone())
    }

    #[test]
    fn ticks_spent_computing_past_the_budget_stop_the_guest() {
        let epoch = Arc::new(AtomicU64::new(0));
        let mut limiter = limiter(&epoch);
        epoch.store(100, Ordering::Relaxed);
        assert!(!limiter.over_budget());
        epoch.store(101, Ordering::Relaxed);
        assert!(limiter.over_budget());
        assert_eq!(limiter.hit(), Some(Limit::Compute));
    }

    #[tokio::test]
    async fn ticks_spent_waiting_in_the_executors_queue_are_not_computation() {
        let epoch = Arc::new(AtomicU64::new(0));
        let mut limiter = limiter(&epoch);
        epoch.store(50, Ordering::Relaxed);
        assert!(!limiter.over_budget());
        // The guest yields; the executor runs it again 500 ticks later.
        let resumed = limiter.yield_to_executor();
        let ticker = epoch.clone();
        tokio::join!(resumed, async move { ticker.fetch_add(500, Ordering::Relaxed) });
        epoch.fetch_add(10, Ordering::Relaxed);
        assert!(!limiter.over_budget(), "60 ticks computed, 500 queued");
        epoch.fetch_add(41, Ordering::Relaxed);
        assert!(limiter.over_budget(), "101 ticks computed");
        // A host import returning starts the budget afresh.
        limiter.hit = None;
        limiter.leave_import();
        epoch.fetch_add(100, Ordering::Relaxed);
        assert!(!limiter.over_budget());
    }

    #[test]
    fn other_failures_stay_plugin_traps() {
        let other = wasmtime::Error::new(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        let err = trap_error("tools", "wait", &limits(), None, &other).to_json();
        assert_eq!(err["code"], "PLUGIN_TRAPPED", "{err}");
        assert_eq!(err["recoverable"], false);
    }
}
