//! Plugins from OCI registries in a host: the plugins `plugins.toml`
//! names, at the digests its `plugins.lock` pins, each verified (its
//! signature by the key trusted for its repository, every digest) from the
//! data directory's store or, for what the store lacks, the registry. A
//! server watches the lock: when `toolshed plugin update` (here or on
//! another replica sharing the file) moves a digest, the new version is
//! fetched, verified and swapped in while calls run; a refused one is
//! logged with its reason and the old version keeps serving.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use notify::{RecursiveMode, Watcher};
use toolshed_oci::lock::{LockFile, PluginsFile, locked_component};
use toolshed_oci::registry::Registries;
use toolshed_oci::{BlobStore, Credentials, RegistryOptions};
use toolshed_runtime::Toolshed;

/// How registries are reached: options the plugin commands and `serve`
/// take. Secrets come from the environment, never the command line.
#[derive(Args, Clone, Debug)]
pub struct RegistryArgs {
    /// Log in to registries as this user, with the password in
    /// $TOOLSHED_REGISTRY_PASSWORD (default: docker's config.json, or
    /// $TOOLSHED_REGISTRY_TOKEN as a bearer token).
    #[arg(long, global = true)]
    pub registry_username: Option<String>,
    /// A PEM CA certificate to trust for registries besides the system's.
    #[arg(long, global = true, value_name = "PEM")]
    pub registry_ca: Option<PathBuf>,
    /// Seconds to wait for a registry to connect or send more.
    #[arg(long, global = true, default_value_t = 30)]
    pub registry_timeout: u64,
    /// Speak HTTPS to registries on loopback too (a TLS registry through a
    /// tunnel or port-forward); by default they get plain HTTP.
    #[arg(long, global = true)]
    pub registry_loopback_tls: bool,
}

impl Default for RegistryArgs {
    fn default() -> Self {
        RegistryArgs { registry_username: None, registry_ca: None, registry_timeout: 30, registry_loopback_tls: false }
    }
}

impl RegistryArgs {
    /// The registry options these arguments and the environment say.
    ///
    /// # Errors
    ///
    /// A user without a password, or a CA file that cannot be read.
    pub fn options(&self) -> anyhow::Result<RegistryOptions> {
        let credentials = match (&self.registry_username, std::env::var("TOOLSHED_REGISTRY_TOKEN").ok()) {
            (Some(username), _) => {
                let password = std::env::var("TOOLSHED_REGISTRY_PASSWORD")
                    .map_err(|_| anyhow::anyhow!("--registry-username {username} needs the password in $TOOLSHED_REGISTRY_PASSWORD"))?;
                Some(Credentials::Basic { username: username.clone(), password })
            }
            (None, Some(token)) if !token.is_empty() => Some(Credentials::Bearer(token)),
            _ => None,
        };
        let ca_pem = match &self.registry_ca {
            Some(path) => vec![std::fs::read(path).map_err(|e| anyhow::anyhow!("reading --registry-ca {}: {e}", path.display()))?],
            None => Vec::new(),
        };
        Ok(RegistryOptions {
            credentials,
            ca_pem,
            timeout: std::time::Duration::from_secs(self.registry_timeout.max(1)),
            loopback_tls: self.registry_loopback_tls,
            ..RegistryOptions::default()
        })
    }
}

/// The store of verified blobs in data directory `data_dir`.
pub fn store(data_dir: &Path) -> BlobStore {
    BlobStore::new(data_dir.join("oci"))
}

/// What installs plugins from a lock into a host.
#[derive(Clone)]
pub struct LockInstaller {
    host: Arc<Toolshed>,
    plugins_toml: PathBuf,
    registries: Arc<Registries>,
    store: BlobStore,
}

impl LockInstaller {
    /// An installer into `host` of what `plugins_toml`'s lock pins.
    pub fn new(host: Arc<Toolshed>, plugins_toml: &Path, options: RegistryOptions, data_dir: &Path) -> LockInstaller {
        LockInstaller { host, plugins_toml: plugins_toml.to_path_buf(), registries: Arc::new(Registries::new(options)), store: store(data_dir) }
    }

    /// Installs every locked plugin whose component is not the one served,
    /// each on its own task, and removes the plugins the lock no longer
    /// names among `from_lock` (the names it installed before). Returns
    /// what was refused, with why.
    pub async fn apply(&self, from_lock: &mut BTreeSet<String>) -> Vec<(String, String)> {
        let (file, lock) = match PluginsFile::read(&self.plugins_toml).and_then(|file| LockFile::read(&file.lock_path()).map(|lock| (file, lock))) {
            Ok(read) => read,
            Err(e) => return vec![(self.plugins_toml.display().to_string(), e.to_string())],
        };
        let served: std::collections::HashMap<String, String> = self.host.plugins().iter().map(|p| (p.name.to_string(), format!("sha256:{}", p.hash))).collect();
        let trust = Arc::new(file.trust);
        let mut installs = tokio::task::JoinSet::new();
        for (name, entry) in lock.plugins.clone() {
            if served.get(&name) == Some(&entry.wasm) {
                continue;
            }
            let (installer, trust) = (self.clone(), trust.clone());
            installs.spawn(async move {
                let outcome = async {
                    let verified = locked_component(&entry, &installer.registries, &installer.store, &trust, true).await.map_err(|e| e.to_string())?;
                    installer.host.install(&name, verified.wasm).await.map_err(|e| format!("{} ({}): {e}", verified.reference, verified.digest))?;
                    tracing::info!(plugin = %name, digest = %entry.digest, "plugin installed from the lock");
                    Ok::<(), String>(())
                }
                .await;
                (name, outcome.err())
            });
        }
        let mut refused = Vec::new();
        while let Some(done) = installs.join_next().await {
            match done {
                Ok((name, None)) => {
                    from_lock.insert(name);
                }
                Ok((name, Some(reason))) => refused.push((name, reason)),
                Err(e) => refused.push((self.plugins_toml.display().to_string(), format!("an install task failed: {e}"))),
            }
        }
        for name in from_lock.clone() {
            if !lock.plugins.contains_key(&name) && self.host.remove(&name) {
                tracing::info!(plugin = %name, "plugin removed: the lock no longer names it");
                from_lock.remove(&name);
            }
        }
        refused.sort();
        refused
    }

    /// Watches the lock and applies it whenever it changes.
    ///
    /// # Errors
    ///
    /// When its directory cannot be watched.
    pub fn watch(self, mut from_lock: BTreeSet<String>) -> anyhow::Result<LockWatcher> {
        let lock_path = self.plugins_toml.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf).join(toolshed_oci::lock::LOCK_FILE);
        let dir = lock_path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let (changed, mut changes) = tokio::sync::mpsc::unbounded_channel();
        let name = lock_path.file_name().map(|n| n.to_os_string());
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event
                && event.paths.iter().any(|p| p.file_name().map(|n| n.to_os_string()) == name)
            {
                let _ = changed.send(());
            }
        })?;
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        let task = tokio::spawn(async move {
            let mut last = std::fs::read(&lock_path).ok();
            while changes.recv().await.is_some() {
                // Every event queued so far is answered by one read.
                while changes.try_recv().is_ok() {}
                let now = std::fs::read(&lock_path).ok();
                if now == last {
                    continue;
                }
                last = now;
                for (name, reason) in self.apply(&mut from_lock).await {
                    tracing::warn!(plugin = %name, "refused from the lock, the running version keeps serving: {reason}");
                }
            }
        });
        Ok(LockWatcher { _watcher: watcher, task })
    }
}

/// A running watch of a lock; dropping it stops the watch.
pub struct LockWatcher {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LockWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}
