//! cosign's keyed signatures: an ECDSA P-256 signature (SHA-256, ASN.1
//! DER, base64) over a "simple signing" payload naming the manifest
//! digest, pushed as a layer of the manifest tagged `sha256-HEX.sig` in
//! the same repository. `cosign verify --key` accepts what
//! [`sign_payload`] makes, and these checks accept what `cosign sign
//! --key` makes. Keys are PEM: public keys as SubjectPublicKeyInfo (what
//! cosign writes to `cosign.pub`), private keys as PKCS#8.

use std::path::Path;

use base64::Engine;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::Signature;
pub use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{Value, json};

use crate::OciError;

/// The media type of a signature layer.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation holding a layer's signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The `type` of a cosign payload.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";
/// The largest signature payload read.
pub const MAX_PAYLOAD_BYTES: u64 = 64 << 10;
/// The most signatures of one digest that are tried.
pub const MAX_SIGNATURES: usize = 16;

/// The tag cosign keeps the signatures of manifest `digest` under.
pub fn signature_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1) + ".sig"
}

/// The payload that signs manifest `digest` of `repository_path`
/// (`HOST/REPOSITORY`).
pub fn payload(repository_path: &str, digest: &str) -> String {
    json!({
        "critical": {
            "identity": { "docker-reference": repository_path },
            "image": { "docker-manifest-digest": digest },
            "type": PAYLOAD_TYPE,
        },
        "optional": null,
    })
    .to_string()
}

/// The manifest digest a payload signs, if it is a cosign payload.
pub fn signed_digest(payload: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(payload).ok()?;
    let critical = value.get("critical")?;
    if critical.get("type")?.as_str()? != PAYLOAD_TYPE {
        return None;
    }
    Some(critical.get("image")?.get("docker-manifest-digest")?.as_str()?.to_string())
}

/// A key pair, as `toolshed plugin keygen` writes it.
pub struct KeyPair {
    /// The private key, PKCS#8 PEM.
    pub private_pem: String,
    /// The public key, SubjectPublicKeyInfo PEM.
    pub public_pem: String,
}

/// A new P-256 signing key from the operating system's randomness.
pub fn new_signing_key() -> SigningKey {
    SigningKey::random(&mut rand::rngs::OsRng)
}

/// A new P-256 key pair, as PEM.
pub fn generate() -> KeyPair {
    let key = new_signing_key();
    let private_pem = key.to_pkcs8_pem(LineEnding::LF).expect("a P-256 key encodes").to_string();
    let public_pem = key.verifying_key().to_public_key_pem(LineEnding::LF).expect("a P-256 key encodes");
    KeyPair { private_pem, public_pem }
}

/// Reads a PKCS#8 PEM private key.
///
/// # Errors
///
/// [`OciError::Key`] naming the file.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, OciError> {
    let text = std::fs::read_to_string(path).map_err(|e| OciError::Key(format!("reading signing key {}: {e}", path.display())))?;
    if text.contains("ENCRYPTED SIGSTORE PRIVATE KEY") || text.contains("ENCRYPTED COSIGN PRIVATE KEY") {
        return Err(OciError::Key(format!(
            "{} is an encrypted cosign key: sign with `cosign sign --key` instead, or use a PKCS#8 key from `toolshed plugin keygen`",
            path.display()
        )));
    }
    SigningKey::from_pkcs8_pem(&text).map_err(|e| OciError::Key(format!("{} is not a PKCS#8 PEM P-256 private key: {e}", path.display())))
}

/// Parses a SubjectPublicKeyInfo PEM P-256 public key (`cosign.pub`).
///
/// # Errors
///
/// [`OciError::Key`] naming `what`.
pub fn parse_public_key(what: &str, pem: &str) -> Result<VerifyingKey, OciError> {
    VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| OciError::Key(format!("{what} is not a PEM P-256 public key: {e}")))
}

/// Signs `payload`: the base64 DER signature cosign writes.
pub fn sign_payload(key: &SigningKey, payload: &[u8]) -> String {
    let signature: Signature = key.sign(payload);
    base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
}

/// Whether `signature` (base64 DER) signs `payload` under `key`.
pub fn verifies(key: &VerifyingKey, payload: &[u8], signature: &str) -> bool {
    let Ok(der) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else { return false };
    let Ok(signature) = Signature::from_der(&der) else { return false };
    key.verify(payload, &signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_signed_with_a_key_verifies_with_its_public_key_only() {
        let pair = generate();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k"), &pair.private_pem).unwrap();
        let key = read_signing_key(&dir.path().join("k")).unwrap();
        let digest = format!("sha256:{}", "b".repeat(64));
        let text = payload("127.0.0.1:5000/tools/hello", &digest);
        let signature = sign_payload(&key, text.as_bytes());
        assert!(verifies(&parse_public_key("k", &pair.public_pem).unwrap(), text.as_bytes(), &signature));
        let other = parse_public_key("other", &generate().public_pem).unwrap();
        assert!(!verifies(&other, text.as_bytes(), &signature));
        assert!(!verifies(&parse_public_key("k", &pair.public_pem).unwrap(), text.replace('b', "c").as_bytes(), &signature));
        assert_eq!(signed_digest(text.as_bytes()), Some(digest.clone()));
        assert_eq!(signature_tag(&digest), format!("sha256-{}.sig", "b".repeat(64)));
    }
}
