//! The `toolshed` binary and the local backend: real processes, a real
//! SQLite file, MCP over stdio.

mod bench;
mod demo;
mod features;
mod floods;
mod http;
mod local;
mod mcp;
mod new;
mod processes;
mod backend;
mod support;
