//! The resident memory of `toolshed serve` itself, the figure an operator
//! sees: idle after `tools/list` on a fresh data directory (once the
//! background compile has finished) and on one that holds the compiled
//! cache, and the peaks under the stdio load and through a hot swap.
//!
//! "Idle" is measured once the process has stopped using CPU, so a
//! background compile still running, or its threads still exiting, is not
//! counted as idle memory.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::stdio::{Server, process_cpu_us};

/// What one run of the memory rows found, in MiB.
#[derive(Debug, Clone, Copy)]
pub struct MemoryFigures {
    /// RSS idle after `tools/list` on a fresh data directory, once every
    /// plugin has been compiled by both tiers.
    pub idle_cold_mib: f64,
    /// RSS idle after `tools/list` on a data directory whose compiled cache
    /// holds every plugin.
    pub idle_warm_mib: f64,
    /// Peak RSS from a changed plugin written to its optimized code serving,
    /// on a warm, idle `serve --plugins`.
    pub peak_swap_mib: f64,
}

/// One field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
pub(crate) fn status_kib(pid: u32, field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("reading process {pid}'s status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("{field} in process {pid}'s status"))
}

pub(crate) fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    Ok(status_kib(pid, "VmRSS")? / 1024.0)
}

pub(crate) fn peak_rss_mib(pid: u32) -> anyhow::Result<f64> {
    Ok(status_kib(pid, "VmHWM")? / 1024.0)
}

/// Makes process `pid`'s peak RSS its current RSS, so the next peak read
/// covers only what follows.
pub(crate) fn reset_peak_rss(pid: u32) -> anyhow::Result<()> {
    // Linux resets VmHWM to the current RSS on "5".
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").with_context(|| format!("resetting process {pid}'s peak RSS"))
}

/// Waits until process `pid` has used under 2 ms of CPU in a second: its
/// background work (compiles, tier-up, exiting threads) is done.
pub(crate) fn settle(pid: u32) -> anyhow::Result<()> {
    const WINDOW: Duration = Duration::from_secs(1);
    const QUIET_US: f64 = 2_000.0;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut before = process_cpu_us(pid)?;
    loop {
        std::thread::sleep(WINDOW);
        let now = process_cpu_us(pid)?;
        if now - before < QUIET_US {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "serve (pid {pid}) was still busy after 120 s");
        before = now;
    }
}

/// `serve` idle after `tools/list` in `data`: its RSS in MiB.
fn idle_rss_mib(data: &Path) -> anyhow::Result<f64> {
    let mut server = Server::start_in(data, &[])?;
    server.initialize()?;
    let pid = server.pid();
    settle(pid)?;
    rss_mib(pid)
}

/// The peak RSS of a warm, idle `serve --plugins DIR` while one plugin in
/// DIR is replaced by a changed build and served to its optimized code.
fn peak_through_swap(data: &Path) -> anyhow::Result<f64> {
    let plugins = data.join("bench-plugins");
    std::fs::create_dir_all(&plugins)?;
    let file = plugins.join("workspace-tools.wasm");
    std::fs::write(&file, toolshed_builtin::WORKSPACE_TOOLS)?;
    let plugins_arg = plugins.to_str().context("a plugin directory named in UTF-8")?;
    // Once to fill the cache, as a restart would find it.
    {
        let mut server = Server::start_in(data, &["--plugins", plugins_arg])?;
        server.initialize()?;
        settle(server.pid())?;
    }
    let mut server = Server::start_in(data, &["--plugins", plugins_arg])?;
    server.initialize()?;
    let pid = server.pid();
    settle(pid)?;
    reset_peak_rss(pid)?;
    // Written beside and renamed in, as a deploy would, so the watcher never
    // reads half a file.
    let staged = plugins.join(".workspace-tools.wasm.new");
    std::fs::write(&staged, super::distinct(toolshed_builtin::WORKSPACE_TOOLS, 7_777))?;
    std::fs::rename(&staged, &file)?;
    server.notification("notifications/tools/list_changed")?;
    settle(pid)?;
    peak_rss_mib(pid)
}

/// Measures the idle rows (a fresh data directory, then the same one again
/// with its cache) and the swap row.
///
/// # Errors
///
/// When `serve` cannot be started or does not list its tools.
pub fn measure() -> anyhow::Result<MemoryFigures> {
    let data = tempfile::tempdir()?;
    let idle_cold_mib = idle_rss_mib(data.path())?;
    let idle_warm_mib = idle_rss_mib(data.path())?;
    let swap = tempfile::tempdir()?;
    let peak_swap_mib = peak_through_swap(swap.path())?;
    Ok(MemoryFigures { idle_cold_mib, idle_warm_mib, peak_swap_mib })
}
