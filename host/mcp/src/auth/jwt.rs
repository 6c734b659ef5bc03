//! Bearer tokens as JWTs, checked against an issuer's published keys.
//!
//! Only RS256 and ES256 are accepted, whatever a token's header claims, so
//! an `alg: none` or HMAC token signed with a public key never passes. The
//! audience must be this server and the issuer the configured one; expiry
//! is required, and a token is refused before its `nbf` (RFC 7519 §4.1.5),
//! both with [`CLOCK_LEEWAY`] for clocks that differ a little. The issuer
//! must be `https` (or on loopback), and its keys are kept fresh as
//! [`super::jwks`] says.

use jsonwebtoken::{Algorithm, Validation, decode, decode_header};
use serde::Deserialize;

use super::jwks::{Jwks, KeyRefresh, KeySet, check_trusted_url};
use crate::identity::Principal;

/// How far the server's clock and the issuer's may differ: a token is
/// accepted this long before its `nbf` and after its `exp`.
pub const CLOCK_LEEWAY_SECS: u64 = 60;

/// [`CLOCK_LEEWAY_SECS`] as a duration.
pub const CLOCK_LEEWAY: std::time::Duration = std::time::Duration::from_secs(CLOCK_LEEWAY_SECS);

/// A token issuer this server trusts.
pub struct JwtIssuer {
    issuer: String,
    audience: String,
    organization: String,
    keys: KeySet,
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

impl JwtIssuer {
    /// Trusts tokens of `issuer` for `audience`, signed with keys from
    /// `source`; a token without an organization claim acts in
    /// `organization`.
    ///
    /// # Errors
    ///
    /// When the issuer or the key set's URL is plain http beyond loopback,
    /// or the key set cannot be loaded.
    pub async fn new(issuer: &str, audience: &str, organization: &str, source: Jwks) -> anyhow::Result<JwtIssuer> {
        Self::with_refresh(issuer, audience, organization, source, KeyRefresh::default()).await
    }

    /// [`JwtIssuer::new`] with the key set fetched again as `refresh` says.
    ///
    /// # Errors
    ///
    /// As [`JwtIssuer::new`].
    pub async fn with_refresh(issuer: &str, audience: &str, organization: &str, source: Jwks, refresh: KeyRefresh) -> anyhow::Result<JwtIssuer> {
        check_trusted_url("the issuer", issuer)?;
        let keys = KeySet::load(source, refresh).await?;
        Ok(JwtIssuer { issuer: issuer.to_string(), audience: audience.to_string(), organization: organization.to_string(), keys })
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
        let key = self.keys.key(&kid).await?;
        let mut validation = Validation::new(header.alg);
        validation.validate_nbf = true;
        validation.leeway = CLOCK_LEEWAY_SECS;
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
