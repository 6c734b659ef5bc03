//! Compiled components on disk, keyed by the wasm's hash and the engine's
//! compatibility hash, so a second start loads without compiling.
//!
//! Each entry starts with the SHA-256 of the serialized artifact that
//! follows: an entry that was truncated, corrupted or written by another
//! engine build is detected, recompiled and rewritten, never run.
//!
//! The directory is bounded: after every write, entries of other engine
//! builds are deleted, then the least recently used entries until the
//! cache is within its [`CacheLimits`].

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

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

/// How much the disk cache may keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// The most entries.
    pub max_entries: usize,
    /// The most bytes in all entries.
    pub max_bytes: u64,
}

impl Default for CacheLimits {
    /// 64 entries and 512 MiB: dozens of plugin versions, each a few MiB.
    fn default() -> Self {
        Self { max_entries: 64, max_bytes: 512 << 20 }
    }
}

/// A half-written entry older than this was left by a process that died.
const STALE_PARTIAL: Duration = Duration::from_secs(3600);

/// Where compiled components are kept, if anywhere.
pub struct CompiledCache {
    dir: Option<PathBuf>,
    limits: CacheLimits,
    stats: CacheStats,
}

impl CompiledCache {
    /// A cache in `dir`, or none (always compile) when `dir` is `None`.
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self::with_limits(dir, CacheLimits::default())
    }

    /// A cache in `dir` that keeps at most what `limits` allow.
    pub fn with_limits(dir: Option<PathBuf>, limits: CacheLimits) -> Self {
        Self { dir, limits, stats: CacheStats::default() }
    }

    /// What the cache did so far.
    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    /// The file an artifact of `wasm_hash` is kept in for `engine`.
    pub fn entry_path(&self, engine: &Engine, wasm_hash: &str) -> Option<PathBuf> {
        let engine_key = engine_key(engine);
        self.dir.as_ref().map(|dir| dir.join(format!("{wasm_hash}-{engine_key}.cwasm")))
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
                    // Mark it used, for the least-recently-used pruning.
                    let _ = std::fs::File::options().append(true).open(path).and_then(|f| f.set_modified(SystemTime::now()));
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
        if let Some(path) = &path {
            if let Err(e) = write_entry(&component, path) {
                tracing::warn!(path = %path.display(), "could not write compiled cache entry: {e:#}");
            }
            if let Err(e) = self.prune(&engine_key(engine)) {
                tracing::warn!("could not prune the compiled cache: {e}");
            }
        }
        Ok(component)
    }

    /// Deletes entries of other engine builds, stale partial files, then the
    /// least recently used entries until the cache is within its limits.
    fn prune(&self, engine_key: &str) -> std::io::Result<()> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let now = SystemTime::now();
        let mut ours = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_string) else { continue };
            let metadata = entry.metadata()?;
            let modified = metadata.modified().unwrap_or(now);
            if name.contains(".partial-") {
                if now.duration_since(modified).unwrap_or_default() > STALE_PARTIAL {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            let Some(stem) = name.strip_suffix(".cwasm") else { continue };
            match stem.rsplit_once('-') {
                Some((_, key)) if key == engine_key => ours.push((modified, metadata.len(), path)),
                // Another engine build's entry can never load here.
                _ => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        // Newest first; keep what fits.
        ours.sort_by(|a, b| b.0.cmp(&a.0));
        let (mut count, mut bytes) = (0usize, 0u64);
        for (_, size, path) in ours {
            count += 1;
            bytes += size;
            if count > self.limits.max_entries || (bytes > self.limits.max_bytes && count > 1) {
                let _ = std::fs::remove_file(&path);
            }
        }
        Ok(())
    }
}

/// The engine's compatibility hash, as the hex suffix of entry names.
fn engine_key(engine: &Engine) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
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
