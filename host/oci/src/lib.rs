//! Plugins from OCI registries.
//!
//! A plugin is pushed as the CNCF wasm OCI artifact (config
//! `application/vnd.wasm.config.v0+json`, one `application/wasm` layer),
//! pulled by tag or digest, and kept by content address in the data
//! directory, so a host that restarts without its registry serves from
//! there. Before a layer is downloaded, the manifest's digest must be
//! signed, cosign-style, by a key the trust policy names for the
//! registry or namespace; everything is checked in the process.
//!
//! - [`reference`]: `oci://HOST/REPO:TAG` and `@sha256:…` references;
//! - [`artifact`]: the wasm artifact's manifest, written and checked;
//! - [`registry`]: the distribution protocol with bounded reads;
//! - [`store`]: blobs by content address;
//! - [`pull`]: the order of the checks, the store before the registry;
//! - [`signature`]: cosign's keyed simple-signing signatures;
//! - [`trust`]: which key is trusted where;
//! - [`lock`]: `plugins.toml`, `plugins.lock` and what installs from them.

#![deny(missing_docs)]

pub mod artifact;
pub mod error;
pub mod lock;
pub mod pull;
pub mod reference;
pub mod registry;
pub mod signature;
pub mod store;
pub mod trust;

pub use error::OciError;
pub use reference::PluginRef;
pub use registry::{Credentials, Registry, RegistryOptions};
pub use store::BlobStore;
pub use trust::TrustPolicy;

/// The hex SHA-256 of `bytes` as an OCI digest, `sha256:HEX`.
pub fn digest_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(bytes);
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    for byte in hash {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// Installs ring as the process's rustls provider unless one is installed:
/// registries over HTTPS need one, and this crate builds its clients
/// without choosing.
pub fn ensure_tls_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: one is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
