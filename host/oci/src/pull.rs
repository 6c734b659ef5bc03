//! Fetching a plugin so that nothing unverified is kept or served: the
//! manifest (by digest, checked), its shape (one wasm layer), a signature
//! of its digest by the key trusted for its repository, and only then the
//! layer, checked against its digest. The store answers first; the
//! registry only for what it lacks, so a host restarted without its
//! registry serves what it verified before, checking it again.

use crate::artifact::{self, Descriptor};
use crate::registry::Registries;
use crate::signature;
use crate::store::{BlobStore, StoredSignature};
use crate::{OciError, PluginRef, TrustPolicy};

/// A component that passed every check.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The reference, pinned to the manifest's digest.
    pub reference: PluginRef,
    /// The manifest digest.
    pub digest: String,
    /// The component's (layer's) digest.
    pub wasm_digest: String,
    /// The component.
    pub wasm: Vec<u8>,
}

/// The signatures among `signatures` that sign `digest` under the key
/// trusted for `reference`.
///
/// # Errors
///
/// [`OciError::Unsigned`] when there are none at all,
/// [`OciError::SignedForAnother`] when the trusted key signed another
/// digest, [`OciError::WrongKey`] when no signature verifies with it, and
/// [`OciError::Untrusted`] when no key is trusted for the repository.
pub fn check_signatures(reference: &PluginRef, digest: &str, signatures: &[StoredSignature], trust: &TrustPolicy) -> Result<Vec<StoredSignature>, OciError> {
    let (trusted_for, key) = trust.key_for(reference)?;
    if signatures.is_empty() {
        return Err(OciError::Unsigned {
            reference: reference.to_string(),
            digest: digest.to_string(),
            signature_tag: reference.with_tag(&signature::signature_tag(digest)).to_string(),
        });
    }
    let mut good = Vec::new();
    let mut signed_another = None;
    for stored in signatures {
        if !signature::verifies(key, stored.payload.as_bytes(), &stored.signature) {
            continue;
        }
        match signature::signed_digest(stored.payload.as_bytes()) {
            Some(signed) if signed == digest => good.push(stored.clone()),
            Some(signed) => signed_another = Some(signed),
            None => {}
        }
    }
    if !good.is_empty() {
        return Ok(good);
    }
    match signed_another {
        Some(signed) => Err(OciError::SignedForAnother { reference: reference.to_string(), digest: digest.to_string(), signed }),
        None => Err(OciError::WrongKey { reference: reference.to_string(), digest: digest.to_string(), trusted_for: trusted_for.to_string(), count: signatures.len() }),
    }
}

/// Resolves `source` to a digest (its own, or its tag's in the registry
/// now) and fetches it verified. `online` says whether the registry may be
/// asked for what the store lacks; a tag always needs it.
///
/// # Errors
///
/// Every refusal of [`OciError`]: nothing is stored that did not check,
/// and no component is returned whose signature did not.
pub async fn pull_verified(source: &PluginRef, registries: &Registries, store: &BlobStore, trust: &TrustPolicy, online: bool) -> Result<Verified, OciError> {
    // Refuse before any request when no key could accept it.
    trust.key_for(source)?;
    let registry = || registries.get(&source.registry);
    // Each blob says whether it was fetched: only those are stored below.
    let (reference, manifest, manifest_fetched) = match &source.digest {
        Some(digest) => {
            let reference = source.clone();
            match store.get(digest)? {
                Some(bytes) => (reference, bytes, false),
                None if online => {
                    let (bytes, _) = registry()?.manifest(&reference).await?;
                    (reference, bytes, true)
                }
                None => return Err(missing(&reference, "manifest")),
            }
        }
        None => {
            let (bytes, digest) = registry()?.manifest(source).await?;
            (source.pinned(&digest), bytes, true)
        }
    };
    let digest = reference.digest.clone().expect("pinned above");
    let layer: Descriptor = artifact::component_layer(&reference.to_string(), &digest, &manifest)?;

    let stored = store.signatures(&digest)?;
    let signatures = match check_signatures(&reference, &digest, &stored, trust) {
        Ok(good) => good,
        Err(_) if online => {
            let fetched = registry()?.signatures(&reference, &digest).await?;
            check_signatures(&reference, &digest, &fetched, trust)?
        }
        Err(e) => return Err(e),
    };

    let (wasm, wasm_fetched) = match store.get(&layer.digest)? {
        Some(bytes) => (bytes, false),
        None if online => (registry()?.blob(&reference, &layer, "layer", artifact::MAX_COMPONENT_BYTES).await?, true),
        None => return Err(missing(&reference, "layer")),
    };
    // Kept only now that everything checked; what came from the store is
    // there already.
    if manifest_fetched {
        store.put(&reference.to_string(), "manifest", &digest, &manifest)?;
    }
    if wasm_fetched {
        store.put(&reference.to_string(), "layer", &layer.digest, &wasm)?;
    }
    if stored != signatures {
        store.put_signatures(&digest, &signatures)?;
    }
    Ok(Verified { reference, digest, wasm_digest: layer.digest, wasm })
}

fn missing(reference: &PluginRef, what: &str) -> OciError {
    OciError::NotFound { reference: reference.to_string(), what: format!("{what} (not in the local store, and the registry was not asked)") }
}
