//! Compiled components on disk, keyed by the wasm's hash and the engine's
//! compatibility hash, so a second start loads without compiling.
//!
//! Loading an entry runs `Component::deserialize`, which maps the bytes as
//! native code: whoever can write an entry that loads runs code inside the
//! host. So an entry loads only when it is authenticated: it starts with an
//! HMAC-SHA256 tag, under a key of the cache's own, over the plugin's wasm
//! SHA-256, the engine's compatibility hash and the artifact. The key is 32
//! random bytes in a file only this user may read (0600), made on first use
//! beside the cache directory (`compiled.key` next to `compiled/` in the
//! data directory), so writing into the cache directory is not enough to
//! forge an entry. An entry that fails the check (changed bytes, another
//! plugin's entry renamed, a truncated file, one made under another key or
//! by another engine build) is never deserialized: it is recompiled and
//! rewritten, and the reason is logged.
//!
//! The directory is bounded: after every write, entries of other engine
//! builds are deleted, then the least recently used entries until the
//! cache is within its [`CacheLimits`].

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::compiler::OutOfProcessCompiler;

/// Counters of what the cache did.
#[derive(Debug, Default)]
pub struct CacheStats {
    compiled: AtomicU64,
    compiled_elsewhere: AtomicU64,
    loaded: AtomicU64,
    rejected: AtomicU64,
    deserialized: AtomicU64,
}

impl CacheStats {
    /// Components compiled from wasm.
    pub fn compiled(&self) -> u64 {
        self.compiled.load(Ordering::Relaxed)
    }
    /// Of those, the ones compiled by the out-of-process compiler.
    pub fn compiled_elsewhere(&self) -> u64 {
        self.compiled_elsewhere.load(Ordering::Relaxed)
    }
    /// Components loaded from a cache entry.
    pub fn loaded(&self) -> u64 {
        self.loaded.load(Ordering::Relaxed)
    }
    /// Cache entries found unusable and replaced.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
    /// Entries handed to `Component::deserialize`: only authenticated ones
    /// ever are, so an entry refused by the check never counts here.
    pub fn deserialized(&self) -> u64 {
        self.deserialized.load(Ordering::Relaxed)
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

/// The length of the key and of an entry's tag.
const KEY_BYTES: usize = 32;

/// Where compiled components are kept, if anywhere.
pub struct CompiledCache {
    dir: Option<PathBuf>,
    key_file: Option<PathBuf>,
    /// The key, read or made on first use; `None` when it cannot be had,
    /// and the disk cache is then not used at all.
    key: OnceLock<Option<[u8; KEY_BYTES]>>,
    limits: CacheLimits,
    stats: CacheStats,
    /// Where a component the cache lacks is compiled, when not here.
    elsewhere: Option<Arc<dyn OutOfProcessCompiler>>,
}

impl CompiledCache {
    /// A cache in `dir`, or none (always compile) when `dir` is `None`.
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self::with_limits(dir, CacheLimits::default())
    }

    /// A cache in `dir` that keeps at most what `limits` allow, its key in
    /// the default file ([`CompiledCache::default_key_file`]).
    pub fn with_limits(dir: Option<PathBuf>, limits: CacheLimits) -> Self {
        let key_file = dir.as_deref().and_then(Self::default_key_file);
        Self::with_key_file(dir, key_file, limits)
    }

    /// A cache in `dir` whose entries are authenticated with the key in
    /// `key_file` (made, 0600, if missing). Keep the key where nothing that
    /// may write `dir` can read it.
    pub fn with_key_file(dir: Option<PathBuf>, key_file: Option<PathBuf>, limits: CacheLimits) -> Self {
        Self { dir, key_file, key: OnceLock::new(), limits, stats: CacheStats::default(), elsewhere: None }
    }

    /// Compiles what the cache lacks with `compiler` (falling back to this
    /// process when it fails).
    pub fn compile_elsewhere(mut self, compiler: Arc<dyn OutOfProcessCompiler>) -> Self {
        self.elsewhere = Some(compiler);
        self
    }

    /// The key file of a cache in `dir` unless told otherwise: beside the
    /// directory, named after it (`compiled/` -> `compiled.key`), so that
    /// it is outside what the cache directory holds.
    pub fn default_key_file(dir: &Path) -> Option<PathBuf> {
        let name = dir.file_name()?;
        let mut file = name.to_os_string();
        file.push(".key");
        Some(dir.with_file_name(file))
    }

    /// The key, read or made on first use.
    fn key(&self) -> Option<&[u8; KEY_BYTES]> {
        self.key
            .get_or_init(|| {
                let path = self.key_file.as_ref()?;
                load_or_make_key(path)
                    .inspect_err(|e| tracing::warn!(path = %path.display(), "the compiled cache is off: its key cannot be read or made: {e}"))
                    .ok()
            })
            .as_ref()
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
        let keyed = self.entry_path(engine, wasm_hash).and_then(|path| Some((path, self.key()?)));
        if let Some((path, key)) = &keyed {
            let tag = Tag { key, wasm_hash, engine: &engine_id(engine) };
            match read_entry(engine, path, &tag, &self.stats) {
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
        let component = self.compile(engine, wasm)?;
        self.stats.compiled.fetch_add(1, Ordering::Relaxed);
        if let Some((path, key)) = &keyed {
            let tag = Tag { key, wasm_hash, engine: &engine_id(engine) };
            if let Err(e) = write_entry(&component, path, &tag) {
                tracing::warn!(path = %path.display(), "could not write compiled cache entry: {e:#}");
            }
            if let Err(e) = self.prune(&engine_key(engine)) {
                tracing::warn!("could not prune the compiled cache: {e}");
            }
        }
        Ok(component)
    }

    /// Compiles `wasm`, out of process when a compiler for that is set and
    /// its artifact loads, here otherwise.
    fn compile(&self, engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Component> {
        if let Some(elsewhere) = &self.elsewhere {
            // SAFETY: the artifact is wasmtime's own serialization, made by
            // this executable in a child it started for this compile, as
            // trusted as a compile here; deserialize still refuses one made
            // for another engine configuration.
            let loaded = elsewhere
                .precompile(wasm)
                .and_then(|artifact| unsafe { Component::deserialize(engine, &artifact) }.map_err(|e| anyhow::anyhow!("{e:#}")));
            match loaded {
                Ok(component) => {
                    self.stats.compiled_elsewhere.fetch_add(1, Ordering::Relaxed);
                    return Ok(component);
                }
                Err(e) => tracing::warn!("compiling in this process: the out-of-process compile did not give a usable artifact: {e:#}"),
            }
        }
        Component::new(engine, wasm)
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

/// The engine's compatibility hash in full, as the SHA-256 of what it
/// hashes: what an entry's tag binds it to.
fn engine_id(engine: &Engine) -> [u8; 32] {
    struct Sha256Hasher(Sha256);
    impl Hasher for Sha256Hasher {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            let digest = self.0.clone().finalize();
            u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
        }
    }
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.finalize().into()
}

/// What an entry's tag authenticates besides its artifact, and the key.
struct Tag<'a> {
    key: &'a [u8; KEY_BYTES],
    wasm_hash: &'a str,
    engine: &'a [u8; 32],
}

impl Tag<'_> {
    /// HMAC-SHA256 over a domain label, the wasm's hash, the engine's and
    /// the artifact, each of the first three length-prefixed so no two
    /// inputs run into each other.
    fn mac(&self, artifact: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key).expect("HMAC takes keys of any length");
        for part in [b"toolshed compiled cache entry v1".as_slice(), self.wasm_hash.as_bytes(), self.engine.as_slice()] {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        mac.update(artifact);
        mac
    }
}

/// The component in the entry at `path`, if the entry is there and its tag
/// verifies; nothing reaches `Component::deserialize` before that.
fn read_entry(engine: &Engine, path: &Path, tag: &Tag<'_>, stats: &CacheStats) -> Result<Option<Component>, String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if bytes.len() <= KEY_BYTES {
        return Err(format!("truncated: {} bytes, not even a tag and an artifact", bytes.len()));
    }
    let (stored, artifact) = bytes.split_at(KEY_BYTES);
    // Constant-time comparison, by the hmac crate.
    if tag.mac(artifact).verify_slice(stored).is_err() {
        return Err("its tag does not verify under this cache's key for this plugin and engine \
                    (changed or truncated bytes, another plugin's entry, or one made under another key)"
            .into());
    }
    stats.deserialized.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the artifact was written by `write_entry` from a component
    // this engine configuration compiled for this very wasm: its tag, made
    // with a key only this user can read, binds the wasm's hash, the
    // engine's compatibility hash and these exact bytes.
    unsafe { Component::deserialize(engine, artifact) }.map(Some).map_err(|e| format!("{e:#}"))
}

fn write_entry(component: &Component, path: &Path, tag: &Tag<'_>) -> anyhow::Result<()> {
    let artifact = component.serialize()?;
    let mut bytes = tag.mac(&artifact).finalize().into_bytes().to_vec();
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

/// The key in `path`, or a new random one written there (0600) when the
/// file is missing. A key file others may read, or of the wrong length, is
/// replaced: a key that may have leaked authenticates nothing.
fn load_or_make_key(path: &Path) -> std::io::Result<[u8; KEY_BYTES]> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() == KEY_BYTES && !readable_by_others(path)? => {
            let mut key = [0u8; KEY_BYTES];
            key.copy_from_slice(&bytes);
            return Ok(key);
        }
        Ok(_) => {
            tracing::warn!(path = %path.display(), "the compiled cache's key file is malformed or readable by others; making a new key (every entry will be recompiled)");
            let key = fresh_key()?;
            let partial = write_key_file(path, &key)?;
            std::fs::rename(&partial, path)?;
            return Ok(key);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let key = fresh_key()?;
    let partial = write_key_file(path, &key)?;
    // Link, not rename: when two processes make a key at once, the first
    // link wins and the other reads the winner's key.
    let linked = std::fs::hard_link(&partial, path);
    let _ = std::fs::remove_file(&partial);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let bytes = std::fs::read(path)?;
            bytes.try_into().map_err(|_| std::io::Error::other("another process wrote a key of the wrong length"))
        }
        Err(e) => Err(e),
    }
}

fn fresh_key() -> std::io::Result<[u8; KEY_BYTES]> {
    let mut key = [0u8; KEY_BYTES];
    getrandom::fill(&mut key).map_err(|e| std::io::Error::other(format!("the system's random source failed: {e}")))?;
    Ok(key)
}

/// Writes `key` to a new private file beside `path`, and returns its path.
fn write_key_file(path: &Path, key: &[u8; KEY_BYTES]) -> std::io::Result<PathBuf> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        make_private_dir(dir)?;
    }
    let partial = path.with_extension(format!("key-partial-{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&partial)?;
    file.write_all(key)?;
    file.sync_all()?;
    Ok(partial)
}

/// Creates `dir` (0700 where it is made) with its parents.
fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(unix)]
fn readable_by_others(path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o077 != 0)
}

#[cfg(not(unix))]
fn readable_by_others(_path: &Path) -> std::io::Result<bool> {
    Ok(false)
}
