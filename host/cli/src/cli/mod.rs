//! The `toolshed` command line.

pub mod demo;
pub mod plugin;
pub mod secret;
pub mod tasks;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::Value;
use toolshed_runtime::Toolshed;
use toolshed_runtime::quota::Quotas;

pub use crate::app::{App, HostOptions, lease, runtime_builder, write_examples};
use crate::app::open_backend;

/// A sandboxed WebAssembly host for agent tools.
#[derive(Parser)]
#[command(name = "toolshed", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: HostOptions,
    #[command(subcommand)]
    pub command: Command,
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
    Serve(Box<ServeArgs>),
    /// Plays an agent's conversation against a fresh local backend.
    Demo,
    /// Manages templates.
    #[command(subcommand)]
    Template(TemplateCommand),
    /// Manages the secrets the host adds to plugins' HTTP requests.
    #[command(subcommand)]
    Secret(SecretCommand),
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
    /// Compiles the component on standard input for the engine of a host
    /// with this pool and writes wasmtime's artifact to standard output:
    /// `serve` runs its optimizing compiles this way, in a child process.
    #[command(hide = true)]
    Precompile {
        /// The pool's concurrent calls.
        #[arg(long)]
        calls: u32,
        /// The largest linear memory of a call, in bytes.
        #[arg(long)]
        memory_bytes: usize,
    },
    /// Plugins in OCI registries: push, sign, install, update.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
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
    /// Makes a plugin project to start from: a WIT world, the tool logic,
    /// a policy, the cases `toolshed test` runs, and a README (Rust: also
    /// the component adapter and a harness test).
    New {
        /// The plugin's name: lowercase words joined by '-', such as hello-tools.
        name: String,
        /// The language to write it in.
        #[arg(long, value_enum, default_value = "rust")]
        lang: crate::new::Language,
        /// Where to make it (default: here).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The toolshed checkout the plugin builds against, as its Cargo.toml
        /// should name it (default: the checkout this binary was built from).
        #[arg(long)]
        toolshed: Option<String>,
    },
    /// Embeds a plugin's WIT docs and toolshed API version into a component
    /// built by any toolchain (componentize-py, componentize-js, Go, C,
    /// .NET), as `toolshed-pack` does for Rust builds.
    Pack {
        /// The component (`.wasm`).
        component: PathBuf,
        /// The WIT package the component was built from (its dependencies in `DIR/deps`).
        #[arg(long, value_name = "DIR")]
        wit: PathBuf,
        /// The world it targets, such as plugins:hello/hello-plugin (default:
        /// the package's only world).
        #[arg(long)]
        world: Option<String>,
        /// Where to write the packed plugin (default: over the component).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Builds a plugin project of any language (Rust, Python, JavaScript),
    /// packs it, and tests it on the real host against the scripted fake
    /// backend on virtual time: its tests/cases.json, then the checks every
    /// plugin must pass. Exits 1 when a step fails.
    Test {
        /// The project directory, as `toolshed new` makes it.
        dir: PathBuf,
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
    /// (default: http://ADDRESS/mcp). Only with authentication: a public
    /// URL means the server is reachable beyond loopback.
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
    /// A browser origin to accept besides the public URL's, which always is,
    /// as scheme://host:port (repeatable).
    #[arg(long)]
    pub allowed_origin: Vec<String>,
    /// The largest request body, in KiB.
    #[arg(long, default_value_t = (toolshed_mcp::http::DEFAULT_MAX_BODY_BYTES >> 10) as u64)]
    pub max_body_kib: u64,
    /// HTTP connections open at once; one more is answered 503 and closed.
    #[arg(long, default_value_t = toolshed_mcp::http::limits::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// HTTP connections open at once from one client address (an IPv4
    /// address or an IPv6 /64). Behind a reverse proxy every connection
    /// comes from the proxy: raise it there.
    #[arg(long, default_value_t = toolshed_mcp::http::limits::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS)]
    pub max_connections_per_address: usize,
    /// Seconds a new HTTP connection has to send a whole request head.
    #[arg(long, default_value_t = toolshed_mcp::http::limits::DEFAULT_HEADER_READ_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub header_read_timeout: u64,
    /// Seconds a request body has to arrive, all of it.
    #[arg(long, default_value_t = toolshed_mcp::http::limits::DEFAULT_BODY_READ_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub body_read_timeout: u64,
    /// Seconds a kept-alive HTTP connection may wait for its next request.
    #[arg(long, default_value_t = toolshed_mcp::http::limits::DEFAULT_IDLE_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout: u64,
    /// Legacy MCP sessions alive at once, all callers together.
    #[arg(long, default_value_t = toolshed_mcp::http::limits::DEFAULT_MAX_SESSIONS)]
    pub max_sessions: usize,
    /// Legacy MCP sessions alive at once for one caller.
    #[arg(long, default_value_t = toolshed_mcp::http::limits::DEFAULT_MAX_SESSIONS_PER_PRINCIPAL)]
    pub max_sessions_per_caller: usize,
    /// How many calls one caller may have running at once.
    #[arg(long, default_value_t = toolshed_mcp::DEFAULT_CALLS_PER_PRINCIPAL)]
    pub calls_per_caller: usize,
    /// Where the audit goes, one JSON line per call, task request and
    /// refused request: a file, or - for standard error (default:
    /// audit.jsonl in the data directory). It ignores TOOLSHED_LOG.
    #[arg(long, value_name = "FILE|-")]
    pub audit_log: Option<String>,
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

/// Secret commands.
#[derive(Subcommand)]
pub enum SecretCommand {
    /// Sets secret NAME in the data directory's secrets.toml (made 0600),
    /// reading the value from the terminal without echo, or from stdin
    /// when it is not a terminal.
    Set {
        /// The secret's name, as the policy's `header.secret` names it.
        name: String,
        /// Set it for this principal (an owner id) only.
        #[arg(long)]
        principal: Option<String>,
    },
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
            let out = app.call(&chat, &tool, &arguments, std::io::IsTerminal::is_terminal(&std::io::stderr())).await;
            // Before the answer: the command ends right after it.
            app.report_refusals_at_exit().await;
            println!("{}", serde_json::to_string_pretty(&out.value)?);
            return Ok(i32::from(out.is_error));
        }
        Command::Serve(args) => {
            let coder = match (args.backend, &args.coder_url, &args.coder_token_file) {
                (BackendKind::Coder, Some(url), Some(token_file)) => Some((url.as_str(), token_file.as_path())),
                (BackendKind::Coder, _, _) => anyhow::bail!("--backend coder needs --coder-url and --coder-token-file"),
                (BackendKind::Local, _, _) => None,
            };
            let mut app = App::open_server(&cli.global, coder, args.quotas()).await?;
            app.report_refusals_later();
            serve(&app, *args, &cli.global).await?;
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
        Command::Secret(SecretCommand::Set { name, principal }) => {
            let data_dir = cli.global.data_dir.clone().unwrap_or_else(toolshed_local::LocalConfig::default_data_dir);
            std::fs::create_dir_all(&data_dir)?;
            let path = data_dir.join(crate::app::SECRETS_FILE);
            let value = secret::read_value(&name)?;
            toolshed_network::secrets::write_secret(&path, principal.as_deref(), &name, &value)?;
            eprintln!("secret {name} set in {}", path.display());
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
            let data_dir = cli.global.data_dir.clone().unwrap_or_else(toolshed_local::LocalConfig::default_data_dir);
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
        Command::Precompile { calls, memory_bytes } => {
            let pool = toolshed_runtime::engine::PoolSize { concurrent_calls: calls, memory_bytes };
            tokio::task::spawn_blocking(move || {
                toolshed_runtime::plugin::precompile_stdio(&pool, &mut std::io::stdin().lock(), &mut std::io::stdout().lock())
            })
            .await??;
        }
        Command::Plugin(command) => return plugin::run(command, &cli.global).await,
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
        Command::Test { dir } => {
            let outcome = tokio::task::spawn_blocking(move || crate::plugin_test::run(&dir)).await??;
            print!("{}", outcome.report());
            if !outcome.passed() {
                std::process::exit(1);
            }
        }
        Command::Pack { component, wit, world, out } => {
            let bytes = std::fs::read(&component).map_err(|e| anyhow::anyhow!("reading {}: {e}", component.display()))?;
            let packed = toolshed_pack::pack(bytes, &wit, world.as_deref()).map_err(|e| anyhow::anyhow!("{}: {e:#}", component.display()))?;
            let out = out.unwrap_or(component);
            std::fs::write(&out, packed).map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?;
            println!("packed {}", out.display());
        }
        Command::New { name, lang, dir, toolshed } => {
            let toolshed = match toolshed {
                Some(path) => path,
                None => {
                    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
                    let checkout = checkout.canonicalize().map_err(|_| anyhow::anyhow!("pass --toolshed PATH: the path of a toolshed checkout"))?;
                    checkout.display().to_string()
                }
            };
            let root = crate::new::create(lang, &name, &dir, &toolshed)?;
            println!("made plugin {name} in {}", root.display());
            match lang {
                crate::new::Language::Rust => {
                    println!("  cargo test --manifest-path {}/Cargo.toml   # builds the component and runs its harness test", root.display())
                }
                crate::new::Language::Python => println!("  (cd {} && python3 -m venv .venv && .venv/bin/pip install -r requirements.txt)", root.display()),
                crate::new::Language::Javascript => println!("  (cd {} && npm ci)", root.display()),
            }
            println!("  toolshed test {}   # builds, packs, runs tests/cases.json and the standard checks", root.display());
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

/// Serves MCP over stdio or HTTP as `args` say, until the client goes
/// (stdio) or a signal (SIGINT, SIGTERM) ends the process; the audit is
/// written out before it returns.
async fn serve(app: &App, args: ServeArgs, global: &HostOptions) -> anyhow::Result<()> {
    let builtin_plugins = global.plugins.is_none() && global.plugins_toml.is_none();
    let audit = Arc::new(match args.audit_log.as_deref() {
        Some("-") => toolshed_mcp::audit::AuditLog::stderr(),
        Some(path) => toolshed_mcp::audit::AuditLog::file(Path::new(path))?,
        None => toolshed_mcp::audit::AuditLog::file(&global.data_dir.clone().unwrap_or_else(toolshed_local::LocalConfig::default_data_dir).join("audit.jsonl"))?,
    });
    let served = tokio::select! {
        served = serve_until_done(app, args, builtin_plugins, audit.clone()) => served,
        signal = stop_signal() => signal,
    };
    if !audit.flush(Duration::from_secs(5)) {
        eprintln!("warning: the audit could not be written out within 5 s");
    }
    served
}

/// Returns when the process is asked to stop.
async fn stop_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}

async fn serve_until_done(app: &App, args: ServeArgs, builtin_plugins: bool, audit: Arc<toolshed_mcp::audit::AuditLog>) -> anyhow::Result<()> {
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
    settings.audit = audit;
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
    // The resource tokens are issued for; the server serves its default when
    // no public URL is given, and refuses a public URL without authentication.
    let resource = args.public_url.clone().unwrap_or_else(|| format!("http://{addr}/mcp"));
    let tokens = args.auth_tokens.as_deref().map(toolshed_mcp::auth::TokenFile::read).transpose()?.map(Arc::new);
    let jwt = match (&args.auth_issuer, &args.auth_jwks) {
        (Some(issuer), Some(jwks)) => {
            let source = if jwks.starts_with("http://") || jwks.starts_with("https://") {
                toolshed_mcp::auth::Jwks::Url(jwks.clone())
            } else {
                toolshed_mcp::auth::Jwks::File(jwks.into())
            };
            let audience = args.auth_audience.clone().unwrap_or_else(|| resource.clone());
            Some(Arc::new(toolshed_mcp::auth::JwtIssuer::new(issuer, &audience, &default_organization, source).await?))
        }
        _ => None,
    };
    let auth = (tokens.is_some() || jwt.is_some()).then(|| toolshed_mcp::auth::Auth { tokens, jwt, required_scope: args.auth_scope.clone() });
    let config = toolshed_mcp::http::HttpConfig {
        public_url: args.public_url.clone(),
        auth,
        allowed_hosts: args.allowed_host,
        allowed_origins: args.allowed_origin,
        max_body_bytes: Some((args.max_body_kib as usize) << 10),
        limits: toolshed_mcp::http::HttpLimits {
            max_connections: args.max_connections.max(1),
            max_connections_per_address: args.max_connections_per_address.max(1),
            header_read_timeout: Duration::from_secs(args.header_read_timeout),
            body_read_timeout: Duration::from_secs(args.body_read_timeout),
            idle_timeout: Duration::from_secs(args.idle_timeout),
            max_sessions: args.max_sessions.max(1),
            max_sessions_per_principal: args.max_sessions_per_caller.max(1),
        },
    };
    toolshed_mcp::http::serve(app.host.clone(), settings, addr, config).await
}

/// An id argument: a UUID, or an error saying what was given.
fn parse_uuid(text: &str) -> Result<uuid::Uuid, String> {
    uuid::Uuid::parse_str(text).map_err(|_| format!("{:?} is not an id: ids are UUIDs such as 0f8c6e4a-5b1d-4c2a-9e3f-1a2b3c4d5e6f", toolshed_runtime::text::clip(text, 80)))
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

