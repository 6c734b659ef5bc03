//! [`Runtime`]: the engine, the linker and the policy plugins are compiled under.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use crate::engine::{self, PoolSize};
use crate::plugin::{CacheStats, CompiledCache, LoadError, Plugin};
use crate::policy::Policy;
use crate::reflect::Docs;
use crate::state::CallState;

/// How to build a [`Runtime`].
#[derive(Default)]
pub struct RuntimeBuilder {
    policy: Option<Policy>,
    cache_dir: Option<PathBuf>,
    concurrent_calls: Option<u32>,
}

impl RuntimeBuilder {
    /// The policy plugins are loaded and run under (default: the built-in one).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Keep compiled components in `dir`, so the next start skips compiling.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// How many calls may run at once (default 1,000).
    pub fn concurrent_calls(mut self, calls: u32) -> Self {
        self.concurrent_calls = Some(calls);
        self
    }

    /// Builds the runtime.
    ///
    /// # Errors
    ///
    /// When the engine cannot reserve its pool or the imports cannot be linked.
    pub fn build(self) -> wasmtime::Result<Runtime> {
        let policy = self.policy.unwrap_or_default();
        let pool = PoolSize {
            concurrent_calls: self.concurrent_calls.unwrap_or(PoolSize::default().concurrent_calls),
            memory_bytes: policy.largest_memory(),
        };
        let (engine, epoch) = engine::build(&pool)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        crate::imports::add_to_linker(&mut linker)?;
        Ok(Runtime {
            engine,
            linker,
            epoch,
            policy,
            cache: CompiledCache::new(self.cache_dir),
            compiled: Mutex::new(HashMap::new()),
        })
    }
}

/// The engine, linker and policy plugins are compiled for. One runtime can
/// serve many [`Toolshed`](crate::Toolshed)s, and a plugin compiled once can
/// be served by all of them.
pub struct Runtime {
    engine: Engine,
    linker: Linker<CallState>,
    pub(crate) epoch: Arc<AtomicU64>,
    policy: Policy,
    cache: CompiledCache,
    /// Components compiled by this runtime, with their docs, by wasm hash.
    compiled: Mutex<HashMap<String, (Component, Arc<Docs>)>>,
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

    /// Compiles (or loads from the cache) and links plugin `name`.
    ///
    /// Compiling costs tens of milliseconds of CPU: call this off the async
    /// threads, as [`Toolshed::install`](crate::Toolshed::install) does.
    ///
    /// # Errors
    ///
    /// [`LoadError`] when the bytes are not a usable plugin under the policy.
    pub fn compile(&self, name: &str, bytes: &[u8]) -> Result<Plugin, LoadError> {
        let invalid = |reason: String| LoadError::Invalid { plugin: name.to_string(), reason };
        let hash: String = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
        let known = self.compiled.lock().unwrap_or_else(|e| e.into_inner()).get(&hash).cloned();
        let (component, docs) = match known {
            Some(known) => known,
            None => {
                let docs = Arc::new(Docs::from_component(bytes).map_err(|e| invalid(format!("{e:#}")))?);
                let component = self.cache.load_or_compile(&self.engine, bytes, &hash).map_err(|e| invalid(format!("{e:#}")))?;
                let known = (component, docs);
                self.compiled.lock().unwrap_or_else(|e| e.into_inner()).insert(hash.clone(), known.clone());
                known
            }
        };
        Plugin::from_component(&self.engine, &self.linker, name, &component, &docs, hash, self.policy.plugin(name))
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
