//! The distribution protocol against one registry. oci-client pushes
//! blobs and manifests and answers the token and basic auth challenges;
//! manifests and blobs are read here, as streams cut off at a limit fixed
//! before the first byte, so a registry that sends a huge or endless body
//! costs at most that limit.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use futures_util::StreamExt;
use oci_client::RegistryOperation;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

use crate::artifact::{self, ComponentArtifact, Descriptor, Manifest};
use crate::signature;
use crate::store::StoredSignature;
use crate::{OciError, PluginRef, digest_of};

/// How a registry is logged in to.
#[derive(Clone, Default)]
pub enum Credentials {
    /// No credentials.
    #[default]
    Anonymous,
    /// A user name and password (htpasswd, or a token service that takes them).
    Basic {
        /// The user.
        username: String,
        /// The password.
        password: String,
    },
    /// A bearer token, sent as it is.
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => write!(f, "anonymous"),
            Credentials::Basic { username, .. } => write!(f, "basic as {username}"),
            Credentials::Bearer(_) => write!(f, "bearer token"),
        }
    }
}

/// How registries are reached.
#[derive(Clone, Debug)]
pub struct RegistryOptions {
    /// Credentials for every registry, from a flag; when none, each
    /// registry's come from `docker_config`.
    pub credentials: Option<Credentials>,
    /// Docker's `config.json`, whose `auths` give credentials per registry.
    pub docker_config: Option<PathBuf>,
    /// PEM certificates to trust besides the system's, for registries
    /// behind a private CA.
    pub ca_pem: Vec<Vec<u8>>,
    /// How long connecting, and each wait for bytes, may take.
    pub timeout: Duration,
    /// Speak HTTPS to loopback registries too (a TLS registry reached
    /// through a local tunnel or port-forward); by default they get plain
    /// HTTP, and every other registry HTTPS.
    pub loopback_tls: bool,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions { credentials: None, docker_config: default_docker_config(), ca_pem: Vec::new(), timeout: Duration::from_secs(30), loopback_tls: false }
    }
}

/// Docker's config file: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`.
pub fn default_docker_config() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => Some(PathBuf::from(dir).join("config.json")),
        None => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker").join("config.json")),
    }
}

#[derive(Deserialize, Default)]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, DockerAuth>,
}

#[derive(Deserialize, Default)]
struct DockerAuth {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    registrytoken: Option<String>,
}

/// The credentials `config.json` at `path` holds for `registry`.
///
/// # Errors
///
/// [`OciError::Config`] when the file exists but cannot be read.
pub fn docker_credentials(path: &std::path::Path, registry: &str) -> Result<Credentials, OciError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Credentials::Anonymous),
        Err(e) => return Err(OciError::Config(format!("reading {}: {e}", path.display()))),
    };
    let config: DockerConfig = serde_json::from_str(&text).map_err(|e| OciError::Config(format!("{} is not docker's config.json: {e}", path.display())))?;
    let entry = config.auths.iter().find(|(key, _)| {
        let key = key.trim_start_matches("https://").trim_start_matches("http://");
        key == registry || key.strip_suffix("/v1/").or_else(|| key.strip_suffix('/')) == Some(registry)
    });
    let Some((_, entry)) = entry else { return Ok(Credentials::Anonymous) };
    if let Some(token) = &entry.registrytoken {
        return Ok(Credentials::Bearer(token.clone()));
    }
    if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
        return Ok(Credentials::Basic { username: username.clone(), password: password.clone() });
    }
    let Some(auth) = &entry.auth else { return Ok(Credentials::Anonymous) };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| OciError::Config(format!("{}: the auth of {registry} is not base64 of USER:PASSWORD", path.display())))?;
    let (username, password) =
        decoded.split_once(':').ok_or_else(|| OciError::Config(format!("{}: the auth of {registry} is not USER:PASSWORD", path.display())))?;
    Ok(Credentials::Basic { username: username.into(), password: password.into() })
}

/// One registry: its host, its clients and its credentials.
pub struct Registry {
    host: String,
    scheme: &'static str,
    client: oci_client::Client,
    http: reqwest::Client,
    credentials: Credentials,
    timeout: Duration,
    /// Authorization headers by repository and operation, with when they
    /// were made: one login serves the requests of a minute.
    logins: Mutex<HashMap<(String, bool), (Option<String>, std::time::Instant)>>,
}

/// How long a login is reused: well inside the shortest token lifetime
/// registries give (60 s by the token specification's default).
const LOGIN_REUSE: Duration = Duration::from_secs(30);

/// The media types a manifest request accepts: the wasm artifact's, and
/// the lists, so that one is refused by name rather than as not found.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json";

impl Registry {
    /// The registry at `host` (with its port). Loopback registries speak
    /// plain HTTP unless `loopback_tls`, every other one HTTPS. Nothing is
    /// sent until asked.
    ///
    /// # Errors
    ///
    /// When a CA certificate or the credentials file cannot be used.
    pub fn connect(host: &str, options: &RegistryOptions) -> Result<Registry, OciError> {
        crate::ensure_tls_provider();
        let plain = crate::reference::is_loopback(host) && !options.loopback_tls;
        let certificates: Vec<oci_client::client::Certificate> = options
            .ca_pem
            .iter()
            .map(|pem| oci_client::client::Certificate { encoding: oci_client::client::CertificateEncoding::Pem, data: pem.clone() })
            .collect();
        let config = oci_client::client::ClientConfig {
            protocol: if plain { oci_client::client::ClientProtocol::Http } else { oci_client::client::ClientProtocol::Https },
            extra_root_certificates: certificates,
            platform_resolver: None,
            connect_timeout: Some(options.timeout),
            read_timeout: Some(options.timeout),
            ..Default::default()
        };
        let mut http = reqwest::Client::builder().connect_timeout(options.timeout).read_timeout(options.timeout);
        for pem in &options.ca_pem {
            let certificate = reqwest::Certificate::from_pem(pem).map_err(|e| OciError::Config(format!("a registry CA certificate is not PEM: {e}")))?;
            http = http.add_root_certificate(certificate);
        }
        let http = http.build().map_err(|e| OciError::Config(format!("building the registry client: {e}")))?;
        let credentials = match (&options.credentials, &options.docker_config) {
            (Some(credentials), _) => credentials.clone(),
            (None, Some(path)) => docker_credentials(path, host)?,
            (None, None) => Credentials::Anonymous,
        };
        Ok(Registry {
            host: host.to_string(),
            scheme: if plain { "http" } else { "https" },
            client: oci_client::Client::new(config),
            http,
            credentials,
            timeout: options.timeout,
            logins: Mutex::new(HashMap::new()),
        })
    }

    /// The registry's host.
    pub fn host(&self) -> &str {
        &self.host
    }

    fn auth(&self) -> RegistryAuth {
        match &self.credentials {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => RegistryAuth::Basic(username.clone(), password.clone()),
            Credentials::Bearer(token) => RegistryAuth::Bearer(token.clone()),
        }
    }

    /// Runs `work` under the registry's timeout, as `what`.
    async fn timed<T>(&self, what: &str, work: impl Future<Output = Result<T, OciError>>) -> Result<T, OciError> {
        // Connecting and a first answer each get the timeout; a whole
        // exchange of small messages gets twice that.
        match tokio::time::timeout(self.timeout * 2, work).await {
            Ok(outcome) => outcome,
            Err(_) => Err(OciError::Timeout { registry: self.host.clone(), what: what.to_string(), seconds: (self.timeout * 2).as_secs().max(1) }),
        }
    }

    /// The Authorization header for `operation` on `reference`: a token
    /// from the registry's token service when it has one, else the basic
    /// credentials, else none.
    async fn authorization(&self, reference: &PluginRef, operation: RegistryOperation) -> Result<Option<String>, OciError> {
        if let Credentials::Bearer(token) = &self.credentials {
            return Ok(Some(format!("Bearer {token}")));
        }
        let key = (reference.repository.clone(), operation == RegistryOperation::Push);
        if let Some((header, made)) = self.logins.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key)
            && made.elapsed() < LOGIN_REUSE
        {
            return Ok(header.clone());
        }
        let token = self
            .timed("the login", async { self.client.auth(&reference.to_oci(), &self.auth(), operation).await.map_err(|e| self.oci_error(reference, "the login", e)) })
            .await?;
        let header = match (token, &self.credentials) {
            (Some(token), _) => Some(format!("Bearer {token}")),
            (None, Credentials::Basic { username, password }) => {
                Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))))
            }
            (None, _) => None,
        };
        self.logins.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, (header.clone(), std::time::Instant::now()));
        Ok(header)
    }

    /// GETs `path` (under `/v2/REPOSITORY/`) and reads at most `limit`
    /// bytes of its body.
    async fn get_bounded(&self, reference: &PluginRef, path: &str, accept: &str, what: &str, limit: u64) -> Result<Vec<u8>, OciError> {
        let url = format!("{}://{}/v2/{}/{path}", self.scheme, self.host, reference.repository);
        let authorization = self.authorization(reference, RegistryOperation::Pull).await?;
        let response = self
            .timed(what, async {
                let mut request = self.http.get(&url).header(reqwest::header::ACCEPT, accept);
                if let Some(authorization) = &authorization {
                    request = request.header(reqwest::header::AUTHORIZATION, authorization);
                }
                request.send().await.map_err(|e| self.request_error(reference, what, e))
            })
            .await?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(OciError::NotFound { reference: reference.to_string(), what: what.to_string() });
        }
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(OciError::Unauthorized {
                registry: self.host.clone(),
                reference: reference.to_string(),
                reason: format!("{status} (give credentials with --registry-username or docker's config.json)"),
            });
        }
        if !status.is_success() {
            return Err(OciError::Registry { reference: reference.to_string(), what: what.to_string(), reason: status.to_string() });
        }
        let too_large = || OciError::TooLarge { reference: reference.to_string(), what: what.to_string(), limit };
        if response.content_length().is_some_and(|length| length > limit) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.request_error(reference, what, e))?;
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// The manifest `reference` names, and its digest. A pinned
    /// reference's manifest must hash to its digest.
    ///
    /// # Errors
    ///
    /// [`OciError::DigestMismatch`], [`OciError::TooLarge`] past
    /// [`artifact::MAX_MANIFEST_BYTES`], and the registry's errors.
    pub async fn manifest(&self, reference: &PluginRef) -> Result<(Vec<u8>, String), OciError> {
        let path = format!("manifests/{}", reference.manifest_name());
        let body = self.get_bounded(reference, &path, MANIFEST_ACCEPT, "manifest", artifact::MAX_MANIFEST_BYTES).await?;
        let actual = digest_of(&body);
        if let Some(expected) = &reference.digest
            && *expected != actual
        {
            return Err(OciError::DigestMismatch { reference: reference.to_string(), what: "manifest".into(), expected: expected.clone(), actual });
        }
        Ok((body, actual))
    }

    /// Blob `descriptor` of `reference`'s repository, read up to its
    /// declared size (at most `limit`) and checked against its digest.
    ///
    /// # Errors
    ///
    /// [`OciError::DigestMismatch`] for content that is not the digest
    /// (naming it `what`), [`OciError::TooLarge`], and the registry's errors.
    pub async fn blob(&self, reference: &PluginRef, descriptor: &Descriptor, what: &str, limit: u64) -> Result<Vec<u8>, OciError> {
        if descriptor.size > limit {
            return Err(OciError::TooLarge { reference: reference.to_string(), what: what.to_string(), limit });
        }
        let path = format!("blobs/{}", descriptor.digest);
        let body = match self.get_bounded(reference, &path, "*/*", what, descriptor.size).await {
            // More bytes than the manifest declared: not the blob it names.
            Err(OciError::TooLarge { .. }) => {
                return Err(OciError::DigestMismatch {
                    reference: reference.to_string(),
                    what: what.to_string(),
                    expected: descriptor.digest.clone(),
                    actual: format!("content longer than its {} bytes", descriptor.size),
                });
            }
            other => other?,
        };
        let actual = digest_of(&body);
        if actual != descriptor.digest {
            return Err(OciError::DigestMismatch { reference: reference.to_string(), what: what.to_string(), expected: descriptor.digest.clone(), actual });
        }
        Ok(body)
    }

    /// Pushes `bytes` as a blob of `reference`'s repository; returns its digest.
    ///
    /// # Errors
    ///
    /// The registry's errors.
    pub async fn push_blob(&self, reference: &PluginRef, bytes: &[u8]) -> Result<String, OciError> {
        let digest = digest_of(bytes);
        let oci = reference.to_oci();
        self.timed("the login", async { self.client.auth(&oci, &self.auth(), RegistryOperation::Push).await.map_err(|e| self.oci_error(reference, "the login", e)) })
            .await?;
        self.client.push_blob(&oci, bytes.to_vec(), &digest).await.map_err(|e| self.oci_error(reference, "a blob upload", e))?;
        Ok(digest)
    }

    /// Pushes `bytes` as the manifest `reference` names (its tag), of
    /// `media_type`; returns its digest.
    ///
    /// # Errors
    ///
    /// The registry's errors.
    pub async fn push_manifest(&self, reference: &PluginRef, bytes: &[u8], media_type: &str) -> Result<String, OciError> {
        let oci = reference.to_oci();
        self.timed("the login", async { self.client.auth(&oci, &self.auth(), RegistryOperation::Push).await.map_err(|e| self.oci_error(reference, "the login", e)) })
            .await?;
        let content_type = reqwest::header::HeaderValue::from_str(media_type).map_err(|e| OciError::Config(format!("media type {media_type:?}: {e}")))?;
        self.client.push_manifest_raw(&oci, bytes.to_vec(), content_type).await.map_err(|e| self.oci_error(reference, "the manifest upload", e))?;
        Ok(digest_of(bytes))
    }

    /// Pushes component `wasm` as the wasm artifact at `reference`'s tag.
    ///
    /// # Errors
    ///
    /// The registry's errors.
    pub async fn push_component(&self, reference: &PluginRef, wasm: &[u8]) -> Result<ComponentArtifact, OciError> {
        let artifact = artifact::component_artifact(wasm);
        self.push_blob(reference, &artifact.config).await?;
        self.push_blob(reference, wasm).await?;
        self.push_manifest(reference, &artifact.manifest, artifact::OCI_MANIFEST).await?;
        Ok(artifact)
    }

    /// The cosign signatures pushed for manifest `digest` of `reference`'s
    /// repository (at most [`signature::MAX_SIGNATURES`]); none when it has
    /// no signature manifest.
    ///
    /// # Errors
    ///
    /// The registry's errors, and a signature manifest that does not read.
    pub async fn signatures(&self, reference: &PluginRef, digest: &str) -> Result<Vec<StoredSignature>, OciError> {
        let at = reference.with_tag(&signature::signature_tag(digest));
        let manifest = match self.signature_manifest(&at).await? {
            Some(manifest) => manifest,
            None => return Ok(Vec::new()),
        };
        let mut signatures = Vec::new();
        for layer in manifest.layers.iter().filter(|l| l.media_type == signature::SIMPLE_SIGNING).take(signature::MAX_SIGNATURES) {
            let Some(value) = layer.annotations.get(signature::SIGNATURE_ANNOTATION) else { continue };
            let payload = self.blob(&at, layer, "signature payload", signature::MAX_PAYLOAD_BYTES).await?;
            // A payload that is not text signs nothing cosign makes.
            signatures.extend(StoredSignature::new(payload, value));
        }
        Ok(signatures)
    }

    async fn signature_manifest(&self, at: &PluginRef) -> Result<Option<Manifest>, OciError> {
        match self.manifest(at).await {
            Ok((bytes, _)) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| OciError::Registry { reference: at.to_string(), what: "signature manifest".into(), reason: format!("it does not read: {e}") }),
            Err(OciError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Signs manifest `digest` of `reference`'s repository with `key` and
    /// pushes the signature beside the ones it has, as cosign does.
    ///
    /// # Errors
    ///
    /// The registry's errors.
    pub async fn push_signature(&self, reference: &PluginRef, digest: &str, key: &p256::ecdsa::SigningKey) -> Result<(), OciError> {
        let payload = signature::payload(&reference.repository_path(), digest);
        let value = signature::sign_payload(key, payload.as_bytes());
        let at = reference.with_tag(&signature::signature_tag(digest));
        let mut layers = match self.signature_manifest(&at).await? {
            Some(manifest) => manifest.layers,
            None => Vec::new(),
        };
        self.push_blob(&at, payload.as_bytes()).await?;
        let mut layer = Descriptor::of(signature::SIMPLE_SIGNING, payload.as_bytes());
        layer.annotations.insert(signature::SIGNATURE_ANNOTATION.into(), value);
        layers.retain(|l| l.digest != layer.digest || l.annotations != layer.annotations);
        layers.push(layer);
        let diff_ids: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "", "os": "", "config": {},
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        }))
        .expect("a config serializes");
        self.push_blob(&at, &config).await?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(artifact::OCI_MANIFEST.into()),
            config: Descriptor::of("application/vnd.oci.image.config.v1+json", &config),
            layers,
            manifests: None,
        };
        self.push_manifest(&at, &manifest.to_bytes(), artifact::OCI_MANIFEST).await?;
        Ok(())
    }

    fn request_error(&self, reference: &PluginRef, what: &str, error: reqwest::Error) -> OciError {
        if error.is_connect() {
            OciError::Unreachable { registry: self.host.clone(), reason: root_cause(&error) }
        } else if error.is_timeout() {
            OciError::Timeout { registry: self.host.clone(), what: what.to_string(), seconds: self.timeout.as_secs().max(1) }
        } else {
            OciError::Registry { reference: reference.to_string(), what: what.to_string(), reason: root_cause(&error) }
        }
    }

    fn oci_error(&self, reference: &PluginRef, what: &str, error: oci_client::errors::OciDistributionError) -> OciError {
        use oci_client::errors::OciDistributionError as E;
        match error {
            E::RequestError(e) => self.request_error(reference, what, e),
            E::AuthenticationFailure(reason) => OciError::Unauthorized { registry: self.host.clone(), reference: reference.to_string(), reason },
            E::UnauthorizedError { url } => {
                OciError::Unauthorized { registry: self.host.clone(), reference: reference.to_string(), reason: format!("{url} needs credentials") }
            }
            other => OciError::Registry { reference: reference.to_string(), what: what.to_string(), reason: other.to_string() },
        }
    }
}

/// The innermost cause of an error, where the useful words are.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// Registries by host, each connected once.
pub struct Registries {
    options: RegistryOptions,
    by_host: Mutex<HashMap<String, Arc<Registry>>>,
}

impl Registries {
    /// Registries reached with `options`.
    pub fn new(options: RegistryOptions) -> Registries {
        Registries { options, by_host: Mutex::new(HashMap::new()) }
    }

    /// The registry at `host`.
    ///
    /// # Errors
    ///
    /// As [`Registry::connect`].
    pub fn get(&self, host: &str) -> Result<Arc<Registry>, OciError> {
        let mut by_host = self.by_host.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(registry) = by_host.get(host) {
            return Ok(registry.clone());
        }
        let registry = Arc::new(Registry::connect(host, &self.options)?);
        by_host.insert(host.to_string(), registry.clone());
        Ok(registry)
    }
}
