//! `toolshed plugin`: plugins in OCI registries. An author pushes a
//! component and signs it; an operator names sources in `plugins.toml`,
//! installs them (resolved, verified and pinned in `plugins.lock`), and
//! updates them, which moves the servers that follow the lock.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use toolshed_oci::lock::{LockFile, PluginsFile, lock_source};
use toolshed_oci::registry::Registries;
use toolshed_oci::{PluginRef, signature};

use crate::app::HostOptions;
use crate::app::registry::store;

/// Plugin commands.
#[derive(Subcommand)]
pub enum PluginCommand {
    /// Pushes a component as the wasm OCI artifact to oci://HOST/REPOSITORY:TAG
    /// and prints its digest.
    Push {
        /// The component (`.wasm`).
        file: PathBuf,
        /// Where: oci://HOST/REPOSITORY:TAG.
        reference: String,
    },
    /// Signs a pushed plugin, cosign-style, with a PKCS#8 PEM P-256 key
    /// (see `keygen`); `cosign verify --key` accepts the signature.
    Sign {
        /// The plugin: oci://HOST/REPOSITORY:TAG or @sha256:DIGEST.
        reference: String,
        /// The private key.
        #[arg(long)]
        key: PathBuf,
    },
    /// Makes a signing key pair: PREFIX.key (private, 0600) and PREFIX.pub
    /// (the public key operators trust).
    Keygen {
        /// Where to write the pair (default: ./signing).
        #[arg(default_value = "signing")]
        prefix: PathBuf,
    },
    /// Adds a source to plugins.toml (with REF), then resolves every source
    /// the lock lacks, verifies it and pins it in plugins.lock.
    Install {
        /// oci://HOST/REPOSITORY:TAG or @sha256:DIGEST; none: what
        /// plugins.toml names already.
        reference: Option<String>,
        /// The plugin's name (default: the repository's last part).
        #[arg(long)]
        name: Option<String>,
    },
    /// Resolves the tags of plugins.toml again, verifies what they name now
    /// and moves plugins.lock to it; servers following the lock swap the
    /// new versions in. A refused version keeps its old pin (exit 1).
    Update {
        /// Only these plugins (default: all).
        names: Vec<String>,
    },
}

/// Runs a plugin command; returns the exit code.
pub async fn run(command: PluginCommand, global: &HostOptions) -> anyhow::Result<i32> {
    let options = global.registry.options()?;
    let registries = Registries::new(options);
    match command {
        PluginCommand::Push { file, reference } => {
            let reference = PluginRef::parse(&reference)?;
            anyhow::ensure!(reference.tag.is_some() && reference.digest.is_none(), "push to a tag: oci://HOST/REPOSITORY:TAG");
            let wasm = std::fs::read(&file).map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
            wasmparser::Parser::is_component(&wasm)
                .then_some(())
                .ok_or_else(|| anyhow::anyhow!("{} is not a WebAssembly component", file.display()))?;
            let pushed = registries.get(&reference.registry)?.push_component(&reference, &wasm).await?;
            println!("pushed {reference}@{}", pushed.digest);
        }
        PluginCommand::Sign { reference, key } => {
            let reference = PluginRef::parse(&reference)?;
            let key = signature::read_signing_key(&key)?;
            let registry = registries.get(&reference.registry)?;
            let digest = match &reference.digest {
                Some(digest) => digest.clone(),
                None => registry.manifest(&reference).await?.1,
            };
            registry.push_signature(&reference, &digest, &key).await?;
            println!("signed {}", reference.pinned(&digest));
        }
        PluginCommand::Keygen { prefix } => {
            let pair = signature::generate();
            let private = with_extension(&prefix, "key");
            let public = with_extension(&prefix, "pub");
            anyhow::ensure!(!private.exists(), "{} exists: not overwriting a key", private.display());
            write_private(&private, pair.private_pem.as_bytes())?;
            std::fs::write(&public, &pair.public_pem).map_err(|e| anyhow::anyhow!("writing {}: {e}", public.display()))?;
            println!("wrote {} (keep it secret) and {} (trust it in plugins.toml)", private.display(), public.display());
        }
        PluginCommand::Install { reference, name } => {
            let path = plugins_toml(global);
            if let Some(reference) = reference {
                let reference = PluginRef::parse(&reference)?;
                let name = name.unwrap_or_else(|| reference.repository.rsplit('/').next().unwrap_or(&reference.repository).to_string());
                PluginsFile::add(&path, &name, &reference)?;
            }
            let file = PluginsFile::read(&path)?;
            let lock = LockFile::read(&file.lock_path())?;
            let pending: Vec<String> = file
                .plugins
                .iter()
                .filter(|(name, source)| lock.plugins.get(*name).is_none_or(|entry| entry.source != source.source.to_string()))
                .map(|(name, _)| name.clone())
                .collect();
            return lock_plugins(global, &registries, &file, lock, &pending).await;
        }
        PluginCommand::Update { names } => {
            let path = plugins_toml(global);
            let file = PluginsFile::read(&path)?;
            for name in &names {
                anyhow::ensure!(file.plugins.contains_key(name), "{} names no plugin {name}", path.display());
            }
            let names = if names.is_empty() { file.plugins.keys().cloned().collect() } else { names };
            let lock = LockFile::read(&file.lock_path())?;
            return lock_plugins(global, &registries, &file, lock, &names).await;
        }
    }
    Ok(0)
}

/// Resolves and verifies plugins `names` of `file`, and writes the lock
/// with those that verified; the others keep their pins. Exit 1 when one
/// was refused.
async fn lock_plugins(global: &HostOptions, registries: &Registries, file: &PluginsFile, mut lock: LockFile, names: &[String]) -> anyhow::Result<i32> {
    let data_dir = global.data_dir.clone().unwrap_or_else(toolshed_local::LocalConfig::default_data_dir);
    let store = store(&data_dir);
    let mut refused = 0;
    let mut changed = false;
    for name in names {
        let source = &file.plugins[name].source;
        match lock_source(source, registries, &store, &file.trust).await {
            Ok(locked) => {
                let before = lock.plugins.get(name).map(|entry| entry.digest.clone());
                if before.as_deref() == Some(locked.entry.digest.as_str()) && lock.plugins[name] == locked.entry {
                    println!("{name}: {source} unchanged at {}", locked.entry.digest);
                } else {
                    match before {
                        Some(before) => println!("{name}: {source} {before} -> {}", locked.entry.digest),
                        None => println!("{name}: {source} pinned at {}", locked.entry.digest),
                    }
                    lock.plugins.insert(name.clone(), locked.entry);
                    changed = true;
                }
            }
            Err(e) => {
                refused += 1;
                eprintln!("refused {name}: {e}");
            }
        }
    }
    if changed || !file.lock_path().exists() {
        lock.write(&file.lock_path())?;
    }
    Ok(i32::from(refused > 0))
}

fn plugins_toml(global: &HostOptions) -> PathBuf {
    global.plugins_toml.clone().unwrap_or_else(|| PathBuf::from("plugins.toml"))
}

fn with_extension(prefix: &Path, extension: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_os_string();
    name.push(".");
    name.push(extension);
    PathBuf::from(name)
}

/// Writes a private key readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    file.write_all(bytes).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    Ok(())
}
