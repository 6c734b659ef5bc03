//! The `toolshed` binary and the local backend: real processes, a real
//! SQLite file or PostgreSQL database, MCP over stdio and HTTP.

mod bench;
mod coder;
mod demo;
mod features;
mod floods;
mod http;
mod local;
mod mcp;
mod new;
mod processes;
mod replicas;
mod sandbox;
mod backend;
mod support;
mod tasks;
mod trust;
