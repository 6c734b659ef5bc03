//! The `toolshed` command: see `toolshed --help`.

use clap::Parser;
use toolshed::cli;

/// Every call builds and drops a store, an instance and the JSON of its
/// arguments and result: many short-lived allocations of every size. With
/// glibc's allocator a store's large block made it merge the free lists the
/// call before had filled, which cost about a fifth of a quick call's time;
/// jemalloc's per-thread caches do not.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read at its start (`_RJEM_MALLOC_CONF` in the
/// environment still overrides them). By default jemalloc returns freed
/// pages to the system only when some thread allocates again, so an idle
/// `serve` kept what its start-up compile had freed: 64 MiB idle after a
/// cold start instead of 51 MiB. One background thread, for every arena,
/// returns them after a second instead of ten. Measured both ways in one
/// bench run each, alternating: no call, throughput or latency row was
/// worse (docs/performance.md, "Where the memory goes").
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static MALLOC_CONF: &[u8] = b"background_thread:true,max_background_threads:1,dirty_decay_ms:1000\0";

/// Log lines a slow stderr may fall behind by before lines are dropped.
const LOG_BACKLOG_LINES: usize = 10_000;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // HTTPS (a JWT issuer's keys, a remote backend) goes through rustls on ring.
    toolshed_mcp::tls::ensure_provider();
    // Log records are written by a thread of their own: an async worker only
    // queues them, and when stderr cannot keep up (a full pipe nobody reads)
    // lines are dropped instead of stalling the host.
    let (writer, _flush_on_exit) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_BACKLOG_LINES)
        .thread_name("toolshed-log")
        .finish(std::io::stderr());
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("TOOLSHED_LOG").unwrap_or_else(|_| "warn".into()))
        .init();
    match cli::run(cli::Cli::parse()).await {
        Ok(code) => std::process::ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
