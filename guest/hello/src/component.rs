//! The thin adapter between the WIT bindings and the tool logic.

#![cfg(target_arch = "wasm32")]

use crate::wit::exports::plugins::hello::hello_tools::{GreetArgs, Greeting, Guest};
use crate::wit::toolshed::runtime::log;
use toolshed_guest::types::ToolError;

/// The host, as the tool logic sees it inside the component.
struct ComponentHost;

impl crate::Host for ComponentHost {
    fn log(&self, message: &str) {
        log::log(log::Level::Info, message);
    }
}

struct Plugin;

impl Guest for Plugin {
    fn greet(args: GreetArgs) -> Result<Greeting, ToolError> {
        crate::greet(&ComponentHost, args)
    }
}

crate::wit::export!(Plugin with_types_in crate::wit);
