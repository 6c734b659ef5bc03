//! Publication: a new plugin version is compiled off the async threads,
//! checked (a component, granted imports only, reflectable tools, a passing
//! smoke call), and swapped in whole; a version that fails any check is
//! refused and the one serving before stays.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::call::CallOptions;
use super::{InstallsPending, Toolshed};
use crate::context::CallContext;
use crate::plugin::{LoadError, Plugin, Tier};

/// The tool list changed: a plugin was added, replaced or removed.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolsChanged {
    /// The generation now serving.
    pub generation: u64,
    /// The plugin that changed.
    pub plugin: String,
    /// The tools now served, sorted.
    pub tools: Vec<String>,
}

/// A plugin version that was refused; the version serving before stays.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginRefused {
    /// The plugin.
    pub plugin: String,
    /// Why it was refused.
    pub reason: String,
}

impl Toolshed {
    /// Serves `plugin`, replacing a plugin of the same name. Calls already
    /// running finish on the version they started on.
    ///
    /// # Errors
    ///
    /// [`LoadError::ToolConflict`] when another plugin already serves a tool
    /// of the same name; the plugins serving before stay as they were.
    pub fn publish(&self, plugin: Arc<Plugin>) -> Result<(), LoadError> {
        let name = plugin.name.to_string();
        self.swap(&name, |plugins| {
            plugins.insert(name.clone(), plugin);
        })
        .map_err(|(tool, plugin, other)| {
            // Name the newcomer first: it is the one refused.
            let (plugin, other) = if plugin == name { (plugin, other) } else { (other, plugin) };
            LoadError::ToolConflict { plugin, tool, other }
        })
    }

    /// Stops serving plugin `name`; calls already running finish. Returns
    /// whether it was served.
    pub fn remove(&self, name: &str) -> bool {
        let mut removed = false;
        // Removing a plugin cannot create a conflict.
        let _ = self.swap(name, |plugins| removed = plugins.remove(name).is_some());
        removed
    }

    fn swap(&self, plugin: &str, change: impl FnOnce(&mut BTreeMap<String, Arc<Plugin>>)) -> Result<(), (String, String, String)> {
        self.served
            .swap(Some(plugin), |plugins| {
                change(plugins);
                true
            })
            .map(|_| ())
    }

    /// Compiles `bytes` as plugin `name` off the async threads, checks it
    /// (a component, granted imports only, reflectable tools, a passing smoke
    /// call when its policy names one) and publishes it. A plugin that fails
    /// any check is refused and the running version keeps serving.
    ///
    /// # Errors
    ///
    /// [`LoadError`] saying why the plugin was refused.
    pub async fn install(&self, name: &str, bytes: Vec<u8>) -> Result<Arc<Plugin>, LoadError> {
        let _installing = InstallsPending::new(&self.installing);
        let installed = self.check_and_publish(name, bytes).await;
        if let Err(e) = &installed {
            let _ = self.refusals.send(PluginRefused { plugin: name.to_string(), reason: e.to_string() });
        }
        installed
    }

    async fn check_and_publish(&self, name: &str, bytes: Vec<u8>) -> Result<Arc<Plugin>, LoadError> {
        let bytes: Arc<[u8]> = bytes.into();
        let runtime = self.runtime.clone();
        let (owned_name, owned_bytes) = (name.to_string(), bytes.clone());
        let plugin = tokio::task::spawn_blocking(move || match runtime.compile_first_tier(&owned_name, &owned_bytes) {
            // Winch lacks proposals Cranelift has (tail calls, exceptions,
            // GC): a plugin it cannot compile loads from Cranelift alone,
            // and Cranelift's verdict is the one that counts.
            Some(Err(LoadError::Invalid { reason, .. })) => {
                tracing::debug!(plugin = %owned_name, "the first tier cannot compile this plugin; compiling it optimized: {reason}");
                runtime.compile(&owned_name, &owned_bytes)
            }
            Some(baseline) => baseline,
            None => runtime.compile(&owned_name, &owned_bytes),
        })
        .await
        .map_err(|e| LoadError::Invalid { plugin: name.to_string(), reason: format!("the compiler task failed: {e}") })??;
        let plugin = Arc::new(plugin);
        if let Some(smoke) = plugin.policy.smoke.clone() {
            self.smoke_test(&plugin, &smoke).await?;
        }
        self.publish(plugin.clone())?;
        if plugin.tier == Tier::Baseline {
            self.optimize_in_background(plugin.clone(), bytes);
        }
        Ok(plugin)
    }

    /// Calls the smoke tool of a new version under the plugin's limits and
    /// a deadline of its own, over a backend with nothing in it.
    async fn smoke_test(&self, plugin: &Plugin, smoke: &crate::policy::Smoke) -> Result<(), LoadError> {
        let failed = |reason: String| LoadError::Smoke { plugin: plugin.name.to_string(), tool: smoke.tool.clone(), reason };
        let tool = plugin.tools.iter().find(|t| t.name == smoke.tool).ok_or_else(|| failed("the plugin has no such tool".into()))?;
        let params = tool.parameters(&smoke.arguments).map_err(|e| failed(e.to_string()))?;
        let cx = CallContext { chat_id: "smoke".into(), owner_id: "smoke".into(), owner_name: "smoke".into(), organization_id: "smoke".into() };
        let deadline = smoke.deadline.min(plugin.policy.limits.deadline);
        // A tool-level error object is fine: the plugin ran. Only a trap, a
        // limit or the deadline refuses it.
        match tokio::time::timeout(deadline, self.run(&self.smoke, &cx, tool, plugin, &params, CallOptions::default())).await {
            Ok(outcome) => outcome.map(|_| ()).map_err(|e| failed(e.to_json().to_string())),
            Err(_) => Err(failed(format!("it did not answer within its smoke deadline of {} s", deadline.as_secs()))),
        }
    }
}
