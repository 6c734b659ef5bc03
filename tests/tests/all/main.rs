//! Every suite, in one test binary, so the plugin is compiled once.
//!
//! "SPEC n.n" in these suites is that rule of `docs/spec.md`, the behaviour
//! contract; where it is silent or loose, `docs/behaviour.md` says what the
//! project chose. `docs/conformance.md` maps every rule to its tests, and
//! `tests/tests/conformance_index.rs` keeps that map true.
//!
//! Tests run on tokio's paused clock: every wait a tool makes completes as
//! soon as nothing else can run, so the ten-minute limits cost no real time.

/// The workspace tools under test: built from the guest crate.
const WORKSPACE_TOOLS: &[u8] = toolshed_builtin::WORKSPACE_TOOLS;

mod bad_input;
mod cache;
mod chat_updates;
mod concurrency;
mod create_workspace;
mod decisions;
mod existing_workspace;
mod fuzz;
mod hostile;
mod list_templates;
mod manual_update;
mod mcp_surface;
mod park;
mod policy;
mod pool;
mod provision_registry;
mod read_template;
mod sandbox;
mod schema;
mod start_workspace;
mod stop_workspace;
mod support;
mod swap;
mod tasks;
mod tiers;
mod timing;
mod toolchains;
mod wait_budget;
