//! `toolshed:runtime@0.2.0`, as it shipped: every function delegates to
//! the newest implementation.

use wasmtime::component::Resource;

use crate::call_log::Level;
use crate::locks::{HeldLock, LockMisuse};
use crate::state::CallState;

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/frozen/0.2.0/runtime",
        inline: "
            package toolshed:runtime-host-v0-2-0;
            world host {
                import toolshed:runtime/clock@0.2.0;
                import toolshed:runtime/locks@0.2.0;
                import toolshed:runtime/events@0.2.0;
                import toolshed:runtime/log@0.2.0;
                import toolshed:runtime/call@0.2.0;
                import toolshed:runtime/park@0.2.0;
            }
        ",
        world: "toolshed:runtime-host-v0-2-0/host",
        imports: { default: async | trappable },
        with: { "toolshed:runtime/locks.lock-guard": crate::locks::HeldLock },
        require_store_data_send: true,
    });
}

use bindings::toolshed::runtime::{call, clock, events, locks, log, park};

impl clock::Host for CallState {
    async fn now(&mut self) -> wasmtime::Result<u64> {
        CallState::now(self).await
    }

    async fn sleep(&mut self, ms: u64) -> wasmtime::Result<()> {
        CallState::sleep(self, ms).await
    }
}

impl locks::Host for CallState {
    async fn acquire(&mut self, key: String) -> wasmtime::Result<Result<Resource<HeldLock>, locks::LockError>> {
        Ok(CallState::acquire(self, key).await?.map_err(|misuse| match misuse {
            LockMisuse::KeyTooLong(_) => locks::LockError::KeyTooLong,
            LockMisuse::TooMany => locks::LockError::TooManyHeld,
            LockMisuse::AlreadyHeld(_) => locks::LockError::AlreadyHeld,
        }))
    }
}

impl locks::HostLockGuard for CallState {
    async fn drop(&mut self, lock: Resource<HeldLock>) -> wasmtime::Result<()> {
        self.release(lock).await
    }
}

impl events::Host for CallState {
    async fn chat_updated(&mut self) -> wasmtime::Result<()> {
        CallState::chat_updated(self).await
    }

    async fn progress(&mut self, message: String) -> wasmtime::Result<()> {
        self.report_progress(message).await
    }
}

impl log::Host for CallState {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Debug => Level::Debug,
            log::Level::Info => Level::Info,
            log::Level::Warn => Level::Warn,
            log::Level::Error => Level::Error,
        };
        self.log_line(level, message).await
    }
}

impl call::Host for CallState {
    async fn wait_budget(&mut self) -> wasmtime::Result<Option<u64>> {
        CallState::wait_budget(self).await
    }
}

impl park::Host for CallState {
    async fn park(&mut self, ms: u64, state: Vec<u8>) -> wasmtime::Result<()> {
        CallState::park(self, ms, state).await
    }

    async fn resumed(&mut self) -> wasmtime::Result<Option<Vec<u8>>> {
        CallState::resumed(self).await
    }
}
