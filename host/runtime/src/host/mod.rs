//! [`Toolshed`]: the tools of a set of plugins, served over one backend, with
//! plugins swapped atomically while calls run.
//!
//! The parts live apart: [`builder`] composes a host from a runtime and a
//! backend; [`generation`] is the immutable set of plugins a call runs on;
//! [`publish`] checks and swaps in new versions; [`tier_up`] moves a version
//! from its baseline code to its optimized code in the background; and
//! [`call`] is the straight path of one call.

mod builder;
mod call;
mod generation;
mod offers;
mod publish;
mod tier_up;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{broadcast, watch};

use crate::clock::Clock;
use crate::plugin::{Plugin, Tool};
use crate::runtime::Runtime;
use crate::state::Shared;

pub use builder::{MissingProvider, ToolshedBuilder};
pub use call::{Arguments, CallOptions, ToolOutput};
pub use publish::{PluginRefused, ToolsChanged};
pub use tier_up::TieredUp;

use generation::Served;

/// Serves the tools of its plugins: checks arguments, runs each call in a
/// fresh instance under its plugin's limits, and renders the outcome as JSON.
pub struct Toolshed {
    runtime: Arc<Runtime>,
    shared: Arc<Shared>,
    smoke: Arc<Shared>,
    served: Arc<Served>,
    refusals: broadcast::Sender<PluginRefused>,
    installing: Arc<watch::Sender<usize>>,
    stats: Stats,
}

/// Counters a host keeps about its calls.
#[derive(Debug, Default)]
pub struct Stats {
    instances: AtomicU64,
    live: AtomicU64,
    calls: AtomicU64,
}

impl Stats {
    /// How many plugin instances calls have created; a call rejected before
    /// the guest runs creates none.
    pub fn instances(&self) -> u64 {
        self.instances.load(Ordering::Relaxed)
    }

    /// How many instances exist now: calls running, or not yet dropped. A
    /// parked call has none.
    pub fn live(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }

    /// How many calls are under way now, running or parked.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

/// Counts installs as under way until it is dropped, however they end.
/// [`Toolshed::installs_pending`] hands one out to whoever is about to
/// install plugins, so waiting for a tool cannot miss an install that has
/// not started yet.
#[must_use = "the installs count as pending only while this is held"]
pub struct InstallsPending(Arc<watch::Sender<usize>>);

impl InstallsPending {
    fn new(count: &Arc<watch::Sender<usize>>) -> Self {
        count.send_modify(|n| *n += 1);
        Self(count.clone())
    }
}

impl Drop for InstallsPending {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl Toolshed {
    /// Marks installs as pending until the returned guard is dropped: take
    /// one before spawning the tasks that install the initial plugins.
    pub fn installs_pending(&self) -> InstallsPending {
        InstallsPending::new(&self.installing)
    }

    /// Waits until no install is running, or `patience` has passed; returns
    /// whether all installs ended.
    pub async fn installs_settled(&self, patience: std::time::Duration) -> bool {
        let mut count = self.installing.subscribe();
        tokio::time::timeout(patience, count.wait_for(|n| *n == 0)).await.is_ok()
    }

    /// A stream of tool-list changes, for servers that announce them.
    pub fn subscribe(&self) -> broadcast::Receiver<ToolsChanged> {
        self.served.changes.subscribe()
    }

    /// A stream of refused plugin versions.
    pub fn subscribe_refusals(&self) -> broadcast::Receiver<PluginRefused> {
        self.refusals.subscribe()
    }

    /// The number of the generation serving now; it grows with every change.
    pub fn generation(&self) -> u64 {
        self.served.current.load().number
    }

    /// The plugins served now.
    pub fn plugins(&self) -> Vec<Arc<Plugin>> {
        self.served.current.load().plugins.values().cloned().collect()
    }

    /// The tools served now, sorted by name.
    pub fn tools(&self) -> Vec<Arc<Tool>> {
        let current = self.served.current.load();
        let mut tools: Vec<_> = current.tools.values().map(|(t, _)| t.clone()).collect();
        tools.sort_by(|a, b| a.name.cmp(&b.name));
        tools
    }

    /// The plugin serving `tool` now.
    pub fn plugin_for(&self, tool: &str) -> Option<Arc<Plugin>> {
        self.served.current.load().tools.get(tool).map(|(_, plugin)| plugin.clone())
    }

    /// The clock calls run on.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.shared.clock.clone()
    }

    /// The runtime the plugins run on.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The host's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}
