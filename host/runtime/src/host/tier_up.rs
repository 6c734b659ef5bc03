//! Tier-up: a version first served from baseline code moves to its
//! optimized code, compiled by Cranelift in the background, one compile per
//! plugin at a time; calls running on the baseline code finish there.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::broadcast;

use super::Toolshed;
use super::generation::Served;
use crate::plugin::{Plugin, Tier};
use crate::runtime::Runtime;

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

/// A plugin version to optimize: its content hash and its bytes.
pub(super) type Version = (String, Arc<[u8]>);

/// Work per key, one at a time: while a key's work runs, what is offered
/// for it waits, and a newer offer replaces the one waiting.
pub(super) struct OneAtATime<T> {
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
    pub(super) fn offer(&self, key: &str, item: T) -> Option<T> {
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
    pub(super) fn next(&self, key: &str) -> Option<T> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let next = running.get_mut(key).and_then(Option::take);
        if next.is_none() {
            running.remove(key);
        }
        next
    }
}

impl Served {
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

impl Toolshed {
    /// Compiles `baseline`'s bytes with Cranelift off the async threads, then
    /// serves the optimized code in its place, quietly, if that version
    /// still serves. A failed optimizing compile leaves the baseline code
    /// serving, which is correct, only slower.
    ///
    /// One worker per plugin compiles at a time: versions written while it
    /// runs wait, and a newer one replaces the one waiting, so a flood of
    /// rewrites costs at most two optimizing compiles beyond the last.
    pub(super) fn optimize_in_background(&self, baseline: Arc<Plugin>, bytes: Arc<[u8]>) {
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
