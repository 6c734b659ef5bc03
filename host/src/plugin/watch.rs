//! Hot swap: watching a plugin directory and installing what changes in it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};
use tokio::sync::mpsc;

use crate::Toolshed;

/// How long a file must be quiet before it is loaded, so a half-written
/// file is not compiled.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

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
    _debouncer: Debouncer<RecommendedWatcher>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PluginWatcher {
    fn drop(&mut self) {
        self.task.abort();
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
pub fn watch(host: Arc<Toolshed>, dir: &Path) -> notify_debouncer_mini::notify::Result<PluginWatcher> {
    let (events, mut changed) = mpsc::unbounded_channel::<PathBuf>();
    let mut debouncer = new_debouncer(DEBOUNCE, move |result: DebounceEventResult| match result {
        Ok(batch) => {
            for event in batch {
                let _ = events.send(event.path);
            }
        }
        Err(e) => tracing::warn!("plugin directory watch: {e}"),
    })?;
    debouncer.watcher().watch(dir, RecursiveMode::NonRecursive)?;
    let task = tokio::spawn(async move {
        while let Some(path) = changed.recv().await {
            let Some(name) = plugin_name(&path) else { continue };
            match std::fs::read(&path) {
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
    });
    Ok(PluginWatcher { _debouncer: debouncer, task })
}
