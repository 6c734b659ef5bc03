//! clock, locks, events and log.

use std::time::Duration;

use wasmtime::component::Resource;

use crate::bindings::toolshed::runtime::{clock, events, locks, log};
use crate::locks::HeldLock;
use crate::state::CallState;

/// The longest single sleep; the call's deadline ends any wait sooner.
const LONGEST_SLEEP: Duration = Duration::from_secs(24 * 60 * 60);

impl clock::Host for CallState {
    async fn now(&mut self) -> wasmtime::Result<u64> {
        import!(self, self.shared.clock.now_ms())
    }

    async fn sleep(&mut self, ms: u64) -> wasmtime::Result<()> {
        import!(self, self.shared.clock.sleep(Duration::from_millis(ms).min(LONGEST_SLEEP)).await)
    }
}

impl locks::Host for CallState {
    async fn acquire(&mut self, key: String) -> wasmtime::Result<Resource<HeldLock>> {
        // Checked before waiting: a call that asks for a key it holds would
        // otherwise wait for itself until its deadline.
        self.locks.check(&key)?;
        let held: wasmtime::Result<HeldLock> = import!(self, self.shared.locks.acquire(&self.plugin, &self.cx.chat_id, &key).await);
        let held = held?;
        self.locks.taken(&key);
        Ok(self.table.push(held)?)
    }
}

impl locks::HostLockGuard for CallState {
    async fn drop(&mut self, lock: Resource<HeldLock>) -> wasmtime::Result<()> {
        let held = self.table.delete(lock)?;
        self.locks.released(held.key());
        Ok(())
    }
}

impl events::Host for CallState {
    async fn chat_updated(&mut self) -> wasmtime::Result<()> {
        import!(self, self.shared.backend.chat_updated(&self.cx).await)
    }

    async fn progress(&mut self, message: String) -> wasmtime::Result<()> {
        import!(self, self.progress.report(&message))
    }
}

impl log::Host for CallState {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        import!(self, CallState::log(self, level, &message))
    }
}
