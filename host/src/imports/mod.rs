//! The host side of every import, over [`Backend`](crate::Backend) and
//! [`Clock`](crate::Clock).

mod infra;
mod runtime;

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::Host_;
use crate::state::CallState;

/// Adds the toolshed imports (runtime and infra) to `linker`.
pub fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    Host_::add_to_linker::<CallState, HasSelf<CallState>>(linker, |state| state)
}
