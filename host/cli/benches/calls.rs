//! Criterion benchmarks of one call's cost: a fresh instance, and the three
//! measured tools hosted against their native baseline (served as a native
//! JSON tool) and their logic alone.
//!
//! `toolshed bench` runs the whole suite (cold start, concurrency, throughput,
//! hot swap) and prints the table the README shows.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use toolshed::bench::native::NativeHost;
use toolshed::bench::{arguments, hosted, native_logic, native_tool, serve_runtime};
use toolshed_builtin as builtin;
use toolshed_runtime::CallContext;

fn calls(c: &mut Criterion) {
    let data = tempfile::tempdir().unwrap();
    let runtime = serve_runtime(data.path()).unwrap();
    let plugin = Arc::new(runtime.compile("workspace-tools", builtin::WORKSPACE_TOOLS).unwrap());
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let host = hosted(&runtime, &plugin, 100, 0);
    let native = NativeHost::new(100);
    let cx = CallContext { chat_id: "chat".into(), owner_id: "owner".into(), owner_name: "bench".into(), organization_id: toolshed::bench::scenario::ORG.into() };

    c.bench_function("instance", |b| {
        b.to_async(&tokio).iter(|| toolshed::bench::instance_cost(&runtime, &plugin, 1));
    });
    for tool in ["list_templates", "read_template", "create_workspace"] {
        let arguments = arguments(tool);
        let mut group = c.benchmark_group(tool);
        group.bench_function("hosted", |b| b.to_async(&tokio).iter(|| host.call(&cx, tool, &arguments)));
        group.bench_function("native", |b| b.iter(|| native_tool(&native, tool, &arguments)));
        group.bench_function("native_logic", |b| b.iter(|| native_logic(&native, tool)));
        group.finish();
    }
}

criterion_group!(benches, calls);
criterion_main!(benches);
