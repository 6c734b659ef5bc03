//! The WIT documentation a plugin carries in its `toolshed:docs` custom section.
//!
//! wit-bindgen leaves `///` docs out of the component, so the guest build
//! writes them into a custom section: a JSON object from a path to its text.
//! Paths: `tool` for a function, `tool/param.field.field` for argument
//! fields, `tool/ok.field` and `tool/err.field` for result fields; options
//! and lists are looked through.

use std::collections::HashMap;

use toolshed_contract::{API_VERSION_SECTION, DOCS_SECTION as SECTION};

/// Documentation text by path.
#[derive(Debug, Default, Clone)]
pub struct Docs {
    entries: HashMap<String, String>,
}

/// What a plugin's build wrote into it besides code: its docs and the API
/// version it was built for.
#[derive(Debug, Default, Clone)]
pub struct Metadata {
    /// The WIT docs of its tools.
    pub docs: Docs,
    /// The API version from its `toolshed:api-version` section, if it has one.
    pub api_version: Option<String>,
    /// The tools its `producers` sections say processed it, such as
    /// `ComponentizeJS`: how the host tells which toolchain built it.
    pub processed_by: Vec<String>,
}

impl Metadata {
    /// Reads the sections of a component; a component without them has no
    /// docs and no declared version.
    ///
    /// # Errors
    ///
    /// When the bytes are not a wasm binary, or a section is malformed.
    pub fn from_component(bytes: &[u8]) -> anyhow::Result<Metadata> {
        let mut metadata = Metadata::default();
        for payload in wasmparser::Parser::new(0).parse_all(bytes) {
            let wasmparser::Payload::CustomSection(section) = payload? else { continue };
            if let wasmparser::KnownCustom::Producers(producers) = section.as_known() {
                // A malformed producers section only says less about the toolchain.
                for field in producers.into_iter().flatten().filter(|f| f.name == "processed-by") {
                    metadata.processed_by.extend(field.values.into_iter().flatten().map(|v| v.name.to_string()));
                }
            } else if section.name() == SECTION {
                let entries: HashMap<String, String> = serde_json::from_slice(section.data())
                    .map_err(|e| anyhow::anyhow!("the {SECTION} section is not a JSON object of strings: {e}"))?;
                metadata.docs = Docs { entries };
            } else if section.name() == API_VERSION_SECTION {
                let version = std::str::from_utf8(section.data()).map_err(|_| anyhow::anyhow!("the {API_VERSION_SECTION} section is not text"))?;
                metadata.api_version = Some(version.trim().chars().take(32).collect());
            }
        }
        Ok(metadata)
    }
}

impl Docs {

    /// Docs from explicit entries, for components written by hand.
    pub fn from_entries(entries: impl IntoIterator<Item = (String, String)>) -> Docs {
        Docs { entries: entries.into_iter().collect() }
    }

    /// The text at `path`, if any.
    pub fn get(&self, path: &str) -> Option<&str> {
        self.entries.get(path).map(String::as_str)
    }
}
