//! The door of `/mcp`: who is calling, and the request's body read whole
//! before anything answers.
//!
//! An answer sent while the client is still sending its body leaves that
//! body unread on the socket; closing a socket with unread data makes the
//! kernel reset the connection, and a client that sends its body a moment
//! after its headers (as httpx does) and reuses the connection sees the
//! reset instead of the answer or of its next one. So nothing here answers
//! before the body is in: a refused request's body is read and dropped (up
//! to a bound, within the body timeout), an accepted one is read whole (up
//! to the body limit) and handed on. A body past those bounds is answered
//! with `Connection: close`, and the connection is closed after the answer.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde_json::json;

use super::sessions::{CALLER, Caller, OwnedSessions};
use crate::audit::AuditLog;
use crate::auth::{Auth, Rejection};

/// How much of a body past the limit is read and dropped to keep the
/// connection, as a multiple of the limit; beyond it the connection closes.
const DRAIN_ALLOWANCE: usize = 4;

/// What the gate needs to know.
pub(crate) struct Gate {
    /// The protected-resource metadata's URL, for challenges.
    pub metadata: String,
    /// How requests are authenticated; none lets every request in.
    pub auth: Option<Auth>,
    /// The largest body accepted.
    pub max_body_bytes: usize,
    /// How long a body may take to arrive, all of it.
    pub body_read_timeout: Duration,
    /// The legacy sessions and their owners.
    pub sessions: Arc<OwnedSessions>,
    /// Where refusals are recorded.
    pub audit: Arc<AuditLog>,
}

/// What a refused request asked for, and from where, for the audit.
struct Asked {
    method: String,
    path: String,
    client: Option<String>,
}

impl Asked {
    fn of(parts: &axum::http::request::Parts) -> Self {
        let client = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.to_string());
        Self { method: parts.method.to_string(), path: toolshed_runtime::text::clip(parts.uri.path(), 200), client }
    }
}

impl Gate {
    /// Records a refused request: what was refused and why, and from where;
    /// never the credential.
    fn audit_refusal(&self, asked: &Asked, status: StatusCode, reason: &str, principal: Option<&str>) {
        let fields = json!({ "status": status.as_u16(), "reason": reason, "principal": principal, "client": asked.client,
            "method": asked.method, "path": asked.path });
        self.audit.record("refused", fields);
    }
}

/// How reading a body went.
enum Read {
    /// All of it, kept if asked for.
    Whole(Bytes),
    /// Past the limit; `drained` when it ended within the allowance, so the
    /// connection can be kept.
    TooLarge { drained: bool },
    /// It did not arrive in time.
    TooSlow,
    /// The connection failed under it.
    Broken,
}

/// Lets a request in with its principal and its whole body, or answers it
/// (401, 403, 408, 413) once its body is in.
pub(crate) async fn admit(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let asked = Asked::of(&parts);
    let principal = match &gate.auth {
        None => None,
        Some(auth) => {
            let authorization = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
            match auth.authenticate(authorization).await {
                Ok(principal) => Some(principal),
                Err(rejection) => {
                    let answer = refuse(&gate.metadata, &rejection);
                    gate.audit_refusal(&asked, answer.status(), &rejection.to_string(), None);
                    // A client waiting for `100 Continue` sends no body
                    // unless asked: close instead of asking for it.
                    if expects_continue(&parts.headers) {
                        return closing(answer);
                    }
                    return match read(body, false, gate.max_body_bytes, gate.body_read_timeout).await {
                        Read::Whole(_) => answer,
                        _ => closing(answer),
                    };
                }
            }
        }
    };
    let body = match read(body, true, gate.max_body_bytes, gate.body_read_timeout).await {
        Read::Whole(bytes) => bytes,
        Read::TooLarge { drained } => {
            let answer = (StatusCode::PAYLOAD_TOO_LARGE, format!("the body is larger than {} bytes", gate.max_body_bytes)).into_response();
            return if drained { answer } else { closing(answer) };
        }
        Read::TooSlow => {
            let answer = (StatusCode::REQUEST_TIMEOUT, format!("the body did not arrive within {} s", gate.body_read_timeout.as_secs_f64())).into_response();
            return closing(answer);
        }
        Read::Broken => return closing(StatusCode::BAD_REQUEST.into_response()),
    };
    // Without authentication there is one user, and every session is its.
    let owner = principal.as_ref().map(|p| p.owner_id.clone()).unwrap_or_default();
    if let Some(session) = parts.headers.get("mcp-session-id") {
        let session = session.to_str().unwrap_or_default();
        if !gate.sessions.owned_by(session, &owner) {
            // Another principal's session is no session of this caller's.
            if gate.sessions.exists(session) {
                gate.audit_refusal(&asked, StatusCode::NOT_FOUND, "the session is another principal's", Some(&owner));
            }
            return (StatusCode::NOT_FOUND, "Not Found: Session not found").into_response();
        }
    }
    if let Some(principal) = principal {
        parts.extensions.insert(principal);
    }
    let caller = Caller { owner: owner.clone(), turned_away: std::cell::Cell::new(false) };
    let (answer, turned_away) = CALLER
        .scope(caller, async move {
            let answer = next.run(Request::from_parts(parts, Body::from(body))).await;
            (answer, CALLER.with(|caller| caller.turned_away.get()))
        })
        .await;
    if !turned_away {
        return session_end_as_no_content(&asked, answer);
    }
    gate.audit_refusal(&asked, StatusCode::SERVICE_UNAVAILABLE, "a cap on sessions", Some(&owner));
    sessions_full()
}

/// A session ended by DELETE is answered 204: the session is gone when the
/// answer is sent, which 202 ("accepted, not yet done") does not say, and
/// clients such as the Python SDK count anything but 200 or 204 as a
/// failed termination.
fn session_end_as_no_content(asked: &Asked, mut answer: Response) -> Response {
    if asked.method == "DELETE" && answer.status() == StatusCode::ACCEPTED {
        *answer.status_mut() = StatusCode::NO_CONTENT;
    }
    answer
}

/// The answer to an `initialize` past a cap on sessions.
fn sessions_full() -> Response {
    let body = json!({ "jsonrpc": "2.0", "id": null, "error": { "code": -32000,
        "message": "the server holds as many sessions as it may (for you, or for everyone): end one (DELETE) or retry later" } });
    let mut answer = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    answer.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
    answer
}

fn expects_continue(headers: &axum::http::HeaderMap) -> bool {
    headers.get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// `answer`, after which the connection closes.
fn closing(mut answer: Response) -> Response {
    answer.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    answer
}

/// Reads `body` to its end within `within`, keeping it if `keep` and at
/// most `limit` bytes; past the limit, reads on and drops up to
/// [`DRAIN_ALLOWANCE`] times the limit.
async fn read(body: Body, keep: bool, limit: usize, within: Duration) -> Read {
    let allowance = limit.saturating_mul(DRAIN_ALLOWANCE);
    let reading = async move {
        let mut body = body;
        let mut kept = Vec::new();
        let mut seen = 0usize;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return Read::Broken };
            let Ok(data) = frame.into_data() else { continue };
            seen = seen.saturating_add(data.len());
            if seen > allowance {
                return Read::TooLarge { drained: false };
            }
            if keep && seen <= limit {
                kept.extend_from_slice(&data);
            }
        }
        if seen > limit { Read::TooLarge { drained: true } } else { Read::Whole(Bytes::from(kept)) }
    };
    tokio::time::timeout(within, reading).await.unwrap_or(Read::TooSlow)
}

/// The answer to a refused request: 401 or 403 with a challenge that points
/// at the metadata and says why.
pub(crate) fn refuse(metadata: &str, rejection: &Rejection) -> Response {
    // Quotes would end the header's quoted strings early.
    let reason = rejection.to_string().replace('"', "'");
    let (status, challenge, body) = match rejection {
        Rejection::Missing => (StatusCode::UNAUTHORIZED, format!("Bearer resource_metadata=\"{metadata}\""), json!({ "error": "unauthorized", "error_description": reason })),
        Rejection::Invalid(_) => (
            StatusCode::UNAUTHORIZED,
            format!("Bearer resource_metadata=\"{metadata}\", error=\"invalid_token\", error_description=\"{reason}\""),
            json!({ "error": "invalid_token", "error_description": reason }),
        ),
        Rejection::Scope(scope) => (
            StatusCode::FORBIDDEN,
            format!("Bearer resource_metadata=\"{metadata}\", error=\"insufficient_scope\", scope=\"{scope}\""),
            json!({ "error": "insufficient_scope", "error_description": reason, "scope": scope }),
        ),
    };
    let mut response = (status, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}
