//! The benchmarks behind `toolshed bench` and `cargo bench`.
//!
//! Every figure is measured in one run on one machine, and the headline
//! ones are ratios (hosted against native, compile against cache), because
//! absolute times on shared machines drift from run to run.

pub mod http;
pub mod languages;
pub mod memory;
pub mod native;
pub mod registry;
pub mod scenario;
pub mod stdio;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use serde_json::json;
use toolshed_infra::InfraProviders;
use toolshed_runtime::{CallContext, Clock, Plugin, Runtime, SystemClock, Tier, Toolshed};

use crate::app::runtime_builder;

use native::NativeHost;
use scenario::{InstantBackend, ORG, TEMPLATE};

/// How much to measure.
#[derive(Debug, Clone, Copy)]
pub struct BenchOptions {
    /// Small counts and short waits, to check the benchmarks run at all.
    pub quick: bool,
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Median time to make a Store, instantiate workspace-tools and drop it.
    pub instance_us_median: f64,
    /// The baseline: the same for a component of one core instance with one
    /// page of memory, on the same engine.
    pub instance_floor_us_median: f64,
    /// Instance cost / wasmtime's floor.
    pub ratio_instance_floor: f64,
    /// Median time wasmtime itself takes to make a Store, instantiate
    /// workspace-tools with every import a stub and drop it: the plugin's
    /// shape (its core instances and lowered imports) without the host.
    pub instance_shape_us_median: f64,
    /// That shape / wasmtime's floor: the part of the instance cost the host
    /// cannot remove.
    pub ratio_instance_shape_floor: f64,
    /// The hello plugin in Python and JavaScript against Rust, when
    /// `toolshed test` has built all three.
    pub languages: Option<languages::Languages>,
    /// workspace-tools pulled from a loopback registry, verified and
    /// serving its first call, against the same from a file on disk; when
    /// Debian's docker-registry is installed.
    pub registry: Option<registry::RegistryFigures>,
    /// Median hosted call time of list_templates over 100 templates.
    pub hosted_us_list_templates: f64,
    /// Median native call time of the same, served as a native JSON tool (JSON
    /// text in, JSON value out): the baseline.
    pub native_us_list_templates: f64,
    /// Hosted / native for list_templates over 100 templates.
    pub ratio_list_templates: f64,
    /// Median native time of the list_templates logic alone, in its own types, with
    /// no JSON on either side.
    pub native_logic_us_list_templates: f64,
    /// Median hosted call time of read_template, in µs.
    pub hosted_us_read_template: f64,
    /// Median native call time of the same, served as a native JSON tool, in
    /// µs: the baseline.
    pub native_us_read_template: f64,
    /// Hosted / native for read_template.
    pub ratio_read_template: f64,
    /// Median native time of the read_template logic alone, in its own types, with
    /// no JSON on either side.
    pub native_logic_us_read_template: f64,
    /// Median hosted call time of create_workspace on an instant build, in µs.
    pub hosted_us_create_workspace: f64,
    /// Median native call time of the same, served as a native JSON tool, in
    /// µs: the baseline.
    pub native_us_create_workspace: f64,
    /// Hosted / native for create_workspace on an instant build.
    pub ratio_create_workspace: f64,
    /// Median native time of the create_workspace logic alone, in its own types, with
    /// no JSON on either side.
    pub native_logic_us_create_workspace: f64,
    /// Loading workspace-tools by compiling it.
    pub compile_ms: f64,
    /// Loading it from the compiled cache.
    pub cache_load_ms: f64,
    /// Concurrent calls in the smaller concurrency run.
    pub concurrency_small: usize,
    /// Concurrent calls in the larger concurrency run.
    pub concurrency_large: usize,
    /// How long each waiting call's build takes.
    pub build_wait_ms: u64,
    /// Wall time of the smaller run.
    pub wall_s_1k: f64,
    /// Peak resident memory during the smaller run.
    pub peak_rss_mib_1k: f64,
    /// Wall time of the larger run.
    pub wall_s_10k: f64,
    /// Peak resident memory during the larger run.
    pub peak_rss_mib_10k: f64,
    /// Resident memory each waiting call added in the larger run.
    pub rss_kib_per_waiting_call: f64,
    /// Quick calls per second on all cores.
    pub calls_per_s: f64,
    /// Median time from a new .wasm written to the first call it serves,
    /// in ms, while [`SWAP_LOAD_CALLERS`] callers keep the host busy: served from the
    /// baseline tier, as `serve` does.
    pub swap_ms: f64,
    /// The swap under load against the Cranelift compile time of the same
    /// plugin on an idle host (`compile_ms`).
    pub ratio_swap_compile: f64,
    /// The swap on an idle host, in ms.
    pub swap_idle_ms: f64,
    /// The swap on an idle host against the Cranelift compile on an idle
    /// host (`compile_ms`, the baseline): the like-for-like ratio.
    pub ratio_swap_idle_compile: f64,
    /// The swap under load against the Cranelift compile under the same
    /// load (`swap_background_compile_ms`, the baseline).
    pub ratio_swap_compile_loaded: f64,
    /// Median time from the file written to its optimized code serving, in ms.
    pub swap_optimized_ms: f64,
    /// Median time of the optimizing compile in the background, in ms.
    pub swap_background_compile_ms: f64,
    /// Calls that failed while plugins were swapped under load.
    pub swap_failed_calls: u64,
    /// Calls made while plugins were swapped.
    pub swap_load_calls: u64,
    /// Swaps made.
    pub swaps: usize,
    /// Tool-list changes announced during the swaps: one per swap, none for
    /// the moves to optimized code.
    pub swap_list_changes: u64,
    /// Median time to compile workspace-tools with Winch, the baseline tier, in ms.
    pub baseline_compile_ms: f64,
    /// Median list_templates (100 templates) on baseline code, in µs.
    pub baseline_us_list_templates: f64,
    /// The same on optimized code, in µs.
    pub optimized_us_list_templates: f64,
    /// Calls in flight at once in the stdio runs.
    pub stdio_in_flight: usize,
    /// CPU time `toolshed serve` spent per quick call over stdio, in µs.
    pub stdio_server_cpu_us_per_call: f64,
    /// The baseline: CPU time per the same call made in process on a host
    /// opened as `serve` opens it, in µs.
    pub stdio_in_process_cpu_us_per_call: f64,
    /// Server CPU per call over stdio / in process.
    pub ratio_stdio_cpu: f64,
    /// What the MCP layer itself costs per call over stdio: server CPU less
    /// the in-process CPU, in µs.
    pub stdio_mcp_cpu_us_per_call: f64,
    /// Quick calls answered per second over stdio.
    pub stdio_calls_per_s: f64,
    /// Loopback connections in the HTTP runs, one client each.
    pub http_connections: usize,
    /// Quick calls answered per second over HTTP.
    pub http_calls_per_s: f64,
    /// The baseline: the same calls per second in process, as many in flight.
    pub http_in_process_calls_per_s: f64,
    /// Calls/s over HTTP / in process.
    pub ratio_http_calls: f64,
    /// Median time of a call over HTTP, in ms.
    pub http_p50_ms: f64,
    /// 99th percentile time of a call over HTTP, in ms.
    pub http_p99_ms: f64,
    /// serve's RSS idle after `tools/list` on a fresh data directory, once
    /// its background compile has finished, in MiB.
    pub idle_cold_rss_mib: f64,
    /// serve's RSS idle after `tools/list` with the compiled cache, in MiB.
    pub idle_warm_rss_mib: f64,
    /// serve's peak RSS through the measured stdio rounds, in MiB.
    pub stdio_peak_rss_mib: f64,
    /// serve's peak RSS from a changed plugin written to its optimized code
    /// serving, in MiB.
    pub swap_peak_rss_mib: f64,
    /// How many calls at once the runtimes were built for: serve's capacity.
    pub serve_capacity: u32,
    /// The machine the figures come from.
    pub machine: String,
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN)
}

fn context(chat: usize) -> CallContext {
    CallContext { chat_id: format!("chat-{chat}"), owner_id: "owner".into(), owner_name: "bench".into(), organization_id: ORG.into() }
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime")
}

/// A runtime built exactly as `serve` builds it: [`runtime_builder`] over
/// the built-in policy with the compiled cache in `data_dir`, the first
/// tier on, and serve's capacity.
///
/// # Errors
///
/// When the engine cannot reserve its pool.
pub fn serve_runtime(data_dir: &Path) -> anyhow::Result<Arc<Runtime>> {
    Ok(Arc::new(runtime_builder(toolshed_builtin::policy(), data_dir).first_tier(true).build()?))
}

/// [`serve_runtime`] with room for `calls` calls at once instead of serve's
/// capacity, for the measurements that need more (or, being small, start
/// faster with fewer).
///
/// # Errors
///
/// When the engine cannot reserve its pool.
pub fn serve_runtime_with_capacity(data_dir: &Path, calls: u32) -> anyhow::Result<Arc<Runtime>> {
    Ok(Arc::new(runtime_builder(toolshed_builtin::policy(), data_dir).first_tier(true).concurrent_calls(calls).build()?))
}

/// A host serving workspace-tools over the instant scenario.
pub fn hosted(runtime: &Arc<Runtime>, plugin: &Arc<Plugin>, templates: usize, build_ms: u64) -> Toolshed {
    let host = instant_host(runtime, templates, build_ms);
    host.publish(plugin.clone()).expect("one plugin never conflicts");
    host
}

/// A host over the instant scenario with no plugin yet.
pub fn instant_host(runtime: &Arc<Runtime>, templates: usize, build_ms: u64) -> Toolshed {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let backend = Arc::new(InstantBackend::new(templates, build_ms, clock.clone()));
    // The built-in policy grants registries too; this host offers none.
    Toolshed::builder(runtime.clone())
        .clock(clock)
        .provide(InfraProviders::new(backend))
        .provide(toolshed_platform::PlatformProviders::new(Arc::new(toolshed_platform::NoPlatform)))
        .build()
        .expect("both granted capabilities are provided")
}

/// Median time of a fresh Store, an instance of `plugin`, and dropping both.
pub async fn instance_cost(runtime: &Arc<Runtime>, plugin: &Arc<Plugin>, samples: usize) -> f64 {
    let host = hosted(runtime, plugin, 1, 0);
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        host.instantiate_only(plugin).await.expect("instantiating");
        times.push(started.elapsed().as_secs_f64() * 1e6);
    }
    median(times)
}

/// The least a plugin can be: a component with one core instance that has
/// one page of memory.
fn minimal_component() -> Vec<u8> {
    use wasm_encoder::{ExportKind, ExportSection, InstanceSection, MemorySection, MemoryType, Module, ModuleArg, ModuleSection};
    let mut memories = MemorySection::new();
    memories.memory(MemoryType { minimum: 1, maximum: None, memory64: false, shared: false, page_size_log2: None });
    let mut exports = ExportSection::new();
    exports.export("memory", ExportKind::Memory, 0);
    let mut module = Module::new();
    module.section(&memories).section(&exports);
    let mut instances = InstanceSection::new();
    instances.instantiate(0, Vec::<(&str, ModuleArg)>::new());
    let mut component = wasm_encoder::Component::new();
    component.section(&ModuleSection(&module)).section(&instances);
    component.finish()
}

/// Median time of wasmtime's floor on `runtime`'s engine (the same
/// configuration, pool and all): a fresh Store, an instance of the minimal
/// component from its pre-instantiated handle, and dropping both.
///
/// # Errors
///
/// When the engine refuses the minimal component.
pub async fn instance_floor(runtime: &Runtime, samples: usize) -> anyhow::Result<f64> {
    use toolshed_runtime::wasmtime::component::{Component, Linker};
    let component = Component::new(runtime.engine(), minimal_component())?;
    let pre = Linker::<()>::new(runtime.engine()).instantiate_pre(&component)?;
    bare_instances(&pre, samples).await
}

/// Median time of wasmtime's own work to instantiate `plugin`'s component:
/// a fresh Store holding nothing, an instance whose imports are all stubs
/// (none is called), and dropping both, on `runtime`'s engine and pool. The
/// difference from [`instance_cost`] is what the host adds per call.
///
/// # Errors
///
/// When the stub linker cannot cover the component's imports.
pub async fn instance_shape(runtime: &Runtime, plugin: &Plugin, samples: usize) -> anyhow::Result<f64> {
    let mut linker = toolshed_runtime::wasmtime::component::Linker::<()>::new(runtime.engine());
    linker.define_unknown_imports_as_traps(plugin.component())?;
    let pre = linker.instantiate_pre(plugin.component())?;
    bare_instances(&pre, samples).await
}

/// Median time of a Store holding nothing, an instance from `pre`, and
/// dropping both.
async fn bare_instances(pre: &toolshed_runtime::wasmtime::component::InstancePre<()>, samples: usize) -> anyhow::Result<f64> {
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        let mut store = toolshed_runtime::wasmtime::Store::new(pre.engine(), ());
        store.set_epoch_deadline(1 << 20);
        pre.instantiate_async(&mut store).await?;
        drop(store);
        times.push(started.elapsed().as_secs_f64() * 1e6);
    }
    Ok(median(times))
}

/// Median hosted time of `tool` with `arguments` (JSON text in, JSON out).
pub async fn hosted_call(host: &Toolshed, tool: &str, arguments: &str, samples: usize) -> f64 {
    let cx = context(0);
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        let out = host.call(&cx, tool, arguments).await;
        times.push(started.elapsed().as_secs_f64() * 1e6);
        assert!(!out.is_error, "{tool} failed in the benchmark: {}", out.value);
    }
    median(times)
}

/// Median native time of `call`.
pub fn native_call<T>(samples: usize, mut call: impl FnMut() -> T) -> f64 {
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        std::hint::black_box(call());
        times.push(started.elapsed().as_secs_f64() * 1e6);
    }
    median(times)
}

/// The native baseline of each measured tool, served as a native JSON tool
/// is served: the arguments parsed from JSON text into the tool's types, the
/// same logic, and the result rendered as a JSON value, which is what the
/// hosted path does around the guest.
///
/// # Panics
///
/// When the tool fails, which the benchmark's scenario never makes it do.
pub fn native_tool(native: &NativeHost, tool: &str, arguments: &str) -> serde_json::Value {
    fn serve<A: serde::de::DeserializeOwned, R: Serialize, E: std::fmt::Debug>(
        tool: &str,
        arguments: &str,
        call: impl FnOnce(A) -> Result<R, E>,
    ) -> serde_json::Value {
        let args = serde_json::from_str(arguments).unwrap_or_else(|e| panic!("the arguments of {tool} do not parse: {e}"));
        let result = call(args).unwrap_or_else(|e| panic!("{tool} failed in the benchmark: {e:?}"));
        serde_json::to_value(result).unwrap_or_else(|e| panic!("the result of {tool} does not render: {e}"))
    }
    match tool {
        "list_templates" => serve(tool, arguments, |args| workspace_tools::list_templates(native, args)),
        "read_template" => serve(tool, arguments, |args| workspace_tools::read_template(native, args)),
        "create_workspace" => serve(tool, arguments, |args| workspace_tools::create_workspace(native, args)),
        other => panic!("no native baseline for {other}"),
    }
}

/// The tool's logic alone, natively, on arguments already in its types and
/// with the result left in them: no JSON on either side.
pub fn native_logic(native: &NativeHost, tool: &str) -> bool {
    use workspace_tools::wit::exports::toolshed::tools::workspace_tools as api;
    match tool {
        "list_templates" => workspace_tools::list_templates(native, api::ListTemplatesArgs { query: None, page: None }).is_ok(),
        "read_template" => workspace_tools::read_template(native, api::ReadTemplateArgs { template_id: TEMPLATE.into() }).is_ok(),
        "create_workspace" => workspace_tools::create_workspace(
            native,
            api::CreateWorkspaceArgs { template_id: TEMPLATE.into(), name: None, parameters: None },
        )
        .is_ok(),
        other => panic!("no native baseline for {other}"),
    }
}

/// The arguments each measured tool is called with.
pub fn arguments(tool: &str) -> String {
    match tool {
        "list_templates" => json!({}).to_string(),
        _ => json!({ "template_id": TEMPLATE }).to_string(),
    }
}

fn memory_kib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok())
        })
        .unwrap_or(f64::NAN)
}

fn reset_peak_rss() {
    // Linux resets VmHWM to the current RSS on "5".
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Runs `n` create_workspace calls at once, in `n` chats, each waiting on a
/// build that takes `build_ms`; returns (wall seconds, peak RSS MiB, RSS KiB
/// added per call).
pub fn concurrency(n: usize, build_ms: u64) -> anyhow::Result<(f64, f64, f64)> {
    let dir = tempfile::tempdir()?;
    let runtime = serve_runtime(dir.path())?;
    let plugin = Arc::new(runtime.compile("workspace-tools", toolshed_builtin::WORKSPACE_TOOLS)?);
    let host = Arc::new(hosted(&runtime, &plugin, 5, build_ms));
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let arguments = arguments("create_workspace");
    // One warm call, so lazily built state is not counted per call.
    tokio.block_on(host.call(&context(usize::MAX), "create_workspace", &arguments));
    reset_peak_rss();
    let before = memory_kib("VmRSS:");
    let started = Instant::now();
    let failures = tokio.block_on(async {
        let calls: Vec<_> = (0..n)
            .map(|i| {
                let (host, arguments) = (host.clone(), arguments.clone());
                tokio::spawn(async move { host.call(&context(i), "create_workspace", &arguments).await })
            })
            .collect();
        let mut failures = (0, None);
        for call in calls {
            match call.await {
                Ok(out) if !out.is_error => {}
                Ok(out) => failures = (failures.0 + 1, failures.1.or(Some(out.value.to_string()))),
                Err(e) => failures = (failures.0 + 1, failures.1.or(Some(e.to_string()))),
            }
        }
        failures
    });
    let wall = started.elapsed().as_secs_f64();
    let peak = memory_kib("VmHWM:");
    anyhow::ensure!(failures.0 == 0, "{} of {n} concurrent calls failed, the first with {:?}", failures.0, failures.1);
    Ok((wall, peak / 1024.0, (peak - before) / n as f64))
}

/// Quick calls (list_templates over five templates) per second on all cores.
pub fn throughput(seconds: f64) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let runtime = serve_runtime(dir.path())?;
    let plugin = Arc::new(runtime.compile("workspace-tools", toolshed_builtin::WORKSPACE_TOOLS)?);
    let host = Arc::new(hosted(&runtime, &plugin, 5, 0));
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    tokio.block_on(async {
        let workers: Vec<_> = (0..64)
            .map(|i| {
                let (host, count, stop) = (host.clone(), count.clone(), stop.clone());
                tokio::spawn(async move {
                    let cx = context(i);
                    while !stop.load(Ordering::Relaxed) {
                        let out = host.call(&cx, "list_templates", "{}").await;
                        assert!(!out.is_error);
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        for worker in workers {
            let _ = worker.await;
        }
    });
    Ok(count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// `bytes` made distinct by a custom section, so the host must compile it anew.
fn distinct(bytes: &[u8], nonce: u64) -> Vec<u8> {
    use wasm_encoder::ComponentSection;
    let mut bytes = bytes.to_vec();
    let data = nonce.to_le_bytes();
    wasm_encoder::CustomSection { name: "toolshed:bench-nonce".into(), data: data.as_slice().into() }.append_to_component(&mut bytes);
    bytes
}

/// What swapping a watched plugin under load found.
#[derive(Debug, Clone, Copy)]
pub struct SwapFigures {
    /// Median ms from a new .wasm written to the first call it serves.
    pub first_call_ms: f64,
    /// Median ms from the file written to its optimized code serving.
    pub optimized_ms: f64,
    /// Median ms of the optimizing compile in the background.
    pub background_compile_ms: f64,
    /// Calls that failed while plugins were swapped.
    pub failed: u64,
    /// Calls made while plugins were swapped.
    pub calls: u64,
    /// Tool-list changes announced, against the number of swaps: a move to
    /// optimized code announces none.
    pub list_changes: u64,
}

/// How many tasks call without pause while the loaded swap rows swap.
pub const SWAP_LOAD_CALLERS: usize = 4;

/// Swaps a watched plugin `swaps` times while `callers` tasks call it
/// without pause (none: an idle host), on a runtime built as `serve` builds
/// it (so a new version serves first from the baseline tier), waiting each
/// time for its optimized code to serve too.
pub fn swap_latency(swaps: usize, callers: usize) -> anyhow::Result<SwapFigures> {
    let dir = tempfile::tempdir()?;
    let data = tempfile::tempdir()?;
    let runtime = serve_runtime(data.path())?;
    let plugin = Arc::new(runtime.compile("workspace-tools", toolshed_builtin::WORKSPACE_TOOLS)?);
    let host = Arc::new(hosted(&runtime, &plugin, 5, 0));
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    tokio.block_on(async {
        let _watch = toolshed_runtime::plugin::watch(host.clone(), dir.path())?;
        let stop = Arc::new(AtomicBool::new(false));
        let (failed, calls) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let load: Vec<_> = (0..callers)
            .map(|i| {
                let (host, stop, failed, calls) = (host.clone(), stop.clone(), failed.clone(), calls.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let out = host.call(&context(i), "list_templates", "{}").await;
                        calls.fetch_add(1, Ordering::Relaxed);
                        if out.is_error {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        let mut all_changes = host.subscribe();
        let (mut first_call, mut optimized, mut background) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..swaps {
            let mut changes = host.subscribe();
            let mut tier_ups = host.subscribe_tier_ups();
            let bytes = distinct(toolshed_builtin::WORKSPACE_TOOLS, i as u64 + 1);
            let hash = toolshed_runtime::plugin::content_hash(&bytes);
            let started = Instant::now();
            std::fs::write(dir.path().join("workspace-tools.wasm"), bytes)?;
            let change = tokio::time::timeout(Duration::from_secs(30), changes.recv()).await??;
            let out = host.call(&context(99), "list_templates", "{}").await;
            anyhow::ensure!(!out.is_error && host.generation() >= change.generation, "the swapped plugin did not serve");
            first_call.push(started.elapsed().as_secs_f64() * 1e3);
            loop {
                let up = tokio::time::timeout(Duration::from_secs(60), tier_ups.recv()).await??;
                if up.hash == hash {
                    optimized.push(started.elapsed().as_secs_f64() * 1e3);
                    background.push(up.compile_ms);
                    break;
                }
            }
            let serving = host.plugin_for("list_templates").map(|p| (p.hash.clone(), p.tier));
            anyhow::ensure!(serving == Some((hash, Tier::Optimized)), "the optimized code of the new version is not what serves");
        }
        stop.store(true, Ordering::Relaxed);
        for task in load {
            let _ = task.await;
        }
        let mut list_changes = 0;
        while all_changes.try_recv().is_ok() {
            list_changes += 1;
        }
        Ok(SwapFigures {
            first_call_ms: median(first_call),
            optimized_ms: median(optimized),
            background_compile_ms: median(background),
            failed: failed.load(Ordering::Relaxed),
            calls: calls.load(Ordering::Relaxed),
            list_changes,
        })
    })
}

/// What each tier costs: (median ms compiling workspace-tools with the
/// baseline compiler, median µs of list_templates over 100 templates on
/// baseline code, the same on optimized code).
pub fn tier_costs(samples: usize, compiles: usize) -> anyhow::Result<(f64, f64, f64)> {
    let data = tempfile::tempdir()?;
    let runtime = serve_runtime(data.path())?;
    let mut compile = Vec::new();
    let mut baseline = None;
    for i in 0..compiles.max(1) {
        let bytes = distinct(toolshed_builtin::WORKSPACE_TOOLS, 1_000 + i as u64);
        let started = Instant::now();
        let plugin = runtime.compile_first_tier("workspace-tools", &bytes).context("this runtime has no first tier")??;
        compile.push(started.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(plugin.tier == Tier::Baseline, "the first tier made {} code", plugin.tier.name());
        baseline = Some(Arc::new(plugin));
    }
    let baseline = baseline.context("no baseline compile")?;
    let optimized = Arc::new(runtime.compile("workspace-tools", toolshed_builtin::WORKSPACE_TOOLS)?);
    let tokio = current_thread();
    let mut per_call = Vec::new();
    for plugin in [&baseline, &optimized] {
        let host = hosted(&runtime, plugin, 100, 0);
        tokio.block_on(hosted_call(&host, "list_templates", "{}", 10));
        per_call.push(tokio.block_on(hosted_call(&host, "list_templates", "{}", samples)));
    }
    Ok((median(compile), per_call[0], per_call[1]))
}

/// Loading workspace-tools on a runtime built as `serve` builds it: (median
/// ms compiling it with Cranelift on a cache miss, the compiled code
/// written to the cache included; median ms loading it from that cache).
pub fn cold_start(samples: usize) -> anyhow::Result<(f64, f64)> {
    let mut compile = Vec::new();
    for _ in 0..samples {
        let fresh = tempfile::tempdir()?;
        let runtime = serve_runtime(fresh.path())?;
        let started = Instant::now();
        runtime.compile("workspace-tools", toolshed_builtin::WORKSPACE_TOOLS)?;
        compile.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let dir = tempfile::tempdir()?;
    serve_runtime(dir.path())?.compile("workspace-tools", toolshed_builtin::WORKSPACE_TOOLS)?;
    let mut cached = Vec::new();
    for _ in 0..samples {
        let runtime = serve_runtime(dir.path())?;
        let started = Instant::now();
        runtime.compile("workspace-tools", toolshed_builtin::WORKSPACE_TOOLS)?;
        cached.push(started.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(runtime.cache_stats().loaded() == 1, "the cache was not used");
    }
    Ok((median(compile), median(cached)))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| info.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = memory_total_gib();
    format!("{cores} cores ({cpu}), {memory:.0} GiB")
}

fn memory_total_gib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<f64>().ok()))
        .map_or(f64::NAN, |kib| kib / 1024.0 / 1024.0)
}

/// Runs every benchmark.
///
/// # Errors
///
/// When a runtime cannot be built or a measured call fails.
pub fn run(options: BenchOptions) -> anyhow::Result<Report> {
    let (samples, small, large, build_ms, seconds, swaps) =
        if options.quick { (50, 50, 200, 300, 0.3, 2) } else { (2_000, 1_000, 50_000, 3_000, 3.0, 7) };

    let data = tempfile::tempdir()?;
    let runtime = serve_runtime(data.path())?;
    let plugin = Arc::new(runtime.compile("workspace-tools", toolshed_builtin::WORKSPACE_TOOLS)?);
    let tokio = current_thread();
    let instance_floor_us_median = tokio.block_on(instance_floor(&runtime, samples))?;
    let instance_us_median = tokio.block_on(instance_cost(&runtime, &plugin, samples));
    let instance_shape_us_median = tokio.block_on(instance_shape(&runtime, &plugin, samples))?;

    let host = hosted(&runtime, &plugin, 100, 0);
    let native = NativeHost::new(100);
    let mut hosted_us = std::collections::HashMap::new();
    for tool in ["list_templates", "read_template", "create_workspace"] {
        let arguments = arguments(tool);
        // Warm both paths first.
        tokio.block_on(hosted_call(&host, tool, &arguments, 10));
        native_call(10, || native_tool(&native, tool, &arguments));
        let hosted = tokio.block_on(hosted_call(&host, tool, &arguments, samples));
        let logic = native_call(samples, || native_logic(&native, tool));
        let native = native_call(samples, || native_tool(&native, tool, &arguments));
        hosted_us.insert(tool, (hosted, native, logic));
    }
    // Each runtime's pool holds address-space mappings for its whole
    // capacity, and a process may have only so many (vm.max_map_count):
    // one serve-sized runtime at a time, as in serve.
    let serve_capacity = runtime.admission().capacity();
    drop((host, plugin, runtime));

    let (compile_ms, cache_load_ms) = cold_start(if options.quick { 2 } else { 5 })?;
    let (wall_s_1k, peak_rss_mib_1k, _) = concurrency(small, build_ms)?;
    let (wall_s_10k, peak_rss_mib_10k, rss_kib_per_waiting_call) = concurrency(large, build_ms)?;
    let calls_per_s = throughput(seconds)?;
    let swap_idle = swap_latency(swaps, 0)?;
    let swap = swap_latency(swaps, SWAP_LOAD_CALLERS)?;
    let (baseline_compile_ms, baseline_us_list_templates, optimized_us_list_templates) =
        tier_costs(if options.quick { 50 } else { 500 }, if options.quick { 2 } else { 5 })?;
    let stdio_in_flight = 32;
    let stdio = stdio::measure(if options.quick { 100 } else { 4_000 }, stdio_in_flight)?;
    let http_connections = 64;
    let http = http::measure(if options.quick { 100 } else { 3_000 }, http_connections)?;
    let languages = languages::measure(if options.quick { 20 } else { 1_000 })?;
    let registry = registry::measure(if options.quick { 2 } else { 20 })?;
    let memory = memory::measure()?;

    Ok(Report {
        instance_us_median,
        instance_floor_us_median,
        ratio_instance_floor: instance_us_median / instance_floor_us_median,
        instance_shape_us_median,
        ratio_instance_shape_floor: instance_shape_us_median / instance_floor_us_median,
        languages,
        registry,
        hosted_us_list_templates: hosted_us["list_templates"].0,
        native_us_list_templates: hosted_us["list_templates"].1,
        ratio_list_templates: hosted_us["list_templates"].0 / hosted_us["list_templates"].1,
        native_logic_us_list_templates: hosted_us["list_templates"].2,
        hosted_us_read_template: hosted_us["read_template"].0,
        native_us_read_template: hosted_us["read_template"].1,
        ratio_read_template: hosted_us["read_template"].0 / hosted_us["read_template"].1,
        native_logic_us_read_template: hosted_us["read_template"].2,
        hosted_us_create_workspace: hosted_us["create_workspace"].0,
        native_us_create_workspace: hosted_us["create_workspace"].1,
        ratio_create_workspace: hosted_us["create_workspace"].0 / hosted_us["create_workspace"].1,
        native_logic_us_create_workspace: hosted_us["create_workspace"].2,
        compile_ms,
        cache_load_ms,
        concurrency_small: small,
        concurrency_large: large,
        build_wait_ms: build_ms,
        wall_s_1k,
        peak_rss_mib_1k,
        wall_s_10k,
        peak_rss_mib_10k,
        rss_kib_per_waiting_call,
        calls_per_s,
        swap_ms: swap.first_call_ms,
        ratio_swap_compile: swap.first_call_ms / compile_ms,
        swap_idle_ms: swap_idle.first_call_ms,
        ratio_swap_idle_compile: swap_idle.first_call_ms / compile_ms,
        ratio_swap_compile_loaded: swap.first_call_ms / swap.background_compile_ms,
        swap_optimized_ms: swap.optimized_ms,
        swap_background_compile_ms: swap.background_compile_ms,
        swap_failed_calls: swap.failed,
        swap_load_calls: swap.calls,
        swaps,
        swap_list_changes: swap.list_changes,
        baseline_compile_ms,
        baseline_us_list_templates,
        optimized_us_list_templates,
        stdio_in_flight,
        stdio_server_cpu_us_per_call: stdio.server_cpu_us_per_call,
        stdio_in_process_cpu_us_per_call: stdio.in_process_cpu_us_per_call,
        ratio_stdio_cpu: stdio.server_cpu_us_per_call / stdio.in_process_cpu_us_per_call,
        stdio_mcp_cpu_us_per_call: stdio.server_cpu_us_per_call - stdio.in_process_cpu_us_per_call,
        stdio_calls_per_s: stdio.calls_per_s,
        http_connections,
        http_calls_per_s: http.calls_per_s,
        http_in_process_calls_per_s: http.in_process_calls_per_s,
        ratio_http_calls: http.calls_per_s / http.in_process_calls_per_s,
        http_p50_ms: http.p50_ms,
        http_p99_ms: http.p99_ms,
        idle_cold_rss_mib: memory.idle_cold_mib,
        idle_warm_rss_mib: memory.idle_warm_mib,
        stdio_peak_rss_mib: stdio.server_peak_rss_mib,
        swap_peak_rss_mib: memory.peak_swap_mib,
        serve_capacity,
        machine: machine(),
    })
}

impl Report {
    /// The report as a table with the targets beside the figures.
    pub fn table(&self) -> String {
        let rows = [
            ("instance cost, median", format!("{:.1} us", self.instance_us_median), String::new()),
            (
                "instance cost / wasmtime's floor",
                format!("{:.2}x ({:.1} / {:.1} us, one memory page)", self.ratio_instance_floor, self.instance_us_median, self.instance_floor_us_median),
                "<= 2x".into(),
            ),
            (
                "  of which wasmtime's, stub imports",
                format!(
                    "{:.2}x floor ({:.1} us; the host adds {:.1} us)",
                    self.ratio_instance_shape_floor,
                    self.instance_shape_us_median,
                    self.instance_us_median - self.instance_shape_us_median
                ),
                String::new(),
            ),
            (
                "list_templates (100) hosted / native",
                format!("{:.2}x ({:.1} / {:.1} us)", self.ratio_list_templates, self.hosted_us_list_templates, self.native_us_list_templates),
                "<= 2x".into(),
            ),
            (
                "read_template hosted / native",
                format!("{:.2}x ({:.1} / {:.1} us)", self.ratio_read_template, self.hosted_us_read_template, self.native_us_read_template),
                "<= 8x".into(),
            ),
            (
                "create_workspace hosted / native",
                format!("{:.2}x ({:.1} / {:.1} us)", self.ratio_create_workspace, self.hosted_us_create_workspace, self.native_us_create_workspace),
                "<= 8x".into(),
            ),
            (
                "  against the logic alone, no JSON",
                format!(
                    "list {:.2}x, read {:.2}x, create {:.2}x ({:.1} / {:.1} / {:.1} us)",
                    self.hosted_us_list_templates / self.native_logic_us_list_templates,
                    self.hosted_us_read_template / self.native_logic_us_read_template,
                    self.hosted_us_create_workspace / self.native_logic_us_create_workspace,
                    self.native_logic_us_list_templates,
                    self.native_logic_us_read_template,
                    self.native_logic_us_create_workspace
                ),
                String::new(),
            ),
            ("load by compiling (Cranelift)", format!("{:.1} ms (cache miss; entry written)", self.compile_ms), String::new()),
            ("load by compiling (Winch)", format!("{:.1} ms ({:.2}x Cranelift)", self.baseline_compile_ms, self.baseline_compile_ms / self.compile_ms), String::new()),
            (
                "list_templates (100) Winch / Cranelift",
                format!(
                    "{:.2}x ({:.1} / {:.1} us)",
                    self.baseline_us_list_templates / self.optimized_us_list_templates,
                    self.baseline_us_list_templates,
                    self.optimized_us_list_templates
                ),
                String::new(),
            ),
            (
                "load from cache",
                format!("{:.2} ms ({:.0}x faster)", self.cache_load_ms, self.compile_ms / self.cache_load_ms),
                ">= 20x".into(),
            ),
            (
                "concurrent waiting calls, small",
                format!("{} calls: {:.2} s, peak {:.0} MiB", self.concurrency_small, self.wall_s_1k, self.peak_rss_mib_1k),
                String::new(),
            ),
            (
                "concurrent waiting calls, large",
                format!(
                    "{} calls: {:.2} s, peak {:.0} MiB, {:.0} KiB/call",
                    self.concurrency_large, self.wall_s_10k, self.peak_rss_mib_10k, self.rss_kib_per_waiting_call
                ),
                "<= 2 GiB at 50,000".into(),
            ),
            ("quick calls per second", format!("{:.0}", self.calls_per_s), String::new()),
            (
                "swap, idle / Cranelift compile, idle",
                format!("{:.2}x ({:.0} / {:.0} ms)", self.ratio_swap_idle_compile, self.swap_idle_ms, self.compile_ms),
                "<= 0.25x".into(),
            ),
            (
                "swap under load: file to first call",
                format!("{:.0} ms, {} failed of {} calls", self.swap_ms, self.swap_failed_calls, self.swap_load_calls),
                "0 failed".into(),
            ),
            (
                "swap / Cranelift, both under load",
                format!("{:.2}x ({:.0} / {:.0} ms)", self.ratio_swap_compile_loaded, self.swap_ms, self.swap_background_compile_ms),
                "<= 0.25x".into(),
            ),
            (
                "swap under load / Cranelift, idle",
                format!("{:.2}x ({:.0} / {:.0} ms)", self.ratio_swap_compile, self.swap_ms, self.compile_ms),
                String::new(),
            ),
            (
                "swap: file written to optimized code",
                format!(
                    "{:.0} ms (background compile {:.0} ms); {} list changes for {} swaps",
                    self.swap_optimized_ms, self.swap_background_compile_ms, self.swap_list_changes, self.swaps
                ),
                "1 list change per swap".into(),
            ),
            (
                "MCP stdio: serve CPU / in process",
                format!(
                    "{:.2}x ({:.0} / {:.0} us per call, {} in flight)",
                    self.ratio_stdio_cpu, self.stdio_server_cpu_us_per_call, self.stdio_in_process_cpu_us_per_call, self.stdio_in_flight
                ),
                "<= 2x".into(),
            ),
            ("MCP stdio: the MCP layer's own CPU", format!("{:.0} us per call", self.stdio_mcp_cpu_us_per_call), String::new()),
            ("MCP stdio: calls per second", format!("{:.0}", self.stdio_calls_per_s), String::new()),
            (
                "MCP HTTP: calls/s / in process",
                format!(
                    "{:.2}x ({:.0} / {:.0}, {} connections, --calls-per-caller {})",
                    self.ratio_http_calls, self.http_calls_per_s, self.http_in_process_calls_per_s, self.http_connections, self.http_connections
                ),
                ">= 0.5x".into(),
            ),
            ("MCP HTTP: call time p50 / p99", format!("{:.2} / {:.2} ms", self.http_p50_ms, self.http_p99_ms), String::new()),
            ("serve RSS idle, warm (cache)", format!("{:.1} MiB", self.idle_warm_rss_mib), "<= 24 MiB".into()),
            ("serve RSS idle, cold, compiles done", format!("{:.1} MiB", self.idle_cold_rss_mib), "<= 40 MiB".into()),
            (
                "serve peak RSS, stdio load",
                format!("{:.1} MiB ({} in flight)", self.stdio_peak_rss_mib, self.stdio_in_flight),
                "<= 36 MiB".into(),
            ),
            ("serve peak RSS, hot swap", format!("{:.1} MiB (file written to optimized code)", self.swap_peak_rss_mib), String::new()),
        ];
        let mut rows: Vec<(String, String, String)> = rows.into_iter().map(|(name, figure, target)| (name.to_string(), figure, target)).collect();
        match &self.languages {
            Some(languages) => rows.extend(languages.rows()),
            None => rows.push((
                "Python and JavaScript hello".into(),
                "not built: run .ci/languages target/debug/toolshed".into(),
                String::new(),
            )),
        }
        match &self.registry {
            Some(registry) => rows.push((
                "plugin from a registry / from disk".into(),
                format!(
                    "{:.2}x ({:.1} / {:.1} ms: pull, verify, first call; {:.0} KiB)",
                    registry.ratio, registry.pull_verify_first_call_ms, registry.disk_first_call_ms, registry.component_kib
                ),
                String::new(),
            )),
            None => rows.push(("plugin from a registry / from disk".into(), "not measured: install docker-registry and apache2-utils".into(), String::new())),
        }
        let mut out = format!("toolshed bench on {} (builds wait {} ms)\n\n", self.machine, self.build_wait_ms);
        out.push_str(&format!("{:<38} {:<48} {}\n", "measure", "figure", "target"));
        for (name, figure, target) in rows {
            out.push_str(&format!("{name:<38} {figure:<48} {target}\n"));
        }
        out.push_str(&format!(
            "\nSettings: every row runs on a runtime built as `serve` builds it (the built-in policy, the compiled cache, \
             the Winch first tier, {} calls at once). The in-process rows drive an in-memory backend whose builds take \
             the wait above instead of the local backend. The native baseline runs the same tool logic served as a native \
             JSON tool: arguments parsed from JSON text, the result rendered as a JSON value. \
             The swap rows under load have {} callers calling list_templates without pause on a runtime with an async thread per \
             core. The MCP rows run `toolshed serve` itself; the HTTP row with \
             --calls-per-caller {} so one caller may fill every connection.\n",
            self.serve_capacity, SWAP_LOAD_CALLERS, self.http_connections
        ));
        out
    }
}
