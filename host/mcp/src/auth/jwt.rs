//! Bearer tokens as JWTs, checked against an issuer's published keys.
//!
//! Only RS256 and ES256 are accepted, whatever a token's header claims, so
//! an `alg: none` or HMAC token signed with a public key never passes. The
//! audience must be this server and the issuer the configured one; expiry
//! is required. The key set is reloaded when a token names a key it lacks,
//! at most once a minute.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use tokio::sync::RwLock;

use crate::identity::Principal;

/// How often the key set may be reloaded for an unknown key id.
const RELOAD_AT_MOST_EVERY: Duration = Duration::from_secs(60);

/// Where an issuer's keys come from.
#[derive(Debug, Clone)]
pub enum Jwks {
    /// A JWKS document at a URL (the issuer's `jwks_uri`).
    Url(String),
    /// A JWKS document in a file.
    File(std::path::PathBuf),
}

/// A token issuer this server trusts.
pub struct JwtIssuer {
    issuer: String,
    audience: String,
    organization: String,
    source: Jwks,
    keys: RwLock<(JwkSet, Option<Instant>)>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    preferred_username: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, alias = "org_id")]
    organization_id: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    scp: Option<Vec<String>>,
}

async fn load(source: &Jwks) -> anyhow::Result<JwkSet> {
    let text = match source {
        Jwks::File(path) => std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?,
        Jwks::Url(url) => {
            crate::tls::ensure_provider();
            let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
            let response = client.get(url).send().await?.error_for_status()?;
            response.text().await?
        }
    };
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("the key set is not a JWKS document: {e}"))
}

impl JwtIssuer {
    /// Trusts tokens of `issuer` for `audience`, signed with keys from
    /// `source`; a token without an organization claim acts in
    /// `organization`.
    ///
    /// # Errors
    ///
    /// When the key set cannot be loaded.
    pub async fn new(issuer: &str, audience: &str, organization: &str, source: Jwks) -> anyhow::Result<JwtIssuer> {
        let keys = load(&source).await?;
        Ok(JwtIssuer {
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            organization: organization.to_string(),
            source,
            keys: RwLock::new((keys, Some(Instant::now()))),
        })
    }

    /// The issuer's identifier.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The principal a token proves, or why it proves nothing.
    pub(crate) async fn validate(&self, token: &str) -> Result<Principal, String> {
        let header = decode_header(token).map_err(|_| "the token is not a JWT".to_string())?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(format!("the token is signed with {:?}; only RS256 and ES256 are accepted", header.alg));
        }
        let kid = header.kid.ok_or("the token names no key (kid)")?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[&self.audience]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        let data = decode::<Claims>(token, &key, &validation).map_err(|e| reason(&e))?;
        let claims = data.claims;
        let scopes = match (claims.scope, claims.scp) {
            (Some(scope), _) => scope.split_whitespace().map(str::to_string).collect(),
            (None, Some(scp)) => scp,
            (None, None) => Vec::new(),
        };
        Ok(Principal {
            owner_name: claims.preferred_username.or(claims.name).unwrap_or_else(|| claims.sub.clone()),
            owner_id: claims.sub,
            organization_id: claims.organization_id.unwrap_or_else(|| self.organization.clone()),
            scopes,
        })
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, String> {
        {
            let keys = self.keys.read().await;
            if let Some(jwk) = keys.0.find(kid) {
                return DecodingKey::from_jwk(jwk).map_err(|e| format!("the key {kid} cannot be used: {e}"));
            }
        }
        let mut keys = self.keys.write().await;
        let recent = keys.1.is_some_and(|at| at.elapsed() < RELOAD_AT_MOST_EVERY);
        if !recent {
            if let Ok(fresh) = load(&self.source).await {
                *keys = (fresh, Some(Instant::now()));
            }
        }
        let jwk = keys.0.find(kid).ok_or_else(|| format!("the token's key {:?} is not one of the issuer's", toolshed_runtime::text::clip(kid, 60)))?;
        DecodingKey::from_jwk(jwk).map_err(|e| format!("the key {kid} cannot be used: {e}"))
    }
}

/// Why a JWT was refused, in words for a client.
fn reason(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => "the token expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet".into(),
        ErrorKind::InvalidAudience => "the token is for another audience".into(),
        ErrorKind::InvalidIssuer => "the token is from another issuer".into(),
        ErrorKind::InvalidSignature => "the token's signature does not verify".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token lacks the {claim} claim"),
        ErrorKind::InvalidAlgorithm => "the token's algorithm does not match its key".into(),
        _ => "the token is malformed".into(),
    }
}
