//! The WIT documentation a plugin carries in its `toolshed:docs` custom section.
//!
//! wit-bindgen leaves `///` docs out of the component, so the guest build
//! writes them into a custom section: a JSON object from a path to its text.
//! Paths: `tool` for a function, `tool/param.field.field` for argument
//! fields, `tool/ok.field` and `tool/err.field` for result fields; options
//! and lists are looked through.

use std::collections::HashMap;

/// The name of the custom section holding a plugin's docs.
pub const SECTION: &str = "toolshed:docs";

/// Documentation text by path.
#[derive(Debug, Default, Clone)]
pub struct Docs {
    entries: HashMap<String, String>,
}

impl Docs {
    /// Reads the docs section of a component; a component without one has
    /// no docs.
    ///
    /// # Errors
    ///
    /// When the bytes are not a wasm binary, or the section is not a JSON
    /// object of strings.
    pub fn from_component(bytes: &[u8]) -> anyhow::Result<Docs> {
        for payload in wasmparser::Parser::new(0).parse_all(bytes) {
            if let wasmparser::Payload::CustomSection(section) = payload?
                && section.name() == SECTION {
                    let entries: HashMap<String, String> = serde_json::from_slice(section.data())
                        .map_err(|e| anyhow::anyhow!("the {SECTION} section is not a JSON object of strings: {e}"))?;
                    return Ok(Docs { entries });
                }
        }
        Ok(Docs::default())
    }

    /// Docs from explicit entries, for components written by hand.
    pub fn from_entries(entries: impl IntoIterator<Item = (String, String)>) -> Docs {
        Docs { entries: entries.into_iter().collect() }
    }

    /// The text at `path`, if any.
    pub fn get(&self, path: &str) -> Option<&str> {
        self.entries.get(path).map(String::as_str)
    }
}
