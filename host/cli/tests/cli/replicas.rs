//! Three `toolshed serve --http` replicas on one PostgreSQL database, as a
//! team runs them: one chat's parallel creates spread over all three, a
//! replica killed with `kill -9` mid-build, a hot swap on one replica while
//! the others serve. Each test makes and drops a database of its own on the
//! server `TOOLSHED_TEST_POSTGRES` names (default: this machine's).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::handler::client::ClientHandler;
use rmcp::model::{CallToolResponse, ClientCapabilities, ClientConfig};
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::{Value, json};
use toolshed_local::scratch::ScratchDatabase;
use toolshed_local::store::Store;

use crate::http::{call, client};
use crate::support::{SHORT_LEASE_MS, TOOLSHED, alive, completed_task, data_dir, push_with, template, toolshed_on};

/// A running replica, killed when dropped.
struct Replica {
    addr: SocketAddr,
    child: tokio::process::Child,
}

impl Replica {
    fn pid(&self) -> i32 {
        self.child.id().expect("running") as i32
    }
}

/// Starts `toolshed serve --http` on a free loopback port, on `database`
/// and the shared data directory, and waits until it accepts connections.
async fn replica(root: &Path, database: &str, plugins: Option<&Path>, name: &str) -> Replica {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = std::fs::File::create(root.join(format!("{name}.log"))).unwrap();
    let mut command = tokio::process::Command::new(TOOLSHED);
    command.arg("--data-dir").arg(data_dir(root)).env("TOOLSHED_DATABASE", database).env("TOOLSHED_LEASE_MS", SHORT_LEASE_MS);
    if let Some(plugins) = plugins {
        command.arg("--plugins").arg(plugins);
    }
    command
        .args(["serve", "--http", &addr.to_string(), "--calls-per-caller", "128"])
        .stdin(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    let child = command.spawn().unwrap();
    let started = Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "replica {name} never listened; see {name}.log");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Replica { addr, child }
}

fn toolshed_with(root: &Path, database: &str) -> std::process::Command {
    let mut command = toolshed_on(&data_dir(root));
    command.env("TOOLSHED_DATABASE", database);
    command
}

fn workspaces(root: &Path, database: &str) -> String {
    let out = toolshed_with(root, database).arg("workspaces").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

async fn stop_agents(root: &Path, database: &str) {
    let mut config = toolshed_local::LocalConfig::new(data_dir(root), TOOLSHED);
    config.database = Some(database.to_string());
    toolshed_local::LocalBackend::open(config).await.unwrap().stop_all_agents().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_parallel_creates_in_one_chat_over_three_replicas_make_one_workspace() {
    let root = tempfile::tempdir().unwrap();
    let db = ScratchDatabase::create().await.unwrap();
    let app = push_with(toolshed_with(root.path(), db.url()), root.path(), "app", &template("app", "sleep 1", "true", ""));
    let replicas = [replica(root.path(), db.url(), None, "a").await, replica(root.path(), db.url(), None, "b").await, replica(root.path(), db.url(), None, "c").await];

    // MCP 2026-07-28 clients send every request on its own, so any request
    // may go to any replica: these go round-robin.
    let mut clients = Vec::new();
    for replica in &replicas {
        clients.push(Arc::new(client(replica.addr, None, false).await));
    }
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..100 {
        let client = clients[i % 3].clone();
        let app = app.clone();
        calls.spawn(async move { client.call_tool(call("create_workspace", json!({ "template_id": app }), Some("one-chat"))).await });
    }
    let outputs: Vec<Value> = calls.join_all().await.into_iter().map(|r| r.unwrap().structured_content.expect("structured output")).collect();

    let created = outputs.iter().filter(|o| o["created"] == true).count();
    let existing = outputs.iter().filter(|o| o["status"] == "already_exists").count();
    assert_eq!((created, existing), (1, 99), "one create, 99 answers naming it: {:?}", outputs.iter().find(|o| o["created"] != true && o["status"] != "already_exists"));
    let names: std::collections::BTreeSet<String> = outputs.iter().map(|o| o["workspace_name"].to_string()).collect();
    assert_eq!(names.len(), 1, "every call names the same workspace");
    let listing = workspaces(root.path(), db.url());
    assert_eq!(listing.lines().count(), 1, "exactly one workspace: {listing}");

    drop(clients);
    drop(replicas);
    stop_agents(root.path(), db.url()).await;
}

/// An HTTP client that holds a session and takes tasks.
async fn task_client(addr: SocketAddr) -> rmcp::service::RunningService<rmcp::RoleClient, ClientConfig> {
    toolshed_mcp::tls::ensure_provider();
    let transport = StreamableHttpClientTransport::from_uri(format!("http://{addr}/mcp"));
    let mut config = ClientConfig::default();
    config.protocol_version = rmcp::model::ProtocolVersion::V_2025_06_18;
    config.capabilities = ClientCapabilities::builder().enable_tasks().build();
    config.serve(transport).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_build_leaves_its_build_and_task_to_the_others() {
    let root = tempfile::tempdir().unwrap();
    let db = ScratchDatabase::create().await.unwrap();
    let slow = push_with(toolshed_with(root.path(), db.url()), root.path(), "slow", &template("slow", "echo one; sleep 4; echo two", "true", ""));
    let mut replicas = vec![replica(root.path(), db.url(), None, "a").await, replica(root.path(), db.url(), None, "b").await, replica(root.path(), db.url(), None, "c").await];

    let on_a = task_client(replicas[0].addr).await;
    assert!(on_a.peer_info().unwrap().capabilities.supports_tasks(), "every replica offers tasks");
    let CallToolResponse::Task(created) = on_a.call_tool_once(call("create_workspace", json!({ "template_id": slow }), Some("crash"))).await.unwrap() else {
        panic!("a 4 s build answers with a task")
    };
    let id = created.task.task_id.clone();

    // Wait until replica a runs the build, then kill -9 it.
    let store = Store::open(db.url()).await.unwrap();
    let a_pid = replicas[0].pid();
    let started = Instant::now();
    let job_id = loop {
        let workspace = store.workspaces().await.unwrap().into_iter().next();
        if let Some(workspace) = workspace {
            let build = store.latest_build(&workspace.workspace.id).await.unwrap().unwrap();
            let (job, lease) = store.job(&build.build.job_id).await.unwrap().unwrap();
            if job.status == toolshed_infra::JobStatus::Running {
                let owner = lease.and_then(|l| l.owner).expect("a running job has an owner");
                assert!(owner.starts_with(&format!("{a_pid}:")), "the replica that took the call claimed its build: {owner}");
                break build.build.job_id;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the build never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    drop(on_a);
    let a = replicas.remove(0);
    nix_kill(a.pid());
    while alive(a.pid()) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Another replica answers tasks/get, and one of them finishes the task.
    let on_b = task_client(replicas[0].addr).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let result = completed_task(&on_b, &id, Duration::from_secs(90)).await;
    // The resumed call finds the chat's workspace (SPEC 4.3's check), so it
    // answers with it rather than making another.
    let answer = &result["structuredContent"];
    assert!(answer["created"] == true || answer["status"] == "already_exists", "{result:?}");
    assert!(answer["workspace_name"].as_str().is_some_and(|n| n.starts_with("local/slow-")), "{result:?}");

    // The build ran again under a live replica, and succeeded.
    let (job, lease) = loop {
        let (job, lease) = store.job(&job_id).await.unwrap().unwrap();
        if job.status != toolshed_infra::JobStatus::Running && job.status != toolshed_infra::JobStatus::Pending {
            break (job, lease);
        }
        assert!(Instant::now() < deadline, "the build never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(job.status, toolshed_infra::JobStatus::Succeeded, "{job:?}");
    assert!(lease.is_none(), "a finished job holds no lease");
    let record = toolshed_runtime::tasks::TaskJournal::get(&store, toolshed_local::LOCAL_OWNER, &id).await.unwrap().unwrap();
    assert_eq!(record.attempts, 2, "run on a, resumed once elsewhere");

    // A model that calls again, on the third replica, finds the same workspace.
    let on_c = client(replicas[1].addr, None, false).await;
    let again = on_c.call_tool(call("create_workspace", json!({ "template_id": slow }), Some("crash"))).await.unwrap();
    assert_eq!(again.structured_content.as_ref().unwrap()["status"], "already_exists", "{again:?}");
    let listing = workspaces(root.path(), db.url());
    assert_eq!(listing.lines().count(), 1, "exactly one workspace: {listing}");

    drop((on_b, on_c, replicas));
    stop_agents(root.path(), db.url()).await;
}

fn nix_kill(pid: i32) {
    let status = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    assert!(status.success());
}

/// Counts tool list changes.
#[derive(Clone, Default)]
struct ListChanges(Arc<AtomicUsize>);

impl ClientHandler for ListChanges {
    async fn on_tool_list_changed(&self, _: rmcp::service::NotificationContext<rmcp::RoleClient>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    fn get_info(&self) -> ClientConfig {
        let mut config = ClientConfig::default();
        config.protocol_version = rmcp::model::ProtocolVersion::V_2025_06_18;
        config
    }
}

fn plugins_dir(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(format!("plugins-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("workspace-tools.wasm"), toolshed_builtin::WORKSPACE_TOOLS).unwrap();
    std::fs::write(dir.join("registry-tools.wasm"), toolshed_builtin::REGISTRY_TOOLS).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_swap_on_one_replica_while_the_others_serve() {
    let root = tempfile::tempdir().unwrap();
    let db = ScratchDatabase::create().await.unwrap();
    push_with(toolshed_with(root.path(), db.url()), root.path(), "app", &template("app", "true", "true", ""));
    let dirs = ["a", "b", "c"].map(|name| plugins_dir(root.path(), name));
    let mut replicas = Vec::new();
    for (dir, name) in dirs.iter().zip(["a", "b", "c"]) {
        replicas.push(replica(root.path(), db.url(), Some(dir), name).await);
    }
    let changes = ListChanges::default();
    toolshed_mcp::tls::ensure_provider();
    let on_a = changes.clone().serve(StreamableHttpClientTransport::from_uri(format!("http://{}/mcp", replicas[0].addr))).await.unwrap();
    // A replica listens before its plugins finish loading.
    let started = Instant::now();
    while on_a.list_all_tools().await.unwrap().len() < 6 {
        assert!(started.elapsed() < Duration::from_secs(60), "replica a never listed its six tools");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The initial load's own notifications settle before the swap is counted.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let changes_before = changes.0.load(Ordering::SeqCst);

    // b and c serve calls without pause while a swaps a plugin.
    let swapped = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = tokio::task::JoinSet::new();
    for replica in &replicas[1..] {
        let client = client(replica.addr, None, false).await;
        let (swapped, served, failed) = (swapped.clone(), served.clone(), failed.clone());
        load.spawn(async move {
            let mut after_swap = 0;
            while after_swap < 20 {
                let out = client.call_tool(call("list_templates", json!({}), Some("reader"))).await;
                match out {
                    Ok(out) if out.is_error == Some(false) && out.structured_content.as_ref().is_some_and(|s| s["count"] == 1) => served.fetch_add(1, Ordering::SeqCst),
                    _ => failed.fetch_add(1, Ordering::SeqCst),
                };
                if swapped.load(Ordering::SeqCst) {
                    after_swap += 1;
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    std::fs::write(dirs[0].join("registry-tools.wasm"), crate::mcp::distinct(toolshed_builtin::REGISTRY_TOOLS)).unwrap();
    let started = Instant::now();
    while changes.0.load(Ordering::SeqCst) == changes_before {
        assert!(started.elapsed() < Duration::from_secs(60), "replica a never said it swapped the plugin");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    swapped.store(true, Ordering::SeqCst);
    load.join_all().await;

    assert_eq!(failed.load(Ordering::SeqCst), 0, "no call to b or c failed during the swap");
    assert!(served.load(Ordering::SeqCst) >= 40, "b and c kept serving: {}", served.load(Ordering::SeqCst));
    // a serves from its new plugin.
    let listed = on_a.call_tool(call("list_templates", json!({}), Some("reader"))).await.unwrap();
    assert_eq!(listed.structured_content.as_ref().unwrap()["count"], 1);
    let registry = on_a.call_tool(call("provision_registry", json!({ "project_id": "p1", "cluster_id": "c1", "cluster_name": "prod", "provider": "hetzner", "region": "fsn1", "registry_name": "swapped" }), Some("reader"))).await.unwrap();
    assert_eq!(registry.is_error, Some(false), "{registry:?}");
    drop((on_a, replicas));
}
