//! What one call's Store holds.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::backend::{Backend, CallContext, Clock};
use crate::locks::LockTable;

/// What every call on a host shares: the backend, the clock and the locks.
pub struct Shared {
    /// Answers the infrastructure imports.
    pub backend: Arc<dyn Backend>,
    /// Answers `clock.now` and `clock.sleep`.
    pub clock: Arc<dyn Clock>,
    /// The chat-scoped locks.
    pub locks: LockTable,
}

/// The data of one call's Store: built fresh for each call, dropped after it.
pub struct CallState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) shared: Arc<Shared>,
    pub(crate) cx: CallContext,
    pub(crate) plugin: Arc<str>,
    pub(crate) limits: StoreLimits,
}

impl CallState {
    /// State for a call of `plugin` by `cx`, with WASI denied everything:
    /// no directories, sockets, environment or arguments.
    pub fn new(shared: Arc<Shared>, cx: CallContext, plugin: Arc<str>, memory_bytes: usize) -> Self {
        Self {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            shared,
            cx,
            plugin,
            limits: StoreLimitsBuilder::new().memory_size(memory_bytes).trap_on_grow_failure(true).build(),
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}
