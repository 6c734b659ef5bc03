//! TLS for requests to Coder: rustls over ring, the process's provider
//! unless the embedder installed another.

/// Installs ring as the process's rustls provider, unless one already is.
pub fn ensure_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: one is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
