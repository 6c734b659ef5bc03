//! The host side of every import, over [`Backend`](crate::Backend) and
//! [`Clock`](crate::Clock).

/// Runs one import: counts it against the call's import limit, and restarts
/// the guest's compute budget when it returns, so time spent waiting in the
/// host never counts as guest computation.
macro_rules! import {
    ($state:ident, $answer:expr) => {{
        $state.limiter.enter_import()?;
        let answer = $answer;
        $state.limiter.leave_import();
        Ok(answer)
    }};
}

mod infra;
mod platform;
mod runtime;

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::Host_;
use crate::state::CallState;

/// Adds the toolshed imports (runtime and infra) to `linker`.
pub fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    Host_::add_to_linker::<CallState, HasSelf<CallState>>(linker, |state| state)
}
