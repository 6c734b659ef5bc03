//! The built-in workspace tools from a registry against the same file from
//! disk: from nothing (a fresh store) to the first call served, on a host
//! built as `serve` builds it. The registry is Debian's docker-registry on
//! loopback with htpasswd auth; the row is left out when it is not
//! installed. The compiled code of the plugin is alive in the process for
//! both paths, so the ratio is what fetching, verifying and storing add.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use toolshed_harness::registry::{PASSWORD, TestRegistry, USERNAME};
use toolshed_oci::pull::pull_verified;
use toolshed_oci::registry::Registries;
use toolshed_oci::{BlobStore, Credentials, PluginRef, RegistryOptions, TrustPolicy};

use super::{arguments, context, current_thread, instant_host, median, serve_runtime};

/// The registry row.
#[derive(Debug, Clone, Serialize)]
pub struct RegistryFigures {
    /// Median time to pull (manifest, signature, layer), verify, store,
    /// install and serve the first list_templates, in ms.
    pub pull_verify_first_call_ms: f64,
    /// The baseline: reading the file from disk, installing it and serving
    /// the first call, in ms.
    pub disk_first_call_ms: f64,
    /// Registry / disk.
    pub ratio: f64,
    /// The component's size.
    pub component_kib: f64,
}

/// The first list_templates on `host`.
async fn first_call(host: &toolshed_runtime::Toolshed) -> anyhow::Result<()> {
    let out = host.call(&context(0), "list_templates", &arguments("list_templates")).await;
    anyhow::ensure!(!out.is_error, "list_templates failed in the benchmark: {}", out.value);
    Ok(())
}

/// Measures `samples` of each path, or `None` when no registry can start.
///
/// # Errors
///
/// When the registry refuses the push or a measured path fails.
pub fn measure(samples: usize) -> anyhow::Result<Option<RegistryFigures>> {
    let registry = match TestRegistry::try_start() {
        Ok(registry) => registry,
        Err(e) => {
            eprintln!("the registry row is left out: {e}");
            return Ok(None);
        }
    };
    let data = tempfile::tempdir()?;
    let runtime = serve_runtime(data.path())?;
    let wasm = toolshed_builtin::WORKSPACE_TOOLS;
    let file = data.path().join("workspace-tools.wasm");
    std::fs::write(&file, wasm)?;
    let options = RegistryOptions {
        credentials: Some(Credentials::Basic { username: USERNAME.into(), password: PASSWORD.into() }),
        docker_config: None,
        ..RegistryOptions::default()
    };
    let registries = Registries::new(options);
    let reference = PluginRef::parse(&format!("oci://{}/builtin/workspace-tools:bench", registry.host()))?;
    let key = toolshed_oci::signature::new_signing_key();
    let mut trust = TrustPolicy::default();
    trust.trust(&format!("{}/builtin", registry.host()), *key.verifying_key());
    let tokio = current_thread();
    tokio.block_on(async {
        let at = registries.get(&reference.registry)?;
        let pushed = at.push_component(&reference, wasm).await?;
        at.push_signature(&reference, &pushed.digest, &key).await?;
        anyhow::Ok(())
    })?;
    // One of each first, so both find the compiled code alive.
    let (mut from_registry, mut from_disk) = (Vec::new(), Vec::new());
    for sample in 0..=samples {
        let store_dir = tempfile::tempdir()?;
        let store = BlobStore::new(store_dir.path());
        let host = Arc::new(instant_host(&runtime, 100, 0));
        let started = Instant::now();
        tokio.block_on(async {
            let verified = pull_verified(&reference, &registries, &store, &trust, true).await?;
            host.install("workspace-tools", verified.wasm).await?;
            first_call(&host).await
        })?;
        let registry_ms = started.elapsed().as_secs_f64() * 1e3;

        let host = Arc::new(instant_host(&runtime, 100, 0));
        let started = Instant::now();
        tokio.block_on(async {
            let bytes = std::fs::read(&file)?;
            host.install("workspace-tools", bytes).await?;
            first_call(&host).await
        })?;
        let disk_ms = started.elapsed().as_secs_f64() * 1e3;
        if sample > 0 {
            from_registry.push(registry_ms);
            from_disk.push(disk_ms);
        }
    }
    let (pull, disk) = (median(from_registry), median(from_disk));
    Ok(Some(RegistryFigures { pull_verify_first_call_ms: pull, disk_first_call_ms: disk, ratio: pull / disk, component_kib: wasm.len() as f64 / 1024.0 }))
}
