//! Sending one allowed request: resolve the name, check every address,
//! take a connection slot, connect to the checked address (no second
//! lookup), add the secret header, and bound the bodies and the waits.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use toolshed_runtime::limiter::ComputeRestart;
use toolshed_runtime::policy::network::{NetworkLimits, Scheme};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use crate::NetworkProviders;
use crate::body::{Capped, Direction};
use crate::allow_list::{Allowed, check_addresses};
use crate::who::Who;

/// An allowed request and everything needed to send it.
pub(crate) struct Job {
    pub(crate) request: http::Request<WasiBody>,
    pub(crate) allowed: Allowed,
    pub(crate) limits: NetworkLimits,
    pub(crate) options: Option<RequestOptions>,
    pub(crate) deadline: tokio::time::Instant,
    pub(crate) providers: NetworkProviders,
    pub(crate) connections: Arc<tokio::sync::Semaphore>,
    pub(crate) who: Arc<Who>,
    pub(crate) restart: ComputeRestart,
}

type Io = Box<dyn Future<Output = Result<(), Error>> + Send>;

/// The shortest of `limit` and what the guest asked for.
fn within(limit: Duration, asked: Option<Duration>) -> Duration {
    asked.map_or(limit, |asked| asked.min(limit))
}

impl Job {
    /// How long a step may wait: the policy's timeout, what the guest
    /// asked for, and never past the call's deadline.
    fn wait(&self, asked: Option<Duration>) -> Duration {
        let left = self.deadline.saturating_duration_since(tokio::time::Instant::now());
        within(self.limits.timeout, asked).min(left)
    }

    pub(crate) async fn run(mut self) -> Result<(http::Response<WasiBody>, Io), Error> {
        let method = self.request.method().as_str().to_string();
        let uri = self.request.uri().to_string();
        let refuse = |who: &Who, reason: &str, code: Error| {
            who.refused(&method, &uri, reason);
            Err(code)
        };
        let Allowed { scheme, host, port, destination } = self.allowed.clone();
        let options = self.options.unwrap_or_default();

        // The body, bounded before anything is sent.
        let cap = self.limits.max_request_body_bytes;
        let declared = self.request.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > cap) {
            return refuse(&self.who, &format!("its body is larger than the {cap} bytes a request may carry"), Error::HttpRequestBodySize(Some(cap)));
        }

        // The secret header, if the entry binds one.
        if let Some(binding) = &destination.header {
            let Some(secret) = self.providers.secrets.secret(&self.who.cx, &binding.secret) else {
                let reason = format!("secret {} is not set on this host", binding.secret);
                return refuse(&self.who, &reason, Error::InternalError(Some(format!("this host has no secret {} for the request; ask the operator to set it", binding.secret))));
            };
            let value = format!("{}{}{}", binding.prefix, secret.expose(), binding.suffix);
            let Ok(mut value) = http::HeaderValue::from_str(&value) else {
                return refuse(&self.who, &format!("secret {} cannot be written into a header", binding.secret), Error::InternalError(Some("the host's secret is not a valid header value".into())));
            };
            value.set_sensitive(true);
            let name = http::HeaderName::from_bytes(binding.name.as_bytes()).map_err(|_| Error::InternalError(None))?;
            self.request.headers_mut().insert(name, value);
        }

        // Resolve once, check every address, connect to a checked one.
        let wait = self.wait(options.connect_timeout);
        let addrs = match tokio::time::timeout(wait, self.providers.resolver.resolve(host.clone(), port)).await {
            Err(_) => return Err(Error::DnsTimeout),
            Ok(Err(_)) => return Err(Error::DestinationNotFound),
            Ok(Ok(addrs)) => addrs,
        };
        if let Err(reason) = check_addresses(&destination, &host, &addrs) {
            return refuse(&self.who, &reason, Error::HttpRequestDenied);
        }
        let Ok(permit) = self.connections.clone().try_acquire_owned() else {
            let reason = format!("the plugin holds its {} connections", self.limits.max_connections);
            return refuse(&self.who, &reason, Error::ConnectionLimitReached);
        };
        let stream = tokio::time::timeout(self.wait(options.connect_timeout), connect_any(&addrs))
            .await
            .map_err(|_| Error::ConnectionTimeout)?
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::ConnectionRefused => Error::ConnectionRefused,
                _ => Error::Connect(e),
            })?;
        let stream: Box<dyn Stream> = match scheme {
            Scheme::Http => Box::new(stream),
            Scheme::Https => Box::new(tls(stream, &host, self.wait(options.connect_timeout)).await?),
        };
        let (mut sender, conn) = tokio::time::timeout(
            self.wait(options.connect_timeout),
            hyper::client::conn::http1::Builder::new().handshake(wasmtime_wasi_http::io::TokioIo::new(stream)),
        )
        .await
        .map_err(|_| Error::ConnectionTimeout)??;

        let first_byte = self.wait(options.first_byte_timeout);
        let between = self.wait(options.between_bytes_timeout);
        // The request line names the path only; the host header names the host.
        let (mut parts, body) = self.request.into_parts();
        parts.uri = http::Uri::builder()
            .path_and_query(parts.uri.path_and_query().map_or("/", |p| p.as_str()))
            .build()
            .map_err(|e| Error::InternalError(Some(e.to_string())))?;
        let body = Capped::new(body, cap, Direction::Request, None, self.restart.clone());
        let request = http::Request::from_parts(parts, body);

        // Drive the connection while the answer comes; then hand it over.
        let mut conn = Box::pin(conn);
        let mut conn_done: Option<Result<(), hyper::Error>> = None;
        let answer = sender.send_request(request);
        tokio::pin!(answer);
        let response = tokio::time::timeout(first_byte, async {
            loop {
                tokio::select! {
                    response = &mut answer => break response,
                    ended = &mut conn, if conn_done.is_none() => conn_done = Some(ended),
                }
            }
        })
        .await
        .map_err(|_| Error::ConnectionReadTimeout)?
        .map_err(Error::from)?;
        self.restart.restart();

        let response = response.map(|incoming| {
            Capped::new(incoming.map_err(Error::from), self.limits.max_response_body_bytes, Direction::Response, Some(between), self.restart.clone())
                .boxed_unsync()
        });
        let io: Io = Box::new(async move {
            let _slot = permit;
            match conn_done {
                Some(ended) => ended.map_err(Error::from),
                None => conn.await.map_err(Error::from),
            }
        });
        Ok((response, io))
    }
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Sync + Unpin + 'static> Stream for T {}

/// Connects to the first of `addrs` that answers: the addresses checked,
/// never a name looked up again.
async fn connect_any(addrs: &[std::net::SocketAddr]) -> std::io::Result<tokio::net::TcpStream> {
    let mut last = None;
    for addr in addrs {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::from(std::io::ErrorKind::AddrNotAvailable)))
}

/// TLS over `stream` to `host`, checked against the web's root certificates.
async fn tls(stream: tokio::net::TcpStream, host: &str, wait: Duration) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, Error> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::InternalError(Some(e.to_string())))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|_| Error::HttpRequestUriInvalid)?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    tokio::time::timeout(wait, connector.connect(name, stream)).await.map_err(|_| Error::ConnectionTimeout)?.map_err(Error::Tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_may_shorten_a_wait_never_lengthen_it() {
        assert_eq!(within(Duration::from_secs(30), None), Duration::from_secs(30));
        assert_eq!(within(Duration::from_secs(30), Some(Duration::from_secs(5))), Duration::from_secs(5));
        assert_eq!(within(Duration::from_secs(30), Some(Duration::from_secs(600))), Duration::from_secs(30));
    }
}
