//! The hello plugin written in Python and in JavaScript against the same
//! plugin in Rust, each against its own in one run: the warm call in
//! process and over MCP stdio, the optimized and the first-tier compile, a
//! changed plugin's swap to its first call served, a restart from the
//! compiled cache to its first call, and what one instance costs (its
//! memory image, the pages a warm call faults in, its core instances). The
//! components are those `toolshed test` builds in `guest/hello*/build`; the
//! rows are left out when one of them is not built.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use serde_json::json;
use toolshed_runtime::Tier;

use super::stdio::{ROUNDS, Server};
use super::{current_thread, distinct, hosted, hosted_call, median, serve_runtime};

/// One language's hello plugin, measured.
#[derive(Debug, Clone, Serialize)]
pub struct Hello {
    /// The component's size.
    pub component_kib: f64,
    /// Median in-process time of a warm greet call.
    pub call_us: f64,
    /// Median time of a warm greet call over MCP stdio to `toolshed serve`,
    /// one call in flight.
    pub stdio_call_us: f64,
    /// Cranelift's compile of the component.
    pub compile_ms: f64,
    /// Winch's compile of the component: the first tier.
    pub first_tier_ms: f64,
    /// A changed version written to a watched directory, to its first call
    /// answered (from the first tier).
    pub swap_first_call_ms: f64,
    /// Loading its compiled code from the cache, as a restart does.
    pub cache_load_ms: f64,
    /// A restart's load from the cache to its first call answered.
    pub cache_first_call_ms: f64,
    /// The call slots one call holds.
    pub slots: u32,
    /// Core module instances one instance makes.
    pub core_instances: u32,
    /// Initial linear memory of one instance, all memories, in KiB.
    pub initial_memory_kib: f64,
    /// Bytes its data segments copy into memory at instantiation, in KiB:
    /// the memory image the pool maps copy-on-write.
    pub memory_image_kib: f64,
    /// Minor page faults of one warm call (each a 4 KiB page first touched).
    pub faults_per_call: f64,
}

/// The three hello plugins.
#[derive(Debug, Clone, Serialize)]
pub struct Languages {
    /// Rust: the baseline.
    pub rust: Hello,
    /// Python, built by componentize-py.
    pub python: Hello,
    /// JavaScript, built by componentize-js.
    pub javascript: Hello,
}

fn project(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest").join(name)
}

/// Where `toolshed test` leaves the hello plugin of `project`.
fn built(name: &str) -> Option<Vec<u8>> {
    std::fs::read(project(name).join("build/hello.wasm")).ok()
}

/// Measures the three, or `None` when one is not built.
///
/// # Errors
///
/// When a plugin does not load or a runtime cannot be built.
pub fn measure(samples: usize) -> anyhow::Result<Option<Languages>> {
    let (Some(rust), Some(python), Some(javascript)) = (built("hello"), built("hello-python"), built("hello-javascript")) else {
        return Ok(None);
    };
    let swaps = if samples < 100 { 1 } else { 3 };
    let mut measured = Vec::new();
    for (name, bytes) in [("hello", &rust), ("hello-python", &python), ("hello-javascript", &javascript)] {
        measured.push((name, hello(bytes, samples, swaps).with_context(|| format!("measuring {name}"))?));
    }
    // Over stdio, the three servers take turns, so a burst of other work
    // on the machine falls on all of them alike.
    let calls = samples.clamp(10, 200);
    let mut servers = Vec::new();
    for (name, (_, data)) in &measured {
        servers.push(stdio_server(name, data.path()).with_context(|| format!("serving {name} over stdio"))?);
    }
    let mut per_call: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
    for server in &mut servers {
        server.call_one_by_one("greet", &json!({ "name": "Ada" }), calls.min(50))?;
    }
    for _ in 0..ROUNDS {
        for (server, times) in servers.iter_mut().zip(&mut per_call) {
            let started = Instant::now();
            server.call_one_by_one("greet", &json!({ "name": "Ada" }), calls)?;
            times.push(started.elapsed().as_secs_f64() * 1e6 / calls as f64);
        }
    }
    let mut all = measured.into_iter().zip(per_call).map(|((_, (mut hello, _)), times)| {
        hello.stdio_call_us = median(times);
        hello
    });
    let (rust, python, javascript) = (all.next().context("rust")?, all.next().context("python")?, all.next().context("javascript")?);
    Ok(Some(Languages { rust, python, javascript }))
}

/// `toolshed serve` over stdio with `project`'s plugin and policy, in the
/// data directory whose cache already holds its optimized code.
fn stdio_server(name: &str, data: &Path) -> anyhow::Result<Server> {
    let plugins = data.join("plugins");
    std::fs::create_dir_all(&plugins)?;
    std::fs::copy(project(name).join("build/hello.wasm"), plugins.join("hello.wasm"))?;
    let (plugins, policy) = (plugins.display().to_string(), project(name).join("policy.toml").display().to_string());
    let mut server = Server::start_in(data, &["--plugins", &plugins, "--policy", &policy])?;
    server.initialize_for("greet")?;
    Ok(server)
}

/// Measures one plugin in process; returns the data directory whose cache
/// holds its optimized code, for the stdio rows.
fn hello(bytes: &[u8], samples: usize, swaps: usize) -> anyhow::Result<(Hello, tempfile::TempDir)> {
    let data = tempfile::tempdir()?;
    let tokio = current_thread();
    let arguments = r#"{"name":"Ada"}"#;
    let (call_us, compile_ms, slots, faults_per_call) = {
        let runtime = serve_runtime(data.path())?;
        let started = Instant::now();
        let plugin = Arc::new(runtime.compile("hello", bytes)?);
        let compile_ms = started.elapsed().as_secs_f64() * 1e3;
        let host = hosted(&runtime, &plugin, 1, 0);
        tokio.block_on(hosted_call(&host, "greet", arguments, 10));
        // The calls run on this thread: its faults are theirs.
        let faults = thread_minor_faults();
        tokio.block_on(hosted_call(&host, "greet", arguments, samples));
        let faults_per_call = (thread_minor_faults() - faults) as f64 / samples as f64;
        (tokio.block_on(hosted_call(&host, "greet", arguments, samples)), compile_ms, plugin.slots, faults_per_call)
    };
    let first_tier_ms = {
        let scratch = tempfile::tempdir()?;
        let runtime = serve_runtime(scratch.path())?;
        let started = Instant::now();
        let plugin = runtime.compile_first_tier("hello", &distinct(bytes, 7))
            .context("this runtime has no first tier")??;
        anyhow::ensure!(plugin.tier == Tier::Baseline, "the first tier made {} code", plugin.tier.name());
        started.elapsed().as_secs_f64() * 1e3
    };
    let swap_first_call_ms = swap_to_first_call(bytes, swaps)?;
    // One serve-sized runtime at a time: each pool holds its mappings.
    let (cache_load_ms, cache_first_call_ms) = {
        let restarted = serve_runtime(data.path())?;
        let started = Instant::now();
        let plugin = Arc::new(restarted.compile("hello", bytes)?);
        let cache_load_ms = started.elapsed().as_secs_f64() * 1e3;
        anyhow::ensure!(restarted.cache_stats().loaded() == 1, "the restart did not load from the cache");
        let host = hosted(&restarted, &plugin, 1, 0);
        tokio.block_on(hosted_call(&host, "greet", arguments, 1));
        (cache_load_ms, started.elapsed().as_secs_f64() * 1e3)
    };
    let image = MemoryImage::of(bytes)?;
    let footprint = toolshed_runtime::plugin::Footprint::of(bytes)?;
    let hello = Hello {
        component_kib: bytes.len() as f64 / 1024.0,
        call_us,
        stdio_call_us: f64::NAN,
        compile_ms,
        first_tier_ms,
        swap_first_call_ms,
        cache_load_ms,
        cache_first_call_ms,
        slots,
        core_instances: footprint.core_instances,
        initial_memory_kib: image.initial_bytes as f64 / 1024.0,
        memory_image_kib: image.data_bytes as f64 / 1024.0,
        faults_per_call,
    };
    Ok((hello, data))
}

/// Median time from a changed version of `bytes` written to a watched
/// directory of a host built as `serve` builds it, to its first call
/// answered. Each swap waits for the optimizing compile it starts, so the
/// next is not measured beside it.
fn swap_to_first_call(bytes: &[u8], swaps: usize) -> anyhow::Result<f64> {
    let (dir, data) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let runtime = serve_runtime(data.path())?;
    let first = Arc::new(runtime.compile("hello", bytes)?);
    let host = Arc::new(hosted(&runtime, &first, 1, 0));
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    tokio.block_on(async {
        let _watch = toolshed_runtime::plugin::watch(host.clone(), dir.path())?;
        let cx = super::context(0);
        let mut times = Vec::new();
        for i in 0..swaps {
            let mut changes = host.subscribe();
            let mut tier_ups = host.subscribe_tier_ups();
            let changed = distinct(bytes, 100 + i as u64);
            let hash = toolshed_runtime::plugin::content_hash(&changed);
            let started = Instant::now();
            std::fs::write(dir.path().join("hello.wasm"), changed)?;
            loop {
                tokio::time::timeout(Duration::from_secs(120), changes.recv()).await??;
                if host.plugin_for("greet").is_some_and(|p| p.hash == hash) {
                    break;
                }
            }
            let out = host.call(&cx, "greet", r#"{"name":"Ada"}"#).await;
            anyhow::ensure!(!out.is_error, "the swapped plugin failed: {}", out.value);
            times.push(started.elapsed().as_secs_f64() * 1e3);
            while tokio::time::timeout(Duration::from_secs(300), tier_ups.recv()).await??.hash != hash {}
        }
        Ok(median(times))
    })
}

/// This thread's minor page faults so far.
fn thread_minor_faults() -> i64 {
    super::stdio::rusage(libc::RUSAGE_THREAD).ru_minflt
}

/// The linear memory a component's instance starts with, over all its
/// core modules: declared initial pages, and the bytes data segments write.
struct MemoryImage {
    initial_bytes: u64,
    data_bytes: u64,
}

impl MemoryImage {
    fn of(bytes: &[u8]) -> anyhow::Result<MemoryImage> {
        use wasmparser::{Parser, Payload};
        let mut image = MemoryImage { initial_bytes: 0, data_bytes: 0 };
        for payload in Parser::new(0).parse_all(bytes) {
            match payload? {
                Payload::MemorySection(memories) => {
                    for memory in memories {
                        let memory = memory?;
                        image.initial_bytes += memory.initial << memory.page_size_log2.unwrap_or(16);
                    }
                }
                Payload::DataSection(segments) => {
                    for segment in segments {
                        image.data_bytes += segment?.data.len() as u64;
                    }
                }
                _ => {}
            }
        }
        Ok(image)
    }
}

impl Languages {
    /// The table's rows: each language against Rust, and against its own
    /// compile.
    pub fn rows(&self) -> Vec<(String, String, String)> {
        let rust = &self.rust;
        let mut rows = vec![(
            "Rust hello: one instance".to_string(),
            format!(
                "{} core instances, {:.0} KiB memory ({:.0} KiB image), {:.0} faults/call",
                rust.core_instances, rust.initial_memory_kib, rust.memory_image_kib, rust.faults_per_call
            ),
            String::new(),
        )];
        for (name, hello) in [("Python", &self.python), ("JavaScript", &self.javascript)] {
            rows.push((
                format!("{name} hello call / Rust, stdio"),
                format!("{:.2}x ({:.0} / {:.0} us)", hello.stdio_call_us / rust.stdio_call_us, hello.stdio_call_us, rust.stdio_call_us),
                "<= 3x".into(),
            ));
            rows.push((
                format!("{name} hello call / Rust, in process"),
                format!("{:.2}x ({:.0} / {:.0} us, {} slots)", hello.call_us / rust.call_us, hello.call_us, rust.call_us, hello.slots),
                String::new(),
            ));
            rows.push((
                format!("{name} hello compile / Rust"),
                format!("{:.0}x ({:.0} / {:.0} ms, {:.0} KiB)", hello.compile_ms / rust.compile_ms, hello.compile_ms, rust.compile_ms, hello.component_kib),
                String::new(),
            ));
            rows.push((
                format!("{name} hello first tier / compile"),
                format!("{:.3}x ({:.0} / {:.0} ms)", hello.first_tier_ms / hello.compile_ms, hello.first_tier_ms, hello.compile_ms),
                String::new(),
            ));
            rows.push((
                format!("{name} hello swap to 1st call / compile"),
                format!("{:.3}x ({:.0} / {:.0} ms)", hello.swap_first_call_ms / hello.compile_ms, hello.swap_first_call_ms, hello.compile_ms),
                "<= 0.25x".into(),
            ));
            rows.push((
                format!("{name} hello cache load / compile"),
                format!("{:.3}x ({:.0} / {:.0} ms)", hello.cache_load_ms / hello.compile_ms, hello.cache_load_ms, hello.compile_ms),
                String::new(),
            ));
            rows.push((
                format!("{name} hello restart to 1st call / compile"),
                format!("{:.3}x ({:.0} / {:.0} ms)", hello.cache_first_call_ms / hello.compile_ms, hello.cache_first_call_ms, hello.compile_ms),
                "<= 0.05x".into(),
            ));
            rows.push((
                format!("{name} hello: one instance"),
                format!(
                    "{} core instances, {:.0} KiB memory ({:.0} KiB image), {:.0} faults/call",
                    hello.core_instances, hello.initial_memory_kib, hello.memory_image_kib, hello.faults_per_call
                ),
                String::new(),
            ));
        }
        rows
    }
}
