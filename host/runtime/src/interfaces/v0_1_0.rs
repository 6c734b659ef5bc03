//! `toolshed:runtime@0.1.0`, as first shipped: every function delegates to
//! the newest implementation. The one difference is `locks.acquire`, which
//! could not fail in 0.1.0: a refusal ends the call with an error naming it.

use wasmtime::component::Resource;

use crate::call_log::Level;
use crate::locks::HeldLock;
use crate::state::CallState;

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/frozen/0.1.0/runtime",
        inline: "
            package toolshed:runtime-host-v0-1-0;
            world host {
                import toolshed:runtime/clock@0.1.0;
                import toolshed:runtime/locks@0.1.0;
                import toolshed:runtime/events@0.1.0;
                import toolshed:runtime/log@0.1.0;
            }
        ",
        world: "toolshed:runtime-host-v0-1-0/host",
        imports: { default: async | trappable },
        with: { "toolshed:runtime/locks.lock-guard": crate::locks::HeldLock },
        require_store_data_send: true,
    });
}

use bindings::toolshed::runtime::{clock, events, locks, log};

impl clock::Host for CallState {
    async fn now(&mut self) -> wasmtime::Result<u64> {
        CallState::now(self).await
    }

    async fn sleep(&mut self, ms: u64) -> wasmtime::Result<()> {
        CallState::sleep(self, ms).await
    }
}

impl locks::Host for CallState {
    async fn acquire(&mut self, key: String) -> wasmtime::Result<Resource<HeldLock>> {
        // The refusal becomes the call's error object (see `sandbox`).
        Ok(CallState::acquire(self, key).await??)
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
