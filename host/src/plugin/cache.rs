//! Compiled components on disk, keyed by the wasm's hash and the engine's
//! compatibility hash, so a second start loads without compiling.
//!
//! Each entry starts with the SHA-256 of the serialized artifact that
//! follows: an entry that was truncated, corrupted or written by another
//! engine build is detected, recompiled and rewritten, never run.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Counters of what the cache did.
#[derive(Debug, Default)]
pub struct CacheStats {
    compiled: AtomicU64,
    loaded: AtomicU64,
    rejected: AtomicU64,
}

impl CacheStats {
    /// Components compiled from wasm.
    pub fn compiled(&self) -> u64 {
        self.compiled.load(Ordering::Relaxed)
    }
    /// Components loaded from a cache entry.
    pub fn loaded(&self) -> u64 {
        self.loaded.load(Ordering::Relaxed)
    }
    /// Cache entries found unusable and replaced.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

/// Where compiled components are kept, if anywhere.
pub struct CompiledCache {
    dir: Option<PathBuf>,
    stats: CacheStats,
}

impl CompiledCache {
    /// A cache in `dir`, or none (always compile) when `dir` is `None`.
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir, stats: CacheStats::default() }
    }

    /// What the cache did so far.
    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    /// The file an artifact of `wasm_hash` is kept in for `engine`.
    pub fn entry_path(&self, engine: &Engine, wasm_hash: &str) -> Option<PathBuf> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hasher.finish();
        self.dir.as_ref().map(|dir| dir.join(format!("{wasm_hash}-{engine_key:016x}.cwasm")))
    }

    /// The component for `wasm`, from the cache when a sound entry exists,
    /// compiled (and stored) otherwise. Cache trouble is logged, never fatal.
    ///
    /// # Errors
    ///
    /// When `wasm` does not compile.
    pub fn load_or_compile(&self, engine: &Engine, wasm: &[u8], wasm_hash: &str) -> wasmtime::Result<Component> {
        let path = self.entry_path(engine, wasm_hash);
        if let Some(path) = &path {
            match read_entry(engine, path) {
                Ok(Some(component)) => {
                    self.stats.loaded.fetch_add(1, Ordering::Relaxed);
                    return Ok(component);
                }
                Ok(None) => {}
                Err(reason) => {
                    self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(path = %path.display(), "ignoring compiled cache entry: {reason}");
                }
            }
        }
        let component = Component::new(engine, wasm)?;
        self.stats.compiled.fetch_add(1, Ordering::Relaxed);
        if let Some(path) = &path
            && let Err(e) = write_entry(&component, path) {
                tracing::warn!(path = %path.display(), "could not write compiled cache entry: {e:#}");
            }
        Ok(component)
    }
}

fn read_entry(engine: &Engine, path: &Path) -> Result<Option<Component>, String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if bytes.len() < 32 {
        return Err("truncated".into());
    }
    let (digest, artifact) = bytes.split_at(32);
    if Sha256::digest(artifact).as_slice() != digest {
        return Err("checksum mismatch".into());
    }
    // SAFETY: the artifact was written by `write_entry` from a component this
    // engine configuration compiled (the file name carries the engine's
    // compatibility hash), and its checksum shows it is unchanged since.
    unsafe { Component::deserialize(engine, artifact) }.map(Some).map_err(|e| format!("{e:#}"))
}

fn write_entry(component: &Component, path: &Path) -> anyhow::Result<()> {
    let artifact = component.serialize()?;
    let mut bytes = Sha256::digest(&artifact).to_vec();
    bytes.extend_from_slice(&artifact);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Write then rename, so a reader never sees half an entry.
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, path)?;
    Ok(())
}
