//! Templates are code from whoever pushed them: their build and startup
//! scripts attack the host as an attacker would, and write down what they
//! managed in their own workspace, which the tests read. Each assertion
//! fails if its protection breaks: the allow-listed environment, the
//! bubblewrap sandbox (no host process, no store, no compiled-code cache,
//! no other workspace), the database URL kept off the agent's command line
//! and environment, private modes, and agents that do not outlive their
//! data.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use toolshed_local::scratch::ScratchDatabase;
use toolshed_local::{LOCAL_OWNER, LOCAL_OWNER_NAME, SandboxMode};

use crate::support::{Local, alive, chat, data_dir, push_with, stop_agents_of, template, toolshed_on};

/// Whether the isolation tests can run: bubblewrap works here. Where it
/// does not (a fresh machine without the package), those tests say so and
/// check nothing else; CI installs bubblewrap and sets
/// `TOOLSHED_REQUIRE_SANDBOX`, which makes its absence a failure.
async fn bubblewrap_works() -> bool {
    let probe = tempfile::tempdir().unwrap();
    match toolshed_local::Sandbox::choose(SandboxMode::Required, probe.path()).await {
        Ok(_) => true,
        Err(e) if std::env::var_os("TOOLSHED_REQUIRE_SANDBOX").is_some() => panic!("TOOLSHED_REQUIRE_SANDBOX is set: {e}"),
        Err(e) => {
            eprintln!("not run: the workspace sandbox cannot run here ({e})");
            false
        }
    }
}

/// What the host's environment carries that no workspace may learn.
const CANARY: &str = "SECRET-CANARY-7f3a";

/// The directory of the local owner's workspaces.
fn owner_dir() -> String {
    toolshed_local::paths::owner_dir(LOCAL_OWNER, LOCAL_OWNER_NAME)
}

/// A hostile script: it reads its environment and every process it can see,
/// tries the store, the compiled-code cache and another workspace, and
/// writes what it got into `attack-PHASE/` of its own workspace.
fn attack(phase: &str, data: &Path) -> String {
    let (data, owner) = (data.display(), owner_dir());
    format!(
        r#"out="$TOOLSHED_WORKSPACE_DIR/attack-{phase}"
mkdir -p "$out"
env > "$out/env"
ls /proc > "$out/proc-listing"
for p in /proc/[0-9]*; do
  echo "== $p" >> "$out/procs"
  printf 'cmdline: ' >> "$out/procs"
  tr '\0' ' ' < "$p/cmdline" >> "$out/procs" 2>/dev/null
  echo >> "$out/procs"
  tr '\0' '\n' < "$p/environ" >> "$out/procs" 2>/dev/null
done
: > "$out/did"
test -s '{data}/toolshed.db' && echo saw-store >> "$out/did"
head -c 15 '{data}/toolshed.db' > "$out/store-head" 2>/dev/null
test -s '{data}/toolshed.db' && (: >> '{data}/toolshed.db') 2>/dev/null && echo could-write-store >> "$out/did"
test -d '{data}/compiled' && (echo planted > '{data}/compiled/planted-{phase}') 2>/dev/null && echo planted-compiled >> "$out/did"
ls -a '{data}/workspaces/{owner}' > "$out/workspaces" 2>/dev/null
cat '{data}/workspaces/{owner}/victim/secret.txt' > "$out/stolen" 2>/dev/null
ls -a '{data}' > "$out/data-listing" 2>/dev/null
echo done > "$out/done""#
    )
}

/// The attacker's template: the attack in its build and its startup, and a
/// parameter, which the scripts must get.
fn attacker(data: &Path) -> String {
    template("attacker", &attack("build", data), &attack("startup", data), "[[parameters]]\nname = \"flavour\"\ndefault = \"plain\"\n")
}

/// `toolshed` on `data` as an operator's host runs: secrets in its
/// environment, the sandbox as `sandbox` says, short heartbeats.
fn host(data: &Path, sandbox: SandboxMode, database: Option<&str>) -> Command {
    let mut command = toolshed_on(data);
    command
        .env("TOOLSHED_SANDBOX", sandbox.to_string())
        .env("TOOLSHED_HEARTBEAT_MS", "300")
        .env("TOOLSHED_API_TOKEN", CANARY)
        .env("AWS_SECRET_ACCESS_KEY", CANARY)
        .env("LANG", "C.UTF-8");
    match database {
        Some(url) => command.env("TOOLSHED_DATABASE", url),
        None => command.env_remove("TOOLSHED_DATABASE"),
    };
    command
}

/// Creates workspace `name` of `template_id` through a `toolshed call`
/// process made by `command`.
fn create(mut command: Command, template_id: &str, name: &str) {
    let arguments = json!({ "template_id": template_id, "name": name }).to_string();
    let out = command.args(["call", "create_workspace", &arguments, "--chat", name]).output().unwrap();
    let result: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(out.status.success() && result["created"] == true, "{result} {}", String::from_utf8_lossy(&out.stderr));
}

/// A victim workspace with a secret in it, then the attacker's, on `data`.
fn victim_then_attacker(root: &Path, data: &Path, sandbox: SandboxMode, database: Option<&str>) -> PathBuf {
    std::fs::create_dir_all(data.join("compiled")).unwrap();
    let victim = push_with(host(data, sandbox, database), root, "victim", &template("victim", "echo victim-secret-4711 > secret.txt", "true", ""));
    create(host(data, sandbox, database), &victim, "victim");
    let attacker_id = push_with(host(data, sandbox, database), root, "attacker", &attacker(data));
    create(host(data, sandbox, database), &attacker_id, "attacker");
    let dir = data.join("workspaces").join(owner_dir()).join("attacker");
    wait_for(&dir.join("attack-startup/done"));
    dir
}

/// Waits, for at most 20 s, for `path` to exist.
fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What one phase's attack wrote down.
struct Loot {
    phase: String,
    env: String,
    procs: String,
    proc_listing: String,
    did: String,
    store_head: String,
    workspaces: String,
    stolen: String,
}

impl Loot {
    fn of(workspace: &Path, phase: &str) -> Loot {
        let read = |name: &str| std::fs::read_to_string(workspace.join(format!("attack-{phase}")).join(name)).unwrap_or_default();
        let loot = Loot {
            phase: phase.into(),
            env: read("env"),
            procs: read("procs"),
            proc_listing: read("proc-listing"),
            did: read("did"),
            store_head: read("store-head"),
            workspaces: read("workspaces"),
            stolen: read("stolen"),
        };
        assert_eq!(read("done").trim(), "done", "the {phase} attack ran to its end");
        assert!(loot.env.contains("PATH=") && loot.proc_listing.contains("self"), "the {phase} attack recorded something");
        loot
    }

    /// (a) Only allow-listed variables, with the fixed values fixed.
    fn assert_environment_allow_listed(&self, workspace: &Path, transition: bool) {
        let phase = &self.phase;
        assert!(!self.env.contains(CANARY), "{phase}: a host secret in the environment:\n{}", self.env);
        let mut names = BTreeSet::new();
        for line in self.env.lines() {
            let (name, value) = line.split_once('=').unwrap_or((line, ""));
            let allowed = matches!(
                name,
                "PATH" | "HOME" | "TERM" | "LANG" | "LC_ALL" | "TOOLSHED_WORKSPACE_DIR" | "TOOLSHED_WORKSPACE_NAME" | "TOOLSHED_TRANSITION" | "TOOLSHED_BUILD_ID"
            ) || name.starts_with("TOOLSHED_PARAM_")
                // Set by the shell itself.
                || matches!(name, "PWD" | "OLDPWD" | "SHLVL" | "_");
            assert!(allowed, "{phase}: {name} is not on the allow-list ({value})");
            names.insert(name.to_string());
        }
        let home = workspace.canonicalize().unwrap();
        assert!(self.env.lines().any(|l| l == format!("PATH={}", toolshed_local::environment::SAFE_PATH)), "{phase}: {}", self.env);
        assert!(self.env.lines().any(|l| l == format!("HOME={}", home.display())), "{phase}: {}", self.env);
        assert!(self.env.lines().any(|l| l == "TERM=dumb"), "{phase}");
        assert!(self.env.lines().any(|l| l == "LANG=C.UTF-8"), "{phase}: the locale passes");
        assert!(self.env.lines().any(|l| l == "TOOLSHED_PARAM_FLAVOUR=plain"), "{phase}: parameters pass");
        assert!(self.env.lines().any(|l| l == "TOOLSHED_WORKSPACE_NAME=attacker"), "{phase}");
        assert_eq!(names.contains("TOOLSHED_TRANSITION"), transition, "{phase}");
    }

    /// (b) No host process is visible, and no secret in any process's
    /// environment or command line.
    fn assert_no_host_process(&self) {
        let phase = &self.phase;
        assert!(!self.procs.contains(CANARY), "{phase}: a host secret read from /proc:\n{}", self.procs);
        let toolshed = format!("cmdline: {}", crate::support::TOOLSHED);
        assert!(!self.procs.lines().any(|l| l.starts_with(&toolshed)), "{phase}: the host or the agent is visible:\n{}", self.procs);
        let pids = self.proc_listing.lines().filter(|l| l.parse::<u32>().is_ok()).count();
        assert!(pids <= 8, "{phase}: {pids} processes visible, more than the sandbox's own:\n{}", self.proc_listing);
    }

    /// (c) and (d): no store, no compiled-code cache, no other workspace.
    fn assert_no_data(&self) {
        let phase = &self.phase;
        assert_eq!(self.did.trim(), "", "{phase}: reached the data directory");
        assert!(!self.store_head.contains("SQLite"), "{phase}: read the store");
        assert!(!self.workspaces.contains("victim"), "{phase}: listed another workspace: {}", self.workspaces);
        assert!(!self.stolen.contains("victim-secret"), "{phase}: read another workspace's file");
    }
}

/// The environment and command line of process `pid`, as one text.
fn process_text(pid: i64) -> String {
    let read = |what: &str| String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/{what}")).unwrap_or_default()).replace('\0', " ");
    format!("cmdline: {}\nenviron: {}", read("cmdline"), read("environ"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_template_finds_no_secret_no_host_process_no_store_and_no_other_workspace() {
    if !bubblewrap_works().await {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let data = data_dir(root.path());
    let workspace = victim_then_attacker(root.path(), &data, SandboxMode::Required, None);

    for (phase, transition) in [("build", true), ("startup", false)] {
        let loot = Loot::of(&workspace, phase);
        loot.assert_environment_allow_listed(&workspace, transition);
        loot.assert_no_host_process();
        loot.assert_no_data();
    }
    // What the scripts could not see, they could not change either.
    let planted: Vec<_> = std::fs::read_dir(data.join("compiled")).unwrap().filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.starts_with("planted")).collect();
    assert!(planted.is_empty(), "code planted in the compiled cache: {planted:?}");
    let victim = data.join("workspaces").join(owner_dir()).join("victim/secret.txt");
    assert_eq!(std::fs::read_to_string(victim).unwrap().trim(), "victim-secret-4711");
    let store = toolshed_local::store::Store::open_file(&data.join("toolshed.db")).await.unwrap();
    assert_eq!(store.workspaces().await.unwrap().len(), 2, "the store is intact");
    stop_agents_of(&data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_password_reaches_neither_a_workspace_nor_the_agents_command_line_or_environment() {
    if !bubblewrap_works().await {
        return;
    }
    let scratch = ScratchDatabase::create().await.unwrap();
    let (url, password) = with_password(scratch.url());
    let root = tempfile::tempdir().unwrap();
    let data = data_dir(root.path());
    let workspace = victim_then_attacker(root.path(), &data, SandboxMode::Required, Some(&url));

    for (phase, transition) in [("build", true), ("startup", false)] {
        let loot = Loot::of(&workspace, phase);
        loot.assert_environment_allow_listed(&workspace, transition);
        loot.assert_no_host_process();
        assert!(!loot.env.contains(&password) && !loot.procs.contains(&password), "{phase}: the database password leaked");
    }
    // The agent reached the database (its script ran and reported), so it
    // had the URL; neither its arguments nor its environment hold it.
    let backend = open(&data, Some(&url)).await;
    let agent_id = chat(&backend, "attacker").await.agent_id.unwrap();
    let agent = backend.store().agent(&agent_id, 0).await.unwrap().unwrap();
    assert_eq!(agent.agent.lifecycle_state, toolshed_infra::LifecycleState::Ready);
    let seen = process_text(agent.process.unwrap().pid);
    assert!(seen.contains("agent") && seen.contains("PATH="), "the agent's /proc entries were read: {seen}");
    assert!(!seen.contains(&password) && !seen.contains(CANARY) && !seen.contains("postgres://"), "{seen}");

    backend.stop_all_agents().await;
    crate::support::assert_no_agent_left(&data);
}

/// `url` with a password: its own, else a canary, which trust
/// authentication ignores.
fn with_password(url: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user, host) = rest.split_once('@').unwrap();
    match user.split_once(':') {
        Some((_, password)) => (url.to_string(), password.to_string()),
        None => (format!("{scheme}://{user}:{CANARY}@{host}"), CANARY.to_string()),
    }
}

async fn open(data: &Path, database: Option<&str>) -> std::sync::Arc<toolshed_local::LocalBackend> {
    let mut config = toolshed_local::LocalConfig::new(data, crate::support::TOOLSHED);
    config.database = database.map(str::to_string);
    config.sandbox = SandboxMode::Off;
    toolshed_local::LocalBackend::open(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_sandbox_the_environment_is_still_allow_listed_and_the_same_attack_shows_what_the_sandbox_stops() {
    let root = tempfile::tempdir().unwrap();
    let data = data_dir(root.path());
    let workspace = victim_then_attacker(root.path(), &data, SandboxMode::Off, None);

    for (phase, transition) in [("build", true), ("startup", false)] {
        Loot::of(&workspace, phase).assert_environment_allow_listed(&workspace, transition);
    }
    let backend = open(&data, None).await;
    let agent_id = chat(&backend, "attacker").await.agent_id.unwrap();
    let agent = backend.store().agent(&agent_id, 0).await.unwrap().unwrap();
    let seen = process_text(agent.process.unwrap().pid);
    assert!(seen.contains("agent") && !seen.contains(CANARY), "the agent's environment is the allow-list too: {seen}");

    // The control: unconfined, the very same build script reads its host's
    // secrets from /proc, the store and the other workspace, so the
    // sandboxed runs above find nothing because of the sandbox, not
    // because the attack is broken.
    let build = Loot::of(&workspace, "build");
    assert!(build.procs.contains(CANARY), "the unconfined attack read no host environment");
    assert!(build.did.contains("saw-store") && build.store_head.contains("SQLite"), "{}", build.did);
    assert!(build.workspaces.contains("victim") && build.stolen.contains("victim-secret"));
    let _ = std::fs::remove_file(data.join("compiled/planted-build"));
    let _ = std::fs::remove_file(data.join("compiled/planted-startup"));
    stop_agents_of(&data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_startup_scripts_background_service_lives_as_long_as_its_agent_and_no_longer() {
    if !bubblewrap_works().await {
        return;
    }
    let local = Local::open_with(tempfile::tempdir().unwrap(), |config| config.sandbox = SandboxMode::Required).await;
    let service = "(while :; do date +%s%N > beat; sleep 0.05; done) &";
    let t = local.push("service", &template("service", "true", service, "")).await;
    let created = local.call("svc", "create_workspace", json!({ "template_id": t.template_id, "name": "svc" })).await;
    assert!(!created.is_error, "{}", created.value);
    let workspace_id = chat(&local.backend, "svc").await.workspace_id.unwrap();
    let dir = PathBuf::from(local.backend.store().workspace(&workspace_id).await.unwrap().unwrap().dir);
    let beat = || std::fs::read_to_string(dir.join("beat")).unwrap_or_default();

    // Well after the script ended and reported, its service still beats.
    wait_for(&dir.join("beat"));
    std::thread::sleep(Duration::from_millis(300));
    let before = beat();
    std::thread::sleep(Duration::from_millis(300));
    assert_ne!(beat(), before, "the service died with the startup script");

    local.backend.stop_all_agents().await;
    std::thread::sleep(Duration::from_millis(300));
    let after = beat();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(beat(), after, "the service outlived its agent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_0700_and_the_store_and_logs_0600_even_where_an_older_release_left_them_open() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    // As an older release and a 022 umask left them.
    std::fs::create_dir_all(data.join("logs")).unwrap();
    for path in [data.clone(), data.join("logs")] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    drop(toolshed_local::store::Store::open(&format!("sqlite://{}?mode=rwc", data.join("toolshed.db").display())).await.unwrap());
    std::fs::set_permissions(data.join("toolshed.db"), std::fs::Permissions::from_mode(0o644)).unwrap();

    let local = Local::open(dir).await;
    let t = local.push("app", &template("app", "echo built", "true", "")).await;
    let created = local.call("modes", "create_workspace", json!({ "template_id": t.template_id, "name": "modes" })).await;
    assert!(!created.is_error, "{}", created.value);

    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "the data directory");
    assert_eq!(mode(&data.join("logs")), 0o700, "the log directory");
    assert_eq!(mode(&data.join("agents")), 0o700, "the socket directory");
    for file in ["toolshed.db", "toolshed.db-wal", "toolshed.db-shm"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    let logs: Vec<PathBuf> = std::fs::read_dir(data.join("logs")).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(logs.len() >= 2, "a build log and an agent log: {logs:?}");
    for log in logs {
        assert_eq!(mode(&log), 0o600, "{}", log.display());
    }
}

/// A backend with short heartbeats, a workspace with a running agent, and
/// the agent's pid.
async fn agent_on(configure: impl FnOnce(&mut toolshed_local::LocalConfig)) -> (Local, i32) {
    let local = Local::open_with(tempfile::tempdir().unwrap(), |config| {
        config.heartbeat = HEARTBEAT;
        configure(config);
    })
    .await;
    let t = local.push("app", &template("app", "true", "true", "")).await;
    let created = local.call("gone", "create_workspace", json!({ "template_id": t.template_id, "name": "gone" })).await;
    assert!(!created.is_error, "{}", created.value);
    let agent_id = chat(&local.backend, "gone").await.agent_id.unwrap();
    let pid = local.backend.store().agent(&agent_id, 0).await.unwrap().unwrap().process.unwrap().pid as i32;
    assert!(alive(pid));
    (local, pid)
}

const HEARTBEAT: Duration = Duration::from_millis(200);

/// Waits for `pid` to exit, within `heartbeats` heartbeats, and says how
/// long it took.
async fn exits_within(pid: i32, heartbeats: u32, what: &str) -> Duration {
    let since = Instant::now();
    while alive(pid) {
        assert!(since.elapsed() < HEARTBEAT * heartbeats, "the agent outlived {what} by {heartbeats} heartbeats");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    since.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_exits_within_a_few_heartbeats_once_its_data_directory_is_deleted() {
    let (local, pid) = agent_on(|_| {}).await;
    std::fs::remove_dir_all(data_dir(local.dir.path())).unwrap();
    let took = exits_within(pid, 10, "its data directory").await;
    eprintln!("the agent exited {} ms after its data directory was deleted", took.as_millis());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_exits_within_a_few_heartbeats_once_its_sqlite_file_is_replaced() {
    let (local, pid) = agent_on(|_| {}).await;
    let db = data_dir(local.dir.path()).join("toolshed.db");
    // The old file stays open and keeps answering: only its path changed.
    std::fs::copy(&db, db.with_extension("new")).unwrap();
    std::fs::rename(db.with_extension("new"), &db).unwrap();
    exits_within(pid, 10, "its database file").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_exits_once_its_database_stays_unreachable_for_three_heartbeats() {
    let scratch = ScratchDatabase::create().await.unwrap();
    let url = scratch.url().to_string();
    let (local, pid) = agent_on(move |config| config.database = Some(url)).await;
    drop(scratch);
    // The agent counts the outage from its last answer, which may come up
    // to two heartbeats before the drop; how soon it gives up after the
    // drop is a matter of timing, so only the bound is checked.
    exits_within(pid, 15, "its database").await;
    drop(local);
}
