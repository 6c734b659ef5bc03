//! An HTTP client for Coder's REST API: the session token on every request,
//! a timeout on every request, bounded answers, and retries with backoff
//! where a retry cannot do a thing twice.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use toolshed_runtime::Clock;

use crate::api::ErrorResponse;

/// The header Coder reads the session token from.
pub const TOKEN_HEADER: &str = "Coder-Session-Token";

/// A Coder session token. It is never printed: `Debug` shows only that it
/// is there, and the header that carries it is marked sensitive.
#[derive(Clone)]
pub struct SessionToken(String);

impl SessionToken {
    /// A token from its text, trimmed.
    ///
    /// # Errors
    ///
    /// When the text is empty or could not travel in a header.
    pub fn new(text: &str) -> Result<Self, String> {
        let token = text.trim();
        if token.is_empty() {
            return Err("the Coder session token is empty".into());
        }
        if HeaderValue::from_str(token).is_err() || token.contains(char::is_whitespace) {
            return Err("the Coder session token holds characters a header cannot carry".into());
        }
        Ok(Self(token.to_string()))
    }

    /// The token in the file at `path`, so it never appears in a command line.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or holds no token; the message names the
    /// file, never its content.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading the Coder token file {}: {e}", path.display()))?;
        Self::new(&text).map_err(|e| format!("{e} (in {})", path.display()))
    }

    fn header(&self) -> HeaderValue {
        let mut value = HeaderValue::from_str(&self.0).expect("checked when the token was made");
        value.set_sensitive(true);
        value
    }
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

/// How requests are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries of one request in all, the first included.
    pub attempts: u32,
    /// The pause before the first retry; each later one doubles it.
    pub first_backoff: Duration,
    /// The longest pause between tries.
    pub max_backoff: Duration,
    /// The longest `Retry-After` honoured; a longer one ends the request
    /// with an error that says when to try again.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { attempts: 4, first_backoff: Duration::from_millis(250), max_backoff: Duration::from_secs(4), max_retry_after: Duration::from_secs(30) }
    }
}

impl RetryPolicy {
    fn backoff(&self, retry: u32) -> Duration {
        self.first_backoff.saturating_mul(1 << retry.min(16)).min(self.max_backoff)
    }
}

/// The largest answer read from Coder; a larger one is an error, so a
/// broken or hostile server cannot grow the host.
pub const MAX_RESPONSE_BYTES: usize = 8 << 20;

/// Why a request to Coder gave no usable answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CoderError {
    /// Coder answered with an error status.
    #[error("Coder answered {status} to {method} {path}: {}", describe(.body))]
    Status {
        /// The method.
        method: String,
        /// The path asked for.
        path: String,
        /// The status.
        status: u16,
        /// What Coder said.
        body: ErrorResponse,
    },
    /// The server could not be reached, or the connection broke.
    #[error("cannot reach Coder at {url}: {reason}")]
    Unreachable {
        /// The deployment's URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// No answer within the request timeout.
    #[error("Coder did not answer {method} {path} within {} s", .timeout.as_secs_f64())]
    Timeout {
        /// The method.
        method: String,
        /// The path asked for.
        path: String,
        /// The timeout.
        timeout: Duration,
    },
    /// Coder asked to wait longer than the policy allows.
    #[error("Coder is rate limiting {path}: try again in {} s", .after.as_secs())]
    RateLimited {
        /// The path asked for.
        path: String,
        /// When to try again.
        after: Duration,
    },
    /// A value meant as one segment of the path would change the path.
    #[error("{id:?} is not an id")]
    NotAnId {
        /// The value.
        id: String,
    },
    /// The answer was not what the API documents.
    #[error("Coder's answer to {method} {path} could not be read: {reason}")]
    BadAnswer {
        /// The method.
        method: String,
        /// The path asked for.
        path: String,
        /// What was wrong with it.
        reason: String,
    },
}

fn describe(body: &ErrorResponse) -> String {
    match (body.message.is_empty(), body.detail.is_empty()) {
        (true, _) => "no message".into(),
        (false, true) => body.message.clone(),
        (false, false) => format!("{}: {}", body.message, body.detail),
    }
}

impl CoderError {
    /// The HTTP status Coder answered, if it answered one.
    pub fn status(&self) -> Option<u16> {
        match self {
            CoderError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// A sentence for a remote caller (a tool's answer, which reaches the
    /// model and the client): what happened, without the deployment's URL,
    /// the text of a server error or of a connection failure, which can
    /// name hosts and internals. The whole error is logged here.
    pub fn for_caller(&self) -> String {
        tracing::warn!("a request to Coder failed: {self}");
        match self {
            CoderError::Status { status: 401, .. } => "Coder refused the host's session token (401); the operator must give the host a new token".into(),
            CoderError::Status { status: 403, .. } => "Coder refused the request (403): the host's Coder user lacks the permission this needs".into(),
            CoderError::Status { status, .. } if *status >= 500 => format!("Coder failed with status {status}; the detail is in the host's log"),
            CoderError::Status { status, body, .. } => format!("Coder answered {status}: {}", describe(body)),
            CoderError::Unreachable { .. } => "Coder could not be reached; the detail is in the host's log".into(),
            // The path asked for, never the deployment's URL.
            CoderError::Timeout { .. } => self.to_string(),
            CoderError::RateLimited { after, .. } => format!("Coder is rate limiting this host: try again in {} s", after.as_secs()),
            CoderError::NotAnId { .. } => self.to_string(),
            // Our own reading of the answer: the path and what did not parse.
            CoderError::BadAnswer { .. } => self.to_string(),
        }
    }

    /// A sentence for the operator (start-up checks, the log): what
    /// happened, where, and for a refused token or permission, what to do
    /// about it. Remote callers get [`CoderError::for_caller`].
    pub fn explain(&self) -> String {
        match self.status() {
            Some(401) => format!("{self}. The session token was refused: make a new one (`coder tokens create`) and write it to the token file."),
            Some(403) => format!("{self}. The token's user lacks the permission this needs: ask a Coder administrator for it, or use another user's token."),
            _ => self.to_string(),
        }
    }
}

/// How to reach a Coder deployment.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The deployment's URL, such as `https://coder.example.com`.
    pub url: String,
    /// The session token every request carries.
    pub token: SessionToken,
    /// How long one request may take, connecting included.
    pub timeout: Duration,
    /// How requests are retried.
    pub retry: RetryPolicy,
}

impl ClientConfig {
    /// A configuration with the default timeout (30 s) and retries.
    pub fn new(url: impl Into<String>, token: SessionToken) -> Self {
        Self { url: url.into(), token, timeout: Duration::from_secs(30), retry: RetryPolicy::default() }
    }
}

/// A client of one Coder deployment.
#[derive(Clone)]
pub struct CoderClient {
    http: reqwest::Client,
    base: Url,
    timeout: Duration,
    retry: RetryPolicy,
    clock: Arc<dyn Clock>,
}

/// Whether a request may be sent again after a failure: reads always; a
/// write only when the server cannot have acted on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replay {
    Read,
    Write,
}

impl CoderClient {
    /// A client for the deployment `config` names; pauses between retries
    /// go through `clock`.
    ///
    /// # Errors
    ///
    /// When the URL is not an http(s) URL, or the TLS stack cannot start.
    pub fn new(config: ClientConfig, clock: Arc<dyn Clock>) -> Result<Self, String> {
        let mut base = Url::parse(config.url.trim()).map_err(|e| format!("--coder-url {:?} is not a URL: {e}", config.url))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(format!("--coder-url {:?} must be an http:// or https:// URL with a host", config.url));
        }
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        toolshed_runtime::tls::ensure_provider();
        let mut headers = HeaderMap::new();
        headers.insert(TOKEN_HEADER, config.token.header());
        headers.insert(reqwest::header::ACCEPT, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("toolshed/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            // A redirect would carry the token to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("starting the HTTP client: {e}"))?;
        Ok(Self { http, base, timeout: config.timeout, retry: config.retry, clock })
    }

    /// The deployment's URL.
    pub fn url(&self) -> &str {
        self.base.as_str()
    }

    /// The URL of `/api/v2/` followed by `segments`, each percent-encoded as
    /// one segment: an id can never climb out of its place in the path. A
    /// segment that is empty, `.` or `..` is refused, since URLs resolve
    /// those (encoded or not) to another path.
    fn endpoint(&self, segments: &[&str]) -> Result<Url, CoderError> {
        if let Some(bad) = segments.iter().find(|s| matches!(**s, "" | "." | "..")) {
            return Err(CoderError::NotAnId { id: (*bad).to_string() });
        }
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v2"]).extend(segments);
        }
        Ok(url)
    }

    /// `GET /api/v2/{segments}` with `query`, read as `T`.
    ///
    /// # Errors
    ///
    /// As [`CoderError`] says.
    pub async fn get<T: DeserializeOwned>(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<T, CoderError> {
        let mut url = self.endpoint(segments)?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        self.send(Method::GET, url, None::<&()>, Replay::Read).await
    }

    /// `POST /api/v2/{segments}` with `body` as JSON, read as `T`.
    ///
    /// # Errors
    ///
    /// As [`CoderError`] says.
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, segments: &[&str], body: &B) -> Result<T, CoderError> {
        self.send(Method::POST, self.endpoint(segments)?, Some(body), Replay::Write).await
    }

    async fn send<B: Serialize, T: DeserializeOwned>(&self, method: Method, url: Url, body: Option<&B>, replay: Replay) -> Result<T, CoderError> {
        let path = url.path().to_string();
        let mut retry = 0;
        loop {
            let mut request = self.http.request(method.clone(), url.clone());
            if let Some(body) = body {
                request = request.json(body);
            }
            let outcome = match request.send().await {
                Ok(response) => self.read(&method, &path, response).await,
                Err(e) => Err(self.transport_error(&method, &path, &e)),
            };
            let (error, pause) = match outcome {
                Ok(value) => return Ok(value),
                Err(Failure { error, retry_after }) => {
                    let pause = match (&error, retry_after) {
                        (_, Some(after)) if after > self.retry.max_retry_after => {
                            return Err(CoderError::RateLimited { path, after });
                        }
                        (_, Some(after)) => Some(after),
                        (e, None) if retryable(e, replay) => Some(self.retry.backoff(retry)),
                        _ => None,
                    };
                    (error, pause)
                }
            };
            retry += 1;
            match pause {
                Some(pause) if retry < self.retry.attempts => {
                    tracing::debug!(%method, %path, retry, pause_ms = pause.as_millis() as u64, "retrying a request to Coder: {error}");
                    self.clock.sleep(pause).await;
                }
                _ => return Err(error),
            }
        }
    }

    fn transport_error(&self, method: &Method, path: &str, e: &reqwest::Error) -> Failure {
        let error = if e.is_timeout() {
            CoderError::Timeout { method: method.to_string(), path: path.to_string(), timeout: self.timeout }
        } else {
            CoderError::Unreachable { url: self.base.to_string(), reason: source_chain(e) }
        };
        Failure { error, retry_after: None }
    }

    async fn read<T: DeserializeOwned>(&self, method: &Method, path: &str, mut response: reqwest::Response) -> Result<T, Failure> {
        let status = response.status();
        let retry_after = (status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE)
            .then(|| retry_after(response.headers()))
            .flatten();
        let bad = |reason: String| CoderError::BadAnswer { method: method.to_string(), path: path.to_string(), reason };
        if response.content_length().is_some_and(|n| n > MAX_RESPONSE_BYTES as u64) {
            return Err(Failure::from(bad(format!("the answer is larger than {} MiB", MAX_RESPONSE_BYTES >> 20))));
        }
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        return Err(Failure::from(bad(format!("the answer is larger than {} MiB", MAX_RESPONSE_BYTES >> 20))));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(self.transport_error(method, path, &e)),
            }
        }
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| Failure::from(bad(e.to_string())));
        }
        // An error answer that is not Coder's JSON (a proxy's page, say)
        // still gets its status and the start of its text.
        let body = serde_json::from_slice::<ErrorResponse>(&bytes).unwrap_or_else(|_| ErrorResponse {
            message: toolshed_runtime::text::one_line(&toolshed_runtime::text::clip(&String::from_utf8_lossy(&bytes), 200)),
            ..ErrorResponse::default()
        });
        let error = CoderError::Status { method: method.to_string(), path: path.to_string(), status: status.as_u16(), body };
        Err(Failure { error, retry_after: retry_after.or((status == StatusCode::TOO_MANY_REQUESTS).then_some(self.retry.first_backoff)) })
    }
}

struct Failure {
    error: CoderError,
    retry_after: Option<Duration>,
}

impl From<CoderError> for Failure {
    fn from(error: CoderError) -> Self {
        Self { error, retry_after: None }
    }
}

/// Whether a failed request may be tried again. Reads: on a 5xx, a broken
/// connection or a timeout. Writes (which create workspaces and builds):
/// only when the server cannot have acted, that is, a refused connection or
/// a 503 (a 500 or a timeout may come after the workspace was made).
fn retryable(error: &CoderError, replay: Replay) -> bool {
    match (error, replay) {
        (CoderError::Status { status, .. }, Replay::Read) => *status >= 500,
        (CoderError::Status { status, .. }, Replay::Write) => *status == 503,
        (CoderError::Unreachable { reason, .. }, Replay::Write) => reason.contains("onnection refused"),
        (CoderError::Unreachable { .. } | CoderError::Timeout { .. }, Replay::Read) => true,
        _ => false,
    }
}

/// `Retry-After` in seconds (the HTTP-date form is read as no hint).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    text.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// An error and its causes in one line, such as "error sending request:
/// client error (Connect): tcp connect error: Connection refused".
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_never_shown() {
        let token = SessionToken::new("  s3cr3t-token\n").unwrap();
        assert_eq!(format!("{token:?}"), "SessionToken(<redacted>)");
        assert!(token.header().is_sensitive());
        assert!(SessionToken::new(" \n").is_err());
        assert!(SessionToken::new("two words").is_err());
    }

    #[test]
    fn ids_stay_one_segment_of_the_path() {
        let token = SessionToken::new("t").unwrap();
        let client = CoderClient::new(ClientConfig::new("http://127.0.0.1:1/coder", token), Arc::new(toolshed_runtime::SystemClock)).unwrap();
        assert_eq!(client.endpoint(&["workspaces", "../users/me"]).unwrap().path(), "/coder/api/v2/workspaces/..%2Fusers%2Fme");
        assert_eq!(client.endpoint(&["workspaces", "a?b#c"]).unwrap().path(), "/coder/api/v2/workspaces/a%3Fb%23c");
        for climbing in ["..", ".", ""] {
            assert!(matches!(client.endpoint(&["workspaces", climbing]), Err(CoderError::NotAnId { .. })), "{climbing:?}");
        }
    }

    #[test]
    fn writes_are_retried_only_when_nothing_can_have_happened() {
        let status = |status| CoderError::Status { method: "POST".into(), path: "/".into(), status, body: ErrorResponse::default() };
        assert!(retryable(&status(502), Replay::Read));
        assert!(!retryable(&status(502), Replay::Write));
        assert!(retryable(&status(503), Replay::Write));
        assert!(!retryable(&status(404), Replay::Read));
        let timeout = CoderError::Timeout { method: "POST".into(), path: "/".into(), timeout: Duration::from_secs(1) };
        assert!(!retryable(&timeout, Replay::Write));
    }
}
