//! The `toolshed` binary and the local backend: real processes, a real
//! SQLite file or PostgreSQL database, MCP over stdio and HTTP.

mod audit;
mod bench;
mod coder;
mod compile;
mod demo;
mod exits;
mod features;
mod floods;
mod http;
mod keys;
mod languages;
mod local;
mod mcp;
mod new;
mod pack;
mod plugin_test;
mod processes;
mod registry;
mod replicas;
mod sandbox;
mod secrets;
mod sessions;
mod sockets;
mod backend;
mod support;
mod surface;
mod tasks;
mod trust;
