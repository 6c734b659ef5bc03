//! A local backend in a temporary directory, served by a host on a clock
//! twenty times faster than real time.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use toolshed_local::{LocalBackend, LocalConfig, local_context};
use toolshed_runtime::{ScaledClock, ToolOutput, Toolshed};

/// The `toolshed` binary under test.
pub const TOOLSHED: &str = env!("CARGO_BIN_EXE_toolshed");

/// A local backend and a host over it.
pub struct Local {
    pub dir: tempfile::TempDir,
    pub backend: Arc<LocalBackend>,
    pub host: Arc<Toolshed>,
}

impl Local {
    /// A fresh backend with the built-in plugins.
    pub async fn new() -> Local {
        let dir = tempfile::tempdir().unwrap();
        Self::open(dir).await
    }

    /// A backend over an existing data directory, as a restarted host would open it.
    pub async fn open(dir: tempfile::TempDir) -> Local {
        Self::open_with(dir, |_| {}).await
    }

    /// [`Local::open`] with the configuration changed by `configure`.
    pub async fn open_with(dir: tempfile::TempDir, configure: impl FnOnce(&mut LocalConfig)) -> Local {
        let mut config = LocalConfig::new(data_dir(dir.path()), TOOLSHED);
        configure(&mut config);
        let backend = LocalBackend::open(config).await.unwrap();
        // As the one-shot commands build it: no first tier.
        let runtime = Arc::new(toolshed::cli::runtime_builder(toolshed_builtin::policy(), &data_dir(dir.path())).concurrent_calls(16).build().unwrap());
        let host = Arc::new(Toolshed::builder(runtime).clock(Arc::new(ScaledClock::new(20))).backend(&backend).build().unwrap());
        for (name, bytes) in toolshed_builtin::all() {
            host.install(name, bytes.to_vec()).await.unwrap();
        }
        Local { dir, backend, host }
    }

    /// Writes a template directory with `toml` as its manifest and pushes it.
    pub async fn push(&self, name: &str, toml: &str) -> toolshed_local::PushedTemplate {
        let template = self.dir.path().join("templates").join(name);
        std::fs::create_dir_all(&template).unwrap();
        std::fs::write(template.join("template.toml"), toml).unwrap();
        self.backend.push_template(&template).await.unwrap()
    }

    /// Calls a tool in chat `chat`.
    pub async fn call(&self, chat: &str, tool: &str, arguments: Value) -> ToolOutput {
        self.host.call_value(&local_context(chat), tool, &arguments).await
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        // The tests that use this run on the multi-threaded runtime.
        let backend = self.backend.clone();
        tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(backend.stop_all_agents()));
        if !std::thread::panicking() {
            assert_no_agent_left(self.dir.path());
        }
    }
}

/// The pids of `toolshed agent` processes whose command line names `dir`
/// (an agent's names its database and workspace, both in the data
/// directory).
pub fn agents_naming(dir: &Path) -> Vec<i32> {
    use std::os::unix::ffi::OsStrExt;
    let needle = dir.as_os_str().as_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            args.len() > 1 && args[0].ends_with(b"toolshed") && args[1] == b"agent" && args.iter().any(|a| a.windows(needle.len()).any(|w| w == needle))
        })
        .collect()
}

/// Panics, naming them, if `toolshed agent` processes of `dir` are still
/// running a few seconds after their workspaces were stopped: a test must
/// not leave agents behind.
pub fn assert_no_agent_left(dir: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let left = agents_naming(dir);
        if left.is_empty() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "agents of {} outlived their test: pids {left:?}", dir.display());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Stops every agent of the SQLite data directory `data` and checks none is
/// left: the end of a test that started workspaces through `toolshed`
/// processes.
pub async fn stop_agents_of(data: &Path) {
    let mut config = LocalConfig::new(data, TOOLSHED);
    config.sandbox = toolshed_local::SandboxMode::Off;
    LocalBackend::open(config).await.unwrap().stop_all_agents().await;
    assert_no_agent_left(data);
}

/// The data directory inside a test directory.
pub fn data_dir(root: &Path) -> PathBuf {
    root.join("data")
}

/// A template whose build and startup scripts are given.
pub fn template(name: &str, start: &str, startup: &str, extra: &str) -> String {
    format!("name = \"{name}\"\nrequire_active_version = true\n{extra}\n[scripts]\nstart = '''\n{start}\n'''\nstartup = '''\n{startup}\n'''\nstop = 'echo stopping'\n")
}

/// Chat `id` of the local owner, as the store has it.
pub async fn chat(backend: &LocalBackend, id: &str) -> toolshed_infra::Chat {
    backend.store().chat(id, toolshed_local::LOCAL_OWNER, toolshed_local::LOCAL_ORG).await.unwrap()
}

/// Chat `id` of `owner`, as the store has it.
pub async fn chat_of(backend: &LocalBackend, id: &str, owner: &str) -> toolshed_infra::Chat {
    backend.store().chat(id, owner, toolshed_local::LOCAL_ORG).await.unwrap()
}

/// MCP server settings for calls by the local user over `local`'s backend.
pub fn local_settings(local: &Local) -> Arc<toolshed_mcp::ServerSettings> {
    let principal = toolshed_mcp::Principal {
        owner_id: toolshed_local::LOCAL_OWNER.into(),
        owner_name: toolshed_local::LOCAL_OWNER_NAME.into(),
        organization_id: toolshed_local::LOCAL_ORG.into(),
        scopes: vec![],
    };
    Arc::new(toolshed_mcp::ServerSettings::new(principal, Some(local.backend.clone())))
}

/// A lease far shorter than the default, so a killed process's builds and
/// tasks lapse within a test; every process of a test gets the same.
pub const SHORT_LEASE_MS: &str = "1500";

/// `toolshed --data-dir DATA`, on the short lease, with no stdin.
pub fn toolshed_on(data: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(TOOLSHED);
    command.arg("--data-dir").arg(data).env("TOOLSHED_LEASE_MS", SHORT_LEASE_MS).stdin(std::process::Stdio::null());
    command
}

/// Pushes a template written as `toml` with `toolshed template push`, and
/// returns its id.
pub fn push_with_cli(data: &Path, root: &Path, name: &str, toml: &str) -> String {
    push_with(toolshed_on(data), root, name, toml)
}

/// [`push_with_cli`] with `toolshed` as `command` sets it up (its data
/// directory, its database).
pub fn push_with(mut command: std::process::Command, root: &Path, name: &str, toml: &str) -> String {
    let dir = root.join("templates").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("template.toml"), toml).unwrap();
    let out = command.args(["template", "push"]).arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // "template <id> version <n> (<version>) is now active"
    String::from_utf8(out.stdout).unwrap().split_whitespace().nth(1).unwrap().to_string()
}

/// Whether process `pid` runs; a zombie (dead, not yet reaped) does not.
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).unwrap_or("");
        state != "Z"
    })
}

/// Polls task `id` with `tasks/get` until it completes, and returns its
/// result; panics if it ends otherwise or works past `patience`.
pub async fn completed_task(client: &rmcp::service::RunningService<rmcp::RoleClient, rmcp::model::ClientConfig>, id: &str, patience: std::time::Duration) -> Value {
    use rmcp::model::{GetTaskParams, TaskPayload};
    let deadline = std::time::Instant::now() + patience;
    loop {
        let got = client.get_task(GetTaskParams::new(id.to_string())).await.expect("the server answers tasks/get");
        match got.task.payload {
            TaskPayload::Working => {}
            TaskPayload::Completed { result } => return Value::Object(result),
            other => panic!("the task ended as {other:?}"),
        }
        assert!(std::time::Instant::now() < deadline, "the task never ended");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Starts `command` (a `toolshed serve --http 127.0.0.1:0 …`) and waits
/// until it says where it serves; its log keeps being read, so a full pipe
/// never stalls it. The child is killed when dropped.
pub async fn serving_http(mut command: tokio::process::Command) -> (tokio::process::Child, std::net::SocketAddr) {
    use tokio::io::AsyncBufReadExt;
    let mut child = command
        .env("TOOLSHED_LOG", "warn,toolshed_mcp=info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(std::time::Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("serving MCP on http://").nth(1) {
                return rest.trim_end_matches("/mcp").parse::<std::net::SocketAddr>().unwrap();
            }
        }
        panic!("serve exited before it served");
    })
    .await
    .expect("serve served within 120 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}
