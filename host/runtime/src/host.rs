//! [`Toolshed`]: the tools of a set of plugins, served over one backend, with
//! plugins swapped atomically while calls run.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use wasmtime::Store;
use wasmtime::component::Val;

use crate::capability::{ChatEvents, NoEvents, Providers};
use crate::clock::{Clock, SystemClock};
use crate::locks::ChatLocks;
use crate::context::CallContext;
use crate::error::{Category, HostError};
use crate::plugin::{LoadError, Plugin, Tier, Tool};
use crate::reflect::{answer, json_size_estimate, val_into_json, val_to_json};
use crate::runtime::Runtime;
use crate::progress::ProgressSink;
use crate::sandbox::{self, Limit};
use crate::state::{CallIdentity, CallSetup, CallState, Shared};

/// What a tool call returned: a result object, or an error object per SPEC §0.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    /// Whether `value` is an error object.
    pub is_error: bool,
    /// The result or error object.
    pub value: Value,
}

impl ToolOutput {
    fn error(err: HostError) -> ToolOutput {
        ToolOutput { is_error: true, value: err.to_json() }
    }
}

/// A call's arguments: JSON text as a client sent it, or a parsed value.
#[derive(Debug, Clone, Copy)]
pub enum Arguments<'a> {
    /// JSON text; an empty text is an empty object.
    Text(&'a str),
    /// A JSON value.
    Json(&'a Value),
}

/// How to run one call, beyond its tool and arguments.
#[derive(Clone, Default)]
pub struct CallOptions {
    /// Where the call's progress goes; without one it is dropped.
    pub progress: Option<Arc<dyn ProgressSink>>,
    /// How long the caller will wait for the answer; the tool reads it
    /// (`toolshed:runtime/call.wait-budget`) and answers in time with how to
    /// continue. `None`: the caller waits as long as the call may take.
    pub wait_budget: Option<std::time::Duration>,
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

/// Counts an instance, or a call, as live until it is dropped, however the
/// call ends (returned, trapped, timed out or cancelled).
struct Live<'a>(&'a AtomicU64);

impl<'a> Live<'a> {
    fn new(live: &'a AtomicU64) -> Self {
        live.fetch_add(1, Ordering::Relaxed);
        Self(live)
    }
}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

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

/// A plugin version moved from its baseline code to its optimized code.
/// The tools are the same, so this is no [`ToolsChanged`]: clients are not
/// told, and calls running on the baseline code finish there.
#[derive(Debug, Clone, PartialEq)]
pub struct TieredUp {
    /// The plugin.
    pub plugin: String,
    /// SHA-256 of its component bytes, hex.
    pub hash: String,
    /// The generation now serving the optimized code.
    pub generation: u64,
    /// How long the optimizing compile took in the background, in ms.
    pub compile_ms: f64,
}

/// What is served, shared with the background compiles that move a version
/// to its optimized code.
struct Served {
    current: ArcSwap<Generation>,
    publish_lock: std::sync::Mutex<()>,
    changes: broadcast::Sender<ToolsChanged>,
    tier_ups: broadcast::Sender<TieredUp>,
    /// Background workers compiling optimized code, one per plugin at most.
    optimizing: watch::Sender<usize>,
    /// The versions (content hash, bytes) waiting for their plugin's worker.
    waiting: OneAtATime<Version>,
}

/// A plugin version to optimize: its content hash and its bytes.
type Version = (String, Arc<[u8]>);

/// Work per key, one at a time: while a key's work runs, what is offered
/// for it waits, and a newer offer replaces the one waiting.
struct OneAtATime<T> {
    /// Keys with work running, each with the newest item waiting, if any.
    running: std::sync::Mutex<HashMap<String, Option<T>>>,
}

impl<T> Default for OneAtATime<T> {
    fn default() -> Self {
        Self { running: std::sync::Mutex::new(HashMap::new()) }
    }
}

impl<T> OneAtATime<T> {
    /// Offers `item` for `key`. Returns it when no work runs for `key`: the
    /// caller starts that work now, and calls [`OneAtATime::next`] when it ends.
    fn offer(&self, key: &str, item: T) -> Option<T> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        match running.get_mut(key) {
            Some(waiting) => {
                *waiting = Some(item);
                None
            }
            None => {
                running.insert(key.to_string(), None);
                Some(item)
            }
        }
    }

    /// The work for `key` ended: the newest item offered meanwhile, to do
    /// next, or `None`, and `key` is free.
    fn next(&self, key: &str) -> Option<T> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let next = running.get_mut(key).and_then(Option::take);
        if next.is_none() {
            running.remove(key);
        }
        next
    }
}

impl Served {
    /// Makes the next generation from the plugins `change` leaves, one swap
    /// at a time, and returns its number; `change` returns false to leave
    /// the generation as it is. With `announce`, the plugin that changed,
    /// the new tool list goes out in generation order.
    ///
    /// # Errors
    ///
    /// (tool, one plugin, the other) when two plugins would serve one tool.
    fn swap(
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

    /// Serves `optimized` in place of the baseline code of the same version,
    /// if that version still serves: a newer version is never replaced by an
    /// older one. Announces nothing, since the tools are the same. Returns
    /// the generation now serving it.
    fn tier_up(&self, optimized: Arc<Plugin>) -> Option<u64> {
        let name = optimized.name.to_string();
        let replaces_its_baseline = |plugins: &mut BTreeMap<String, Arc<Plugin>>| match plugins.get(&name) {
            Some(served) if served.hash == optimized.hash && served.tier == Tier::Baseline => {
                plugins.insert(name.clone(), optimized);
                true
            }
            _ => false,
        };
        // The same tools as the version it replaces: no conflict can arise.
        self.swap(None, replaces_its_baseline).ok().flatten()
    }

    /// Compiles plugin `name` from `bytes` (whose content hash is `hash`)
    /// with Cranelift and serves it in place of the same version's baseline
    /// code, unless that version no longer serves from baseline code by the
    /// time the compile would start.
    fn optimize(&self, runtime: &Runtime, name: &str, (hash, bytes): Version) {
        let still_baseline = self.current.load().plugins.get(name).is_some_and(|p| p.hash == hash && p.tier == Tier::Baseline);
        if !still_baseline {
            return;
        }
        let started = std::time::Instant::now();
        let optimized = match runtime.compile(name, &bytes) {
            Ok(optimized) => Arc::new(optimized),
            Err(e) => {
                tracing::warn!(plugin = %name, "the optimizing compile failed; the baseline code keeps serving: {e}");
                return;
            }
        };
        let compile_ms = started.elapsed().as_secs_f64() * 1e3;
        if let Some(generation) = self.tier_up(optimized) {
            tracing::debug!(plugin = %name, compile_ms, "serving the optimized code");
            let _ = self.tier_ups.send(TieredUp { plugin: name.to_string(), hash, generation, compile_ms });
        }
    }
}

/// Counts an optimizing worker as running until it ends, however it ends.
struct OptimizingGuard(Arc<Served>);

impl Drop for OptimizingGuard {
    fn drop(&mut self) {
        self.0.optimizing.send_modify(|n| *n -= 1);
    }
}

/// One immutable set of plugins. A call runs entirely on the generation it
/// started on; publishing a plugin makes a new generation.
#[derive(Default)]
struct Generation {
    number: u64,
    plugins: BTreeMap<String, Arc<Plugin>>,
    tools: HashMap<String, (Arc<Tool>, Arc<Plugin>)>,
}

impl Generation {
    /// The generation serving `plugins`, or the first tool two of them
    /// export, as (tool, one plugin, the other).
    fn with_plugins(number: u64, plugins: BTreeMap<String, Arc<Plugin>>) -> Result<Generation, (String, String, String)> {
        let mut tools: HashMap<String, (Arc<Tool>, Arc<Plugin>)> = HashMap::new();
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

    fn tool_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tools.keys().cloned().collect();
        names.sort();
        names
    }
}

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

/// How to build a [`Toolshed`]: its clock, where chat events go, and the
/// providers that answer its capabilities.
pub struct ToolshedBuilder {
    runtime: Arc<Runtime>,
    clock: Arc<dyn Clock>,
    events: Arc<dyn ChatEvents>,
    locks: Option<Arc<dyn ChatLocks>>,
    providers: Providers,
}

impl ToolshedBuilder {
    /// The clock every wait goes through (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Where chat-updated events go (default: nowhere).
    pub fn events(mut self, events: Arc<dyn ChatEvents>) -> Self {
        self.events = events;
        self
    }

    /// Where chat locks live (default: in this process). Hosts that share
    /// their state give them one lock service, so that a chat's guarded
    /// steps never run on two hosts at once.
    pub fn locks(mut self, locks: Arc<dyn ChatLocks>) -> Self {
        self.locks = Some(locks);
        self
    }

    /// Adds the provider of a capability, such as `toolshed_infra::InfraProviders`.
    pub fn provide<T: std::any::Any + Send + Sync>(mut self, provider: T) -> Self {
        self.providers.insert(provider);
        self
    }

    /// The host, serving no plugins yet.
    pub fn build(self) -> Toolshed {
        let mut shared = Shared::new(self.clock, self.events, self.providers);
        if let Some(locks) = self.locks {
            shared.locks = locks;
        }
        Toolshed::with(self.runtime, shared)
    }
}

impl Toolshed {
    /// A builder for a host on `runtime`.
    pub fn builder(runtime: Arc<Runtime>) -> ToolshedBuilder {
        ToolshedBuilder { runtime, clock: Arc::new(SystemClock), events: Arc::new(NoEvents), locks: None, providers: Providers::new() }
    }

    fn with(runtime: Arc<Runtime>, shared: Shared) -> Toolshed {
        let shared = Arc::new(shared);
        let smoke = Arc::new(Shared::new(Arc::new(SystemClock), Arc::new(NoEvents), runtime.empty_providers()));
        Toolshed {
            runtime,
            shared,
            smoke,
            served: Arc::new(Served {
                current: ArcSwap::from_pointee(Generation::default()),
                publish_lock: std::sync::Mutex::new(()),
                changes: broadcast::channel(64).0,
                tier_ups: broadcast::channel(64).0,
                optimizing: watch::channel(0).0,
                waiting: OneAtATime::default(),
            }),
            refusals: broadcast::channel(64).0,
            installing: Arc::new(watch::channel(0).0),
            stats: Stats::default(),
        }
    }

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

    /// Compiles `baseline`'s bytes with Cranelift off the async threads, then
    /// serves the optimized code in its place, quietly, if that version
    /// still serves. A failed optimizing compile leaves the baseline code
    /// serving, which is correct, only slower.
    ///
    /// One worker per plugin compiles at a time: versions written while it
    /// runs wait, and a newer one replaces the one waiting, so a flood of
    /// rewrites costs at most two optimizing compiles beyond the last.
    fn optimize_in_background(&self, baseline: Arc<Plugin>, bytes: Arc<[u8]>) {
        let (name, hash) = (baseline.name.to_string(), baseline.hash.clone());
        drop(baseline);
        let Some(version) = self.served.waiting.offer(&name, (hash, bytes)) else { return };
        let (runtime, served) = (self.runtime.clone(), self.served.clone());
        served.optimizing.send_modify(|n| *n += 1);
        tokio::task::spawn_blocking(move || {
            let _running = OptimizingGuard(served.clone());
            let mut version = version;
            loop {
                // A compile that panics must not end the worker: the plugin's
                // key would stay taken, and no later version of it would ever
                // be optimized.
                let compiled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| served.optimize(&runtime, &name, version)));
                if compiled.is_err() {
                    tracing::warn!(plugin = %name, "the optimizing compile panicked; the baseline code keeps serving");
                }
                match served.waiting.next(&name) {
                    Some(next) => version = next,
                    None => return,
                }
            }
        });
    }

    /// Waits until no optimizing compile runs in the background, or
    /// `patience` has passed; returns whether all ended.
    pub async fn optimizations_settled(&self, patience: std::time::Duration) -> bool {
        let mut count = self.served.optimizing.subscribe();
        tokio::time::timeout(patience, count.wait_for(|n| *n == 0)).await.is_ok()
    }

    /// A stream of plugin versions moving to their optimized code.
    pub fn subscribe_tier_ups(&self) -> broadcast::Receiver<TieredUp> {
        self.served.tier_ups.subscribe()
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

    /// Waits until tool `name` is served, or no install is running any more
    /// (then it will not come); returns whether it is served.
    pub async fn wait_for_tool(&self, name: &str) -> bool {
        let mut changes = self.subscribe();
        let mut count = self.installing.subscribe();
        loop {
            if self.served.current.load().tools.contains_key(name) {
                return true;
            }
            if *count.borrow_and_update() == 0 {
                return false;
            }
            tokio::select! {
                _ = changes.recv() => {}
                _ = count.changed() => {}
            }
        }
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

    /// Makes the Store a call of `plugin` would get, instantiates the plugin
    /// in it and drops both: what every call costs before its guest runs.
    /// For benchmarks.
    ///
    /// # Errors
    ///
    /// When the plugin cannot be instantiated.
    pub async fn instantiate_only(&self, plugin: &Plugin) -> wasmtime::Result<()> {
        let cx = CallContext { chat_id: "probe".into(), owner_id: "probe".into(), owner_name: "probe".into(), organization_id: "probe".into() };
        let who = CallIdentity { cx, plugin: plugin.name.clone(), tool: "instance".into() };
        let setup = CallSetup { limits: &plugin.policy.limits, epoch: self.runtime.epoch.clone(), progress: None, wait_until: None };
        let mut store = Store::new(plugin.pre.engine(), CallState::new(self.shared.clone(), who, setup));
        sandbox::arm(&mut store);
        plugin.pre.instantiate_async(&mut store).await?;
        Ok(())
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

    /// Calls `tool` with `arguments`, a JSON text.
    pub async fn call(&self, cx: &CallContext, tool: &str, arguments: &str) -> ToolOutput {
        self.call_with(cx, tool, Arguments::Text(arguments), CallOptions::default()).await
    }

    /// Calls `tool` with `arguments`, a JSON value.
    pub async fn call_value(&self, cx: &CallContext, tool: &str, arguments: &Value) -> ToolOutput {
        self.call_with(cx, tool, Arguments::Json(arguments), CallOptions::default()).await
    }

    /// Calls `tool` with `arguments`, sending its progress where `options` say.
    pub async fn call_with(&self, cx: &CallContext, tool: &str, arguments: Arguments<'_>, options: CallOptions) -> ToolOutput {
        let generation = self.served.current.load_full();
        let limits = match generation.tools.get(tool) {
            Some((_, plugin)) => plugin.policy.limits.clone(),
            None => self.runtime.policy().defaults().clone(),
        };
        let parsed;
        let arguments = match arguments {
            Arguments::Json(value) => {
                if serde_json::to_string(value).map_or(0, |s| s.len()) > limits.max_argument_bytes {
                    return ToolOutput::error(Limit::ArgumentSize.error(&plugin_of(&generation, tool), tool, &limits));
                }
                value
            }
            Arguments::Text(text) => {
                if text.len() > limits.max_argument_bytes {
                    return ToolOutput::error(Limit::ArgumentSize.error(&plugin_of(&generation, tool), tool, &limits));
                }
                parsed = if text.trim().is_empty() {
                    Value::Object(Default::default())
                } else {
                    match serde_json::from_str::<Value>(text) {
                        Ok(value) => value,
                        Err(e) => {
                            return ToolOutput::error(
                                HostError::new(Category::ValidationFailed, "MALFORMED_JSON", format!("the arguments of {tool} are not valid JSON: {e}"))
                                    .suggest("Send the arguments as one JSON object, such as {\"template_id\": \"...\"}."),
                            );
                        }
                    }
                };
                &parsed
            }
        };
        self.call_on(&generation, cx, tool, arguments, options).await
    }

    async fn call_on(&self, generation: &Generation, cx: &CallContext, tool: &str, arguments: &Value, options: CallOptions) -> ToolOutput {
        let Some((tool, plugin)) = generation.tools.get(tool) else {
            return ToolOutput::error(
                HostError::new(Category::ValidationFailed, "UNKNOWN_TOOL", format!("there is no tool named {:?}", crate::text::clip(tool, 100)))
                    .suggest(format!("Use one of: {}.", generation.tool_names().join(", "))),
            );
        };
        let limits = &plugin.policy.limits;
        let params = match tool.parameters(arguments) {
            Ok(params) => params,
            Err(e) => {
                return ToolOutput::error(
                    HostError::new(Category::ValidationFailed, "INVALID_ARGUMENTS", format!("invalid arguments for {}: {e}", tool.name))
                        .suggest("Check the tool's input schema and call it again."),
                );
            }
        };
        match tokio::time::timeout(limits.deadline, self.run(&self.shared, cx, tool, plugin, &params, options)).await {
            Ok(Ok(output)) => output,
            Ok(Err(err)) => ToolOutput::error(err),
            // The timed-out call's store, and every lock it held, is dropped here.
            Err(_) => ToolOutput::error(Limit::Deadline.error(&plugin.name, &tool.name, limits)),
        }
    }

    async fn run(
        &self,
        shared: &Arc<Shared>,
        cx: &CallContext,
        tool: &Tool,
        plugin: &Plugin,
        params: &[Val],
        options: CallOptions,
    ) -> Result<ToolOutput, HostError> {
        let _call = Live::new(&self.stats.calls);
        let limits = &plugin.policy.limits;
        let wait_until = options.wait_budget.map(|budget| shared.clock.now_ms().saturating_add(budget.as_millis() as u64));
        // A call runs once, or once more after each time it parks; between
        // runs it holds no instance and no slot, only what it carries.
        let mut carried = None;
        let results = loop {
            // Wait for a free instance slot before taking one; a full host
            // answers "busy" instead of failing inside the pool.
            let admitted = self.runtime.admission().admit().await?;
            let who = CallIdentity { cx: cx.clone(), plugin: plugin.name.clone(), tool: tool.name.as_str().into() };
            let setup = CallSetup { limits, epoch: self.runtime.epoch.clone(), progress: options.progress.clone(), wait_until };
            let mut state = CallState::new(shared.clone(), who, setup);
            if let Some(carried) = carried.take() {
                state.resume(carried);
            }
            // Declared before the store, so it is dropped after it.
            let live = Live::new(&self.stats.live);
            let mut store = Store::new(plugin.pre.engine(), state);
            sandbox::arm(&mut store);

            self.stats.instances.fetch_add(1, Ordering::Relaxed);
            let outcome: wasmtime::Result<Vec<Val>> = async {
                let instance = plugin.pre.instantiate_async(&mut store).await?;
                let func = instance
                    .get_func(&mut store, tool.export)
                    .ok_or_else(|| wasmtime::format_err!("the instance does not export {}", tool.name))?;
                let mut results = vec![Val::Bool(false); usize::from(tool.ok.is_some() || tool.err.is_some())];
                func.call_async(&mut store, params, &mut results).await?;
                wasmtime::Result::Ok(results)
            }
            .await;
            match outcome {
                Ok(results) => break results,
                Err(e) => {
                    let Some(park) = store.data_mut().park.take().filter(|_| e.is::<crate::park::Parked>()) else {
                        let hit = store.data().call.limiter.hit();
                        return Err(sandbox::trap_error(&plugin.name, &tool.name, limits, hit, &e));
                    };
                    // The instance goes back to the pool and the slot to the
                    // next call before the wait starts.
                    carried = Some(store.into_data().park_out(park.state));
                    drop((live, admitted));
                    shared.clock.sleep(std::time::Duration::from_millis(park.ms)).await;
                }
            }
        };
        // Check the size before rendering, so a huge result is never copied twice.
        if results.iter().map(json_size_estimate).sum::<usize>() > limits.max_result_bytes
            && results.iter().map(|v| exact_size(v, tool)).sum::<usize>() > limits.max_result_bytes
        {
            return Err(Limit::ResultSize.error(&plugin.name, &tool.name, limits));
        }
        // The results are not needed after this, so their strings move into the JSON.
        // Every answer is held to the tool's output schema here, whatever
        // the plugin returned: clients check structured content against it.
        let output = match results.into_iter().next() {
            Some(Val::Result(Ok(value))) => ToolOutput {
                is_error: false,
                value: match (value, &tool.ok) {
                    (Some(v), Some(ty)) => answer::conform_result(val_into_json(*v, ty)),
                    _ => Value::Object(Default::default()),
                },
            },
            Some(Val::Result(Err(value))) => ToolOutput {
                is_error: true,
                value: match (value, &tool.err) {
                    (Some(v), Some(ty)) => answer::conform_error(val_into_json(*v, ty), &plugin.name, &tool.name),
                    _ => HostError::new(Category::InternalError, "TOOL_FAILED", format!("{} failed", tool.name)).to_json(),
                },
            },
            Some(other) => ToolOutput { is_error: false, value: answer::conform_result(tool.ok.as_ref().map_or(Value::Null, |ty| val_into_json(other, ty))) },
            None => ToolOutput { is_error: false, value: Value::Object(Default::default()) },
        };
        Ok(output)
    }
}

/// The plugin serving `tool`, for errors raised before the call runs.
fn plugin_of(generation: &Generation, tool: &str) -> String {
    generation.tools.get(tool).map_or_else(|| "(none)".to_string(), |(_, p)| p.name.to_string())
}

/// The exact JSON size of a result, for results the estimate puts near the limit.
fn exact_size(val: &Val, tool: &Tool) -> usize {
    let rendered = match (val, &tool.ok, &tool.err) {
        (Val::Result(Ok(Some(v))), Some(ty), _) | (Val::Result(Err(Some(v))), _, Some(ty)) => val_to_json(v, ty),
        _ => return json_size_estimate(val),
    };
    serde_json::to_string(&rendered).map_or(usize::MAX, |s| s.len())
}

#[cfg(test)]
mod tests {
    use super::OneAtATime;

    #[test]
    fn one_at_a_time_runs_the_first_offer_queues_only_the_newest_and_frees_the_key() {
        let work = OneAtATime::default();
        assert_eq!(work.offer("a", 1), Some(1), "nothing runs for a: start it");
        assert_eq!(work.offer("a", 2), None, "1 runs: 2 waits");
        assert_eq!(work.offer("a", 3), None, "3 replaces 2");
        assert_eq!(work.offer("b", 10), Some(10), "keys are apart");
        assert_eq!(work.next("a"), Some(3), "after 1, the newest waiting");
        assert_eq!(work.next("a"), None, "nothing waits: a is free");
        assert_eq!(work.offer("a", 4), Some(4), "a free key starts at once");
        assert_eq!(work.next("b"), None);
    }
}
