//! The `toolshed` command line.

pub mod coder;
pub mod demo;
pub mod tasks;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use toolshed_local::{LocalBackend, LocalConfig, LocalEvent, local_context};
use toolshed_runtime::plugin::PluginWatcher;
use toolshed_runtime::quota::Quotas;
use toolshed_runtime::{Arguments, CallOptions, Policy, Runtime, SystemClock, ToolOutput, Toolshed};

/// A sandboxed WebAssembly host for agent tools.
#[derive(Parser)]
#[command(name = "toolshed", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Args, Clone)]
pub struct Global {
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
}

/// What to do.
#[derive(Subcommand)]
pub enum Command {
    /// Lists the tools with their JSON schemas.
    Tools {
        /// Print one JSON document instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Calls a tool, showing progress while it waits.
    Call {
        /// The tool, such as list_templates.
        tool: String,
        /// Its arguments, a JSON object.
        #[arg(default_value = "{}")]
        arguments: String,
        /// The chat the call belongs to.
        #[arg(long, default_value = "cli")]
        chat: String,
        /// Start the call as a task, print its id and return at once; a
        /// background `toolshed tasks resume` runs it (see `toolshed task`).
        #[arg(long)]
        detach: bool,
    },
    /// Lists the tasks (calls that outlive their request) and their states,
    /// or resumes those whose process stopped.
    Tasks {
        #[command(subcommand)]
        action: Option<TasksCommand>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Shows a task, or waits for it to end.
    Task {
        /// The task id (a UUID).
        #[arg(value_parser = parse_uuid)]
        id: uuid::Uuid,
        /// Wait until the task ends; exit 0 if its tool answered with a result.
        #[arg(long)]
        wait: bool,
    },
    /// Serves the tools over MCP on stdin and stdout, or over HTTP.
    Serve(ServeArgs),
    /// Plays an agent's conversation against a fresh local backend.
    Demo,
    /// Manages templates.
    #[command(subcommand)]
    Template(TemplateCommand),
    /// Lists the workspaces and the chats they are bound to.
    Workspaces,
    /// Prints a build's log.
    Logs {
        /// The build id (a UUID).
        #[arg(value_parser = parse_uuid)]
        build: uuid::Uuid,
    },
    /// Lists the loaded plugins, their versions and policy.
    Plugins,
    /// Measures the runtime against the native baseline and prints the figures.
    Bench {
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Small counts and short waits: checks the benchmarks run, measures little.
        #[arg(long)]
        quick: bool,
    },
    /// Makes a bearer token for `serve --auth-tokens`: the token on stderr,
    /// once, and the token file's entry, which holds only its hash, on stdout.
    Token {
        /// The user the token acts for.
        #[arg(long)]
        owner_id: String,
        /// That user's name.
        #[arg(long)]
        owner_name: String,
        /// The organization the user acts in.
        #[arg(long)]
        organization_id: String,
    },
    /// Makes a plugin crate to start from: a WIT world, the tool logic over
    /// a small host trait, the component adapter and one harness test.
    New {
        /// The plugin's name: lowercase words joined by '-', such as hello-tools.
        name: String,
        /// Where to make it (default: here).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The toolshed checkout the plugin builds against, as its Cargo.toml
        /// should name it (default: the checkout this binary was built from).
        #[arg(long)]
        toolshed: Option<String>,
    },
    /// Runs a workspace agent (started by the local backend).
    #[command(hide = true)]
    Agent {
        #[arg(long)]
        db: PathBuf,
        #[arg(long)]
        agent_id: String,
        #[arg(long)]
        socket: PathBuf,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        script: String,
        /// Read the database URL from this inherited file descriptor: a URL
        /// may carry a password, and arguments are visible to every user.
        #[arg(long)]
        database_fd: Option<i32>,
        /// Run the startup script under this bubblewrap program.
        #[arg(long)]
        bubblewrap: Option<PathBuf>,
        /// Milliseconds between heartbeats.
        #[arg(long)]
        heartbeat_ms: Option<u64>,
    },
}

/// How `serve` is exposed, and who its callers are.
#[derive(Args, Clone)]
pub struct ServeArgs {
    /// The chat of this stdio session (default: a new one).
    #[arg(long)]
    pub chat: Option<String>,
    /// Serve streamable HTTP at this address (path /mcp) instead of stdio.
    /// Beyond loopback only with authentication.
    #[arg(long)]
    pub http: Option<std::net::SocketAddr>,
    /// The URL clients reach /mcp at: the resource tokens are issued for
    /// (default: http://ADDRESS/mcp).
    #[arg(long)]
    pub public_url: Option<String>,
    /// A token file: the SHA-256 of each token with its owner and
    /// organization (see `toolshed token`).
    #[arg(long)]
    pub auth_tokens: Option<PathBuf>,
    /// The issuer whose JWTs are accepted (RS256 or ES256).
    #[arg(long, requires = "auth_jwks")]
    pub auth_issuer: Option<String>,
    /// The issuer's key set: a URL (its jwks_uri) or a file.
    #[arg(long, requires = "auth_issuer")]
    pub auth_jwks: Option<String>,
    /// The audience tokens must name (default: the public URL).
    #[arg(long)]
    pub auth_audience: Option<String>,
    /// The scope a token needs.
    #[arg(long, default_value = toolshed_mcp::auth::DEFAULT_SCOPE)]
    pub auth_scope: String,
    /// A Host value to accept beyond loopback ones (repeatable).
    #[arg(long)]
    pub allowed_host: Vec<String>,
    /// A browser origin to accept, as scheme://host:port (repeatable;
    /// default: the public URL's origin).
    #[arg(long)]
    pub allowed_origin: Vec<String>,
    /// The largest request body, in KiB.
    #[arg(long, default_value_t = (toolshed_mcp::http::DEFAULT_MAX_BODY_BYTES >> 10) as u64)]
    pub max_body_kib: u64,
    /// How many calls one caller may have running at once.
    #[arg(long, default_value_t = toolshed_mcp::DEFAULT_CALLS_PER_PRINCIPAL)]
    pub calls_per_caller: usize,
    /// What the server tells a client about its tools when it initializes
    /// (default: a summary of the built-in tools, or nothing with --plugins).
    #[arg(long)]
    pub instructions: Option<String>,
    /// How many seconds a client without tasks waits for a call: tools that
    /// wait longer answer in time with the call that continues (0: no
    /// limit). Clients that declare the tasks extension get a task instead.
    #[arg(long, default_value_t = toolshed_mcp::DEFAULT_WAIT_BUDGET.as_secs())]
    pub wait_budget: u64,
    /// The user calls run as over stdio, or over HTTP without authentication
    /// (default: the local user, or with --backend coder the token's user).
    #[arg(long)]
    pub owner_id: Option<String>,
    /// That user's name.
    #[arg(long)]
    pub owner_name: Option<String>,
    /// That user's organization, and the organization of JWT callers whose
    /// token names none.
    #[arg(long)]
    pub organization_id: Option<String>,
    /// What the tools drive: the embedded local backend, or a Coder
    /// deployment (with --coder-url and --coder-token-file).
    #[arg(long, value_enum, default_value_t = BackendKind::Local)]
    pub backend: BackendKind,
    /// The Coder deployment's URL, such as https://coder.example.com.
    #[arg(long, env = "CODER_URL", required_if_eq("backend", "coder"))]
    pub coder_url: Option<String>,
    /// A file holding the Coder session token, so the token is never on a
    /// command line (make one with `coder tokens create`).
    #[arg(long, required_if_eq("backend", "coder"))]
    pub coder_token_file: Option<PathBuf>,
    /// The most workspaces one caller may have running at once (each keeps
    /// an agent process; local backend).
    #[arg(long, default_value_t = Quotas::default().live_workspaces)]
    pub max_live_workspaces: u64,
    /// The most chats with a workspace bound one caller may keep (its
    /// default chat is always allowed).
    #[arg(long, default_value_t = Quotas::default().chats)]
    pub max_chats: u64,
    /// The most tasks one caller may have kept at once (tasks are kept 24 h).
    #[arg(long, default_value_t = Quotas::default().tasks)]
    pub max_tasks: u64,
    /// The most MiB one caller may keep stored: task arguments and results,
    /// registry directories.
    #[arg(long, default_value_t = Quotas::default().stored_bytes >> 20)]
    pub max_stored_mib: u64,
}

impl ServeArgs {
    /// The quotas each caller is held to.
    pub fn quotas(&self) -> Quotas {
        Quotas {
            live_workspaces: self.max_live_workspaces,
            chats: self.max_chats,
            tasks: self.max_tasks,
            stored_bytes: self.max_stored_mib.saturating_mul(1 << 20),
        }
    }
}

/// What the tools drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// The embedded local backend: templates from directories, builds and
    /// agents as local processes.
    Local,
    /// A Coder deployment, over its REST API.
    Coder,
}

/// Task commands.
#[derive(Subcommand, Clone, Copy)]
pub enum TasksCommand {
    /// Runs every task no live process runs (after a crash, or started with
    /// `call --detach`) until none is left, then exits.
    Resume,
}

/// Template commands.
#[derive(Subcommand)]
pub enum TemplateCommand {
    /// Adds the template in DIR (its template.toml) as a new active version.
    Push {
        /// The template directory.
        dir: PathBuf,
    },
    /// Lists the templates.
    List,
}

/// The runtime as `serve` and every command that runs plugins builds it:
/// `policy`, the infra and platform capabilities, the default capacity, and
/// compiled plugins cached under `data_dir`. `serve` adds the first tier
/// ([`RuntimeBuilder::first_tier`](toolshed_runtime::RuntimeBuilder::first_tier));
/// the benchmarks start here too, so they measure what `serve` runs.
pub fn runtime_builder(policy: Policy, data_dir: &Path) -> toolshed_runtime::RuntimeBuilder {
    Runtime::builder()
        .policy(policy)
        .capability(toolshed_infra::Infra)
        .capability(toolshed_platform::Platform)
        .cache_dir(data_dir.join("compiled"))
        // Beside the cache, in the data directory workspaces never see.
        .cache_key_file(data_dir.join("compiled.key"))
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
}

impl App {
    /// Opens the local backend in the data directory and starts installing
    /// the plugins in the background: a slow plugin delays nothing else.
    pub async fn open(global: &Global) -> anyhow::Result<App> {
        Self::open_as(global, toolshed_local::Orphans::Fail, None, false, Quotas::default()).await
    }

    /// [`App::open`] for a process that stays up to run tasks, which takes
    /// over the builds of processes that died.
    pub async fn open_runner(global: &Global) -> anyhow::Result<App> {
        Self::open_as(global, toolshed_local::Orphans::Adopt, None, false, Quotas::default()).await
    }

    /// [`App::open_runner`] for `serve`, whose tools drive the backend
    /// `args` choose.
    pub async fn open_server(global: &Global, args: &ServeArgs) -> anyhow::Result<App> {
        let coder = match (args.backend, &args.coder_url, &args.coder_token_file) {
            (BackendKind::Coder, Some(url), Some(token_file)) => Some((url.as_str(), token_file.as_path())),
            (BackendKind::Coder, _, _) => anyhow::bail!("--backend coder needs --coder-url and --coder-token-file"),
            (BackendKind::Local, _, _) => None,
        };
        // A server lives long enough for the optimizing compiles to finish.
        Self::open_as(global, toolshed_local::Orphans::Adopt, coder, true, args.quotas()).await
    }

    /// `first_tier`: serve plugins the cache lacks from Winch while
    /// Cranelift compiles them; only for processes that stay up, since a
    /// one-shot command would exit before the optimized code is cached.
    async fn open_as(
        global: &Global,
        orphans: toolshed_local::Orphans,
        coder: Option<(&str, &Path)>,
        first_tier: bool,
        quotas: Quotas,
    ) -> anyhow::Result<App> {
        let data_dir = global.data_dir.clone().unwrap_or_else(LocalConfig::default_data_dir);
        let policy = match &global.policy {
            Some(path) => Policy::from_file(path)?,
            None => toolshed_builtin::policy(),
        };
        let runtime = Arc::new(runtime_builder(policy, &data_dir).first_tier(first_tier).build()?);
        let backend = open_backend_as(global, orphans, quotas).await?;
        let (mut infra, platform, events) = backend.providers();
        let mut coder_user = None;
        if let Some((url, token_file)) = coder {
            let (over_coder, user) = coder::open(&backend, url, token_file).await?;
            infra = toolshed_infra::InfraProviders::new(over_coder);
            coder_user = Some(user);
        }
        let mut builder = Toolshed::builder(runtime).clock(Arc::new(SystemClock)).events(events).provide(infra).provide(platform);
        if let Some(locks) = backend.chat_locks() {
            builder = builder.locks(locks);
        }
        let host = Arc::new(builder.build());
        let (loading, watch) = match &global.plugins {
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
        Ok(App { backend, coder_user, host, loading: Some(loading), _watch: watch })
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

    /// Warns of refused plugins once the initial load ends, without waiting for it.
    fn report_refusals_later(&mut self) {
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
        self.host.wait_for_tool(tool).await;
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

/// Runs the command.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Tools { json } => {
            let mut app = App::open(&cli.global).await?;
            app.loaded().await;
            print_tools(&app.host, json)?;
        }
        Command::Call { tool, arguments, chat, detach: true } => {
            let app = App::open(&cli.global).await?;
            let id = tasks::detach(&app, &cli.global, &chat, &tool, &arguments).await?;
            println!("{id}");
        }
        Command::Tasks { action: Some(TasksCommand::Resume), .. } => {
            let mut app = App::open_runner(&cli.global).await?;
            app.loaded().await;
            let resumed = tasks::resume(&app).await?;
            eprintln!("{resumed} tasks run");
        }
        Command::Tasks { action: None, json } => {
            let backend = open_backend(&cli.global).await?;
            tasks::list(&backend, json).await?;
        }
        Command::Task { id, wait } => {
            let backend = open_backend(&cli.global).await?;
            return tasks::show(&backend, &id.hyphenated().to_string(), wait).await;
        }
        Command::Call { tool, arguments, chat, detach: false } => {
            let mut app = App::open(&cli.global).await?;
            app.report_refusals_later();
            let out = app.call(&chat, &tool, &arguments, std::io::IsTerminal::is_terminal(&std::io::stderr())).await;
            println!("{}", serde_json::to_string_pretty(&out.value)?);
            return Ok(i32::from(out.is_error));
        }
        Command::Serve(args) => {
            let mut app = App::open_server(&cli.global, &args).await?;
            app.report_refusals_later();
            serve(&app, args, cli.global.plugins.is_none()).await?;
        }
        Command::Demo => {
            let transcript = demo::run(cli.global.data_dir.clone(), &mut std::io::stdout()).await?;
            let last = transcript.last().map(|output| output.is_error);
            return Ok(i32::from(last != Some(false)));
        }
        Command::Template(TemplateCommand::Push { dir }) => {
            let backend = open_backend(&cli.global).await?;
            let pushed = backend.push_template(&dir).await?;
            println!("template {} version {} ({}) is now active", pushed.template_id, pushed.number, pushed.version_id);
        }
        Command::Template(TemplateCommand::List) => {
            let backend = open_backend(&cli.global).await?;
            for t in backend.store().all_templates().await? {
                println!("{}  {:<20} {}", t.id, t.name, t.description);
            }
        }
        Command::Workspaces => {
            let backend = open_backend(&cli.global).await?;
            let chats = backend.store().chats().await?;
            for w in backend.store().workspaces().await? {
                let latest = backend.store().latest_build(&w.workspace.id).await?;
                let state = latest.map_or("no builds".to_string(), |b| {
                    format!("{} {} ({})", toolshed_local::store::transition_name(b.build.transition), toolshed_local::store::status_name(b.status), b.build.id)
                });
                let bound: Vec<&str> = chats.iter().filter(|(_, ws)| ws.as_deref() == Some(&w.workspace.id)).map(|(c, _)| c.as_str()).collect();
                println!("{}/{}  {}  chats: {}  {}", w.workspace.owner_name, w.workspace.name, state, bound.join(","), w.dir);
            }
        }
        Command::Logs { build } => {
            let data_dir = cli.global.data_dir.clone().unwrap_or_else(LocalConfig::default_data_dir);
            let path = data_dir.join("logs").join(format!("{}.log", build.hyphenated()));
            let text = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("no log for build {build} ({}): {e}", path.display()))?;
            print!("{text}");
        }
        Command::Plugins => {
            let mut app = App::open(&cli.global).await?;
            app.loaded().await;
            for plugin in app.host.plugins() {
                let grants: Vec<String> = plugin.policy.grants.iter().map(ToString::to_string).collect();
                println!(
                    "{}  sha256:{}  API {}  tools: {}",
                    plugin.name,
                    &plugin.hash[..16],
                    plugin.api_version,
                    plugin.tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
                );
                println!("    grants: {}", grants.join(", "));
                println!("    limits: {}", plugin.policy.limits);
                if let Some(smoke) = &plugin.policy.smoke {
                    println!("    smoke call: {} {} (within {} s)", smoke.tool, smoke.arguments, smoke.deadline.as_secs());
                }
            }
        }
        Command::Bench { json, quick } => {
            let report = tokio::task::spawn_blocking(move || crate::bench::run(crate::bench::BenchOptions { quick })).await??;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", report.table());
            }
        }
        Command::Token { owner_id, owner_name, organization_id } => {
            let token = format!("ts_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
            let entry = toml_entry(&toolshed_mcp::auth::hash_token(&token), &owner_id, &owner_name, &organization_id);
            // The token goes to the terminal, the entry (its hash only) to
            // stdout: `toolshed token ... >> tokens.toml` never writes the token.
            eprintln!("the token, shown once; give it to the client as its bearer token:\n{token}");
            print!("{entry}");
        }
        Command::New { name, dir, toolshed } => {
            let toolshed = match toolshed {
                Some(path) => path,
                None => {
                    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
                    let checkout = checkout.canonicalize().map_err(|_| anyhow::anyhow!("pass --toolshed PATH: the path of a toolshed checkout"))?;
                    checkout.display().to_string()
                }
            };
            let root = crate::new::create(&name, &dir, &toolshed)?;
            println!("made plugin {name} in {}", root.display());
            println!("  cargo test --manifest-path {}/Cargo.toml   # builds the component and runs its harness test", root.display());
        }
        Command::Agent { db, agent_id, socket, dir, script, database_fd, bubblewrap, heartbeat_ms } => {
            let database = match database_fd {
                Some(fd) => Some(toolshed_local::agent::read_database_fd(fd)?),
                None => cli.global.database.clone(),
            };
            let sandbox = bubblewrap.map_or(toolshed_local::Sandbox::EnvironmentOnly, toolshed_local::Sandbox::Bubblewrap);
            let heartbeat = heartbeat_ms.map_or(toolshed_local::agent::HEARTBEAT, Duration::from_millis);
            toolshed_local::agent::run(toolshed_local::agent::AgentArgs { db, database, agent_id, socket, dir, script, sandbox, heartbeat }).await?;
        }
    }
    Ok(0)
}

/// A token file entry, with each value quoted as TOML requires.
fn toml_entry(hash: &str, owner_id: &str, owner_name: &str, organization_id: &str) -> String {
    let quote = |v: &str| serde_json::to_string(v).unwrap_or_default();
    format!(
        "[[token]]\nsha256 = {}\nowner_id = {}\nowner_name = {}\norganization_id = {}\n",
        quote(hash),
        quote(owner_id),
        quote(owner_name),
        quote(organization_id)
    )
}

/// Serves MCP over stdio or HTTP as `args` say.
async fn serve(app: &App, args: ServeArgs, builtin_plugins: bool) -> anyhow::Result<()> {
    // Over Coder, calls act for the token's user unless told otherwise.
    let coder = app.coder_user.as_ref();
    let principal = toolshed_mcp::Principal {
        owner_id: args.owner_id.clone().or_else(|| coder.map(|u| u.id.clone())).unwrap_or_else(|| toolshed_local::LOCAL_OWNER.into()),
        owner_name: args.owner_name.clone().or_else(|| coder.map(|u| u.username.clone())).unwrap_or_else(|| toolshed_local::LOCAL_OWNER_NAME.into()),
        organization_id: args
            .organization_id
            .clone()
            .or_else(|| coder.and_then(|u| u.organization_ids.first().cloned()))
            .unwrap_or_else(|| toolshed_local::LOCAL_ORG.into()),
        scopes: vec![args.auth_scope.clone()],
    };
    let default_organization = principal.organization_id.clone();
    let mut settings = toolshed_mcp::ServerSettings::new(principal, Some(app.backend.clone()));
    settings.calls_per_principal = args.calls_per_caller.max(1);
    settings.instructions = args.instructions.clone().or_else(|| builtin_plugins.then(|| toolshed_builtin::INSTRUCTIONS.to_string()));
    // Calls made as tasks run here, and so do tasks whose process stopped.
    let runner = tasks::runner(app);
    let _keeper = runner.keep();
    settings.tasks = Some(runner);
    settings.wait_budget = (args.wait_budget > 0).then(|| std::time::Duration::from_secs(args.wait_budget));
    let settings = Arc::new(settings);
    let Some(addr) = args.http else {
        if let Some(chat) = &args.chat {
            anyhow::ensure!(toolshed_runtime::chats::is_chat_id(chat), "--chat {chat:?} is not a chat id: use letters, digits, '-', '_', '.' or ':'");
        }
        return toolshed_mcp::McpServer::new(app.host.clone(), settings, args.chat).serve_stdio().await;
    };
    let public_url = args.public_url.clone().unwrap_or_else(|| format!("http://{addr}/mcp"));
    let tokens = args.auth_tokens.as_deref().map(toolshed_mcp::auth::TokenFile::read).transpose()?.map(Arc::new);
    let jwt = match (&args.auth_issuer, &args.auth_jwks) {
        (Some(issuer), Some(jwks)) => {
            let source = if jwks.starts_with("http://") || jwks.starts_with("https://") {
                toolshed_mcp::auth::Jwks::Url(jwks.clone())
            } else {
                toolshed_mcp::auth::Jwks::File(jwks.into())
            };
            let audience = args.auth_audience.clone().unwrap_or_else(|| public_url.clone());
            Some(Arc::new(toolshed_mcp::auth::JwtIssuer::new(issuer, &audience, &default_organization, source).await?))
        }
        _ => None,
    };
    let auth = (tokens.is_some() || jwt.is_some()).then(|| toolshed_mcp::auth::Auth { tokens, jwt, required_scope: args.auth_scope.clone() });
    let config = toolshed_mcp::http::HttpConfig {
        public_url: Some(public_url),
        auth,
        allowed_hosts: args.allowed_host,
        allowed_origins: args.allowed_origin,
        max_body_bytes: Some((args.max_body_kib as usize) << 10),
    };
    toolshed_mcp::http::serve(app.host.clone(), settings, addr, config).await
}

/// An id argument: a UUID, or an error saying what was given.
fn parse_uuid(text: &str) -> Result<uuid::Uuid, String> {
    uuid::Uuid::parse_str(text).map_err(|_| format!("{:?} is not an id: ids are UUIDs such as 0f8c6e4a-5b1d-4c2a-9e3f-1a2b3c4d5e6f", toolshed_runtime::text::clip(text, 80)))
}

/// The local backend alone, for commands that run no plugin.
async fn open_backend(global: &Global) -> anyhow::Result<Arc<LocalBackend>> {
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

async fn open_backend_as(global: &Global, orphans: toolshed_local::Orphans, quotas: Quotas) -> anyhow::Result<Arc<LocalBackend>> {
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

fn print_tools(host: &Toolshed, json: bool) -> anyhow::Result<()> {
    let tools = host.tools();
    if json {
        let listing: Vec<Value> = tools
            .iter()
            .map(|t| serde_json::json!({ "name": t.name, "plugin": t.plugin, "description": t.description, "inputSchema": t.input_schema, "outputSchema": t.output_schema }))
            .collect();
        println!("{}", serde_json::to_string_pretty(&listing)?);
        return Ok(());
    }
    for tool in &tools {
        println!("{:<20} {:<16} {}", tool.name, tool.plugin, summary(&tool.description));
        if let Some(properties) = tool.input_schema["properties"].as_object() {
            let required = tool.input_schema["required"].as_array().cloned().unwrap_or_default();
            for (field, schema) in properties {
                let mark = if required.iter().any(|f| f == field) { "" } else { "?" };
                println!("    {field}{mark} - {}", summary(schema["description"].as_str().unwrap_or_default()));
            }
        }
    }
    Ok(())
}

/// The first sentence of a description.
fn summary(text: &str) -> &str {
    match text.find(". ") {
        Some(end) => &text[..=end],
        None => text.trim_end(),
    }
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
