//! Replicas on one PostgreSQL database, each figure against its baseline in
//! the same run:
//! - calls per second (list_templates, a read of the shared store per
//!   call) from 48 callers spread over 3 replicas, against 1 replica;
//! - waiting-call capacity: tasks parked on a 10-minute build, created per
//!   second and RSS per parked task, over 3 replicas against 1;
//! - chat-lock acquire and release, PostgreSQL advisory lock against the
//!   in-process lock.
//!
//! The replicas here are hosts in one process, each with its own backend,
//! pool and lock service, so they share only the database, as processes
//! would; on one machine they also share its cores, so the ratio shows what
//! the shared database costs, not what more machines would add.
//!
//! `cargo bench -p toolshed --bench replicas` runs the full sizes; `cargo
//! test` runs small ones, so it keeps building. Needs the PostgreSQL server
//! `TOOLSHED_TEST_POSTGRES` names (default: this machine's).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use toolshed_local::advisory::AdvisoryLocks;
use toolshed_local::scratch::ScratchDatabase;
use toolshed_local::{LocalBackend, LocalConfig, local_context};
use toolshed_runtime::locks::{ChatLocks, LockName, LockTable};
use toolshed_runtime::tasks::{TaskSettings, Tasks};
use toolshed_runtime::{CallContext, Stats, Toolshed};

fn rss_kib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// Quotas past what one bench owner makes (thousands of tasks).
fn roomy() -> toolshed_runtime::quota::Quotas {
    toolshed_runtime::quota::Quotas { live_workspaces: 100_000, chats: 100_000, tasks: 100_000, stored_bytes: 1 << 40 }
}

/// A replica: a host over a backend of its own on the shared database.
async fn replica(database: &str, data_dir: &std::path::Path) -> anyhow::Result<(Arc<LocalBackend>, Arc<Toolshed>)> {
    let mut config = LocalConfig::new(data_dir, "true");
    config.database = Some(database.to_string());
    config.quotas = roomy();
    let backend = LocalBackend::open(config).await?;
    let compiled = tempfile::tempdir()?;
    let runtime = toolshed::bench::serve_runtime_with_capacity(compiled.path(), 256)?;
    let host = Arc::new(Toolshed::builder(runtime).backend(&backend).build()?);
    host.install("workspace-tools", toolshed_builtin::WORKSPACE_TOOLS.to_vec()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((backend, host))
}

/// Calls per second of `calls` list_templates calls from 48 callers spread
/// round-robin over `hosts`.
async fn calls_per_second(hosts: &[Arc<Toolshed>], calls: usize) -> anyhow::Result<f64> {
    let callers = 48;
    let started = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for caller in 0..callers {
        let host = hosts[caller % hosts.len()].clone();
        running.spawn(async move {
            let cx = local_context(&format!("caller-{caller}"));
            for _ in 0..calls / callers {
                let out = host.call_value(&cx, "list_templates", &json!({})).await;
                anyhow::ensure!(!out.is_error, "list_templates failed: {}", out.value);
            }
            Ok(())
        });
    }
    for outcome in running.join_all().await {
        outcome?;
    }
    Ok((calls / callers * callers) as f64 / started.elapsed().as_secs_f64())
}

/// Tasks parked on a 10-minute build, spread over `replicas` hosts that
/// share one journal in the database: (created per second, RSS KiB per
/// parked task).
async fn parked(database: &str, replicas: usize, n: usize) -> anyhow::Result<(f64, f64)> {
    let store = Arc::new(toolshed_local::store::Store::open(database).await?.with_quotas(roomy()));
    let compiled = tempfile::tempdir()?;
    let runtime = toolshed::bench::serve_runtime_with_capacity(compiled.path(), n as u32 + 64)?;
    let plugin = Arc::new(runtime.compile("workspace-tools", toolshed_builtin::WORKSPACE_TOOLS)?);
    let arguments: Value = serde_json::from_str(&toolshed::bench::arguments("create_workspace"))?;
    let mut all = Vec::new();
    for _ in 0..replicas {
        let host = Arc::new(toolshed::bench::hosted(&runtime, &plugin, 5, 600_000));
        all.push((host.clone(), Tasks::new(host, store.clone(), TaskSettings::default())));
    }
    let context = |i: usize| CallContext { chat_id: format!("chat-{i}"), owner_id: "owner".into(), owner_name: "bench".into(), organization_id: "b0000000-0000-4000-8000-000000000001".into() };
    for (_, tasks) in &all {
        tasks.start(&context(usize::MAX), "create_workspace", arguments.clone()).await.map_err(|e| anyhow::anyhow!("{}", e.to_json()))?;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_kib();
    let started = Instant::now();
    let mut starting = tokio::task::JoinSet::new();
    for (r, (_, tasks)) in all.iter().enumerate() {
        let (tasks, arguments) = (tasks.clone(), arguments.clone());
        let mine: Vec<usize> = (0..n).filter(|i| i % replicas == r).collect();
        starting.spawn(async move {
            for i in mine {
                tasks.start(&context(i), "create_workspace", arguments.clone()).await.map_err(|e| anyhow::anyhow!("{}", e.to_json()))?;
            }
            anyhow::Ok(())
        });
    }
    for outcome in starting.join_all().await {
        outcome?;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(120);
    // Every call under way, each first run done, and none running (they
    // park between polls).
    let sum = |count: fn(&Stats) -> u64| all.iter().map(|(host, _)| count(host.stats())).sum::<u64>();
    let total = (n + replicas) as u64;
    while !(sum(Stats::calls) == total && sum(Stats::instances) >= total && sum(Stats::live) == 0) {
        anyhow::ensure!(Instant::now() < deadline, "not every task reached its build wait");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_task = (rss_kib() - before) / n as f64;
    for (_, tasks) in &all {
        for task in tasks.list("owner", 100_000).await? {
            let _ = tasks.cancel("owner", &task.id).await;
        }
    }
    Ok((rate, per_task))
}

/// Mean µs of an uncontended acquire and release of one chat lock.
async fn lock_micros(locks: &dyn ChatLocks, samples: usize) -> anyhow::Result<f64> {
    let name = |i: usize| LockName { plugin: "workspace-tools".into(), owner: "owner".into(), chat: format!("chat-{}", i % 64), key: "chat-workspace".into() };
    // Warm: connections opened, tables grown.
    for i in 0..64 {
        drop(locks.acquire(&name(i)).await?);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    for i in 0..samples {
        drop(locks.acquire(&name(i)).await?);
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / samples as f64)
}

fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let (calls, tasks, locks) = if full { (6_000, 1_200, 2_000) } else { (96, 12, 50) };
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    tokio.block_on(async {
        let db = ScratchDatabase::create().await?;
        let dir = tempfile::tempdir()?;
        let template = dir.path().join("templates").join("quick");
        std::fs::create_dir_all(&template)?;
        std::fs::write(template.join("template.toml"), "name = \"quick\"\n[scripts]\nstart = \"true\"\n")?;
        let mut hosts = Vec::new();
        let mut backends = Vec::new();
        for _ in 0..3 {
            let (backend, host) = replica(db.url(), dir.path()).await?;
            backends.push(backend);
            hosts.push(host);
        }
        backends[0].push_template(&template).await?;
        calls_per_second(&hosts, 96).await?;
        let one = calls_per_second(&hosts[..1], calls).await?;
        let three = calls_per_second(&hosts, calls).await?;

        let tasks_db = ScratchDatabase::create().await?;
        let (one_rate, one_kib) = parked(tasks_db.url(), 1, tasks).await?;
        let tasks_db = ScratchDatabase::create().await?;
        let (three_rate, three_kib) = parked(tasks_db.url(), 3, tasks).await?;

        let in_process = lock_micros(&LockTable::default(), locks).await?;
        let advisory = lock_micros(&AdvisoryLocks::new(db.url()), locks).await?;

        println!("replicas on one PostgreSQL ({calls} calls, {tasks} parked tasks, {locks} lock samples)");
        println!("  list_templates, 48 callers:  1 replica {one:>8.0} calls/s   3 replicas {three:>8.0} calls/s   ratio {:.2}x", three / one);
        println!(
            "  tasks parked on a build:     1 replica {one_rate:>8.0} tasks/s, {one_kib:.1} KiB each   3 replicas {three_rate:>8.0} tasks/s, {three_kib:.1} KiB each   ratio {:.2}x",
            three_rate / one_rate
        );
        println!("  chat lock acquire+release:   in-process {in_process:>8.1} µs   PostgreSQL advisory {advisory:>8.1} µs   ratio {:.0}x", advisory / in_process);
        anyhow::Ok(())
    })
}
