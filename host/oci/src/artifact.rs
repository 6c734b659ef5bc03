//! The CNCF wasm OCI artifact: an OCI image manifest whose config is
//! `application/vnd.wasm.config.v0+json` and whose one layer is the
//! component, `application/wasm`. wkg and other wasm tools read it.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{OciError, digest_of};

/// The config media type of a wasm artifact.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// The layer media type of a wasm component.
pub const WASM_LAYER: &str = "application/wasm";
/// An OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// An OCI image index: a manifest list.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker's manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker's image manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The largest manifest read (the limit distribution itself sets on
/// manifests it accepts).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// The largest component accepted.
pub const MAX_COMPONENT_BYTES: u64 = 256 << 20;

/// A descriptor of a manifest: what a blob is, by digest and size.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Its media type.
    pub media_type: String,
    /// Its digest.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// Annotations (cosign keeps a signature in one).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

impl Descriptor {
    /// The descriptor of `bytes` as `media_type`.
    pub fn of(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor { media_type: media_type.into(), digest: digest_of(bytes), size: bytes.len() as u64, annotations: Default::default() }
    }
}

/// An OCI image manifest, as far as this crate reads one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers.
    pub layers: Vec<Descriptor>,
    /// Manifests of a list (present only in an index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests: Option<serde_json::Value>,
}

impl Manifest {
    /// The manifest's bytes as pushed.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a manifest serializes")
    }
}

/// What is pushed for a component: its config, its manifest, their bytes.
pub struct ComponentArtifact {
    /// The config blob.
    pub config: Vec<u8>,
    /// The manifest.
    pub manifest: Vec<u8>,
    /// The manifest's digest: what the artifact is pinned and signed by.
    pub digest: String,
    /// The layer's digest: the component's.
    pub layer_digest: String,
}

/// The artifact of component `wasm`. It holds no timestamp, so the same
/// component always has the same digest.
pub fn component_artifact(wasm: &[u8]) -> ComponentArtifact {
    let layer = Descriptor::of(WASM_LAYER, wasm);
    let config = serde_json::to_vec(&json!({
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [layer.digest],
    }))
    .expect("a config serializes");
    let layer_digest = layer.digest.clone();
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.into()),
        config: Descriptor::of(WASM_CONFIG, &config),
        layers: vec![layer],
        manifests: None,
    }
    .to_bytes();
    ComponentArtifact { digest: digest_of(&manifest), config, manifest, layer_digest }
}

/// Checks that `bytes`, the manifest of `reference` at `digest`, is a wasm
/// component artifact, and returns its component layer.
///
/// # Errors
///
/// [`OciError::ManifestList`] for an index, [`OciError::NotAComponent`]
/// for any other shape, media type or size.
pub fn component_layer(reference: &str, digest: &str, bytes: &[u8]) -> Result<Descriptor, OciError> {
    let not = |reason: String| OciError::NotAComponent { reference: reference.to_string(), digest: digest.to_string(), reason };
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| not(format!("its manifest is not JSON: {e}")))?;
    let media_type = value.get("mediaType").and_then(|m| m.as_str()).unwrap_or_default().to_string();
    if media_type == OCI_INDEX || media_type == DOCKER_LIST || value.get("manifests").is_some() {
        let media_type = if media_type.is_empty() { OCI_INDEX.to_string() } else { media_type };
        return Err(OciError::ManifestList { reference: reference.to_string(), digest: digest.to_string(), media_type });
    }
    let manifest: Manifest = serde_json::from_value(value).map_err(|e| not(format!("its manifest does not read as an OCI image manifest: {e}")))?;
    if manifest.schema_version != 2 {
        return Err(not(format!("schema version {} (only 2 is read)", manifest.schema_version)));
    }
    if !(media_type.is_empty() || media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST) {
        return Err(not(format!("its manifest is of media type {media_type}")));
    }
    if manifest.config.media_type != WASM_CONFIG {
        return Err(not(format!("its config is of media type {}, not {WASM_CONFIG}", manifest.config.media_type)));
    }
    let [layer] = manifest.layers.as_slice() else {
        return Err(not(format!("it has {} layers, not one", manifest.layers.len())));
    };
    if layer.media_type != WASM_LAYER {
        return Err(not(format!("its layer is of media type {}, not {WASM_LAYER}", layer.media_type)));
    }
    crate::reference::parse_digest(&layer.digest).map_err(not)?;
    if layer.size > MAX_COMPONENT_BYTES {
        return Err(not(format!("its layer is {} bytes, more than the {MAX_COMPONENT_BYTES} accepted", layer.size)));
    }
    Ok(layer.clone())
}
