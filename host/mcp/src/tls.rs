//! TLS for the HTTPS this crate makes (fetching an issuer's keys): rustls
//! over ring, the process's provider unless the embedder chose another.

/// Installs ring as the process's rustls provider, unless one already is.
pub fn ensure_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: one is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
