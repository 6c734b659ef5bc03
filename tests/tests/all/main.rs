//! Every suite, in one test binary, so the plugin is compiled once.
//!
//! Tests run on tokio's paused clock: every wait a tool makes completes as
//! soon as nothing else can run, so the ten-minute limits cost no real time.

mod bad_input;
mod concurrency;
mod create_workspace;
mod existing_workspace;
mod list_templates;
mod manual_update;
mod read_template;
mod schema;
mod start_workspace;
mod stop_workspace;
mod support;
