//! The limits of one call as the store counts them: memory, computation
//! between host imports, and host imports; and the error object naming the
//! limit a call hit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::ResourceLimiter;

use crate::engine::EPOCH_TICK;
use crate::error::{Category, HostError};
use crate::policy::Limits;

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
    /// The last tick host work the guest waited on outside an import
    /// completed at ([`ComputeRestart`]); computation counts from it too.
    restarted: Arc<AtomicU64>,
    hit: Option<Limit>,
}

/// Restarts a call's compute budget from outside its imports: host work
/// the guest waits on (a response it polls for) made progress, so the
/// time before was waiting, not computation.
#[derive(Clone)]
pub struct ComputeRestart {
    epoch: Arc<AtomicU64>,
    restarted: Arc<AtomicU64>,
}

impl ComputeRestart {
    /// The guest's computation counts from now.
    pub fn restart(&self) {
        self.restarted.fetch_max(self.epoch.load(Ordering::Relaxed), Ordering::Relaxed);
    }
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
            restarted: Arc::new(AtomicU64::new(compute_since)),
            hit: None,
        }
    }

    /// A handle that restarts the compute budget.
    pub fn restart_handle(&self) -> ComputeRestart {
        ComputeRestart { epoch: self.epoch.clone(), restarted: self.restarted.clone() }
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
        let restarted = self.restarted.load(Ordering::Relaxed);
        if restarted > self.compute_since {
            // Host work the guest waited on completed since: count from there.
            self.compute_since = restarted;
            self.queued.store(0, Ordering::Relaxed);
        }
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


#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(epoch: &Arc<AtomicU64>) -> CallLimiter {
        // 1000 ms of computation: 100 ticks of 10 ms.
        CallLimiter::new(&crate::policy::Policy::default().defaults().clone(), epoch.clone())
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
    fn host_work_completing_while_the_guest_waits_restarts_its_budget() {
        let epoch = Arc::new(AtomicU64::new(0));
        let mut limiter = limiter(&epoch);
        let restart = limiter.restart_handle();
        // The guest blocks on a response for 500 ticks; it arrives.
        epoch.store(500, Ordering::Relaxed);
        restart.restart();
        epoch.fetch_add(50, Ordering::Relaxed);
        assert!(!limiter.over_budget(), "50 ticks computed since the response came");
        epoch.fetch_add(51, Ordering::Relaxed);
        assert!(limiter.over_budget(), "101 ticks computed since");
    }
}
