//! The accept loop: every connection is counted against [`HttpLimits`]
//! before it costs anything, and served by hyper with timers on each phase.
//!
//! - A connection past [`HttpLimits::max_connections`], or past
//!   [`HttpLimits::max_connections_per_address`] for its address, is
//!   answered 503 and closed at once: the descriptors and memory a flood of
//!   sockets can take are those of the caps, not of the flood.
//! - A new connection must send a whole request head within
//!   [`HttpLimits::header_read_timeout`], and a kept-alive one its next head
//!   within [`HttpLimits::idle_timeout`] of the last answer's end; a request
//!   in flight (a call, an event stream) has no such deadline. hyper's own
//!   header timer stays on as a backstop.
//! - Bodies are read whole by the gate (`gate.rs`), within
//!   [`HttpLimits::body_read_timeout`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt;

use super::limits::HttpLimits;

/// Descriptors kept for everything but connections: the database, plugin
/// files, build logs, agents' sockets.
const RESERVED_DESCRIPTORS: u64 = 256;

/// The most a request head may take in memory, far above any real one (a
/// JWT is a few KiB): hyper answers 431 past it.
const MAX_HEAD_BUFFER: usize = 64 << 10;

/// How long to pause accepting when accept itself fails (out of
/// descriptors, say), rather than spinning on the error.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How long a connection asked to close while quiet may take to do so
/// before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How often a run of turned-away connections is logged.
const TURNED_AWAY_REPORT: Duration = Duration::from_secs(10);

/// What a connection turned away at the door reads, if it reads at all.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\nretry-after: 1\r\n\r\n";

/// Accepts connections on `listener` and serves `app` on them, within
/// `limits`, until the listener fails for good.
pub(crate) async fn run(listener: TcpListener, app: Router, limits: HttpLimits) -> std::io::Result<()> {
    let limits = Arc::new(HttpLimits { max_connections: descriptor_budget(limits.max_connections), ..limits });
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let addresses = Arc::new(AddressSlots { limit: limits.max_connections_per_address, open: Mutex::new(HashMap::new()) });
    let mut turned_away = TurnedAway::default();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("accepting a connection failed: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            turned_away.note(stream, "the server holds its most connections");
            continue;
        };
        let Some(slot) = AddressSlots::claim(&addresses, peer.ip()) else {
            turned_away.note(stream, "an address holds its most connections");
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(stream, peer, app.clone(), limits.clone(), permit, slot));
    }
}

/// Raises the process's descriptor limit to what `wanted` connections need,
/// as far as the hard limit lets it; returns how many connections fit.
fn descriptor_budget(wanted: usize) -> usize {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit through a valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return wanted;
    }
    let needed = wanted as u64 + RESERVED_DESCRIPTORS;
    if limit.rlim_cur < needed {
        let raised = libc::rlimit { rlim_cur: needed.min(limit.rlim_max), rlim_max: limit.rlim_max };
        // SAFETY: setrlimit reads one rlimit through a valid pointer.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = raised.rlim_cur;
        }
    }
    let fits = limit.rlim_cur.saturating_sub(RESERVED_DESCRIPTORS).max(16) as usize;
    if fits < wanted {
        tracing::warn!("the descriptor limit ({}) allows {fits} connections, not {wanted}: raise it (ulimit -n) to serve more", limit.rlim_cur);
    }
    wanted.min(fits)
}

/// Connections turned away, logged once per [`TURNED_AWAY_REPORT`] at most:
/// a flood must not flood the log too.
#[derive(Default)]
struct TurnedAway {
    since_report: u64,
    reported: Option<Instant>,
}

impl TurnedAway {
    fn note(&mut self, stream: TcpStream, why: &str) {
        // A fresh socket's send buffer is empty: this never waits. The
        // socket closes as it drops.
        let _ = stream.try_write(BUSY);
        self.since_report += 1;
        if self.reported.is_none_or(|at| at.elapsed() >= TURNED_AWAY_REPORT) {
            tracing::warn!("turned away {} connections ({why}) since the last report", self.since_report);
            self.since_report = 0;
            self.reported = Some(Instant::now());
        }
    }
}

/// How many connections each client address holds.
struct AddressSlots {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection of an address; dropping it frees the slot.
struct AddressSlot {
    slots: Arc<AddressSlots>,
    address: IpAddr,
}

impl AddressSlots {
    /// The address connections are counted under: an IPv4 address, or an
    /// IPv6 /64, which one host commonly holds whole.
    fn client(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => IpAddr::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
            },
        }
    }

    fn claim(slots: &Arc<AddressSlots>, ip: IpAddr) -> Option<AddressSlot> {
        let address = Self::client(ip);
        let mut open = slots.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(address).or_default();
        if *count >= slots.limit {
            return None;
        }
        *count += 1;
        Some(AddressSlot { slots: slots.clone(), address })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// What a connection is doing: requests in flight (from a whole head to
/// the end of the answer's body), and how many have begun.
#[derive(Default, Clone, Copy)]
struct Activity {
    in_flight: usize,
    begun: u64,
}

/// A request in flight; dropping it (with the answer's body, or with the
/// request's future when the client goes away) ends it.
struct InFlight(Arc<watch::Sender<Activity>>);

impl InFlight {
    fn begin(activity: &Arc<watch::Sender<Activity>>) -> Self {
        activity.send_modify(|a| {
            a.in_flight += 1;
            a.begun += 1;
        });
        Self(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|a| a.in_flight -= 1);
    }
}

/// An answer's body, which keeps its request in flight until it ends.
struct Tracked<B> {
    body: B,
    _in_flight: InFlight,
}

impl<B: http_body::Body + Unpin> http_body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Serves one connection until it ends or stays quiet too long.
async fn serve_connection(stream: TcpStream, peer: SocketAddr, app: Router, limits: Arc<HttpLimits>, _permit: OwnedSemaphorePermit, _slot: AddressSlot) {
    let (activity, quiet) = watch::channel(Activity::default());
    let activity = Arc::new(activity);
    let watched = activity.subscribe();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        let in_flight = InFlight::begin(&activity);
        request.extensions_mut().insert(ConnectInfo(peer));
        let app = app.clone();
        async move {
            let Ok(response) = app.oneshot(request).await;
            Ok::<_, Infallible>(response.map(|body| Tracked { body, _in_flight: in_flight }))
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout.max(limits.idle_timeout)).max_buf_size(MAX_HEAD_BUFFER);
    let connection = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        () = until_quiet_too_long(quiet, limits.header_read_timeout, limits.idle_timeout) => {}
    }
    // Quiet too long: hyper closes an idle connection at once; a request
    // that began in the meantime is answered first.
    connection.as_mut().graceful_shutdown();
    loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            () = tokio::time::sleep(CLOSE_GRACE) => {
                if watched.borrow().in_flight == 0 {
                    return;
                }
            }
        }
    }
}

/// Returns once the connection has had nothing in flight for longer than
/// allowed: `first` from its opening, `idle` from the end of each answer.
async fn until_quiet_too_long(mut activity: watch::Receiver<Activity>, first: Duration, idle: Duration) {
    let mut allowed = first;
    loop {
        if activity.wait_for(|a| a.in_flight == 0).await.is_err() {
            // The connection has ended; its own future says so.
            return std::future::pending().await;
        }
        let begun = activity.borrow().begun;
        if tokio::time::timeout(allowed, activity.wait_for(|a| a.begun > begun)).await.is_err() {
            return;
        }
        allowed = idle;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_host_is_counted_by_its_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(AddressSlots::client(a), AddressSlots::client(b));
        assert_ne!(AddressSlots::client(a), AddressSlots::client(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(AddressSlots::client(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn an_address_holds_at_most_its_slots_and_frees_them() {
        let slots = Arc::new(AddressSlots { limit: 2, open: Mutex::new(HashMap::new()) });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let first = AddressSlots::claim(&slots, ip).unwrap();
        let _second = AddressSlots::claim(&slots, ip).unwrap();
        assert!(AddressSlots::claim(&slots, ip).is_none());
        assert!(AddressSlots::claim(&slots, "192.0.2.2".parse().unwrap()).is_some(), "another address is not held back");
        drop(first);
        assert!(AddressSlots::claim(&slots, ip).is_some());
    }
}
