//! toolshed-standard: the one place the standard capability set is
//! written. Every binary, test and bench builds its runtime from
//! [`runtime`], so a new capability is registered once, here.
//!
//! ```no_run
//! # fn run(backend: &std::sync::Arc<impl toolshed_runtime::Backend>) -> anyhow::Result<()> {
//! let runtime = std::sync::Arc::new(toolshed_standard::runtime().build()?);
//! let host = toolshed_runtime::Toolshed::builder(runtime).backend(backend).build()?;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

use toolshed_runtime::{Runtime, RuntimeBuilder};

/// A runtime builder offering the standard capabilities: `toolshed:infra`
/// (db, control, agent-connect, build logs and versions) and
/// `toolshed:platform` (registries), and outgoing HTTP (`wasi:http`, held
/// to each plugin's allow-list) with plugin configuration (`wasi:config`),
/// beside the runtime's own interfaces.
/// A plugin is linked with those its policy grants.
pub fn runtime() -> RuntimeBuilder {
    Runtime::builder().capability(toolshed_infra::Infra).capability(toolshed_platform::Platform).capability(toolshed_network::Network)
        .capability(toolshed_network::Config)
}
