//! The one place the wasmtime [`Config`] is built.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig, Strategy};

/// How often the engine's epoch advances; the unit of guest compute budgets.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Sizes of the instance pool.
#[derive(Debug, Clone)]
pub struct PoolSize {
    /// Calls that can run at once; [`Admission`](crate::admission::Admission) keeps the rest waiting.
    pub concurrent_calls: u32,
    /// The most linear memory one call may use.
    pub memory_bytes: usize,
}

impl Default for PoolSize {
    fn default() -> Self {
        Self { concurrent_calls: crate::admission::DEFAULT_CONCURRENT_CALLS, memory_bytes: 64 << 20 }
    }
}

/// What one call slot reserves in the instance pool. A call of a plugin
/// whose instance needs more holds several slots
/// (the plugin's footprint decides how many: `plugin::Footprint::slots`).
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    /// Core module instances.
    pub core_instances: u32,
    /// Linear memories.
    pub memories: u32,
    /// Tables.
    pub tables: u32,
    /// Memory mappings, measured at ten thousand waiting calls of a Rust
    /// plugin: its pooled stack (with its guard page), its linear memory
    /// (with its copy-on-write image), its tables.
    pub mappings: u32,
}

/// One call slot: a Rust plugin's call fits in one.
pub const SLOT: Slot = Slot { core_instances: 4, memories: 1, tables: 4, mappings: 6 };

/// Memory mappings one call slot holds.
pub const MAPPINGS_PER_CALL: u32 = SLOT.mappings;

/// The most one plugin's instance may take, whatever its slots: language
/// runtimes link a dozen or more core modules (componentize-py's
/// `--stub-wasi` build, 38), each with its table.
pub const PER_COMPONENT: Slot = Slot { core_instances: 64, memories: 4, tables: 32, mappings: 0 };

/// Mappings left for everything else a host process maps: its threads'
/// stacks, libraries, heap arenas, the first tier, sockets and files.
pub const MAPPINGS_RESERVED: u32 = 8_192;

/// How many memory mappings the system lets this process have
/// (`vm.max_map_count` on Linux), if it says.
pub fn max_map_count() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count").ok()?.trim().parse().ok()
}

/// The most calls that can run at once within `max_map_count` mappings, at
/// most `requested`. Beyond it, the system would refuse a call's stack or
/// memory mid-flight; within it, the calls past capacity wait in the
/// admission queue and are told the host is busy.
pub fn calls_within_mapping_limit(requested: u32, max_map_count: Option<u32>) -> u32 {
    match max_map_count {
        Some(limit) => requested.min(limit.saturating_sub(MAPPINGS_RESERVED) / MAPPINGS_PER_CALL).max(1),
        None => requested,
    }
}

/// An engine for plugins: async, component model, pooled instances with
/// copy-on-write memory images, and epoch interruption.
///
/// # Errors
///
/// When the platform cannot reserve the pool's address space.
pub fn build(pool: &PoolSize) -> wasmtime::Result<(Engine, Arc<AtomicU64>)> {
    let mut config = sandbox_config(pool);

    let mut pooling = PoolingAllocationConfig::default();
    // Sized in call slots: a call holds as many as its plugin's footprint
    // fills, so these pools are never asked for more than they have.
    pooling.total_component_instances(pool.concurrent_calls);
    pooling.total_core_instances(pool.concurrent_calls * SLOT.core_instances);
    pooling.total_memories(pool.concurrent_calls * SLOT.memories);
    pooling.total_tables(pool.concurrent_calls * SLOT.tables);
    pooling.total_stacks(pool.concurrent_calls);
    pooling.max_memory_size(pool.memory_bytes);
    pooling.max_core_instances_per_component(PER_COMPONENT.core_instances);
    pooling.max_memories_per_component(PER_COMPONENT.memories);
    pooling.max_tables_per_component(PER_COMPONENT.tables);
    // Resetting a used slot with madvise costs a TLB shootdown on every core.
    // Keep the low part of each memory resident and reset only its dirty
    // pages with memset (PAGEMAP_SCAN, Linux 6.7+), and batch what is left.
    pooling.linear_memory_keep_resident(2 << 20);
    pooling.table_keep_resident(64 << 10);
    pooling.pagemap_scan(Enabled::Auto);
    pooling.decommit_batch_size(16);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));

    let engine = Engine::new(&config)?;
    let epoch = Arc::new(AtomicU64::new(0));
    start_epoch_ticker(&engine, Some(epoch.clone()));
    Ok((engine, epoch))
}

/// An engine for the first tier: Winch, wasmtime's baseline compiler, which
/// compiles a plugin in a fraction of Cranelift's time into slower code. A
/// changed plugin serves from it while Cranelift compiles in the background.
///
/// The sandbox is the same: epoch interruption, the same memory limits,
/// async calls. Instances are allocated on demand rather than pooled, since
/// a first-tier version serves for well under a second, and a second pool
/// would double the address space reserved.
///
/// # Errors
///
/// When this platform has no Winch backend (Winch targets x86-64 and
/// AArch64), or the configuration is refused.
pub fn build_first_tier(pool: &PoolSize) -> wasmtime::Result<Engine> {
    let mut config = sandbox_config(pool);
    config.strategy(Strategy::Winch);
    // Winch compiles the wasm functions; Cranelift still compiles the
    // trampolines between host and guest. Left unoptimized they cost no
    // measurable time per call for the half second this code serves, and
    // take up to a tenth off the compile a swap waits for.
    config.cranelift_opt_level(OptLevel::None);
    let engine = Engine::new(&config)?;
    // The shared epoch counter is advanced by the main engine's ticker alone,
    // so compute budgets count ticks once.
    start_epoch_ticker(&engine, None);
    Ok(engine)
}

/// The settings both tiers share: what the sandbox needs.
fn sandbox_config(pool: &PoolSize) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.memory_init_cow(true);
    // Small reservations keep the pool's address space in check at
    // thousands of slots; the cost is explicit bounds checks.
    config.memory_reservation(pool.memory_bytes as u64);
    config.memory_guard_size(64 << 10);
    config.memory_reservation_for_growth(0);
    config.max_wasm_stack(512 << 10);
    config
}

/// Advances the engine's epoch, and `epoch` with it when given, every
/// [`EPOCH_TICK`] until the engine is dropped.
fn start_epoch_ticker(engine: &Engine, epoch: Option<Arc<AtomicU64>>) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("toolshed-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                if let Some(epoch) = &epoch {
                    epoch.fetch_add(1, Ordering::Relaxed);
                }
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_capacity_fits_the_mapping_limit_and_never_exceeds_the_request() {
        // Linux's default limit: 9,556 calls of 6 mappings beside the reserve.
        assert_eq!(calls_within_mapping_limit(10_000, Some(65_530)), 9_556);
        assert_eq!(calls_within_mapping_limit(50_000, Some(65_530)), 9_556);
        // A raised limit lets the request through whole.
        assert_eq!(calls_within_mapping_limit(50_000, Some(1_048_576)), 50_000);
        assert_eq!(calls_within_mapping_limit(64, Some(65_530)), 64);
        // A limit below the reserve still runs one call; no limit known, no clamp.
        assert_eq!(calls_within_mapping_limit(10_000, Some(100)), 1);
        assert_eq!(calls_within_mapping_limit(10_000, None), 10_000);
    }
}
