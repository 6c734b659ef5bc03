//! MCP over streamable HTTP: calls per second across many loopback
//! connections to a `toolshed serve --http` child, against the calls per
//! second of the same call made in process on a host opened the way `serve`
//! opens it, with as many in flight.
//!
//! Each connection is one client at MCP 2026-07-28, which keeps no session:
//! every request stands alone, as the newest clients send them.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use super::median;
use super::stdio::{ROUNDS, ServeChild, ServeHost, TOOL};

/// What one run of the HTTP benchmark found.
#[derive(Debug, Clone, Copy)]
pub struct HttpFigures {
    /// Calls answered per second over HTTP.
    pub calls_per_s: f64,
    /// The baseline: calls per second in process, as many in flight.
    pub in_process_calls_per_s: f64,
    /// Median time of one call over HTTP, in ms.
    pub p50_ms: f64,
    /// 99th percentile of the same, in ms.
    pub p99_ms: f64,
}

/// A `toolshed serve --http` child on a loopback port.
struct Server {
    _serve: ServeChild,
    addr: SocketAddr,
}

impl Server {
    /// serve as it runs by default, but for one setting: the connections are
    /// all one caller, which may have `connections` calls at once instead
    /// of 32.
    fn start(connections: usize) -> anyhow::Result<Server> {
        // A free port: bound, read, released, then given to serve.
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let serve = ServeChild::start(&["--http", &addr.to_string(), "--calls-per-caller", &connections.to_string()], false)?;
        Ok(Server { _serve: serve, addr })
    }
}

/// One call as a sessionless client sends it.
fn call_body() -> String {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": { "name": TOOL, "arguments": {}, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        } },
    })
    .to_string()
}

/// One loopback connection sending calls as a sessionless client does,
/// one at a time. The request is written once and replayed, and the answer
/// read just far enough to check it: the load generator shares the machine
/// with the server, so it must cost little, as wrk does.
struct Connection {
    stream: tokio::net::TcpStream,
    request: Arc<Vec<u8>>,
    buffer: Vec<u8>,
}

impl Connection {
    async fn open(addr: SocketAddr, request: Arc<Vec<u8>>) -> anyhow::Result<Connection> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection { stream, request, buffer: Vec::with_capacity(4096) })
    }

    /// Makes one call; its time, or why it failed.
    async fn call(&mut self) -> anyhow::Result<Duration> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let started = Instant::now();
        self.stream.write_all(&self.request).await?;
        self.buffer.clear();
        // A JSON answer has a length; an event stream comes in chunks, the
        // last of them empty.
        while !answered(&self.buffer) {
            let mut chunk = [0u8; 4096];
            let read = self.stream.read(&mut chunk).await?;
            anyhow::ensure!(read > 0, "serve closed the connection");
            self.buffer.extend_from_slice(&chunk[..read]);
            anyhow::ensure!(self.buffer.len() < 1 << 20, "an answer of over 1 MiB");
        }
        let text = String::from_utf8_lossy(&self.buffer);
        anyhow::ensure!(text.starts_with("HTTP/1.1 200") && text.contains("\"isError\":false"), "{TOOL} over HTTP answered: {text}");
        Ok(started.elapsed())
    }
}

/// Whether `buffer` holds a whole HTTP answer.
fn answered(buffer: &[u8]) -> bool {
    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
    let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
    match head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|n| n.trim().parse::<usize>().ok()) {
        Some(length) => buffer.len() >= end + 4 + length,
        None => buffer.ends_with(b"\r\n0\r\n\r\n"),
    }
}

/// The bytes of one call as a sessionless client sends it.
fn request(addr: SocketAddr) -> Vec<u8> {
    let body = call_body();
    format!(
        "POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\n\
         mcp-protocol-version: 2026-07-28\r\nmcp-method: tools/call\r\nmcp-name: {TOOL}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Makes `calls` calls over `connections` connections; the calls/s and
/// every call's time.
async fn load(addr: SocketAddr, connections: usize, calls: usize) -> anyhow::Result<(f64, Vec<Duration>)> {
    let request = Arc::new(request(addr));
    let mut opened = Vec::with_capacity(connections);
    for _ in 0..connections {
        opened.push(Connection::open(addr, request.clone()).await?);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = opened
        .into_iter()
        .map(|mut connection| {
            let next = next.clone();
            tokio::spawn(async move {
                let mut times = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < calls {
                    times.push(connection.call().await?);
                }
                anyhow::Ok(times)
            })
        })
        .collect();
    let mut times = Vec::with_capacity(calls);
    for worker in workers {
        times.extend(worker.await??);
    }
    Ok((calls as f64 / started.elapsed().as_secs_f64(), times))
}

/// Waits until `addr` accepts connections and serve lists the tool.
async fn ready(addr: SocketAddr) -> anyhow::Result<()> {
    let request = Arc::new(request(addr));
    let mut last = None;
    for _ in 0..200 {
        let answered = match Connection::open(addr, request.clone()).await {
            Ok(mut connection) => connection.call().await,
            Err(e) => Err(e),
        };
        match answered {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("serve --http never answered")))
}

fn percentile(mut times: Vec<Duration>, fraction: f64) -> f64 {
    times.sort();
    let index = ((times.len() as f64 * fraction).ceil() as usize).clamp(1, times.len()) - 1;
    times[index].as_secs_f64() * 1e3
}

/// Measures `calls` calls over `connections` loopback connections to a
/// `toolshed serve --http` child (this executable), and the same number in
/// process with as many in flight, in alternating rounds.
///
/// # Errors
///
/// When `serve` cannot be started, or a call fails on either side.
pub fn measure(calls: usize, connections: usize) -> anyhow::Result<HttpFigures> {
    let server = Server::start(connections)?;
    let own = ServeHost::open()?;
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    tokio.block_on(ready(server.addr))?;
    tokio.block_on(load(server.addr, connections, calls.min(500)))?;
    own.call_many(calls.min(500), connections)?;

    let (mut served, mut in_process, mut times) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let (rate, round) = tokio.block_on(load(server.addr, connections, calls))?;
        served.push(rate);
        times.extend(round);
        let started = Instant::now();
        own.call_many(calls, connections)?;
        in_process.push(calls as f64 / started.elapsed().as_secs_f64());
    }
    Ok(HttpFigures {
        calls_per_s: median(served),
        in_process_calls_per_s: median(in_process),
        p50_ms: percentile(times.clone(), 0.50),
        p99_ms: percentile(times, 0.99),
    })
}
