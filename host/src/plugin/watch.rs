//! Hot swap: watching a plugin directory and installing what changes in it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
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

/// Loads every `.wasm` file in `dir` into `host`. Returns what was refused,
/// with why; the rest is served.
pub async fn load_dir(host: &Toolshed, dir: &Path) -> std::io::Result<Vec<(PathBuf, String)>> {
    let mut refused = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        let Some(name) = plugin_name(&path) else { continue };
        match std::fs::read(&path) {
            Ok(bytes) => {
                if let Err(e) = host.install(&name, bytes).await {
                    refused.push((path, e.to_string()));
                }
            }
            Err(e) => refused.push((path, e.to_string())),
        }
    }
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

/// Whether an event says the file is complete and can be loaded now.
fn complete(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
            | EventKind::Remove(_)
            | EventKind::Modify(ModifyKind::Name(RenameMode::From))
    )
}

/// Installs or removes the plugin at `path`, as the file now is.
async fn apply(host: &Toolshed, path: &Path) {
    let Some(name) = plugin_name(path) else { return };
    match std::fs::read(path) {
        Ok(bytes) => match host.install(&name, bytes).await {
            Ok(plugin) => tracing::info!(plugin = %name, hash = %plugin.hash, "plugin installed"),
            Err(e) => tracing::warn!(plugin = %name, "plugin refused, the running version keeps serving: {e}"),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
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
    let (events, mut changed) = mpsc::unbounded_channel::<(PathBuf, bool)>();
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| match result {
        Ok(event) => {
            let now = complete(&event.kind);
            for path in event.paths {
                let _ = events.send((path, now));
            }
        }
        Err(e) => tracing::warn!("plugin directory watch: {e}"),
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    let task = tokio::spawn(async move {
        // Files changed by events that do not say the write is complete,
        // with when they last changed.
        let mut quiet: HashMap<PathBuf, Instant> = HashMap::new();
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
                            apply(&host, &path).await;
                        }
                        continue;
                    }
                },
                None => changed.recv().await,
            };
            let Some((path, complete)) = event else { break };
            if plugin_name(&path).is_none() {
                continue;
            }
            if complete {
                quiet.remove(&path);
                apply(&host, &path).await;
            } else {
                quiet.insert(path, Instant::now());
            }
        }
    });
    Ok(PluginWatcher { _watcher: watcher, task })
}
