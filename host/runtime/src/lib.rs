//! toolshed-runtime: run agent tools as sandboxed WebAssembly components.
//!
//! Tools are functions exported by components (plugins). A [`Runtime`]
//! compiles plugins (caching the code on disk), checks their imports against
//! a [`Policy`], and links each with exactly what it was granted: WASI,
//! denied everything; the runtime interfaces (clock, locks, events, log,
//! call, park, content, ask); and the [`Capability`] families the embedder registers. A
//! [`Toolshed`] serves the tools of its plugins: it reflects each into JSON
//! Schema, checks JSON arguments against it, runs every call in a fresh
//! sandboxed instance under the plugin's limits, and swaps plugin versions
//! atomically while calls run.
//!
//! ```no_run
//! use std::sync::Arc;
//! use toolshed_runtime::{CallContext, Runtime, Toolshed};
//!
//! # async fn run(bytes: Vec<u8>) -> anyhow::Result<()> {
//! let runtime = Arc::new(Runtime::builder().cache_dir("/var/cache/toolshed").build()?);
//! let host = Toolshed::builder(runtime).build()?;
//! host.install("my-tools", bytes).await?;
//! let cx = CallContext { chat_id: "c1".into(), owner_id: "u1".into(), owner_name: "ada".into(), organization_id: "o1".into() };
//! let out = host.call(&cx, "list_things", "{}").await;
//! println!("{}", out.value);
//! # Ok(()) }
//! ```
//!
//! The runtime knows nothing of workspaces: `toolshed-infra` and
//! `toolshed-platform` add those interfaces as capabilities, and a backend
//! (such as `toolshed-local`) provides them.

#![deny(missing_docs)]

pub mod admission;
pub mod call_log;
pub mod capability;
pub mod chat_events;
pub mod chats;
pub mod client;
pub mod clock;
pub mod content;
pub mod context;
pub mod engine;
pub mod error;
mod host;
pub mod interfaces;
pub mod limiter;
pub mod locks;
pub mod park;
pub mod plugin;
pub mod policy;
pub mod progress;
pub mod providers;
pub mod quota;
pub mod reflect;
mod runtime;
pub mod sandbox;
pub mod state;
pub mod tasks;
pub mod text;
pub mod tls;

pub use capability::Capability;
pub use chat_events::{ChatEvents, NoEvents};
pub use providers::{Backend, Providers};
pub use chats::{ChatDirectory, ChatRefused};
pub use clock::{Clock, ScaledClock, SystemClock, TokioClock};
pub use context::CallContext;
pub use host::{Arguments, CallOptions, InstallsPending, MissingProvider, PluginRefused, Stats, TieredUp, ToolOutput, Toolshed, ToolshedBuilder, ToolsChanged};
pub use plugin::{LoadError, Plugin, Tier, Tool};
pub use policy::{Limits, Policy};
pub use runtime::{Runtime, RuntimeBuilder};

// Capability crates implement host functions against these.
pub use async_trait::async_trait;
pub use wasmtime;
