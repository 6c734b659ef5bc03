//! The runtime interfaces every plugin may import: clock, locks, events,
//! log, call, park, content and ask. One module per API version, as each first shipped; the
//! newest holds the implementation and older versions delegate to it.

pub(crate) mod latest;
pub(crate) mod v0_1_0;
pub(crate) mod v0_2_0;

use wasmtime::component::{HasSelf, Linker};

use crate::state::CallState;

/// Adds the runtime interfaces, at every supported version, to `linker`.
///
/// # Errors
///
/// When an interface is already defined.
pub fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    latest::bindings::Host_::add_to_linker::<CallState, HasSelf<CallState>>(linker, |state| state)?;
    v0_2_0::bindings::Host_::add_to_linker::<CallState, HasSelf<CallState>>(linker, |state| state)?;
    v0_1_0::bindings::Host_::add_to_linker::<CallState, HasSelf<CallState>>(linker, |state| state)?;
    Ok(())
}

/// The unversioned names of the runtime interfaces.
pub const INTERFACES: [&str; 8] = [
    "toolshed:runtime/clock",
    "toolshed:runtime/locks",
    "toolshed:runtime/events",
    "toolshed:runtime/log",
    "toolshed:runtime/call",
    "toolshed:runtime/park",
    "toolshed:runtime/content",
    "toolshed:runtime/ask",
];
