//! Tasks: how fast they are created (each written durably to a SQLite
//! journal before `start` returns, against an in-memory journal in the same
//! run), and how much memory each costs while parked on a long build.
//!
//! `cargo bench -p toolshed --bench tasks` runs 2,000 tasks; `cargo test`
//! runs 20, so it keeps building.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use toolshed_runtime::{CallContext, Stats};
use toolshed_runtime::tasks::{MemoryJournal, TaskJournal, TaskSettings, Tasks};

fn rss_kib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

fn context(i: usize) -> CallContext {
    CallContext { chat_id: format!("chat-{i}"), owner_id: "owner".into(), owner_name: "bench".into(), organization_id: "b0000000-0000-4000-8000-000000000001".into() }
}

/// Starts `n` create_workspace tasks on `journal`, each parked on a build
/// that takes ten minutes; returns (tasks created per second, RSS KiB added
/// per parked task).
fn parked(n: usize, journal: Arc<dyn TaskJournal>, tokio: &tokio::runtime::Runtime) -> anyhow::Result<(f64, f64)> {
    let compiled = tempfile::tempdir()?;
    let runtime = toolshed::bench::serve_runtime_with_capacity(compiled.path(), n as u32 + 64)?;
    let plugin = Arc::new(runtime.compile("workspace-tools", toolshed_builtin::WORKSPACE_TOOLS)?);
    let host = Arc::new(toolshed::bench::hosted(&runtime, &plugin, 5, 600_000));
    let arguments: Value = serde_json::from_str(&toolshed::bench::arguments("create_workspace"))?;
    tokio.block_on(async {
        let tasks = Tasks::new(host.clone(), journal, TaskSettings::default());
        // One warm task, so lazily built state is not counted per task.
        tasks.start(&context(usize::MAX), "create_workspace", arguments.clone()).await.map_err(|e| anyhow::anyhow!("{}", e.to_json()))?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = rss_kib();
        let started = Instant::now();
        for i in 0..n {
            tasks.start(&context(i), "create_workspace", arguments.clone()).await.map_err(|e| anyhow::anyhow!("{}", e.to_json()))?;
        }
        let rate = n as f64 / started.elapsed().as_secs_f64();
        // Let every task reach its build wait: every call under way, each
        // first run done, and none running (they park between polls).
        let deadline = Instant::now() + Duration::from_secs(120);
        let waiting = |stats: &Stats| stats.calls() == n as u64 + 1 && stats.instances() >= n as u64 + 1 && stats.live() == 0;
        while !waiting(host.stats()) {
            if tasks.running() != n + 1 {
                let ended = tasks.list("owner", 10_000).await?.into_iter().find(|t| t.state.is_terminal());
                anyhow::bail!("{} of {} tasks are running; one ended with {:?}", tasks.running(), n + 1, ended.and_then(|t| t.result));
            }
            anyhow::ensure!(Instant::now() < deadline, "{} of {} tasks are under way, {} runs so far", host.stats().calls(), n + 1, host.stats().instances());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        anyhow::ensure!(tasks.running() == n + 1, "{} of {} tasks are running", tasks.running(), n + 1);
        let per_task = (rss_kib() - before) / n as f64;
        Ok((rate, per_task))
    })
}

fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 2_000 } else { 20 };
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let dir = tempfile::tempdir()?;
    // Past what the bench's one owner makes: quotas are not what it measures.
    let roomy = toolshed_runtime::quota::Quotas { live_workspaces: 100_000, chats: 100_000, tasks: 100_000, stored_bytes: 1 << 40 };
    let store = tokio.block_on(toolshed_local::store::Store::open_file(&dir.path().join("toolshed.db")))?.with_quotas(roomy);
    let (durable_rate, durable_kib) = parked(n, Arc::new(store), &tokio)?;
    let (memory_rate, memory_kib) = parked(n, Arc::new(MemoryJournal::default()), &tokio)?;
    println!("tasks: {n} parked on a 10 min build");
    println!("  SQLite journal:    {durable_rate:>9.0} tasks created/s, {durable_kib:>6.1} KiB RSS per parked task");
    println!("  in-memory journal: {memory_rate:>9.0} tasks created/s, {memory_kib:>6.1} KiB RSS per parked task");
    println!("  durable / in-memory creation rate: {:.2}x", durable_rate / memory_rate);
    Ok(())
}
