//! What a host serves: one immutable [`Generation`] of plugins at a time,
//! replaced whole. A call runs entirely on the generation it started on.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::{broadcast, watch};

use super::publish::ToolsChanged;
use super::tier_up::{OneAtATime, TieredUp, Version};
use crate::plugin::{Plugin, Tool};

/// What is served, shared with the background compiles that move a version
/// to its optimized code.
pub(super) struct Served {
    pub(super) current: ArcSwap<Generation>,
    publish_lock: std::sync::Mutex<()>,
    pub(super) changes: broadcast::Sender<ToolsChanged>,
    pub(super) tier_ups: broadcast::Sender<TieredUp>,
    /// Background workers compiling optimized code, one per plugin at most.
    pub(super) optimizing: watch::Sender<usize>,
    /// The versions (content hash, bytes) waiting for their plugin's worker.
    pub(super) waiting: OneAtATime<Version>,
}

impl Served {
    /// Nothing served yet.
    pub(super) fn empty() -> Served {
        Served {
            current: ArcSwap::from_pointee(Generation::default()),
            publish_lock: std::sync::Mutex::new(()),
            changes: broadcast::channel(64).0,
            tier_ups: broadcast::channel(64).0,
            optimizing: watch::channel(0).0,
            waiting: OneAtATime::default(),
        }
    }

    /// Makes the next generation from the plugins `change` leaves, one swap
    /// at a time, and returns its number; `change` returns false to leave
    /// the generation as it is. With `announce`, the plugin that changed,
    /// the new tool list goes out in generation order.
    ///
    /// # Errors
    ///
    /// (tool, one plugin, the other) when two plugins would serve one tool.
    pub(super) fn swap(
        &self,
        announce: Option<&str>,
        change: impl FnOnce(&mut BTreeMap<String, Arc<Plugin>>) -> bool,
    ) -> Result<Option<u64>, (String, String, String)> {
        let _serial = self.publish_lock.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.current.load();
        let mut plugins = current.plugins.clone();
        if !change(&mut plugins) {
            return Ok(None);
        }
        let next = Generation::with_plugins(current.number + 1, plugins)?;
        let (number, event) = (next.number, announce.map(|plugin| ToolsChanged { generation: next.number, plugin: plugin.to_string(), tools: next.tool_names() }));
        self.current.store(Arc::new(next));
        if let Some(event) = event {
            // Nobody listening is fine.
            let _ = self.changes.send(event);
        }
        Ok(Some(number))
    }
}

/// A served tool with the plugin version serving it.
pub(crate) type ServedTool = (Arc<Tool>, Arc<Plugin>);

/// One immutable set of plugins. A call runs entirely on the generation it
/// started on; publishing a plugin makes a new generation.
#[derive(Default)]
pub(super) struct Generation {
    pub(super) number: u64,
    pub(super) plugins: BTreeMap<String, Arc<Plugin>>,
    pub(super) tools: HashMap<String, ServedTool>,
}

impl Generation {
    /// The generation serving `plugins`, or the first tool two of them
    /// export, as (tool, one plugin, the other).
    fn with_plugins(number: u64, plugins: BTreeMap<String, Arc<Plugin>>) -> Result<Generation, (String, String, String)> {
        let mut tools: HashMap<String, ServedTool> = HashMap::new();
        for plugin in plugins.values() {
            for tool in &plugin.tools {
                if let Some((_, other)) = tools.get(&tool.name) {
                    return Err((tool.name.clone(), plugin.name.to_string(), other.name.to_string()));
                }
                tools.insert(tool.name.clone(), (tool.clone(), plugin.clone()));
            }
        }
        Ok(Generation { number, plugins, tools })
    }

    /// The names of the tools served, sorted.
    pub(super) fn tool_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tools.keys().cloned().collect();
        names.sort();
        names
    }
}
