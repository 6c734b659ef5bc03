//! toolshed: a sandboxed WebAssembly host for agent tools.
//!
//! Tools are functions exported by WebAssembly components (plugins). The
//! host reflects each one into JSON Schema, checks JSON arguments against it,
//! runs every call in a fresh sandboxed instance, and answers the plugin's
//! imports from a [`Backend`] on a [`Clock`].

#![deny(missing_docs)]

pub mod admission;
pub mod backend;
pub mod bench;
#[allow(missing_docs)] // generated from the WIT, whose docs it carries
pub mod bindings;
pub mod call_log;
pub mod engine;
pub mod error;
mod host;
pub mod imports;
pub mod local;
pub mod locks;
pub mod mcp;
pub mod plugin;
pub mod policy;
pub mod progress;
pub mod reflect;
mod runtime;
pub mod sandbox;
pub mod state;
pub mod text;

/// The plugins built into the host from this repository's guest crates.
pub mod builtin {
    include!(concat!(env!("OUT_DIR"), "/plugins.rs"));

    /// Every built-in plugin as `(name, component bytes)`.
    pub fn all() -> [(&'static str, &'static [u8]); 2] {
        [("workspace-tools", WORKSPACE_TOOLS), ("registry-tools", REGISTRY_TOOLS)]
    }
}

pub use backend::{Backend, CallContext, Clock, NullBackend, ScaledClock, SystemClock, TokioClock};
pub use host::{Arguments, CallOptions, InstallsPending, PluginRefused, Stats, ToolOutput, Toolshed, ToolsChanged};
pub use policy::{Limits, Policy};
pub use runtime::{Runtime, RuntimeBuilder};
pub use plugin::{LoadError, Plugin, Tool};
