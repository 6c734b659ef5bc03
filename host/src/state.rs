//! What one call's Store holds.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::backend::{Backend, CallContext, Clock};
use crate::call_log::{CallLog, Origin};
use crate::locks::{CallLocks, LockTable};
use crate::policy::Limits;
use crate::progress::{ProgressSink, Reporter};
use crate::sandbox::CallLimiter;

/// What every call on a host shares: the backend, the clock and the locks.
pub struct Shared {
    /// Answers the infrastructure imports.
    pub backend: Arc<dyn Backend>,
    /// Answers `clock.now` and `clock.sleep`.
    pub clock: Arc<dyn Clock>,
    /// The plugin- and chat-scoped locks.
    pub locks: LockTable,
}

/// Who a call is, as its store knows it.
pub struct CallIdentity {
    /// The calling context.
    pub cx: CallContext,
    /// The plugin being called.
    pub plugin: Arc<str>,
    /// The tool being called.
    pub tool: Arc<str>,
}

/// The data of one call's Store: built fresh for each call, dropped after
/// it, with everything the host keeps on the call's behalf.
pub struct CallState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) shared: Arc<Shared>,
    pub(crate) cx: CallContext,
    pub(crate) plugin: Arc<str>,
    pub(crate) tool: Arc<str>,
    pub(crate) limiter: CallLimiter,
    pub(crate) locks: CallLocks,
    pub(crate) progress: Reporter,
    pub(crate) log: CallLog,
}

impl CallState {
    /// State for a call by `who` under `limits`, with WASI denied
    /// everything: no directories, sockets, environment or arguments.
    pub fn new(shared: Arc<Shared>, who: CallIdentity, limits: &Limits, epoch: Arc<AtomicU64>, progress: Option<Arc<dyn ProgressSink>>) -> Self {
        let wasi = WasiCtx::builder().allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false).build();
        Self {
            wasi,
            table: ResourceTable::new(),
            shared,
            cx: who.cx,
            plugin: who.plugin,
            tool: who.tool,
            limiter: CallLimiter::new(limits, epoch),
            locks: CallLocks::default(),
            progress: Reporter::new(progress),
            log: CallLog::default(),
        }
    }

    /// Writes a plugin's log line under this call's budget.
    pub(crate) fn log(&mut self, level: crate::bindings::Level, message: &str) {
        let origin = Origin { plugin: &self.plugin, tool: &self.tool, chat: &self.cx.chat_id };
        self.log.write(&origin, level, message);
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}
