//! Hot swap: watching a plugin directory and installing what changes in it.
//!
//! Each file is installed on its own task, so a plugin that is slow to
//! compile or whose smoke call hangs never delays another. A file is
//! installed only when its content changed: reads, touches and identical
//! rewrites do nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex as AsyncMutex, mpsc};
use tokio::time::Instant;

use crate::Toolshed;

/// How long a file must be quiet before it is loaded, when the platform
/// cannot say that a write is complete. On Linux a file is loaded as soon as
/// its writer closes it or it is renamed into place.
pub const QUIET: Duration = Duration::from_millis(50);

/// The plugin name of a file: its stem, for `.wasm` files only.
pub fn plugin_name(path: &Path) -> Option<String> {
    if path.extension()? != "wasm" {
        return None;
    }
    path.file_stem()?.to_str().map(str::to_string)
}

/// The hash a plugin's bytes are known by (hex SHA-256, as [`Plugin::hash`](crate::Plugin)).
pub fn content_hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Loads every `.wasm` file in `dir` into `host`, each on its own task.
/// Returns what was refused, with why; the rest is served.
///
/// # Errors
///
/// When the directory cannot be read.
pub async fn load_dir(host: &Arc<Toolshed>, dir: &Path) -> std::io::Result<Vec<(PathBuf, String)>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    let mut installs = tokio::task::JoinSet::new();
    for path in entries {
        let Some(name) = plugin_name(&path) else { continue };
        let host = host.clone();
        installs.spawn(async move {
            let outcome = match std::fs::read(&path) {
                Ok(bytes) => host.install(&name, bytes).await.map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            outcome.err().map(|reason| (path, reason))
        });
    }
    let mut refused = Vec::new();
    while let Some(done) = installs.join_next().await {
        match done {
            Ok(Some(refusal)) => refused.push(refusal),
            Ok(None) => {}
            Err(e) => refused.push((dir.to_path_buf(), format!("an install task failed: {e}"))),
        }
    }
    refused.sort();
    Ok(refused)
}

/// A running watch of a plugin directory; dropping it stops the watch.
pub struct PluginWatcher {
    _watcher: RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PluginWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What an event means for the file it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// The file is complete (closed after writing, renamed into place, or
    /// gone): look at it now.
    Complete,
    /// The file is being written: look once it has been quiet for [`QUIET`].
    Writing,
    /// Nothing that changes content (a read, an attribute change).
    Ignore,
}

fn change(kind: &EventKind) -> Change {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write))
        | EventKind::Modify(ModifyKind::Name(_))
        | EventKind::Remove(_) => Change::Complete,
        EventKind::Create(_) | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any | ModifyKind::Other) => Change::Writing,
        _ => Change::Ignore,
    }
}

/// The last content installed or refused for one plugin name; holding its
/// lock serializes the installs of that name.
type LastSeen = Arc<AsyncMutex<Option<String>>>;

/// Installs or removes the plugin at `path`, as the file now is, unless its
/// content is what was last installed or refused.
async fn apply(host: &Toolshed, path: &Path, last_seen: LastSeen) {
    let Some(name) = plugin_name(path) else { return };
    let mut last = last_seen.lock().await;
    match std::fs::read(path) {
        Ok(bytes) => {
            let hash = content_hash(&bytes);
            let served = host.plugins().iter().find(|p| *p.name == *name).map(|p| p.hash.clone());
            if last.as_deref() == Some(hash.as_str()) || served.as_deref() == Some(hash.as_str()) {
                tracing::debug!(plugin = %name, "plugin file unchanged; nothing to install");
                return;
            }
            *last = Some(hash);
            match host.install(&name, bytes).await {
                Ok(plugin) => tracing::info!(plugin = %name, hash = %plugin.hash, "plugin installed"),
                Err(e) => tracing::warn!(plugin = %name, "plugin refused, the running version keeps serving: {e}"),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            *last = None;
            if host.remove(&name) {
                tracing::info!(plugin = %name, "plugin removed");
            }
        }
        Err(e) => tracing::warn!(plugin = %name, "cannot read plugin file: {e}"),
    }
}

/// Watches `dir`: a new or changed `.wasm` is installed (compiled off the
/// async threads, checked, then published atomically), a broken one is
/// refused with a logged reason while the old version keeps serving, and a
/// deleted one is unloaded once its running calls end.
///
/// # Errors
///
/// When the directory cannot be watched.
pub fn watch(host: Arc<Toolshed>, dir: &Path) -> notify::Result<PluginWatcher> {
    let (events, mut changed) = mpsc::unbounded_channel::<(PathBuf, Change)>();
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| match result {
        Ok(event) => {
            let change = change(&event.kind);
            if change == Change::Ignore {
                return;
            }
            for path in event.paths {
                if plugin_name(&path).is_some() {
                    let _ = events.send((path, change));
                }
            }
        }
        Err(e) => tracing::warn!("plugin directory watch: {e}"),
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    let task = tokio::spawn(async move {
        let mut last_seen: HashMap<PathBuf, LastSeen> = HashMap::new();
        // Files being written, with when they last changed.
        let mut quiet: HashMap<PathBuf, Instant> = HashMap::new();
        let start = |path: PathBuf, last_seen: &mut HashMap<PathBuf, LastSeen>| {
            let seen = last_seen.entry(path.clone()).or_default().clone();
            let host = host.clone();
            tokio::spawn(async move { apply(&host, &path, seen).await });
        };
        loop {
            let next_due = quiet.values().min().map(|t| *t + QUIET);
            let event = match next_due {
                Some(due) => tokio::select! {
                    event = changed.recv() => event,
                    _ = tokio::time::sleep_until(due) => {
                        let now = Instant::now();
                        let ready: Vec<PathBuf> = quiet.iter().filter(|(_, t)| **t + QUIET <= now).map(|(p, _)| p.clone()).collect();
                        for path in ready {
                            quiet.remove(&path);
                            start(path, &mut last_seen);
                        }
                        continue;
                    }
                },
                None => changed.recv().await,
            };
            let Some((path, change)) = event else { break };
            match change {
                Change::Complete => {
                    quiet.remove(&path);
                    start(path, &mut last_seen);
                }
                Change::Writing => {
                    quiet.insert(path, Instant::now());
                }
                Change::Ignore => {}
            }
        }
    });
    Ok(PluginWatcher { _watcher: watcher, task })
}
