//! Why a plugin from a registry was refused. Every refusal of content names
//! the reference and the digest it concerns.

/// A registry operation that failed, or content that was refused.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// A reference that cannot be parsed.
    #[error("{reference:?} is not a plugin reference: {reason} (write oci://HOST/REPOSITORY:TAG or oci://HOST/REPOSITORY@sha256:DIGEST)")]
    BadReference {
        /// What was given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing answers at the registry's address.
    #[error("registry {registry} is unreachable: {reason}")]
    Unreachable {
        /// The registry's host and port.
        registry: String,
        /// What the connection said.
        reason: String,
    },
    /// The registry took longer than allowed.
    #[error("registry {registry} did not answer {what} within {seconds} s")]
    Timeout {
        /// The registry's host and port.
        registry: String,
        /// What was asked.
        what: String,
        /// The limit.
        seconds: u64,
    },
    /// The registry refused the credentials, or wants some.
    #[error("registry {registry} refused access to {reference}: {reason}")]
    Unauthorized {
        /// The registry's host and port.
        registry: String,
        /// The reference.
        reference: String,
        /// What it said.
        reason: String,
    },
    /// The registry has no such manifest or blob.
    #[error("{reference}: {what} not found in the registry")]
    NotFound {
        /// The reference.
        reference: String,
        /// What is missing.
        what: String,
    },
    /// Any other answer the registry should not have given.
    #[error("{reference}: the registry answered {what}: {reason}")]
    Registry {
        /// The reference.
        reference: String,
        /// What was asked.
        what: String,
        /// What came back.
        reason: String,
    },
    /// A manifest or blob larger than allowed; reading stopped at the limit.
    #[error("{reference}: the {what} is larger than {limit} bytes; refused without reading the rest")]
    TooLarge {
        /// The reference.
        reference: String,
        /// What was too large.
        what: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// A manifest list (image index) where one plugin was expected.
    #[error("{reference} ({digest}) is a manifest list ({media_type}), not a wasm component: push the component itself with `toolshed plugin push`")]
    ManifestList {
        /// The reference.
        reference: String,
        /// The list's digest.
        digest: String,
        /// Its media type.
        media_type: String,
    },
    /// A manifest that is not the wasm component artifact.
    #[error("{reference} ({digest}) is not a wasm component artifact: {reason}")]
    NotAComponent {
        /// The reference.
        reference: String,
        /// The manifest's digest.
        digest: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Content whose digest is not the one asked for.
    #[error("{reference}: digest mismatch: the {what} should be {expected} but its content hashes to {actual}")]
    DigestMismatch {
        /// The reference.
        reference: String,
        /// What was fetched (the manifest, the layer).
        what: String,
        /// The digest asked for.
        expected: String,
        /// The digest of what came.
        actual: String,
    },
    /// No signature at all for the digest.
    #[error("{reference} ({digest}) is unsigned: no signature at {signature_tag}; sign it with `toolshed plugin sign` or cosign")]
    Unsigned {
        /// The reference.
        reference: String,
        /// The manifest digest.
        digest: String,
        /// Where its signature would be.
        signature_tag: String,
    },
    /// Signatures exist, but none verifies with the trusted key.
    #[error("{reference} ({digest}) is not signed by the key trusted for {trusted_for}: none of its {count} signatures verifies with it")]
    WrongKey {
        /// The reference.
        reference: String,
        /// The manifest digest.
        digest: String,
        /// The trust entry whose key was used.
        trusted_for: String,
        /// How many signatures were tried.
        count: usize,
    },
    /// A valid signature of another digest.
    #[error("{reference} ({digest}): its signature is for {signed}, not this digest: the signature was copied from another version")]
    SignedForAnother {
        /// The reference.
        reference: String,
        /// The manifest digest.
        digest: String,
        /// The digest the signature names.
        signed: String,
    },
    /// No key is trusted for the reference's registry or namespace.
    #[error("{reference}: no key is trusted for {repository}: add [trust.\"{repository}\"] with its public key to plugins.toml")]
    Untrusted {
        /// The reference.
        reference: String,
        /// The registry and repository.
        repository: String,
    },
    /// A key or signature file that cannot be used.
    #[error("{0}")]
    Key(String),
    /// The local store or a file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A plugins file or lock that cannot be used.
    #[error("{0}")]
    Config(String),
}

impl OciError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> OciError {
        OciError::Io { what: what.into(), source }
    }
}
