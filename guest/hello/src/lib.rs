//! The hello tools. The logic is written against [`Host`], a small trait
//! over the host imports it uses, so it compiles natively for unit tests;
//! `component.rs` adapts the WIT bindings to it.

mod component;

/// Types generated from the WIT.
pub mod wit {
    wit_bindgen::generate!({
        path: "wit",
        world: "plugins:hello/hello-plugin@0.1.0",
        with: { "toolshed:tools/types@0.3.0": toolshed_guest::types },
        generate_all,
    });
}

use toolshed_guest::types::{ErrorCategory, ToolError};
use wit::exports::plugins::hello::hello_tools::{GreetArgs, Greeting};

/// What the tools need from their host: one method per import they use.
pub trait Host {
    /// Writes a line to the operator's log.
    fn log(&self, message: &str);
}

/// Greets `args.name`.
///
/// # Errors
///
/// A validation error, with a hint for the model, when the name is empty.
pub fn greet(host: &impl Host, args: GreetArgs) -> Result<Greeting, ToolError> {
    let name = args.name.trim();
    if name.is_empty() {
        let err = toolshed_guest::error(ErrorCategory::ValidationFailed, "NAME_REQUIRED", "name is required");
        return Err(toolshed_guest::suggest(err, &["Call greet again with the name of the person to greet."]));
    }
    host.log(&format!("greeting {name}"));
    Ok(Greeting { text: format!("Hello, {name}!") })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Silent;

    impl Host for Silent {
        fn log(&self, _message: &str) {}
    }

    #[test]
    fn an_empty_name_is_refused_with_a_hint() {
        let err = greet(&Silent, GreetArgs { name: "  ".into() }).unwrap_err();
        assert_eq!(err.code, "NAME_REQUIRED");
        assert!(err.suggestions.is_some());
    }
}
