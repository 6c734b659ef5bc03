//! Blobs by content address in the data directory: `blobs/sha256/HEX`,
//! each written to a temporary file and renamed into place only after its
//! digest checked, and checked again when read, so a blob in the store is
//! whole and is what its name says. Verified signatures are kept beside
//! them, so a host restarted without its registry checks them again.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{OciError, digest_of};

/// A content-addressed store of manifests, components and signatures.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

/// A cosign signature as stored: the signed payload and the signature.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredSignature {
    /// The simple-signing payload, as signed.
    pub payload: String,
    /// The base64 ASN.1 ECDSA signature over it.
    pub signature: String,
}

impl StoredSignature {
    /// The signature `value` of `payload`, when the payload is text.
    pub fn new(payload: Vec<u8>, value: &str) -> Option<StoredSignature> {
        Some(StoredSignature { payload: String::from_utf8(payload).ok()?, signature: value.to_string() })
    }
}

impl BlobStore {
    /// The store under `root` (such as `DATA/oci`), made on first write.
    pub fn new(root: impl Into<PathBuf>) -> BlobStore {
        BlobStore { root: root.into() }
    }

    /// Where the store lives.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of blob `digest`.
    ///
    /// # Errors
    ///
    /// When `digest` is not `sha256:HEX`.
    pub fn path(&self, digest: &str) -> Result<PathBuf, OciError> {
        let digest = crate::reference::parse_digest(digest).map_err(OciError::Config)?;
        Ok(self.root.join("blobs").join("sha256").join(&digest["sha256:".len()..]))
    }

    /// Blob `digest`, if the store has it whole. A blob whose content no
    /// longer hashes to its name is removed and reported missing.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn get(&self, digest: &str) -> Result<Option<Vec<u8>>, OciError> {
        let path = self.path(digest)?;
        match std::fs::read(&path) {
            Ok(bytes) if digest_of(&bytes) == digest => Ok(Some(bytes)),
            Ok(_) => {
                tracing::warn!(%digest, "a stored blob does not hash to its name; it is removed and fetched again");
                let _ = std::fs::remove_file(&path);
                Ok(None)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(OciError::io(format!("reading {}", path.display()), e)),
        }
    }

    /// Stores `bytes` as blob `digest`, once it checked.
    ///
    /// # Errors
    ///
    /// [`OciError::DigestMismatch`] when `bytes` is not `digest` (naming
    /// `reference`), or when the store cannot be written.
    pub fn put(&self, reference: &str, what: &str, digest: &str, bytes: &[u8]) -> Result<(), OciError> {
        let actual = digest_of(bytes);
        if actual != digest {
            return Err(OciError::DigestMismatch { reference: reference.into(), what: what.into(), expected: digest.into(), actual });
        }
        write_atomically(&self.path(digest)?, bytes)
    }

    /// The signatures stored as verified for manifest `digest`.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn signatures(&self, digest: &str) -> Result<Vec<StoredSignature>, OciError> {
        let path = self.signatures_path(digest)?;
        match std::fs::read(&path) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).unwrap_or_default()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(OciError::io(format!("reading {}", path.display()), e)),
        }
    }

    /// Keeps `signatures` as the verified ones of manifest `digest`.
    ///
    /// # Errors
    ///
    /// When the store cannot be written.
    pub fn put_signatures(&self, digest: &str, signatures: &[StoredSignature]) -> Result<(), OciError> {
        write_atomically(&self.signatures_path(digest)?, &serde_json::to_vec(signatures).expect("signatures serialize"))
    }

    fn signatures_path(&self, digest: &str) -> Result<PathBuf, OciError> {
        let digest = crate::reference::parse_digest(digest).map_err(OciError::Config)?;
        Ok(self.root.join("signatures").join(format!("sha256-{}.json", &digest["sha256:".len()..])))
    }
}

/// Writes `bytes` to `path` through a temporary file in its directory and a
/// rename, so a reader sees the old file or the new one, never a part.
///
/// # Errors
///
/// When the directory or file cannot be written.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), OciError> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| OciError::io(format!("making {}", dir.display()), e))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("blob");
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let serial = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temporary = dir.join(format!(".{name}.{}.{serial}.tmp", std::process::id()));
    // No fsync: a blob torn by a crash no longer hashes to its name, and
    // every read checks that, so it is fetched again rather than used.
    let written = std::fs::File::create(&temporary).and_then(|mut file| file.write_all(bytes));
    if let Err(e) = written.and_then(|()| std::fs::rename(&temporary, path)) {
        let _ = std::fs::remove_file(&temporary);
        return Err(OciError::io(format!("writing {}", path.display()), e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_is_stored_by_its_digest_and_a_changed_one_reads_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let digest = digest_of(b"component");
        assert!(store.put("r", "layer", &digest_of(b"other"), b"component").unwrap_err().to_string().contains("digest mismatch"));
        store.put("r", "layer", &digest, b"component").unwrap();
        assert_eq!(store.get(&digest).unwrap().as_deref(), Some(&b"component"[..]));
        std::fs::write(store.path(&digest).unwrap(), b"tampered").unwrap();
        assert_eq!(store.get(&digest).unwrap(), None);
        assert!(!store.path(&digest).unwrap().exists());
    }
}
