//! The `provision_registry` tool: provisions a container registry on the
//! deployment platform and waits for it on the host clock.
//!
//! The logic is written against [`Platform`], so it also compiles natively;
//! `component.rs` adapts it to the WIT imports.

// Tools return the contract's tool-error record by value: it crosses the
// component boundary as is, so boxing it would only add a copy.
#![allow(clippy::result_large_err)]

mod provision;

#[cfg(target_arch = "wasm32")]
mod component;

/// Types generated from the WIT contract.
pub mod wit {
    wit_bindgen::generate!({
        path: "../../wit/tools",
        world: "toolshed:tools/registry-plugin@0.3.0",
        with: { "toolshed:tools/types@0.3.0": toolshed_guest::types },
        generate_all,
    });
}

pub use provision::{Platform, provision_registry, sanitize_name};
