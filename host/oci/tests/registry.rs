//! Against a real registry (Debian's docker-registry on loopback, with
//! htpasswd auth): push, sign, pull by tag and digest, the store that
//! serves without the registry, and every refusal, each naming the
//! reference and the digest.

use std::time::Duration;

use toolshed_harness::registry::{PASSWORD, TestRegistry, USERNAME};
use toolshed_oci::artifact::{self, Descriptor, Manifest};
use toolshed_oci::pull::pull_verified;
use toolshed_oci::registry::Registries;
use toolshed_oci::signature;
use toolshed_oci::{BlobStore, Credentials, OciError, PluginRef, RegistryOptions, TrustPolicy};

fn author() -> RegistryOptions {
    RegistryOptions {
        credentials: Some(Credentials::Basic { username: USERNAME.into(), password: PASSWORD.into() }),
        docker_config: None,
        ca_pem: Vec::new(),
        timeout: Duration::from_secs(10),
        loopback_tls: false,
    }
}

/// A registry, a key trusted for its `tools` namespace, and a store.
struct Setup {
    registry: TestRegistry,
    registries: Registries,
    key: p256::ecdsa::SigningKey,
    trust: TrustPolicy,
    store_dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let registry = TestRegistry::start();
        let key = p256::ecdsa::SigningKey::random(&mut rand_core());
        let mut trust = TrustPolicy::default();
        trust.trust(&format!("{}/tools", registry.host()), *key.verifying_key());
        Setup { registries: Registries::new(author()), registry, key, trust, store_dir: tempfile::tempdir().unwrap() }
    }

    fn store(&self) -> BlobStore {
        BlobStore::new(self.store_dir.path())
    }

    fn reference(&self, tail: &str) -> PluginRef {
        PluginRef::parse(&format!("oci://{}/tools/{tail}", self.registry.host())).unwrap()
    }

    async fn push(&self, tail: &str, wasm: &[u8]) -> (PluginRef, String) {
        let reference = self.reference(tail);
        let registry = self.registries.get(&reference.registry).unwrap();
        let pushed = registry.push_component(&reference, wasm).await.unwrap();
        (reference, pushed.digest)
    }

    async fn push_signed(&self, tail: &str, wasm: &[u8]) -> (PluginRef, String) {
        let (reference, digest) = self.push(tail, wasm).await;
        self.registries.get(&reference.registry).unwrap().push_signature(&reference, &digest, &self.key).await.unwrap();
        (reference, digest)
    }

    async fn pull(&self, reference: &PluginRef) -> Result<toolshed_oci::pull::Verified, OciError> {
        pull_verified(reference, &self.registries, &self.store(), &self.trust, true).await
    }
}

fn rand_core() -> rand::rngs::OsRng {
    rand::rngs::OsRng
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_component_pulls_by_tag_and_by_digest_as_the_bytes_pushed() {
    let setup = Setup::new();
    let (reference, digest) = setup.push_signed("versioned:1", toolshed_fixtures::VERSIONED_V1).await;

    let by_tag = setup.pull(&reference).await.unwrap();
    assert_eq!(by_tag.digest, digest);
    assert_eq!(by_tag.wasm, toolshed_fixtures::VERSIONED_V1);
    assert_eq!(by_tag.wasm_digest, toolshed_oci::digest_of(toolshed_fixtures::VERSIONED_V1));
    let by_digest = setup.pull(&reference.pinned(&digest)).await.unwrap();
    assert_eq!(by_digest.wasm, toolshed_fixtures::VERSIONED_V1);
    // Stored by content address, the manifest and the component both.
    assert!(setup.store().path(&digest).unwrap().exists());
    assert_eq!(setup.store().get(&by_tag.wasm_digest).unwrap().as_deref(), Some(toolshed_fixtures::VERSIONED_V1));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_artifact_is_the_cncf_wasm_one_and_pushing_it_again_changes_no_digest() {
    let setup = Setup::new();
    let (reference, digest) = setup.push("versioned:1", toolshed_fixtures::VERSIONED_V1).await;
    let registry = setup.registries.get(&reference.registry).unwrap();
    let (bytes, fetched) = registry.manifest(&reference).await.unwrap();
    assert_eq!(fetched, digest);
    let manifest: Manifest = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(manifest.media_type.as_deref(), Some("application/vnd.oci.image.manifest.v1+json"));
    assert_eq!(manifest.config.media_type, "application/vnd.wasm.config.v0+json");
    assert_eq!(manifest.layers.len(), 1);
    assert_eq!(manifest.layers[0].media_type, "application/wasm");
    let config = registry.blob(&reference, &manifest.config, "config", 1 << 16).await.unwrap();
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["layerDigests"][0], manifest.layers[0].digest);
    let (_, again) = setup.push("versioned:1", toolshed_fixtures::VERSIONED_V1).await;
    assert_eq!(again, digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_registry_a_pinned_plugin_is_served_from_the_store_and_checked_again() {
    let setup = Setup::new();
    let (reference, digest) = setup.push_signed("versioned:1", toolshed_fixtures::VERSIONED_V1).await;
    setup.pull(&reference).await.unwrap();
    let Setup { registry, registries, trust, store_dir, .. } = setup;
    drop(registry);
    let store = BlobStore::new(store_dir.path());

    let offline = pull_verified(&reference.pinned(&digest), &registries, &store, &trust, false).await.unwrap();
    assert_eq!(offline.wasm, toolshed_fixtures::VERSIONED_V1);
    // The stored signature is checked again: under another key it is refused.
    let mut other = TrustPolicy::default();
    other.trust(&reference.repository_path(), *p256::ecdsa::SigningKey::random(&mut rand_core()).verifying_key());
    let refused = pull_verified(&reference.pinned(&digest), &registries, &store, &other, false).await.unwrap_err();
    assert!(matches!(refused, OciError::WrongKey { .. }), "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsigned_plugin_is_refused_naming_its_reference_and_digest_and_nothing_is_stored() {
    let setup = Setup::new();
    let (reference, digest) = setup.push("versioned:1", toolshed_fixtures::VERSIONED_V1).await;
    let refused = setup.pull(&reference).await.unwrap_err();
    assert!(matches!(refused, OciError::Unsigned { .. }), "{refused}");
    let message = refused.to_string();
    assert!(message.contains(&reference.to_string()) && message.contains(&digest) && message.contains("unsigned"), "{message}");
    assert!(!setup.store().path(&digest).unwrap().exists(), "a refused manifest is not stored");
    assert!(!setup.store().path(&toolshed_oci::digest_of(toolshed_fixtures::VERSIONED_V1)).unwrap().exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signature_by_a_key_not_trusted_for_the_namespace_is_refused() {
    let setup = Setup::new();
    let (reference, digest) = setup.push("versioned:1", toolshed_fixtures::VERSIONED_V1).await;
    let stranger = p256::ecdsa::SigningKey::random(&mut rand_core());
    setup.registries.get(&reference.registry).unwrap().push_signature(&reference, &digest, &stranger).await.unwrap();
    let refused = setup.pull(&reference).await.unwrap_err();
    let message = refused.to_string();
    assert!(matches!(refused, OciError::WrongKey { count: 1, .. }), "{message}");
    assert!(message.contains(&reference.to_string()) && message.contains(&digest) && message.contains("/tools"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signature_copied_from_another_version_is_refused() {
    let setup = Setup::new();
    let (v1, v1_digest) = setup.push_signed("versioned:1", toolshed_fixtures::VERSIONED_V1).await;
    let (v2, v2_digest) = setup.push("versioned:2", toolshed_fixtures::VERSIONED_V2).await;
    // v1's signature manifest, tagged as v2's.
    let registry = setup.registries.get(&v1.registry).unwrap();
    let (signature_manifest, _) = registry.manifest(&v1.with_tag(&signature::signature_tag(&v1_digest))).await.unwrap();
    registry.push_manifest(&v2.with_tag(&signature::signature_tag(&v2_digest)), &signature_manifest, artifact::OCI_MANIFEST).await.unwrap();

    let refused = setup.pull(&v2).await.unwrap_err();
    let message = refused.to_string();
    assert!(matches!(refused, OciError::SignedForAnother { .. }), "{message}");
    assert!(message.contains(&v2_digest) && message.contains(&v1_digest), "{message}");
}

/// Changes one byte of a file the registry serves, keeping its length.
fn tamper(path: &std::path::Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_that_does_not_hash_to_its_digest_is_refused() {
    let setup = Setup::new();
    let (reference, digest) = setup.push_signed("versioned:1", toolshed_fixtures::VERSIONED_V1).await;
    tamper(&setup.registry.blob_file(&digest), 10);
    let refused = setup.pull(&reference.pinned(&digest)).await.unwrap_err();
    let message = refused.to_string();
    assert!(matches!(&refused, OciError::DigestMismatch { what, .. } if what == "manifest"), "{message}");
    assert!(message.contains(&digest) && message.contains(&reference.to_string()), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_layer_is_refused_and_nothing_of_it_is_stored() {
    let setup = Setup::new();
    let (reference, digest) = setup.push_signed("versioned:1", toolshed_fixtures::VERSIONED_V1).await;
    let layer = toolshed_oci::digest_of(toolshed_fixtures::VERSIONED_V1);
    tamper(&setup.registry.blob_file(&layer), 100);
    let refused = setup.pull(&reference).await.unwrap_err();
    let message = refused.to_string();
    assert!(matches!(&refused, OciError::DigestMismatch { what, expected, .. } if what == "layer" && *expected == layer), "{message}");
    assert!(message.contains(&reference.pinned(&digest).to_string()), "{message}");
    assert!(!setup.store().path(&layer).unwrap().exists() && !setup.store().path(&digest).unwrap().exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_layer_of_another_media_type_is_refused_before_it_is_downloaded() {
    let setup = Setup::new();
    let reference = setup.reference("tarball:1");
    let registry = setup.registries.get(&reference.registry).unwrap();
    let config = br#"{"architecture":"wasm","os":"wasip2"}"#;
    registry.push_blob(&reference, config).await.unwrap();
    registry.push_blob(&reference, toolshed_fixtures::VERSIONED_V1).await.unwrap();
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(artifact::OCI_MANIFEST.into()),
        config: Descriptor::of(artifact::WASM_CONFIG, config),
        layers: vec![Descriptor::of("application/vnd.oci.image.layer.v1.tar", toolshed_fixtures::VERSIONED_V1)],
        manifests: None,
    };
    let digest = registry.push_manifest(&reference, &manifest.to_bytes(), artifact::OCI_MANIFEST).await.unwrap();
    registry.push_signature(&reference, &digest, &setup.key).await.unwrap();

    let refused = setup.pull(&reference).await.unwrap_err();
    let message = refused.to_string();
    assert!(matches!(refused, OciError::NotAComponent { .. }), "{message}");
    assert!(message.contains("application/vnd.oci.image.layer.v1.tar") && message.contains(&digest), "{message}");
    assert!(!setup.store().path(&toolshed_oci::digest_of(toolshed_fixtures::VERSIONED_V1)).unwrap().exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_list_is_refused_as_one() {
    let setup = Setup::new();
    let (v1, v1_digest) = setup.push_signed("versioned:1", toolshed_fixtures::VERSIONED_V1).await;
    let registry = setup.registries.get(&v1.registry).unwrap();
    let (v1_manifest, _) = registry.manifest(&v1).await.unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": artifact::OCI_INDEX,
        "manifests": [{ "mediaType": artifact::OCI_MANIFEST, "digest": v1_digest, "size": v1_manifest.len(), "platform": { "architecture": "wasm", "os": "wasip2" } }],
    });
    let list = v1.with_tag("list");
    let digest = registry.push_manifest(&list, &serde_json::to_vec(&index).unwrap(), artifact::OCI_INDEX).await.unwrap();
    registry.push_signature(&list, &digest, &setup.key).await.unwrap();

    let refused = setup.pull(&list).await.unwrap_err();
    let message = refused.to_string();
    assert!(matches!(refused, OciError::ManifestList { .. }), "{message}");
    assert!(message.contains(&digest) && message.contains("manifest list"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_are_refused_by_the_registry_with_a_clear_error() {
    let setup = Setup::new();
    let (reference, _) = setup.push_signed("versioned:1", toolshed_fixtures::VERSIONED_V1).await;
    let mut options = author();
    options.credentials = Some(Credentials::Basic { username: USERNAME.into(), password: "not-the-password".into() });
    let refused = pull_verified(&reference, &Registries::new(options), &setup.store(), &setup.trust, true).await.unwrap_err();
    assert!(matches!(refused, OciError::Unauthorized { .. }), "{refused}");
    assert!(refused.to_string().contains(&setup.registry.host()), "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_come_from_dockers_config_json() {
    use base64::Engine;
    let setup = Setup::new();
    let (reference, _) = setup.push_signed("versioned:1", toolshed_fixtures::VERSIONED_V1).await;
    let dir = tempfile::tempdir().unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USERNAME}:{PASSWORD}"));
    let config = dir.path().join("config.json");
    std::fs::write(&config, serde_json::json!({ "auths": { setup.registry.host(): { "auth": auth } } }).to_string()).unwrap();
    let options = RegistryOptions { credentials: None, docker_config: Some(config), ..author() };
    let pulled = pull_verified(&reference, &Registries::new(options), &setup.store(), &setup.trust, true).await.unwrap();
    assert_eq!(pulled.wasm, toolshed_fixtures::VERSIONED_V1);
}

/// A loopback server that answers `/v2/` and then every request with
/// `answer`, for registries that misbehave.
async fn misbehaving_registry(answer: fn(tokio::net::TcpStream) -> futures_util::future::BoxFuture<'static, ()>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = vec![0u8; 4096];
                let n = stream.read(&mut head).await.unwrap_or(0);
                if String::from_utf8_lossy(&head[..n]).starts_with("GET /v2/ ") {
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}").await;
                    return;
                }
                answer(stream).await;
            });
        }
    });
    addr.to_string()
}

fn trusting(host: &str) -> TrustPolicy {
    let mut trust = TrustPolicy::default();
    trust.trust(host, *p256::ecdsa::SigningKey::random(&mut rand_core()).verifying_key());
    trust
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_manifest_is_cut_off_at_the_limit() {
    let host = misbehaving_registry(|mut stream| {
        Box::pin(async move {
            use tokio::io::AsyncWriteExt;
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/vnd.oci.image.manifest.v1+json\r\ntransfer-encoding: chunked\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = format!("{:x}\r\n{}\r\n", 1 << 16, " ".repeat(1 << 16));
            // Until the client hangs up.
            while stream.write_all(chunk.as_bytes()).await.is_ok() {}
        })
    })
    .await;
    let reference = PluginRef::parse(&format!("oci://{host}/tools/huge:1")).unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let options = RegistryOptions { credentials: None, docker_config: None, ..author() };
    let refused = pull_verified(&reference, &Registries::new(options), &BlobStore::new(store_dir.path()), &trusting(&host), true).await.unwrap_err();
    assert!(matches!(refused, OciError::TooLarge { limit, .. } if limit == artifact::MAX_MANIFEST_BYTES), "{refused}");
    assert!(refused.to_string().contains(&reference.to_string()), "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_that_is_down_is_named_as_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    drop(listener);
    let reference = PluginRef::parse(&format!("oci://{host}/tools/hello:1")).unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let refused = pull_verified(&reference, &Registries::new(author()), &BlobStore::new(store_dir.path()), &trusting(&host), true).await.unwrap_err();
    assert!(matches!(refused, OciError::Unreachable { .. }), "{refused}");
    assert!(refused.to_string().contains(&format!("registry {host} is unreachable")), "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_that_never_answers_is_given_up_on_at_the_timeout() {
    let host = misbehaving_registry(|stream| {
        Box::pin(async move {
            // Holds the connection and says nothing.
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(stream);
        })
    })
    .await;
    let reference = PluginRef::parse(&format!("oci://{host}/tools/slow:1")).unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let options = RegistryOptions { credentials: None, docker_config: None, timeout: Duration::from_millis(300), ..author() };
    let refused = pull_verified(&reference, &Registries::new(options), &BlobStore::new(store_dir.path()), &trusting(&host), true).await.unwrap_err();
    assert!(matches!(refused, OciError::Timeout { .. }), "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_request_is_made_for_a_repository_no_key_is_trusted_for() {
    let setup = Setup::new();
    let reference = PluginRef::parse(&format!("oci://{}/elsewhere/hello:1", setup.registry.host())).unwrap();
    let refused = setup.pull(&reference).await.unwrap_err();
    assert!(matches!(refused, OciError::Untrusted { .. }), "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_registry_is_trusted_through_the_given_ca_and_refused_without_it() {
    let (registry, ca_pem) = TestRegistry::start_tls();
    let reference = PluginRef::parse(&format!("oci://{}/tools/versioned:1", registry.host())).unwrap();
    let key = p256::ecdsa::SigningKey::random(&mut rand_core());
    let mut trust = TrustPolicy::default();
    trust.trust(&reference.repository_path(), *key.verifying_key());
    let store_dir = tempfile::tempdir().unwrap();

    let without_ca = Registries::new(RegistryOptions { loopback_tls: true, ..author() });
    let refused = without_ca.get(&reference.registry).unwrap().push_component(&reference, toolshed_fixtures::VERSIONED_V1).await.err().expect("an unknown CA is refused");
    assert!(refused.to_string().to_lowercase().contains("certificate"), "{refused}");

    let with_ca = Registries::new(RegistryOptions { loopback_tls: true, ca_pem: vec![ca_pem], ..author() });
    let at = with_ca.get(&reference.registry).unwrap();
    let pushed = at.push_component(&reference, toolshed_fixtures::VERSIONED_V1).await.unwrap();
    at.push_signature(&reference, &pushed.digest, &key).await.unwrap();
    let pulled = pull_verified(&reference, &with_ca, &BlobStore::new(store_dir.path()), &trust, true).await.unwrap();
    assert_eq!(pulled.wasm, toolshed_fixtures::VERSIONED_V1);
}
