//! TLS for the HTTPS a host makes (an issuer's keys, a Coder deployment,
//! the network plugins are granted): rustls over ring, installed as the
//! process's provider unless the embedder chose another. One setup for
//! every crate of the host.

/// Installs ring as the process's rustls provider, unless one already is.
pub fn ensure_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: one is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
