//! What one call's Store holds.

use std::sync::Arc;

use std::sync::atomic::AtomicU64;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::backend::{Backend, CallContext, Clock};
use crate::locks::LockTable;
use crate::policy::Limits;
use crate::sandbox::CallLimiter;

/// What every call on a host shares: the backend, the clock and the locks.
pub struct Shared {
    /// Answers the infrastructure imports.
    pub backend: Arc<dyn Backend>,
    /// Answers `clock.now` and `clock.sleep`.
    pub clock: Arc<dyn Clock>,
    /// The chat-scoped locks.
    pub locks: LockTable,
    /// Progress reported by running calls, for whoever shows it.
    pub progress: tokio::sync::broadcast::Sender<Progress>,
}

/// Progress a call reported while it waits.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// The chat of the call.
    pub chat_id: String,
    /// What the call reported.
    pub message: String,
}

/// The data of one call's Store: built fresh for each call, dropped after it.
pub struct CallState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) shared: Arc<Shared>,
    pub(crate) cx: CallContext,
    pub(crate) plugin: Arc<str>,
    pub(crate) limiter: CallLimiter,
}

impl CallState {
    /// State for a call of `plugin` by `cx`, with WASI denied everything:
    /// no directories, sockets, environment or arguments.
    pub fn new(shared: Arc<Shared>, cx: CallContext, plugin: Arc<str>, limits: &Limits, epoch: Arc<AtomicU64>) -> Self {
        let wasi = WasiCtx::builder().allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false).build();
        Self {
            wasi,
            table: ResourceTable::new(),
            shared,
            cx,
            plugin,
            limiter: CallLimiter::new(limits, epoch),
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}
