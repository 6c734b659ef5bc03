//! The workspace-lifecycle tools: `list_templates`, `read_template`,
//! `create_workspace`, `start_workspace` and `stop_workspace`; and the
//! prompt that walks a model through them ([`guide`]).
//!
//! The tool logic is written against [`Capabilities`], a small trait over the
//! host imports, so the same code runs inside the component (through the
//! adapter in `component.rs`) and natively (unit tests, benchmark baselines).

// Tools return the contract's tool-error record by value: it crosses the
// component boundary as is, so boxing it would only add a copy.
#![allow(clippy::result_large_err)]

mod agents;
mod asking;
mod builds;
mod capabilities;
mod errors;
mod existing;
pub mod guide;
mod lifecycle;
mod naming;
pub mod output;
mod parked;
mod templates;
mod ttl;

#[cfg(target_arch = "wasm32")]
mod component;

/// Types generated from the WIT contract, shared by the logic and the adapter.
///
/// They derive serde's traits so the same logic can run natively as a JSON
/// tool, the baseline the host's overhead is measured against; a wasm build
/// never calls the derived code, so the linker drops it.
pub mod wit {
    wit_bindgen::generate!({
        path: "../../wit/tools",
        world: "toolshed:tools/workspace-plugin@0.3.0",
        with: { "toolshed:tools/types@0.3.0": toolshed_guest::types },
        additional_derives: [serde::Serialize, serde::Deserialize],
        generate_all,
    });
}

pub use capabilities::{Asked, Capabilities};
pub use lifecycle::{create_workspace, start_workspace, stop_workspace};
pub use templates::{list_templates, read_template};
