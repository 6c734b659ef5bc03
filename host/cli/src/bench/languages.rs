//! The hello plugin written in Python and in JavaScript against the same
//! plugin in Rust: the warm per-call cost, the optimized compile, and the
//! load from the compiled cache, each against its own in one run. The
//! components are those `toolshed test` builds in `guest/hello*/build`; the
//! rows are left out when one of them is not built.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::{current_thread, hosted, hosted_call, serve_runtime};

/// One language's hello plugin, measured.
#[derive(Debug, Clone, Serialize)]
pub struct Hello {
    /// The component's size.
    pub component_kib: f64,
    /// Median in-process time of a warm greet call.
    pub call_us: f64,
    /// Cranelift's compile of the component.
    pub compile_ms: f64,
    /// Loading its compiled code from the cache, as a restart does.
    pub cache_load_ms: f64,
    /// The call slots one call holds.
    pub slots: u32,
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

/// Where `toolshed test` leaves the hello plugin of `project`.
fn built(project: &str) -> Option<Vec<u8>> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest").join(project).join("build/hello.wasm")).ok()
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
    Ok(Some(Languages { rust: hello(&rust, samples)?, python: hello(&python, samples)?, javascript: hello(&javascript, samples)? }))
}

fn hello(bytes: &[u8], samples: usize) -> anyhow::Result<Hello> {
    let data = tempfile::tempdir()?;
    let tokio = current_thread();
    let (call_us, compile_ms, slots) = {
        let runtime = serve_runtime(data.path())?;
        let started = Instant::now();
        let plugin = Arc::new(runtime.compile("hello", bytes)?);
        let compile_ms = started.elapsed().as_secs_f64() * 1e3;
        let host = hosted(&runtime, &plugin, 1, 0);
        let arguments = r#"{"name":"Ada"}"#;
        tokio.block_on(hosted_call(&host, "greet", arguments, 10));
        (tokio.block_on(hosted_call(&host, "greet", arguments, samples)), compile_ms, plugin.slots)
    };
    // One serve-sized runtime at a time: each pool holds its mappings.
    let restarted = serve_runtime(data.path())?;
    let started = Instant::now();
    restarted.compile("hello", bytes)?;
    let cache_load_ms = started.elapsed().as_secs_f64() * 1e3;
    Ok(Hello { component_kib: bytes.len() as f64 / 1024.0, call_us, compile_ms, cache_load_ms, slots })
}

impl Languages {
    /// The table's rows: each language against Rust.
    pub fn rows(&self) -> Vec<(String, String, String)> {
        let mut rows = Vec::new();
        for (name, hello) in [("Python", &self.python), ("JavaScript", &self.javascript)] {
            rows.push((
                format!("{name} hello call / Rust"),
                format!("{:.2}x ({:.0} / {:.0} us, {} slots)", hello.call_us / self.rust.call_us, hello.call_us, self.rust.call_us, hello.slots),
                "<= 3x over stdio".into(),
            ));
            rows.push((
                format!("{name} hello compile / Rust"),
                format!("{:.0}x ({:.0} / {:.0} ms, {:.0} KiB)", hello.compile_ms / self.rust.compile_ms, hello.compile_ms, self.rust.compile_ms, hello.component_kib),
                String::new(),
            ));
            rows.push((
                format!("{name} hello cache load / compile"),
                format!("{:.3}x ({:.0} / {:.0} ms)", hello.cache_load_ms / hello.compile_ms, hello.cache_load_ms, hello.compile_ms),
                "<= 0.05x".into(),
            ));
        }
        rows
    }
}
