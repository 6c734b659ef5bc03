//! The `toolshed` command: serve agent tools over MCP, call them, manage
//! the local backend, play the demo and run the benchmarks. The library
//! target exists for the benchmarks and the command's own tests.

pub mod app;
pub mod bench;
pub mod cli;
pub mod new;
pub mod plugin_test;
