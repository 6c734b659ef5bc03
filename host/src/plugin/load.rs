//! Compiling a component and reflecting its tools.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, InstancePre, Linker};

use super::tool::Tool;
use crate::reflect::Docs;
use crate::state::CallState;

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a valid component for this engine.
    #[error("plugin {plugin}: not a valid WebAssembly component: {reason}")]
    Invalid {
        /// The plugin.
        plugin: String,
        /// What is wrong.
        reason: String,
    },
    /// The docs section is unreadable.
    #[error("plugin {plugin}: {reason}")]
    Docs {
        /// The plugin.
        plugin: String,
        /// What is wrong.
        reason: String,
    },
    /// A tool's signature uses a type with no JSON form.
    #[error("plugin {plugin}: {source}")]
    Unsupported {
        /// The plugin.
        plugin: String,
        /// The unsupported type.
        source: crate::reflect::UnsupportedType,
    },
    /// The component imports something the host does not offer.
    #[error("plugin {plugin}: cannot be linked: {reason}")]
    Link {
        /// The plugin.
        plugin: String,
        /// What is wrong.
        reason: String,
    },
    /// The component exports no tools.
    #[error("plugin {plugin}: exports no tool interface")]
    NoTools {
        /// The plugin.
        plugin: String,
    },
}

/// A compiled plugin, ready to instantiate once per call.
pub struct Plugin {
    /// The plugin's name.
    pub name: Arc<str>,
    /// SHA-256 of the component bytes, hex.
    pub hash: String,
    /// The tools the plugin exports.
    pub tools: Vec<Arc<Tool>>,
    pub(crate) pre: InstancePre<CallState>,
}

impl Plugin {
    /// Compiles `bytes` as plugin `name`, reflects its tools and links it.
    ///
    /// Compiling takes tens of milliseconds of CPU: call this off the async
    /// threads (for example in `spawn_blocking`).
    ///
    /// # Errors
    ///
    /// [`LoadError`] saying what is wrong with the component.
    pub fn compile(engine: &Engine, linker: &Linker<CallState>, name: &str, bytes: &[u8]) -> Result<Plugin, LoadError> {
        let invalid = |reason: String| LoadError::Invalid { plugin: name.to_string(), reason };
        let docs = Docs::from_component(bytes).map_err(|e| LoadError::Docs { plugin: name.to_string(), reason: format!("{e:#}") })?;
        let component = Component::new(engine, bytes).map_err(|e| invalid(format!("{e:#}")))?;
        let hash = hex(&Sha256::digest(bytes));
        Self::from_component(engine, linker, name, component, &docs, hash)
    }

    fn from_component(
        engine: &Engine,
        linker: &Linker<CallState>,
        name: &str,
        component: Component,
        docs: &Docs,
        hash: String,
    ) -> Result<Plugin, LoadError> {
        let mut tools = Vec::new();
        for (export_name, item) in component.component_type().exports(engine) {
            let ComponentItem::ComponentInstance(instance) = item.ty else { continue };
            let Some(instance_index) = component.get_export_index(None, export_name) else { continue };
            for (func_name, item) in instance.exports(engine) {
                let ComponentItem::ComponentFunc(func) = item.ty else { continue };
                let Some(index) = component.get_export_index(Some(&instance_index), func_name) else { continue };
                let tool = Tool::reflect(name, func_name, &func, index, docs)
                    .map_err(|source| LoadError::Unsupported { plugin: name.to_string(), source })?;
                tools.push(Arc::new(tool));
            }
        }
        if tools.is_empty() {
            return Err(LoadError::NoTools { plugin: name.to_string() });
        }
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link { plugin: name.to_string(), reason: format!("{e:#}") })?;
        Ok(Plugin { name: name.into(), hash, tools, pre })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
