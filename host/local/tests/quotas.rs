//! Quotas per principal, as an attacker meets them: one owner floods the
//! store from two hosts at once (two `Store`/`LocalBackend` values with
//! pools of their own, on one database), and the store lets exactly the
//! quota through, no more; another owner is not held back. Each case runs
//! on SQLite and on PostgreSQL (a database of its own on the server
//! `TOOLSHED_TEST_POSTGRES` names).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use toolshed_infra::{Control, CreateBuildRequest, CreateWorkspaceRequest, Db, JobStatus, Refused, Transition};
use toolshed_local::scratch::ScratchDatabase;
use toolshed_local::store::{Binding, Store, StoreError};
use toolshed_local::{LocalBackend, LocalConfig, Orphans, REGISTRY_BYTES, local_context};
use toolshed_platform::{ProvisionRequest, Registry};
use toolshed_runtime::CallContext;
use toolshed_runtime::chats::default_chat;
use toolshed_runtime::quota::{Quota, Quotas};
use toolshed_runtime::tasks::{TaskEnd, TaskJournal, TaskRecord, TaskState};

struct Database {
    url: String,
    data_dir: tempfile::TempDir,
    _scratch: Option<ScratchDatabase>,
}

impl Database {
    async fn sqlite() -> Database {
        let data_dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", data_dir.path().join("toolshed.db").display());
        Database { url, data_dir, _scratch: None }
    }

    async fn postgres() -> Database {
        let scratch = ScratchDatabase::create().await.unwrap();
        Database { url: scratch.url().to_string(), data_dir: tempfile::tempdir().unwrap(), _scratch: Some(scratch) }
    }

    /// Two hosts' stores on this database, each held to `quotas`.
    async fn stores(&self, quotas: Quotas) -> Arc<[Store; 2]> {
        Arc::new([Store::open(&self.url).await.unwrap().with_quotas(quotas), Store::open(&self.url).await.unwrap().with_quotas(quotas)])
    }

    /// A host's backend on this database, held to `quotas`.
    async fn backend(&self, quotas: Quotas) -> Arc<LocalBackend> {
        let mut config = LocalConfig::new(self.data_dir.path(), "true");
        config.database = Some(self.url.clone());
        config.orphans = Orphans::Fail;
        config.quotas = quotas;
        LocalBackend::open(config).await.unwrap()
    }
}

macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(super::Database::sqlite().await).await
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(super::Database::postgres().await).await
            })*
        }
    };
}

on_both_stores!(
    a_flood_of_tasks_from_two_hosts_stops_at_the_task_quota,
    a_flood_of_task_bytes_from_two_hosts_stops_at_the_stored_bytes_quota,
    a_result_past_the_stored_bytes_quota_is_not_kept,
    a_flood_of_new_chats_from_two_hosts_stops_at_the_chat_quota_and_the_default_chat_is_never_refused,
    a_flood_of_creates_from_two_hosts_stops_at_the_live_workspace_quota_and_a_stop_frees_a_slot,
    registries_count_once_each_against_the_stored_bytes_quota,
);

const A: &str = "a3000000-0000-4000-8000-00000000000a";
const B: &str = "a3000000-0000-4000-8000-00000000000b";

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

fn quotas(change: impl FnOnce(&mut Quotas)) -> Quotas {
    let mut quotas = Quotas { live_workspaces: 1_000, chats: 1_000, tasks: 1_000, stored_bytes: 1 << 30 };
    change(&mut quotas);
    quotas
}

fn task(owner: &str, arguments: serde_json::Value) -> TaskRecord {
    TaskRecord {
        id: uuid::Uuid::new_v4().to_string(),
        owner_id: owner.into(),
        owner_name: "someone".into(),
        organization_id: "org".into(),
        chat_id: "chat".into(),
        tool: "provision_registry".into(),
        arguments,
        plugin: "registry-tools".into(),
        plugin_version: "v1".into(),
        state: TaskState::Working,
        status_message: None,
        result: None,
        is_error: false,
        created_at_ms: now(),
        updated_at_ms: now(),
        ttl_ms: 3_600_000,
        runner: Some("runner".into()),
        lease_expires_at_ms: Some(now() + 60_000),
        attempts: 1,
    }
}

/// Inserts `count` tasks of `owner` at once, alternating between the two
/// stores; returns how many were accepted, checking every refusal is the
/// quota `expected`.
async fn flood_tasks(stores: &Arc<[Store; 2]>, owner: &'static str, count: usize, arguments: serde_json::Value, expected: Quota) -> usize {
    let mut inserts = tokio::task::JoinSet::new();
    for i in 0..count {
        let (stores, arguments) = (stores.clone(), arguments.clone());
        inserts.spawn(async move { stores[i % 2].insert(&task(owner, arguments)).await });
    }
    let outcomes = inserts.join_all().await;
    for refused in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert!(matches!(refused, Refused::Quota(q) if q.quota == expected), "refused for {expected:?} only: {refused:?}");
    }
    outcomes.iter().filter(|o| o.is_ok()).count()
}

async fn a_flood_of_tasks_from_two_hosts_stops_at_the_task_quota(db: Database) {
    let stores = db.stores(quotas(|q| q.tasks = 5)).await;
    let accepted = flood_tasks(&stores, A, 40, json!({ "n": 1 }), Quota::Tasks).await;
    assert_eq!(accepted, 5, "exactly the quota, never more, across two hosts");
    assert_eq!(stores[1].list(A, 100).await.unwrap().len(), 5);
    // Another owner is not held back.
    assert_eq!(flood_tasks(&stores, B, 3, json!({ "n": 1 }), Quota::Tasks).await, 3);
}

async fn a_flood_of_task_bytes_from_two_hosts_stops_at_the_stored_bytes_quota(db: Database) {
    let arguments = json!({ "pad": "x".repeat(990) });
    let size = arguments.to_string().len() as u64;
    let stores = db.stores(quotas(|q| q.stored_bytes = 10 * size + size / 2)).await;
    let accepted = flood_tasks(&stores, A, 30, arguments.clone(), Quota::StoredBytes).await;
    assert_eq!(accepted, 10, "{size} bytes each, ten fit and the eleventh would pass the quota");
    // Bytes, not characters: a multi-byte argument counts what it stores.
    let wide = json!({ "pad": "é".repeat(400) });
    assert!(matches!(stores[0].insert(&task(A, wide)).await, Err(Refused::Quota(q)) if q.quota == Quota::StoredBytes));
    assert_eq!(flood_tasks(&stores, B, 3, arguments, Quota::StoredBytes).await, 3, "another owner is not held back");
}

async fn a_result_past_the_stored_bytes_quota_is_not_kept(db: Database) {
    let stores = db.stores(quotas(|q| q.stored_bytes = 4_096)).await;
    let small = task(A, json!({}));
    stores[0].insert(&small).await.unwrap();
    let end = TaskEnd { state: TaskState::Completed, result: json!({ "blob": "y".repeat(8_192) }), is_error: false, message: None };
    assert!(stores[1].finish(&small.id, "runner", &end, now()).await.unwrap());
    let kept = stores[0].get(A, &small.id).await.unwrap().unwrap();
    let result = kept.result.unwrap();
    assert!(kept.is_error, "{result}");
    assert_eq!(result["code"], "QUOTA_EXCEEDED");
    assert_eq!(result["quota"], json!({ "name": "stored_bytes", "limit": 4_096 }));
    assert!(!result.to_string().contains("yyyy"), "the result was not stored");
}

async fn a_flood_of_new_chats_from_two_hosts_stops_at_the_chat_quota_and_the_default_chat_is_never_refused(db: Database) {
    let stores = db.stores(quotas(|q| q.chats = 4)).await;
    let mut binds = tokio::task::JoinSet::new();
    for i in 0..20 {
        let stores = stores.clone();
        binds.spawn(async move {
            let binding = Binding { workspace_id: Some("w"), ..Binding::default() };
            stores[i % 2].bind(&format!("chat-{i}"), A, "org", &binding).await
        });
    }
    let outcomes = binds.join_all().await;
    for refused in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert!(matches!(refused, StoreError::Quota(q) if q.quota == Quota::Chats), "{refused:?}");
    }
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 4, "exactly the quota, across two hosts");
    assert!(matches!(stores[0].may_use_chat("chat-new", A).await, Err(StoreError::Quota(_))), "the look refuses a new chat too");
    // A chat it has is still usable, and its default chat always is.
    let kept: Vec<String> = stores[0].chats().await.unwrap().into_iter().map(|(id, _)| id).collect();
    stores[1].bind(&kept[0], A, "org", &Binding { build_id: Some("b"), ..Binding::default() }).await.unwrap();
    stores[0].may_use_chat(&default_chat(A), A).await.unwrap();
    stores[1].bind(&default_chat(A), A, "org", &Binding { workspace_id: Some("w"), ..Binding::default() }).await.unwrap();
    // Another owner is not held back, even naming A's chat ids.
    stores[0].bind(&kept[0], B, "org", &Binding { workspace_id: Some("v"), ..Binding::default() }).await.unwrap();
    assert_eq!(stores[0].chat(&kept[0], A, "org").await.unwrap().workspace_id.as_deref(), Some("w"), "A's chat is untouched");
}

/// Waits until `job` of `cx` has finished.
async fn finished(host: &LocalBackend, cx: &CallContext, job: &str) -> JobStatus {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = host.job(cx, job).await.unwrap().status;
        if !matches!(status, JobStatus::Pending | JobStatus::Running | JobStatus::Canceling) {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "job {job} did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_flood_of_creates_from_two_hosts_stops_at_the_live_workspace_quota_and_a_stop_frees_a_slot(db: Database) {
    let limits = quotas(|q| q.live_workspaces = 3);
    let hosts = [db.backend(limits).await, db.backend(limits).await];
    let template_dir = db.data_dir.path().join("templates").join("quick");
    std::fs::create_dir_all(&template_dir).unwrap();
    std::fs::write(template_dir.join("template.toml"), "name = \"quick\"\n[scripts]\nstart = \"true\"\nstop = \"true\"\n").unwrap();
    let template = hosts[0].push_template(&template_dir).await.unwrap().template_id;
    let of = |owner: &str, chat: &str| CallContext { owner_id: owner.into(), ..local_context(chat) };
    let request = |name: String| CreateWorkspaceRequest { template_id: template.clone(), name, parameters: Vec::new(), ttl_ms: None };

    let mut creates = tokio::task::JoinSet::new();
    for i in 0..12 {
        let (host, request, cx) = (hosts[i % 2].clone(), request(format!("ws-{i}")), of(A, &format!("chat-{i}")));
        creates.spawn(async move { (cx.clone(), host.create_workspace(&cx, request).await) });
    }
    let outcomes = creates.join_all().await;
    for (_, refused) in outcomes.iter().filter(|(_, o)| o.is_err()) {
        assert!(matches!(refused, Err(Refused::Quota(q)) if q.quota == Quota::LiveWorkspaces && q.limit == 3), "{refused:?}");
    }
    let created: Vec<_> = outcomes.iter().filter_map(|(cx, o)| o.as_ref().ok().map(|c| (cx.clone(), c.clone()))).collect();
    assert_eq!(created.len(), 3, "exactly the quota runs, across two hosts");
    assert_eq!(hosts[1].store().workspaces().await.unwrap().len(), 3, "nothing past the quota was made");

    // Another owner is not held back.
    hosts[1].create_workspace(&of(B, "chat-b"), request("mine".into())).await.unwrap();

    // Stopping one frees its slot; starting it again while at the quota is refused.
    let (cx, first) = &created[0];
    assert_eq!(finished(&hosts[0], cx, &first.build.job_id).await, JobStatus::Succeeded);
    let stop = CreateBuildRequest { workspace_id: first.workspace.id.clone(), transition: Transition::Stop, parameters: Vec::new() };
    let stopping = hosts[0].create_build(cx, stop).await.unwrap();
    finished(&hosts[0], cx, &stopping.job_id).await;
    hosts[1].create_workspace(&of(A, "chat-late"), request("late".into())).await.unwrap();
    let start = CreateBuildRequest { workspace_id: first.workspace.id.clone(), transition: Transition::Start, parameters: Vec::new() };
    assert!(matches!(hosts[0].create_build(cx, start).await, Err(Refused::Quota(q)) if q.quota == Quota::LiveWorkspaces));
    for host in &hosts {
        host.stop_all_agents().await;
    }
}

async fn registries_count_once_each_against_the_stored_bytes_quota(db: Database) {
    let host = db.backend(quotas(|q| q.stored_bytes = 2 * REGISTRY_BYTES + 100)).await;
    let provision = |name: &str| ProvisionRequest {
        project_id: "p".into(),
        cluster_id: "c".into(),
        cluster_name: "c".into(),
        provider: "hetzner".into(),
        region: "fsn1".into(),
        registry_name: name.into(),
        gcp_project_id: None,
    };
    let cx = CallContext { owner_id: A.into(), ..local_context("chat") };
    host.start_provisioning(&cx, provision("one")).await.unwrap();
    host.start_provisioning(&cx, provision("two")).await.unwrap();
    assert!(matches!(host.start_provisioning(&cx, provision("three")).await, Err(Refused::Quota(q)) if q.quota == Quota::StoredBytes));
    host.start_provisioning(&cx, provision("one")).await.expect("a registry already made costs nothing more");
    let stranger = CallContext { owner_id: B.into(), ..local_context("chat") };
    host.start_provisioning(&stranger, provision("three")).await.expect("another owner is not held back");
}
