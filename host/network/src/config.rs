//! Plugin configuration: the string values of a plugin's `config` section
//! (base URLs, organization names; nothing secret), read through
//! `wasi:config/store` by plugins granted it.

use toolshed_runtime::state::CallState;
use toolshed_runtime::wasmtime::component::Linker;
use toolshed_runtime::{Capability, Providers};
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};

/// The unversioned names of the interfaces [`Config`] links.
pub const CONFIG_INTERFACES: [&str; 1] = ["wasi:config/store"];

/// The configuration capability, to register on a runtime.
#[derive(Debug, Default, Clone, Copy)]
pub struct Config;

/// A run's configuration variables, made from the plugin's policy on the
/// first read.
struct Variables(WasiConfigVariables);

fn config_view(state: &mut CallState) -> WasiConfig<'_> {
    let (vars, _) = state.extension(|call, _| Variables(call.config().iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()));
    WasiConfig::from(&vars.0)
}

impl Capability for Config {
    fn name(&self) -> &str {
        "config"
    }

    fn interfaces(&self) -> &[&'static str] {
        &CONFIG_INTERFACES
    }

    fn add_to_linker(&self, linker: &mut Linker<CallState>) -> toolshed_runtime::wasmtime::Result<()> {
        wasmtime_wasi_config::add_to_linker(linker, config_view)
    }

    fn empty_providers(&self, _: &mut Providers) {}

    /// The values come from the policy: nothing to provide.
    fn provided(&self, _: &Providers) -> bool {
        true
    }
}
