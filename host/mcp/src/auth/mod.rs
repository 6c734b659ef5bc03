//! Authentication of HTTP requests, as the MCP authorization spec asks of a
//! resource server: a bearer token, validated as a JWT against the issuer's
//! keys (RS256 or ES256, audience this server), or found in a static token
//! file for small setups. Failures answer 401 with a `WWW-Authenticate`
//! header pointing at the protected-resource metadata (RFC 9728); a token
//! without the required scope answers 403.

mod jwks;
mod jwt;
mod tokens;

use std::sync::Arc;

pub use jwks::{Jwks, KeyRefresh};
pub use jwt::{CLOCK_LEEWAY, CLOCK_LEEWAY_SECS, JwtIssuer};
pub use tokens::{TokenFile, hash_token};

use crate::identity::Principal;

/// The scope a token needs to use the tools, unless configured otherwise.
pub const DEFAULT_SCOPE: &str = "toolshed:tools";

/// How requests are authenticated.
#[derive(Clone)]
pub struct Auth {
    /// Static tokens, by hash.
    pub tokens: Option<Arc<TokenFile>>,
    /// A JWT issuer and its keys.
    pub jwt: Option<Arc<JwtIssuer>>,
    /// The scope a principal needs.
    pub required_scope: String,
}

/// Why a request was not let in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No bearer token was sent.
    #[error("a bearer token is required")]
    Missing,
    /// The token is not valid; the text says why.
    #[error("{0}")]
    Invalid(String),
    /// The token is valid but lacks the scope.
    #[error("the token lacks the scope {0}")]
    Scope(String),
}

impl Auth {
    /// The principal `authorization` (an `Authorization` header value) proves.
    ///
    /// # Errors
    ///
    /// [`Rejection`] saying what is wrong with it.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, Rejection> {
        let token = match authorization {
            None => return Err(Rejection::Missing),
            Some(value) => match value.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => token.trim(),
                _ => return Err(Rejection::Invalid("the Authorization header is not a bearer token".into())),
            },
        };
        let principal = if let Some(principal) = self.tokens.as_ref().and_then(|t| t.principal(token)) {
            principal
        } else if let Some(jwt) = &self.jwt {
            jwt.validate(token).await.map_err(Rejection::Invalid)?
        } else {
            return Err(Rejection::Invalid("the token is not known".into()));
        };
        if !principal.has_scope(&self.required_scope) {
            return Err(Rejection::Scope(self.required_scope.clone()));
        }
        Ok(principal)
    }

    /// The issuer to name in the protected-resource metadata, if any.
    pub fn issuer(&self) -> Option<&str> {
        self.jwt.as_deref().map(JwtIssuer::issuer)
    }
}
