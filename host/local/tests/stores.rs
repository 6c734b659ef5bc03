//! The store's promises to hosts that share it, each run against SQLite (one
//! data directory, several processes) and PostgreSQL (several replicas on
//! one server). Every PostgreSQL case makes and drops a database of its own
//! on the server `TOOLSHED_TEST_POSTGRES` names.
//!
//! "Hosts" here are separate `Store`/`LocalBackend` values on one database,
//! each with its own pool, as separate processes would have.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use toolshed_infra::{Build, Control, ControlError, CreateWorkspaceRequest, Db, JobStatus, Transition, Workspace};
use toolshed_local::process::{ProcessRecord, Started};
use toolshed_local::scratch::ScratchDatabase;
use toolshed_local::store::{JobLease, NewBuild, NewWorkspace, Store, WorkspaceRecord};
use toolshed_local::{LocalBackend, LocalConfig, Orphans, local_context};
use toolshed_runtime::tasks::{TaskJournal, TaskRecord, TaskState};

/// One database, as either engine.
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

    /// A host's store. These cases make more rows than one owner's default
    /// quotas allow (quotas have their own suite, `quotas.rs`).
    async fn store(&self) -> Store {
        let roomy = toolshed_runtime::quota::Quotas { live_workspaces: 1_000, chats: 1_000, tasks: 1_000, stored_bytes: 1 << 30 };
        Store::open(&self.url).await.unwrap().with_quotas(roomy)
    }

    /// A host's backend on this database, sharing the data directory.
    async fn backend(&self) -> Arc<LocalBackend> {
        let mut config = LocalConfig::new(self.data_dir.path(), "true");
        config.database = Some(self.url.clone());
        config.orphans = Orphans::Fail;
        LocalBackend::open(config).await.unwrap()
    }
}

/// Runs each named case once per engine.
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
    hosts_that_open_together_migrate_once,
    parallel_creates_of_one_name_from_three_hosts_make_one_workspace,
    queued_builds_are_claimed_once_each_by_three_hosts,
    a_lapsed_build_is_taken_over_by_one_host_and_failed_after_its_last_attempt,
    a_lapsed_task_is_claimed_by_one_host_and_any_host_reads_it,
    another_owners_rows_read_as_not_found,
    a_lapsed_jobs_process_is_stopped_only_by_the_host_that_started_it,
);

fn template_dir(root: &Path) -> std::path::PathBuf {
    let dir = root.join("templates").join("quick");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("template.toml"), "name = \"quick\"\n[scripts]\nstart = \"true\"\nstop = \"true\"\n").unwrap();
    dir
}

async fn hosts_that_open_together_migrate_once(db: Database) {
    let opened = futures_join_all((0..4).map(|_| {
        let url = db.url.clone();
        async move { Store::open(&url).await.map(|_| ()) }
    }))
    .await;
    assert!(opened.iter().all(Result::is_ok), "{opened:?}");
    assert_eq!(opened.len(), 4);
    // A fifth open finds the schema current and changes nothing.
    let store = db.store().await;
    assert!(store.templates(toolshed_local::LOCAL_ORG).await.unwrap().is_empty());
}

async fn parallel_creates_of_one_name_from_three_hosts_make_one_workspace(db: Database) {
    let hosts = [db.backend().await, db.backend().await, db.backend().await];
    let template = hosts[0].push_template(&template_dir(db.data_dir.path())).await.unwrap().template_id;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..30 {
        let host = hosts[i % 3].clone();
        let template = template.clone();
        calls.spawn(async move {
            let request = CreateWorkspaceRequest { template_id: template, name: "shared".into(), parameters: Vec::new(), ttl_ms: None };
            host.create_workspace(&local_context(&format!("chat-{i}")), request).await
        });
    }
    let outcomes = calls.join_all().await;
    let created: Vec<_> = outcomes.iter().filter(|o| o.is_ok()).collect();
    assert_eq!(created.len(), 1, "exactly one create wins: {outcomes:?}");
    for refused in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert!(matches!(refused, toolshed_infra::Refused::Error(ControlError::Api(api)) if api.status == 409), "the others are told the name is taken: {refused:?}");
    }
    assert_eq!(hosts[1].store().workspaces().await.unwrap().len(), 1);
    for host in &hosts {
        host.stop_all_agents().await;
    }
}

/// A workspace with a queued start build, as a host that died right after
/// queueing it would leave it.
async fn queue_build(store: &Store, dir: &Path, n: usize, lease: JobLease) -> Build {
    let workspace = Workspace {
        id: uuid::Uuid::new_v4().to_string(),
        name: format!("ws-{n}"),
        owner_name: "local".into(),
        template_id: uuid::Uuid::new_v4().to_string(),
        deleted: false,
    };
    let record = WorkspaceRecord { workspace: workspace.clone(), owner_id: toolshed_local::LOCAL_OWNER.into(), dir: dir.join(n.to_string()).display().to_string() };
    let build = Build {
        id: uuid::Uuid::new_v4().to_string(),
        workspace_id: workspace.id.clone(),
        job_id: uuid::Uuid::new_v4().to_string(),
        transition: Transition::Start,
        template_version_id: None,
    };
    let parameters = BTreeMap::new();
    let new = NewWorkspace { record: &record, ttl_ms: None, build: NewBuild { build: &build, parameters: &parameters, lease } };
    store.insert_workspace(&new, now()).await.unwrap();
    build
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

async fn queued_builds_are_claimed_once_each_by_three_hosts(db: Database) {
    let stores = Arc::new([db.store().await, db.store().await, db.store().await]);
    let lease = toolshed_local::Lease::default();
    let mut queued = BTreeSet::new();
    for n in 0..40 {
        queued.insert(queue_build(&stores[0], db.data_dir.path(), n, lease.queued(now())).await.job_id);
    }
    // Each host claims a few at a time until the queue is empty.
    let mut claimers = tokio::task::JoinSet::new();
    for host in 0..3 {
        let stores = stores.clone();
        claimers.spawn(async move {
            let owner = format!("host-{host}");
            let mut mine = Vec::new();
            loop {
                let claimed = stores[host].claim_queued_jobs(&owner, now(), now() + 15_000, None, 3).await.unwrap();
                if claimed.is_empty() {
                    break mine;
                }
                mine.extend(claimed);
            }
        });
    }
    let claimed: Vec<Vec<String>> = claimers.join_all().await;
    let all: Vec<&String> = claimed.iter().flatten().collect();
    let distinct: BTreeSet<String> = all.iter().map(|id| id.to_string()).collect();
    assert_eq!(all.len(), 40, "no job claimed twice: {:?}", claimed.iter().map(Vec::len).collect::<Vec<_>>());
    assert_eq!(distinct, queued, "every queued job claimed");
    // A claimed job is no longer in the queue, and carries its claimer.
    let (job, held) = stores[2].job(all[0]).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Pending);
    assert!(held.unwrap().owner.is_some_and(|o| o.starts_with("host-")));
    assert!(stores[0].claim_queued_jobs("late", now(), now() + 15_000, None, 100).await.unwrap().is_empty());
    // A queued job whose queue lease lapsed is not claimed as queued: it is
    // orphaned, and taken over as such.
    let stale = queue_build(&stores[0], db.data_dir.path(), 99, JobLease { owner: None, expires_at: now() - 1 }).await;
    assert!(stores[1].claim_queued_jobs("host-1", now(), now() + 15_000, None, 100).await.unwrap().is_empty());
    let (adopted, _) = stores[1].adopt_expired_jobs("host-1", now(), now() + 15_000, 2).await.unwrap();
    assert_eq!(adopted.iter().map(|j| j.id.clone()).collect::<Vec<_>>(), [stale.job_id]);
}

async fn a_lapsed_build_is_taken_over_by_one_host_and_failed_after_its_last_attempt(db: Database) {
    let stores = Arc::new([db.store().await, db.store().await, db.store().await]);
    let dead = JobLease { owner: Some("dead-host".into()), expires_at: now() - 1_000 };
    let build = queue_build(&stores[0], db.data_dir.path(), 0, dead).await;

    let mut adopters = tokio::task::JoinSet::new();
    for host in 0..3 {
        let stores = stores.clone();
        adopters.spawn(async move { stores[host].adopt_expired_jobs(&format!("host-{host}"), now(), now() + 15_000, 2).await.unwrap() });
    }
    let outcomes = adopters.join_all().await;
    let adopted: usize = outcomes.iter().map(|(a, _)| a.len()).sum();
    let failed: usize = outcomes.iter().map(|(_, f)| f.len()).sum();
    assert_eq!((adopted, failed), (1, 0), "one host takes it over: {outcomes:?}");
    let (job, held) = stores[0].job(&build.job_id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Pending, "back in line to run again");
    let adopter = held.unwrap().owner.unwrap();

    // The adopter dies too: its lease lapses, and the job has had its two
    // attempts, so the next host fails it; it is never stuck.
    assert!(stores[0].renew_leases(&adopter, now() - 1).await.unwrap() == 1);
    let (adopted, failed) = stores[2].adopt_expired_jobs("host-2", now(), now() + 15_000, 2).await.unwrap();
    assert_eq!((adopted.len(), failed.len()), (0, 1));
    let (job, _) = stores[1].job(&build.job_id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job.error.is_some_and(|e| e.contains("stopped before it finished")));
}

fn task(id: &str, runner: Option<&str>, lease: Option<u64>) -> TaskRecord {
    TaskRecord {
        id: id.into(),
        owner_id: "owner-a".into(),
        owner_name: "a".into(),
        organization_id: "org".into(),
        chat_id: "chat".into(),
        tool: "create_workspace".into(),
        arguments: json!({ "template_id": "t" }),
        plugin: "workspace-tools".into(),
        plugin_version: "v1".into(),
        state: TaskState::Working,
        status_message: None,
        result: None,
        is_error: false,
        created_at_ms: now(),
        updated_at_ms: now(),
        ttl_ms: 3_600_000,
        runner: runner.map(str::to_string),
        lease_expires_at_ms: lease,
        attempts: 1,
    }
}

async fn a_lapsed_task_is_claimed_by_one_host_and_any_host_reads_it(db: Database) {
    let stores = Arc::new([db.store().await, db.store().await, db.store().await]);
    let id = uuid::Uuid::new_v4().to_string();
    stores[0].insert(&task(&id, Some("dead-host"), Some(now() - 1_000))).await.unwrap();
    let live = uuid::Uuid::new_v4().to_string();
    stores[0].insert(&task(&live, Some("live-host"), Some(now() + 60_000))).await.unwrap();

    let mut claimers = tokio::task::JoinSet::new();
    for host in 0..3 {
        let stores = stores.clone();
        claimers.spawn(async move { stores[host].claim_lapsed(&format!("host-{host}"), now(), now() + 15_000).await.unwrap() });
    }
    let claimed: Vec<TaskRecord> = claimers.join_all().await.into_iter().flatten().collect();
    assert_eq!(claimed.len(), 1, "one host resumes the lapsed task, none the live one: {claimed:?}");
    assert_eq!(claimed[0].id, id);
    assert_eq!(claimed[0].attempts, 2);
    for store in stores.iter() {
        let seen = store.get("owner-a", &id).await.unwrap().unwrap();
        assert_eq!(seen.runner, claimed[0].runner, "every host reads the same claim");
        assert!(store.get("owner-b", &id).await.unwrap().is_none(), "another owner reads nothing");
    }
}

async fn another_owners_rows_read_as_not_found(db: Database) {
    let host = db.backend().await;
    let template = host.push_template(&template_dir(db.data_dir.path())).await.unwrap().template_id;
    let mine = local_context("chat-mine");
    let request = CreateWorkspaceRequest { template_id: template.clone(), name: "mine".into(), parameters: Vec::new(), ttl_ms: None };
    let created = host.create_workspace(&mine, request).await.unwrap();
    let stranger = toolshed_runtime::CallContext { owner_id: "someone-else".into(), ..local_context("chat-theirs") };
    let other_host = db.backend().await;
    assert!(other_host.workspace(&stranger, &created.workspace.id).await.is_err());
    assert!(other_host.build(&stranger, &created.build.id).await.is_err());
    assert!(other_host.job(&stranger, &created.build.job_id).await.is_err());
    assert_eq!(other_host.workspace(&mine, &created.workspace.id).await.unwrap().name, "mine");
    host.stop_all_agents().await;
}

/// A process in a group of its own, reaped by a thread as soon as it ends,
/// as a build script's would be by its host.
fn group_leader() -> (Started, Arc<std::sync::atomic::AtomicBool>) {
    use std::os::unix::process::CommandExt;
    let mut child = std::process::Command::new("sleep").arg("30").process_group(0).spawn().unwrap();
    let started = Started::of(child.id()).unwrap();
    let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = ended.clone();
    std::thread::spawn(move || {
        let _ = child.wait();
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    (started, ended)
}

async fn a_lapsed_jobs_process_is_stopped_only_by_the_host_that_started_it(db: Database) {
    let store = db.store().await;
    let (here, here_ended) = group_leader();
    let (there, there_ended) = group_leader();
    let lease = JobLease { owner: Some("host-a".into()), expires_at: now() + 60_000 };
    let ours = queue_build(&store, db.data_dir.path(), 0, lease.clone()).await;
    let theirs = queue_build(&store, db.data_dir.path(), 1, lease).await;
    assert!(store.job_running(&ours.job_id, "host-a", Some(&ProcessRecord::here(here)), now()).await.unwrap());
    // The same kind of row, written by a replica on another machine: its
    // pid and start time happen to name a process here.
    let elsewhere = ProcessRecord { host: "boot:11111111-1111-4111-8111-111111111111 host:replica-2 pidns:4:4026531836".into(), ..ProcessRecord::here(there) };
    assert!(store.job_running(&theirs.job_id, "host-a", Some(&elsewhere), now()).await.unwrap());

    // host-a dies: both leases lapse, and this host fails both jobs.
    assert_eq!(store.renew_leases("host-a", now() - 1).await.unwrap(), 2);
    let expired = store.fail_expired_jobs(now()).await.unwrap();
    let recorded: BTreeMap<String, Option<ProcessRecord>> = expired.iter().map(|j| (j.id.clone(), j.process.clone())).collect();
    assert_eq!(recorded[&ours.job_id].as_ref(), Some(&ProcessRecord::here(here)), "the host is stored with the pid");
    assert_eq!(recorded[&theirs.job_id].as_ref(), Some(&elsewhere));
    for job in &expired {
        toolshed_local::lease::stop(job).await;
    }
    // Stopping returns once the process is gone; its reaper notes it a moment later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while !here_ended.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(std::time::Instant::now() < deadline, "this host's own orphaned script was not stopped");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(!there_ended.load(std::sync::atomic::Ordering::SeqCst), "a pid another host recorded was signalled");
    for job in [&ours, &theirs] {
        assert_eq!(store.job(&job.job_id).await.unwrap().unwrap().0.status, JobStatus::Failed, "both are failed by the lease rules");
    }
    // SAFETY: kill takes plain numbers; the process is ours to end.
    unsafe { libc::kill(there.pid as i32, libc::SIGKILL) };
}

async fn futures_join_all<F: std::future::Future<Output = T> + Send + 'static, T: Send + 'static>(futures: impl Iterator<Item = F>) -> Vec<T> {
    let mut set = tokio::task::JoinSet::new();
    for future in futures {
        set.spawn(future);
    }
    set.join_all().await
}
