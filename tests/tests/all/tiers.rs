//! The first tier: a plugin the compiled cache lacks serves first from
//! Winch's baseline code, then moves to Cranelift's optimized code compiled
//! in the background. The move changes no tool list, fails no call, never
//! replaces a newer version, and the sandbox holds on both tiers.

// Winch targets x86-64 and AArch64; elsewhere plugins load without a first tier.
#![cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::broadcast::error::TryRecvError;
use toolshed_fixtures as fixtures;
use toolshed_harness::{OutputExt, TestEnv};
use toolshed_runtime::{LoadError, Runtime, Tier};

/// Long enough for any optimizing compile of a fixture; a bound, not a wait.
const PATIENCE: Duration = Duration::from_secs(120);

fn tiered_runtime(cache: Option<&Path>) -> Arc<Runtime> {
    let mut builder = crate::support::builder().first_tier(true).concurrent_calls(64);
    if let Some(dir) = cache {
        builder = builder.cache_dir(dir);
    }
    Arc::new(builder.build().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_serves_from_baseline_code_then_moves_to_optimized_code_quietly() {
    let runtime = tiered_runtime(None);
    let env = TestEnv::on(runtime.clone(), &[]);
    let mut changes = env.host.subscribe();
    let mut tier_ups = env.host.subscribe_tier_ups();

    let installed = env.host.install("versioned", fixtures::VERSIONED_V1.to_vec()).await.unwrap();
    assert_eq!(installed.tier, Tier::Baseline);
    // A call that starts on the baseline code and is still running (parked
    // in its host sleep) when the optimized code takes over.
    let mut in_flight = Box::pin(env.call("version", json!({})));
    assert!(futures::poll!(&mut in_flight).is_pending());

    let up = tokio::time::timeout(PATIENCE, tier_ups.recv()).await.expect("the optimized code arrives").unwrap();
    assert_eq!((up.plugin.as_str(), up.hash.as_str()), ("versioned", installed.hash.as_str()));
    assert!(up.compile_ms > 0.0);
    let serving = env.host.plugin_for("version").unwrap();
    assert_eq!((serving.tier, serving.hash.as_str()), (Tier::Optimized, installed.hash.as_str()));
    assert_eq!(env.host.generation(), up.generation);
    // Both codes live while the call on the baseline code runs.
    assert_eq!(runtime.live_components(), 2);

    assert_eq!(in_flight.await.ok()["version"], "v1");
    drop(installed);
    assert_eq!(runtime.live_components(), 1, "the baseline code is freed once no call runs on it");
    for _ in 0..5 {
        assert_eq!(env.call("version", json!({})).await.ok()["version"], "v1");
    }
    // One tool-list change, the install's; none for the move.
    assert_eq!(changes.try_recv().unwrap().plugin, "versioned");
    assert!(matches!(changes.try_recv(), Err(TryRecvError::Empty)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_optimized_code_of_a_replaced_version_never_replaces_its_successor() {
    let runtime = tiered_runtime(None);
    let v2 = Arc::new(runtime.compile("versioned", fixtures::VERSIONED_V2).unwrap());
    let env = TestEnv::on(runtime.clone(), &[]);
    let mut tier_ups = env.host.subscribe_tier_ups();

    let v1 = env.host.install("versioned", fixtures::VERSIONED_V1.to_vec()).await.unwrap();
    assert_eq!(v1.tier, Tier::Baseline);
    // v2 is published while v1's optimizing compile is still running.
    env.host.publish(v2.clone()).unwrap();
    assert!(env.host.optimizations_settled(PATIENCE).await);

    assert!(matches!(tier_ups.try_recv(), Err(TryRecvError::Empty)), "v1's optimized code was served over v2");
    assert_eq!(env.host.plugin_for("version").unwrap().hash, v2.hash);
    assert_eq!(env.call("version", json!({})).await.ok()["version"], "v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_keeps_the_optimized_code_so_the_next_start_skips_both_compiles() {
    let cache = tempfile::tempdir().unwrap();
    let first = TestEnv::on(tiered_runtime(Some(&cache.path().join("compiled"))), &[]);
    let baseline = first.host.install("versioned", fixtures::VERSIONED_V1.to_vec()).await.unwrap();
    assert_eq!(baseline.tier, Tier::Baseline);
    assert!(first.host.optimizations_settled(PATIENCE).await);

    let runtime = tiered_runtime(Some(&cache.path().join("compiled")));
    let second = TestEnv::on(runtime.clone(), &[]);
    let loaded = second.host.install("versioned", fixtures::VERSIONED_V1.to_vec()).await.unwrap();
    assert_eq!(loaded.tier, Tier::Optimized);
    assert_eq!((runtime.cache_stats().loaded(), runtime.cache_stats().compiled()), (1, 0));
    assert!(second.host.optimizations_settled(Duration::ZERO).await, "nothing is left to optimize");
    assert_eq!(second.call("version", json!({})).await.ok()["version"], "v1");
}

#[tokio::test(start_paused = true)]
async fn a_hostile_plugin_on_baseline_code_hits_every_limit_and_the_host_serves_on() {
    let runtime = tiered_runtime(None);
    let hostile = runtime.compile_first_tier("hostile", fixtures::HOSTILE).expect("the cache holds no optimized code").unwrap();
    assert_eq!(hostile.tier, Tier::Baseline);
    let env = TestEnv::on(runtime, &[Arc::new(hostile)]);
    for (tool, limit) in [("spin", "compute"), ("allocate", "memory"), ("recurse", "stack"), ("flood_imports", "import_calls")] {
        let out = env.call(tool, json!({})).await;
        assert_eq!(out.err()["limit"], limit, "{tool} on baseline code: {}", out.value);
    }
    assert_eq!(env.call("ping", json!({})).await.ok()["text"], "pong");
}

#[tokio::test(start_paused = true)]
async fn a_corrupt_plugin_is_refused_by_the_first_tier_with_the_reason() {
    let runtime = tiered_runtime(None);
    let env = TestEnv::on(runtime, &[]);
    let err = env.host.install("versioned", b"\0asm\x0d\0\x01\0garbage".to_vec()).await.err().unwrap();
    assert!(matches!(err, toolshed_runtime::LoadError::Invalid { .. }), "{err}");
    assert!(env.host.tools().is_empty());
    assert!(env.host.optimizations_settled(Duration::ZERO).await, "a refused version starts no optimizing compile");
}

/// A plugin Winch cannot compile, written without our guest tooling: its one
/// tool, `answer() -> u32`, returns through a tail call (`return_call`), a
/// proposal Cranelift supports and Winch does not.
fn tail_calling_plugin() -> Vec<u8> {
    use wasm_encoder::{
        Alias, CanonicalFunctionSection, CodeSection, Component, ComponentAliasSection, ComponentExportKind, ComponentExportSection,
        ComponentInstanceSection, ComponentTypeSection, ExportKind, ExportSection, Function, FunctionSection, InstanceSection,
        Instruction, Module, ModuleArg, ModuleSection, PrimitiveValType, TypeSection, ValType,
    };
    let mut types = TypeSection::new();
    types.ty().function([], [ValType::I32]);
    let mut functions = FunctionSection::new();
    functions.function(0).function(0);
    let mut exports = ExportSection::new();
    exports.export("answer", ExportKind::Func, 0);
    let mut code = CodeSection::new();
    let mut answer = Function::new([]);
    answer.instruction(&Instruction::ReturnCall(1)).instruction(&Instruction::End);
    let mut forty_two = Function::new([]);
    forty_two.instruction(&Instruction::I32Const(42)).instruction(&Instruction::End);
    code.function(&answer).function(&forty_two);
    let mut module = Module::new();
    module.section(&types).section(&functions).section(&exports).section(&code);

    let mut core_instances = InstanceSection::new();
    core_instances.instantiate(0, Vec::<(&str, ModuleArg)>::new());
    let mut aliases = ComponentAliasSection::new();
    aliases.alias(Alias::CoreInstanceExport { instance: 0, kind: ExportKind::Func, name: "answer" });
    let mut func_types = ComponentTypeSection::new();
    func_types.function().params(Vec::<(&str, wasm_encoder::ComponentValType)>::new()).result(Some(PrimitiveValType::U32.into()));
    let mut lifted = CanonicalFunctionSection::new();
    lifted.lift(0, 0, []);
    let mut instances = ComponentInstanceSection::new();
    instances.export_items([("answer", ComponentExportKind::Func, 0)]);
    let mut component_exports = ComponentExportSection::new();
    component_exports.export("toolshed:tail/tools@0.1.0", ComponentExportKind::Instance, 0, None);

    let mut component = Component::new();
    component
        .section(&ModuleSection(&module))
        .section(&core_instances)
        .section(&aliases)
        .section(&func_types)
        .section(&lifted)
        .section(&instances)
        .section(&component_exports);
    component.finish()
}

#[tokio::test(start_paused = true)]
async fn a_plugin_the_first_tier_cannot_compile_loads_from_optimized_code() {
    let runtime = tiered_runtime(None);
    let bytes = tail_calling_plugin();
    let refused = runtime.compile_first_tier("tail", &bytes).expect("nothing optimized is at hand");
    assert!(matches!(refused, Err(LoadError::Invalid { .. })), "Winch compiled a tail call");
    let env = TestEnv::on(runtime, &[]);
    let plugin = env.host.install("tail", bytes).await.unwrap();
    assert_eq!(plugin.tier, Tier::Optimized);
    // A result that is not an object is served under `result` (docs/mcp.md).
    assert_eq!(env.call("answer", json!({})).await.ok(), &json!({ "result": 42 }));
    assert!(env.host.optimizations_settled(Duration::ZERO).await, "an optimized version needs no background compile");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_new_versions_ends_on_the_newest_optimized_and_settles() {
    use wasm_encoder::ComponentSection;
    const VERSIONS: u64 = 12;
    let env = TestEnv::on(tiered_runtime(None), &[]);
    let mut newest = None;
    // Written back to back, as a plugin file rewritten in a loop would be:
    // each version serves from Winch code as soon as it is installed.
    for nonce in 0..VERSIONS {
        let mut bytes = crate::support::workspace_tools().to_vec();
        wasm_encoder::CustomSection { name: "toolshed:test-nonce".into(), data: nonce.to_le_bytes().as_slice().into() }.append_to_component(&mut bytes);
        let installed = env.host.install("workspace-tools", bytes).await.unwrap();
        assert_eq!(installed.tier, Tier::Baseline);
        newest = Some(installed);
    }
    assert!(env.host.optimizations_settled(PATIENCE).await);
    let newest = newest.unwrap();
    let serving = env.host.plugin_for("list_templates").unwrap();
    assert_eq!((serving.hash.as_str(), serving.tier), (newest.hash.as_str(), Tier::Optimized));
    // Which versions were skipped depends on timing; the coalescing itself
    // is pinned by host::tests::one_at_a_time_*.
    assert!(!env.call("list_templates", json!({})).await.is_error);
}
