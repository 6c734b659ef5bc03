//! The host a command runs: the local backend in a data directory (or a
//! shared database), the runtime as `serve` builds it, the plugins
//! installing in the background, and, for `serve --backend coder`, a Coder
//! deployment answering the infra interfaces. The command line and the
//! benchmarks both build their hosts here.

pub mod coder;
pub mod registry;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use toolshed_local::{LocalBackend, LocalConfig, LocalEvent, local_context};
use toolshed_runtime::plugin::PluginWatcher;
use toolshed_runtime::quota::Quotas;
use toolshed_runtime::{Arguments, CallOptions, Policy, SystemClock, ToolOutput, Toolshed};

/// Where a host keeps its state and finds its plugins: options every
/// command takes.
#[derive(Args, Clone)]
pub struct HostOptions {
    /// Where the local backend keeps its state (default: ~/.local/share/toolshed).
    #[arg(long, global = true, env = "TOOLSHED_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The database several hosts share, as postgres://USER@HOST:PORT/DB
    /// (default: SQLite in the data directory). Prefer the environment
    /// variable when the URL carries a password.
    #[arg(long, global = true, env = "TOOLSHED_DATABASE", hide_env_values = true)]
    pub database: Option<String>,
    /// Load plugins from this directory, and reload them when they change,
    /// instead of the built-in ones.
    #[arg(long, global = true)]
    pub plugins: Option<PathBuf>,
    /// The policy file: grants and limits per plugin (default: built in).
    #[arg(long, global = true)]
    pub policy: Option<PathBuf>,
    /// Serve the plugins this plugins.toml names, from registries, at the
    /// digests its plugins.lock pins, each verified; a server follows the
    /// lock as `toolshed plugin update` moves it. For the plugin commands,
    /// the file they read and write (default: plugins.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub plugins_toml: Option<PathBuf>,
    /// How registries are reached.
    #[command(flatten)]
    pub registry: registry::RegistryArgs,
}

/// The runtime as `serve` and every command that runs plugins builds it:
/// `policy`, the infra and platform capabilities, the default capacity, and
/// compiled plugins cached under `data_dir`. `serve` adds the first tier
/// ([`RuntimeBuilder::first_tier`](toolshed_runtime::RuntimeBuilder::first_tier));
/// the benchmarks start here too, so they measure what `serve` runs.
pub fn runtime_builder(policy: Policy, data_dir: &Path) -> toolshed_runtime::RuntimeBuilder {
    toolshed_standard::runtime()
        .policy(policy)
        .cache_dir(data_dir.join("compiled"))
        // Beside the cache, in the data directory workspaces never see.
        .cache_key_file(data_dir.join("compiled.key"))
}

/// The secrets file in the data directory: the secrets the host adds to
/// plugins' HTTP requests (see docs/network.md).
pub const SECRETS_FILE: &str = "secrets.toml";

/// The network providers of a host: the secrets file of `data_dir` when
/// there is one (refused when others than its owner may read it), and the
/// environment.
///
/// # Errors
///
/// When the secrets file cannot be used.
pub fn network_providers(data_dir: &Path) -> anyhow::Result<toolshed_network::NetworkProviders> {
    let path = data_dir.join(SECRETS_FILE);
    let secrets = if path.exists() { toolshed_network::SecretStore::from_file(&path)? } else { toolshed_network::SecretStore::new() };
    Ok(toolshed_network::NetworkProviders::new(Arc::new(secrets)))
}

/// A host over the local backend, with its plugins installing.
pub struct App {
    /// The local backend: chats, tasks and, unless the tools drive Coder,
    /// the workspaces.
    pub backend: Arc<LocalBackend>,
    /// With `--backend coder`, the user the Coder token belongs to.
    pub coder_user: Option<toolshed_coder::api::User>,
    /// The host.
    pub host: Arc<Toolshed>,
    /// The initial install of the plugins, each on its own task; yields
    /// what was refused.
    loading: Option<tokio::task::JoinHandle<Vec<(String, String)>>>,
    _watch: Option<PluginWatcher>,
    _lock_watch: Option<registry::LockWatcher>,
}

impl App {
    /// Opens the local backend in the data directory and starts installing
    /// the plugins in the background: a slow plugin delays nothing else.
    pub async fn open(global: &HostOptions) -> anyhow::Result<App> {
        Self::open_as(global, toolshed_local::Orphans::Fail, None, false, Quotas::default()).await
    }

    /// [`App::open`] for a process that stays up to run tasks, which takes
    /// over the builds of processes that died.
    pub async fn open_runner(global: &HostOptions) -> anyhow::Result<App> {
        Self::open_as(global, toolshed_local::Orphans::Adopt, None, false, Quotas::default()).await
    }

    /// [`App::open_runner`] for `serve`, whose tools drive Coder at `url`
    /// with the token in the file, when given, else the local backend.
    pub async fn open_server(global: &HostOptions, coder: Option<(&str, &Path)>, quotas: Quotas) -> anyhow::Result<App> {
        // A server lives long enough for the optimizing compiles to finish.
        Self::open_as(global, toolshed_local::Orphans::Adopt, coder, true, quotas).await
    }

    /// `first_tier`: serve plugins the cache lacks from Winch while
    /// Cranelift compiles them; only for processes that stay up, since a
    /// one-shot command would exit before the optimized code is cached.
    async fn open_as(
        global: &HostOptions,
        orphans: toolshed_local::Orphans,
        coder: Option<(&str, &Path)>,
        first_tier: bool,
        quotas: Quotas,
    ) -> anyhow::Result<App> {
        let data_dir = global.data_dir.clone().unwrap_or_else(LocalConfig::default_data_dir);
        let mut policy = match &global.policy {
            Some(path) => Policy::from_file(path)?,
            None => toolshed_builtin::policy(),
        };
        if global.plugins.is_some() && global.plugins_toml.is_some() {
            anyhow::bail!("give --plugins DIR or --plugins-toml FILE, not both");
        }
        if let Some(path) = &global.plugins_toml {
            // Each source's policy entry, over the policy file's.
            let file = toolshed_oci::lock::PluginsFile::read(path)?;
            policy.extend(Policy::from_toml(&file.policy_toml()).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?);
        }
        let mut runtime = runtime_builder(policy, &data_dir).first_tier(first_tier);
        if first_tier {
            // A process that stays up compiles in a child, which takes the
            // compiler's memory with it when it ends (plugin::ChildCompiler).
            match std::env::current_exe() {
                Ok(exe) => runtime = runtime.compile_in_child(exe, vec!["precompile".into()]),
                Err(e) => tracing::debug!("compiling in this process: {e}"),
            }
        }
        let runtime = Arc::new(runtime.build()?);
        let backend = open_backend_as(global, orphans, quotas).await?;
        let mut builder =
            Toolshed::builder(runtime).clock(Arc::new(SystemClock)).backend(&backend).provide(network_providers(&data_dir)?);
        let mut coder_user = None;
        if let Some((url, token_file)) = coder {
            // Coder answers the infra interfaces; the local backend keeps
            // the chats, tasks and registries.
            let (over_coder, user) = coder::open(&backend, url, token_file).await?;
            builder = builder.backend(&over_coder);
            coder_user = Some(user);
        }
        let host = Arc::new(builder.build()?);
        let mut lock_watch = None;
        let (loading, watch) = match &global.plugins {
            None if global.plugins_toml.is_some() => {
                let path = global.plugins_toml.as_deref().expect("matched");
                let installer = registry::LockInstaller::new(host.clone(), path, global.registry.options()?, &data_dir);
                if first_tier {
                    // A server follows the lock; watch first, so a change
                    // made while the rest load is seen.
                    let file = toolshed_oci::lock::PluginsFile::read(path)?;
                    let names = toolshed_oci::lock::LockFile::read(&file.lock_path())?.plugins.into_keys().collect();
                    lock_watch = Some(installer.clone().watch(names)?);
                }
                let pending = host.installs_pending();
                let loading = tokio::spawn(async move {
                    let _pending = pending;
                    installer.apply(&mut Default::default()).await
                });
                (loading, None)
            }
            Some(dir) => {
                // Watch first, so a file written while the rest load is seen.
                let watch = toolshed_runtime::plugin::watch(host.clone(), dir)?;
                let (host, dir) = (host.clone(), dir.clone());
                let pending = host.installs_pending();
                let loading = tokio::spawn(async move {
                    let _pending = pending;
                    match toolshed_runtime::plugin::load_dir(&host, &dir).await {
                        Ok(refused) => refused.into_iter().map(|(path, reason)| (path.display().to_string(), reason)).collect(),
                        Err(e) => vec![(dir.display().to_string(), e.to_string())],
                    }
                });
                (loading, Some(watch))
            }
            None => {
                let host = host.clone();
                let pending = host.installs_pending();
                let loading = tokio::spawn(async move {
                    let _pending = pending;
                    let mut installs = tokio::task::JoinSet::new();
                    for (name, bytes) in toolshed_builtin::all() {
                        let host = host.clone();
                        installs.spawn(async move { host.install(name, bytes.to_vec()).await.err().map(|e| (name.to_string(), e.to_string())) });
                    }
                    installs.join_all().await.into_iter().flatten().collect()
                });
                (loading, None)
            }
        };
        Ok(App { backend, coder_user, host, loading: Some(loading), _watch: watch, _lock_watch: lock_watch })
    }

    /// Waits until every plugin of the initial load is installed or refused,
    /// and warns of the refused ones.
    pub async fn loaded(&mut self) {
        if let Some(loading) = self.loading.take() {
            for (what, reason) in loading.await.unwrap_or_default() {
                eprintln!("warning: {what} was not loaded: {reason}");
            }
        }
    }

    /// Warns of the plugins the initial load refused, if that load has
    /// ended, before a one-shot command exits. It warns on stderr directly:
    /// the log's writer thread may not run again before the process ends.
    /// A load still under way (a plugin other than the called one still
    /// compiling, or in a long smoke call) is not waited for: its refusals
    /// are not known yet.
    pub async fn report_refusals_at_exit(&mut self) {
        // The initial load holds an install count until it returns, so once
        // installs have settled its task is ending and is awaited at once.
        if !self.host.installs_settled(Duration::ZERO).await {
            return;
        }
        if let Some(loading) = self.loading.take() {
            for (what, reason) in loading.await.unwrap_or_default() {
                eprintln!("warning: {what} was not loaded: {reason}");
            }
        }
    }

    /// Warns of refused plugins once the initial load ends, without waiting
    /// for it: for a server, which lives on.
    pub fn report_refusals_later(&mut self) {
        if let Some(loading) = self.loading.take() {
            tokio::spawn(async move {
                for (what, reason) in loading.await.unwrap_or_default() {
                    tracing::warn!("{what} was not loaded: {reason}");
                }
            });
        }
    }

    /// Calls a tool, showing the progress it reports and its builds' output.
    /// The call starts as soon as the plugin serving the tool is installed.
    pub async fn call(&self, chat: &str, tool: &str, arguments: &str, show_progress: bool) -> ToolOutput {
        let spinner = show_progress.then(|| {
            let spinner = ProgressBar::new_spinner();
            spinner.set_style(ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}").expect("a valid template"));
            spinner.enable_steady_tick(Duration::from_millis(120));
            spinner.set_message(tool.to_string());
            spinner
        });
        let mut events = self.backend.subscribe();
        let (sink, mut progress) = toolshed_runtime::progress::latest();
        let cx = local_context(chat);
        let call = self.host.call_with(&cx, tool, Arguments::Text(arguments), CallOptions { progress: Some(sink), ..CallOptions::default() });
        tokio::pin!(call);
        loop {
            tokio::select! {
                out = &mut call => {
                    if let Some(spinner) = spinner {
                        spinner.finish_and_clear();
                    }
                    return out;
                }
                Ok(event) = events.recv() => {
                    if let (Some(spinner), LocalEvent::Build { line, .. }) = (&spinner, event) {
                        spinner.println(format!("  | {line}"));
                    }
                }
                Ok(()) = progress.changed() => {
                    let latest = progress.borrow_and_update().clone();
                    if let (Some(spinner), Some(latest)) = (&spinner, latest) {
                        spinner.set_message(latest.message);
                    }
                }
            }
        }
    }
}

/// The local backend alone, for commands that run no plugin.
pub async fn open_backend(global: &HostOptions) -> anyhow::Result<Arc<LocalBackend>> {
    open_backend_as(global, toolshed_local::Orphans::Fail, Quotas::default()).await
}

/// The lease builds and tasks are held under: tests that kill a host
/// shorten it (`TOOLSHED_LEASE_MS`) so they need not wait 15 s.
pub fn lease() -> toolshed_local::Lease {
    match std::env::var("TOOLSHED_LEASE_MS").ok().and_then(|v| v.parse::<u64>().ok()) {
        Some(ms) => toolshed_local::Lease::of(Duration::from_millis(ms.max(30))),
        None => toolshed_local::Lease::default(),
    }
}

/// Whether workspace scripts must run in the bubblewrap sandbox:
/// `TOOLSHED_SANDBOX` is auto (the default), required or off.
fn sandbox_mode() -> anyhow::Result<toolshed_local::SandboxMode> {
    match std::env::var("TOOLSHED_SANDBOX") {
        Ok(text) if !text.trim().is_empty() => text.parse().map_err(|e: String| anyhow::anyhow!("TOOLSHED_SANDBOX: {e}")),
        _ => Ok(toolshed_local::SandboxMode::default()),
    }
}

/// How often agents heartbeat: tests that delete a data directory shorten
/// it (`TOOLSHED_HEARTBEAT_MS`) so its agents are seen to exit quickly.
fn heartbeat() -> Duration {
    std::env::var("TOOLSHED_HEARTBEAT_MS").ok().and_then(|v| v.parse::<u64>().ok()).map_or(toolshed_local::agent::HEARTBEAT, |ms| Duration::from_millis(ms.max(50)))
}

async fn open_backend_as(global: &HostOptions, orphans: toolshed_local::Orphans, quotas: Quotas) -> anyhow::Result<Arc<LocalBackend>> {
    let data_dir = global.data_dir.clone().unwrap_or_else(LocalConfig::default_data_dir);
    let mut config = LocalConfig::new(data_dir, std::env::current_exe()?);
    config.database = global.database.clone();
    config.lease = lease();
    config.orphans = orphans;
    config.sandbox = sandbox_mode()?;
    config.heartbeat = heartbeat();
    config.quotas = quotas;
    LocalBackend::open(config).await
}

/// Writes the example templates shipped in the binary into `dir`, returning
/// (v1 dir, v2 dir, broken dir).
pub fn write_examples(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
    let write = |name: &str, text: &str| -> anyhow::Result<PathBuf> {
        let path = dir.join(name);
        std::fs::create_dir_all(&path)?;
        std::fs::write(path.join("template.toml"), text)?;
        Ok(path)
    };
    Ok((
        write("python-dev", include_str!("../../templates/python-dev/template.toml"))?,
        write("python-dev-v2", include_str!("../../templates/python-dev-v2/template.toml"))?,
        write("broken-build", include_str!("../../templates/broken-build/template.toml"))?,
    ))
}
