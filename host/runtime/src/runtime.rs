//! [`Runtime`]: the engine, the linker and the policy plugins are compiled under.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use crate::admission::{Admission, DEFAULT_CONCURRENT_CALLS, DEFAULT_QUEUE_WAIT};
use crate::capability::Capability;
use crate::providers::Providers;
use crate::engine::{self, PoolSize};
use crate::plugin::{CacheLimits, CacheStats, Compiled, CompiledCache, Footprint, LoadError, Plugin, Tier};
use crate::policy::{Grant, Policy};
use crate::reflect::Metadata;
use crate::state::CallState;

/// How to build a [`Runtime`].
#[derive(Default)]
pub struct RuntimeBuilder {
    capabilities: Vec<Arc<dyn Capability>>,
    policy: Option<Policy>,
    cache_dir: Option<PathBuf>,
    cache_key_file: Option<PathBuf>,
    concurrent_calls: Option<u32>,
    queue_wait: Option<Duration>,
    cache_limits: CacheLimits,
    first_tier: bool,
    /// The program (and its arguments) that compiles in a child process.
    child_compiler: Option<(PathBuf, Vec<String>)>,
}

impl RuntimeBuilder {
    /// Offers `capability` to plugins whose policy grants its interfaces.
    pub fn capability(mut self, capability: impl Capability) -> Self {
        self.capabilities.push(Arc::new(capability));
        self
    }

    /// The policy plugins are loaded and run under (default: the runtime
    /// interfaces for every plugin, and nothing else).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Keep compiled components in `dir`, so the next start skips compiling.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Where the key that authenticates cache entries is kept (default:
    /// beside the cache directory, `DIR.key`). It is made, 0600, on first
    /// use; keep it where nothing that may write the cache can read it.
    pub fn cache_key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.cache_key_file = Some(path.into());
        self
    }

    /// How much the disk cache may keep (default 64 entries, 512 MiB).
    pub fn cache_limits(mut self, limits: CacheLimits) -> Self {
        self.cache_limits = limits;
        self
    }

    /// How many calls may run at once (default
    /// [`DEFAULT_CONCURRENT_CALLS`](crate::admission::DEFAULT_CONCURRENT_CALLS)).
    /// Each running call holds a few memory mappings, so on Linux the
    /// capacity is lowered, with a warning, to what `vm.max_map_count`
    /// allows ([`engine::calls_within_mapping_limit`]); the default is
    /// lowered the same way, quietly.
    pub fn concurrent_calls(mut self, calls: u32) -> Self {
        self.concurrent_calls = Some(calls);
        self
    }

    /// How long a call waits for a slot when all are taken, before it is
    /// answered "host busy" (default 10 s).
    pub fn queue_wait(mut self, wait: Duration) -> Self {
        self.queue_wait = Some(wait);
        self
    }

    /// Serve a plugin the cache does not hold from Winch, wasmtime's
    /// baseline compiler, while Cranelift compiles it in the background
    /// (default: off; `serve` turns it on). A changed plugin then serves
    /// its first call in a fraction of a Cranelift compile. Where Winch
    /// cannot run (a platform it does not target), plugins load as without it.
    pub fn first_tier(mut self, enabled: bool) -> Self {
        self.first_tier = enabled;
        self
    }

    /// Run the optimizing compile of a plugin the cache lacks in a child
    /// process: `program` with `args`, which reads the component on its
    /// standard input and writes wasmtime's artifact for this runtime's
    /// engine on its standard output (`toolshed precompile`; see
    /// [`crate::plugin::ChildCompiler`]). Default: compile in this process.
    pub fn compile_in_child(mut self, program: impl Into<PathBuf>, args: Vec<String>) -> Self {
        self.child_compiler = Some((program.into(), args));
        self
    }

    /// Builds the runtime.
    ///
    /// # Errors
    ///
    /// When the engine cannot reserve its pool or the imports cannot be linked.
    pub fn build(self) -> wasmtime::Result<Runtime> {
        let policy = self.policy.unwrap_or_default();
        let requested = self.concurrent_calls.unwrap_or(DEFAULT_CONCURRENT_CALLS).max(1);
        let map_limit = engine::max_map_count();
        let capacity = engine::calls_within_mapping_limit(requested, map_limit);
        if capacity < requested {
            let message = format!(
                "vm.max_map_count ({}) leaves room for {capacity} calls at once, not {requested}; calls past it wait or are told the host is busy. \
                 To run {requested}, raise it to at least {} (sysctl -w vm.max_map_count=...)",
                map_limit.unwrap_or(0),
                requested.saturating_mul(engine::MAPPINGS_PER_CALL).saturating_add(engine::MAPPINGS_RESERVED)
            );
            // A capacity asked for is worth a warning, once per process; the
            // default fitted to a stock kernel is how things should be.
            static WARNED: std::sync::Once = std::sync::Once::new();
            match self.concurrent_calls {
                Some(_) => WARNED.call_once(|| tracing::warn!(requested, capacity, "{message}")),
                None => tracing::debug!(requested, capacity, "{message}"),
            }
        }
        let pool = PoolSize { concurrent_calls: capacity, memory_bytes: policy.largest_memory() };
        let (engine, epoch) = engine::build(&pool)?;
        let first_tier = if self.first_tier {
            engine::build_first_tier(&pool)
                .inspect_err(|e| tracing::info!("plugins load without a first tier: {e:#}"))
                .ok()
        } else {
            None
        };
        Ok(Runtime {
            engine,
            first_tier,
            capabilities: self.capabilities,
            epoch,
            policy,
            cache: {
                let key_file = self.cache_key_file.or_else(|| self.cache_dir.as_deref().and_then(CompiledCache::default_key_file));
                let cache = CompiledCache::with_key_file(self.cache_dir, key_file, self.cache_limits);
                match self.child_compiler {
                    Some((program, args)) => cache.compile_elsewhere(Arc::new(crate::plugin::ChildCompiler::new(program, args, pool.clone()))),
                    None => cache,
                }
            },
            compiled: Mutex::new(HashMap::new()),
            admission: Admission::new(capacity, self.queue_wait.unwrap_or(DEFAULT_QUEUE_WAIT)),
        })
    }
}

/// The engine, linker and policy plugins are compiled for. One runtime can
/// serve many [`Toolshed`](crate::Toolshed)s, and a plugin compiled once can
/// be served by all of them.
pub struct Runtime {
    engine: Engine,
    /// Winch's engine, when plugins load through a first tier.
    first_tier: Option<Engine>,
    capabilities: Vec<Arc<dyn Capability>>,
    pub(crate) epoch: Arc<AtomicU64>,
    policy: Policy,
    cache: CompiledCache,
    /// Components this runtime compiled and plugins still use, by wasm
    /// hash. Weak: a component no served version and no running call holds
    /// is dropped, code and all.
    compiled: Mutex<HashMap<String, Weak<Compiled>>>,
    admission: Admission,
}

impl Runtime {
    /// A runtime with the built-in policy and no disk cache.
    ///
    /// # Errors
    ///
    /// When the engine cannot be built.
    pub fn new() -> wasmtime::Result<Runtime> {
        Self::builder().build()
    }

    /// A builder for a runtime with other settings.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// Compiles plugin `name` with the baseline compiler, when this runtime
    /// has a first tier and the optimized code is not already at hand (alive
    /// in this runtime, or in the disk cache). `None` means: compile it with
    /// [`Runtime::compile`], which will be quick or is the only way.
    ///
    /// # Errors
    ///
    /// [`LoadError`] when the bytes are not a usable plugin under the policy.
    pub fn compile_first_tier(&self, name: &str, bytes: &[u8]) -> Option<Result<Plugin, LoadError>> {
        let engine = self.first_tier.as_ref()?;
        let hash = crate::plugin::content_hash(bytes);
        let optimized_alive = self.compiled.lock().unwrap_or_else(|e| e.into_inner()).get(&hash).is_some_and(|w| w.strong_count() > 0);
        if optimized_alive || self.cache.entry_path(&self.engine, &hash).is_some_and(|path| path.exists()) {
            return None;
        }
        let compiled = match Self::compiled_with(name, bytes, |bytes| Component::new(engine, bytes)) {
            Ok(compiled) => compiled,
            Err(e) => return Some(Err(e)),
        };
        // Counted among the live components under a key of its own.
        self.remember(format!("{hash}:baseline"), &compiled);
        Some(self.link(engine, name, compiled, hash, Tier::Baseline))
    }

    /// Compiles (or loads from the cache) and links plugin `name`.
    ///
    /// Compiling costs tens of milliseconds of CPU: call this off the async
    /// threads, as [`Toolshed::install`](crate::Toolshed::install) does.
    ///
    /// # Errors
    ///
    /// [`LoadError`] when the bytes are not a usable plugin under the policy.
    pub fn compile(&self, name: &str, bytes: &[u8]) -> Result<Plugin, LoadError> {
        let hash = crate::plugin::content_hash(bytes);
        let known = self.compiled.lock().unwrap_or_else(|e| e.into_inner()).get(&hash).and_then(Weak::upgrade);
        let compiled = match known {
            Some(known) => known,
            None => {
                let compiled = Self::compiled_with(name, bytes, |bytes| self.cache.load_or_compile(&self.engine, bytes, &hash))?;
                self.remember(hash.clone(), &compiled);
                compiled
            }
        };
        self.link(&self.engine, name, compiled, hash, Tier::Optimized)
    }

    /// Plugin `name`'s docs read from `bytes`, and its component as `compile` makes it.
    fn compiled_with(name: &str, bytes: &[u8], compile: impl FnOnce(&[u8]) -> wasmtime::Result<Component>) -> Result<Arc<Compiled>, LoadError> {
        let invalid = |reason: String| LoadError::Invalid { plugin: name.to_string(), reason };
        let metadata = Metadata::from_component(bytes).map_err(|e| invalid(format!("{e:#}")))?;
        let footprint = Footprint::of(bytes).map_err(|e| invalid(format!("{e:#}")))?;
        let component = compile(bytes).map_err(|e| invalid(format!("{e:#}")))?;
        Ok(Arc::new(Compiled { component, metadata, footprint }))
    }

    /// Counts `compiled` among the live components under `key` for as long
    /// as something holds it.
    fn remember(&self, key: String, compiled: &Arc<Compiled>) {
        let mut known = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        known.retain(|_, weak| weak.strong_count() > 0);
        known.insert(key, Arc::downgrade(compiled));
    }

    /// Checks `compiled` against plugin `name`'s policy and links it.
    fn link(&self, engine: &Engine, name: &str, compiled: Arc<Compiled>, hash: String, tier: Tier) -> Result<Plugin, LoadError> {
        let policy = self.policy.plugin(name);
        let linker = self.linker_for(engine, &policy.grants).map_err(|e| LoadError::Link { plugin: name.to_string(), reason: format!("{e:#}") })?;
        Plugin::from_component(engine, &linker, name, compiled, hash, policy, self.provided(), tier, self.admission.capacity())
    }

    /// A linker with WASI, the runtime interfaces, and exactly the
    /// capabilities `grants` select: an interface a plugin was not granted
    /// does not exist for it.
    fn linker_for(&self, engine: &Engine, grants: &[Grant]) -> wasmtime::Result<Linker<CallState>> {
        let mut linker = Linker::new(engine);
        // The packages of `plugin::WASI_PACKAGES_LINKED`: keep the two together.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        crate::interfaces::add_to_linker(&mut linker)?;
        for capability in &self.capabilities {
            let granted = capability.interfaces().iter().any(|interface| grants.iter().any(|g| g.allows(interface)));
            if granted {
                capability.add_to_linker(&mut linker)?;
            }
        }
        Ok(linker)
    }

    /// Every interface this runtime can link, unversioned: the runtime's
    /// own and its capabilities'.
    fn provided(&self) -> Vec<&'static str> {
        let mut interfaces: Vec<&'static str> = crate::interfaces::INTERFACES.to_vec();
        for capability in &self.capabilities {
            interfaces.extend_from_slice(capability.interfaces());
        }
        interfaces
    }

    /// Providers for smoke calls: each capability's empty one.
    pub(crate) fn empty_providers(&self) -> Providers {
        let mut providers = Providers::new();
        for capability in &self.capabilities {
            capability.empty_providers(&mut providers);
        }
        providers
    }

    /// The capabilities the policy grants to some plugin that `providers`
    /// do not answer, each with its granted interfaces.
    pub(crate) fn unprovided(&self, providers: &Providers) -> Vec<(String, Vec<&'static str>)> {
        self.capabilities
            .iter()
            .filter_map(|capability| {
                let granted: Vec<&'static str> = capability.interfaces().iter().copied().filter(|i| self.policy.grants_anywhere(i)).collect();
                (!granted.is_empty() && !capability.provided(providers)).then(|| (capability.name().to_string(), granted))
            })
            .collect()
    }

    /// How many compiled components are alive: held by a served version, a
    /// running call, or anyone else holding a [`Plugin`].
    pub fn live_components(&self) -> usize {
        self.compiled.lock().unwrap_or_else(|e| e.into_inner()).values().filter(|w| w.strong_count() > 0).count()
    }

    /// The gate calls pass before they take an instance slot.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// What the compiled cache did so far.
    pub fn cache_stats(&self) -> &CacheStats {
        self.cache.stats()
    }
}
