//! What an HTTP server holds every client to, whoever it is: how many
//! connections it may hold open, how long it may take to send a request,
//! how long a connection may sit idle, and how many sessions it may keep.
//! The defaults suit a server open to the internet; docs/mcp.md ("HTTP
//! limits and authentication") gives each rule and the test that holds it.

use std::time::Duration;

/// The limits of an HTTP server.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Connections open at once. One past it is answered 503 and closed at
    /// once, so a flood of sockets costs the server no descriptor beyond it.
    pub max_connections: usize,
    /// Connections open at once from one client address (an IPv4 address,
    /// or an IPv6 /64, which one host commonly holds whole). Behind a
    /// reverse proxy every connection comes from the proxy: raise it there.
    pub max_connections_per_address: usize,
    /// How long a new connection may take to send its first request head.
    /// A socket that connects and says nothing is closed after this.
    pub header_read_timeout: Duration,
    /// How long a request's body may take to arrive, all of it.
    pub body_read_timeout: Duration,
    /// How long a connection may wait, after an answer, for its next
    /// request head to arrive whole; then it is closed.
    pub idle_timeout: Duration,
    /// Legacy sessions alive at once, all callers together. An `initialize`
    /// past it is answered 503; idle sessions end after ten minutes.
    pub max_sessions: usize,
    /// Legacy sessions alive at once for one principal.
    pub max_sessions_per_principal: usize,
}

/// The default of [`HttpLimits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 1_024;
/// The default of [`HttpLimits::max_connections_per_address`].
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 64;
/// The default of [`HttpLimits::header_read_timeout`].
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The default of [`HttpLimits::body_read_timeout`]: 256 KiB at under
/// 10 KiB/s.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The default of [`HttpLimits::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The default of [`HttpLimits::max_sessions`]: each may hold its
/// `initialize` (up to the body limit), so 1,024 of 256 KiB is 256 MiB at
/// worst.
pub const DEFAULT_MAX_SESSIONS: usize = 1_024;
/// The default of [`HttpLimits::max_sessions_per_principal`]: a client
/// holds one session; a few hosts of one user, a few each.
pub const DEFAULT_MAX_SESSIONS_PER_PRINCIPAL: usize = 32;

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_sessions_per_principal: DEFAULT_MAX_SESSIONS_PER_PRINCIPAL,
        }
    }
}
