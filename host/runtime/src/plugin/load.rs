//! Turning component bytes into a plugin: compile, check its imports against
//! the policy, reflect its tools, link it.

use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{InstancePre, Linker};

use super::footprint::Footprint;
use super::tool::Tool;
use super::toolchain::{Toolchain, is_tool_interface, wasi_linked};
use crate::policy::{PluginPolicy, grant_allows, is_wasi};
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
    /// The component imports an interface its policy does not grant.
    #[error("plugin {plugin}: imports {interface}, which its policy does not grant; grant it in the policy or leave it out of the world{}", leave_out.as_deref().map(|how| format!("; {how}")).unwrap_or_default())]
    NotGranted {
        /// The plugin.
        plugin: String,
        /// The interface.
        interface: String,
        /// How the plugin's toolchain leaves the import out, when known.
        leave_out: Option<String>,
    },
    /// A tool's signature uses a type with no JSON form.
    #[error("plugin {plugin}: {source}")]
    Unsupported {
        /// The plugin.
        plugin: String,
        /// The unsupported type.
        source: crate::reflect::UnsupportedType,
    },
    /// The component imports an interface this host does not provide: one
    /// neither the runtime nor a capability of it has, or a WASI one outside
    /// the packages it links.
    #[error("plugin {plugin}: imports {interface}, which this host does not provide{}", leave_out.as_deref().map(|how| format!("; {how}")).unwrap_or_default())]
    NotProvided {
        /// The plugin.
        plugin: String,
        /// The interface.
        interface: String,
        /// How the plugin's toolchain leaves the import out, when known.
        leave_out: Option<String>,
    },
    /// The plugin was built for an API version this host does not load.
    #[error("plugin {plugin}: built for toolshed API {version}; this host loads {supported}")]
    UnsupportedApi {
        /// The plugin.
        plugin: String,
        /// The version it declares.
        version: String,
        /// The versions this host loads.
        supported: String,
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
    #[error("plugin {plugin}: exports no tool interface (an interface of a package, such as plugins:hello/hello-tools, outside wasi:)")]
    NoTools {
        /// The plugin.
        plugin: String,
    },
    /// One call of the plugin needs more call slots than the host has.
    #[error("plugin {plugin}: one instance needs {need}, and this host allows {allowed}")]
    TooLarge {
        /// The plugin.
        plugin: String,
        /// What an instance needs, such as "38 core instances".
        need: String,
        /// What the host allows.
        allowed: String,
    },
    /// A tool of the plugin is already served by another plugin.
    #[error("plugin {plugin}: its tool {tool} is already served by plugin {other}; the plugin was refused")]
    ToolConflict {
        /// The plugin refused.
        plugin: String,
        /// The tool both export.
        tool: String,
        /// The plugin serving the tool.
        other: String,
    },
    /// The smoke call of a new version failed.
    #[error("plugin {plugin}: smoke call of {tool} failed: {reason}")]
    Smoke {
        /// The plugin.
        plugin: String,
        /// The tool called.
        tool: String,
        /// The error object it produced.
        reason: String,
    },
}

/// Which compiler made a plugin version's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Winch, the baseline compiler: compiled fast, runs slower. A changed
    /// plugin serves from it until its optimized code is ready.
    Baseline,
    /// Cranelift, the optimizing compiler: what a plugin serves from once
    /// compiled, and what the disk cache keeps.
    Optimized,
}

impl Tier {
    /// The tier's name, as logs and benchmarks print it.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Baseline => "baseline (Winch)",
            Tier::Optimized => "optimized (Cranelift)",
        }
    }
}

/// A compiled component, the docs read from it, and what one instance of
/// it takes from the pool.
pub(crate) struct Compiled {
    pub(crate) component: wasmtime::component::Component,
    pub(crate) metadata: crate::reflect::Metadata,
    pub(crate) footprint: Footprint,
}

/// A compiled plugin, ready to instantiate once per call.
pub struct Plugin {
    /// The plugin's name.
    pub name: Arc<str>,
    /// SHA-256 of the component bytes, hex.
    pub hash: String,
    /// The tools the plugin exports.
    pub tools: Vec<Arc<Tool>>,
    /// The functions of the offer interfaces it exports
    /// (`toolshed:tools/resources`, `toolshed:tools/prompts`), by their
    /// JSON names (`read_resource`): called like tools, never listed as tools.
    pub offers: Vec<Arc<Tool>>,
    /// Its policy: grants, limits, smoke call.
    pub policy: PluginPolicy,
    /// The toolshed API version it was built for: declared in its
    /// `toolshed:api-version` section, or read off its runtime imports.
    pub api_version: String,
    /// Which compiler made the code this version runs.
    pub tier: Tier,
    /// What one instance takes from the pool.
    pub footprint: Footprint,
    /// The call slots one call holds ([`Footprint::slots`]).
    pub slots: u32,
    pub(crate) pre: InstancePre<CallState>,
    /// Keeps the compiled code alive exactly as long as this version is.
    _compiled: Arc<Compiled>,
}

impl Plugin {
    /// The compiled component, for measuring or inspecting it apart from the
    /// host's imports.
    pub fn component(&self) -> &wasmtime::component::Component {
        self.pre.component()
    }

    /// Checks `component`'s imports against `policy`, reflects its tools and
    /// links it.
    ///
    /// # Errors
    ///
    /// [`LoadError`] saying what is wrong with the component.
    pub(crate) fn from_component(
        engine: &Engine,
        linker: &Linker<CallState>,
        name: &str,
        compiled: Arc<Compiled>,
        hash: String,
        policy: PluginPolicy,
        provided: Vec<&'static str>,
        tier: Tier,
        capacity: u32,
    ) -> Result<Plugin, LoadError> {
        let (component, docs) = (&compiled.component, &compiled.metadata.docs);
        let footprint = compiled.footprint;
        check_fits(name, &footprint, capacity)?;
        let api_version = api_version(name, compiled.metadata.api_version.as_deref(), component, engine)?;
        let toolchain = Toolchain::detect(component, engine, &compiled.metadata.processed_by);
        for (import, item) in component.component_type().imports(engine) {
            // An interface of types only grants nothing.
            let has_functions = match &item.ty {
                ComponentItem::ComponentInstance(instance) => {
                    instance.exports(engine).any(|(_, e)| matches!(e.ty, ComponentItem::ComponentFunc(_) | ComponentItem::Resource(_)))
                }
                _ => true,
            };
            if !has_functions {
                continue;
            }
            if !grant_allows(&policy.grants, import) {
                return Err(LoadError::NotGranted { plugin: name.to_string(), interface: import.to_string(), leave_out: toolchain.how_to_leave_out(import) });
            }
            let unversioned = import.split('@').next().unwrap_or(import);
            let linked = if is_wasi(import) { wasi_linked(import) } else { provided.contains(&unversioned) };
            if !linked {
                return Err(LoadError::NotProvided { plugin: name.to_string(), interface: import.to_string(), leave_out: toolchain.how_to_leave_out(import) });
            }
        }
        let mut tools = Vec::new();
        let mut offers = Vec::new();
        for (export_name, item) in component.component_type().exports(engine) {
            let ComponentItem::ComponentInstance(instance) = item.ty else { continue };
            if !is_tool_interface(export_name) {
                continue;
            }
            let reflected = if is_offer_interface(export_name) { &mut offers } else { &mut tools };
            let Some(instance_index) = component.get_export_index(None, export_name) else { continue };
            for (func_name, item) in instance.exports(engine) {
                let ComponentItem::ComponentFunc(func) = item.ty else { continue };
                let Some(index) = component.get_export_index(Some(&instance_index), func_name) else { continue };
                let tool = Tool::reflect(name, func_name, &func, index, docs)
                    .map_err(|source| LoadError::Unsupported { plugin: name.to_string(), source })?;
                reflected.push(Arc::new(tool));
            }
        }
        if tools.is_empty() && offers.is_empty() {
            return Err(LoadError::NoTools { plugin: name.to_string() });
        }
        let pre = linker
            .instantiate_pre(component)
            .map_err(|e| LoadError::Link { plugin: name.to_string(), reason: format!("{e:#}") })?;
        Ok(Plugin { name: name.into(), hash, tools, offers, policy, api_version, tier, footprint, slots: footprint.slots(), pre, _compiled: compiled })
    }
}

/// Whether `export` is an interface of things a plugin offers besides
/// tools: resources or prompts, at any API version that has them.
fn is_offer_interface(export: &str) -> bool {
    let unversioned = export.split('@').next().unwrap_or(export);
    matches!(unversioned, "toolshed:tools/resources" | "toolshed:tools/prompts")
}

/// Refuses a plugin one call of which would hold more call slots than the
/// host has: it could never run. (What exceeds the pool's maxima for one
/// component, wasmtime refuses when compiling it, naming the count.)
fn check_fits(name: &str, footprint: &Footprint, capacity: u32) -> Result<(), LoadError> {
    let slots = footprint.slots();
    if slots > capacity {
        return Err(LoadError::TooLarge { plugin: name.to_string(), need: format!("{slots} call slots"), allowed: format!("{capacity}") });
    }
    Ok(())
}

/// The API version a plugin was built for: its declared one, which this
/// host must support, or, for plugins built before versions were declared,
/// the newest version among its `toolshed:runtime` imports.
fn api_version(name: &str, declared: Option<&str>, component: &wasmtime::component::Component, engine: &Engine) -> Result<String, LoadError> {
    let supported = toolshed_contract::SUPPORTED_API_VERSIONS;
    if let Some(version) = declared {
        if !supported.contains(&version) {
            return Err(LoadError::UnsupportedApi {
                plugin: name.to_string(),
                version: crate::text::one_line(version),
                supported: supported.join(", "),
            });
        }
        return Ok(version.to_string());
    }
    let imported = component
        .component_type()
        .imports(engine)
        .filter_map(|(import, _)| import.strip_prefix("toolshed:runtime/").and_then(|rest| rest.split_once('@')).map(|(_, v)| v.to_string()))
        .filter(|v| supported.contains(&v.as_str()))
        .max_by_key(|v| supported.iter().position(|s| s == v));
    Ok(imported.unwrap_or_else(|| supported[0].to_string()))
}
