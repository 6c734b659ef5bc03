//! Connections as an attacker would hold them against `serve --http`:
//! thousands of sockets that connect and say nothing, and clients that
//! are refused before they have sent their body.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use toolshed_mcp::auth::hash_token;

use crate::support::{TOOLSHED, data_dir};

/// The attacker's sockets, the test's own descriptors aside.
const HALF_OPEN: usize = 20_000;
/// Descriptors the test process keeps for itself and the tests beside it.
const RESERVED_FDS: u64 = 1_024;
/// Source addresses the sockets come from: 127.0.0.2 to 127.0.0.11.
const ATTACKERS: u8 = 10;
const PER_ADDRESS: usize = 64;
const HEADER_TIMEOUT_SECS: u64 = 3;

/// Raises this process's descriptor limit for `wanted` more sockets; returns
/// how many it may open, which is fewer when the hard limit is too low.
fn raise_descriptor_limit(wanted: usize) -> usize {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit through a valid pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
    let needed = wanted as u64 + RESERVED_FDS;
    // Root may raise the hard limit too; others get what it allows.
    let raised = libc::rlimit { rlim_cur: needed.max(limit.rlim_cur), rlim_max: needed.max(limit.rlim_max) };
    // SAFETY: setrlimit reads one rlimit through a valid pointer.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        return wanted;
    }
    let within = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &within) }, 0);
    (limit.rlim_max.saturating_sub(RESERVED_FDS) as usize).min(wanted)
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

fn resident_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
}

/// A token the servers know, without the scope the tools need.
const UNSCOPED: &str = "unscoped";

/// A process's resident memory once it has not moved by more than 1 MiB
/// for a second (at most 60 s).
async fn settled_resident_mib(pid: u32) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = resident_mib(pid);
    let mut still_since = Instant::now();
    while Instant::now() < deadline && still_since.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = resident_mib(pid);
        if now.abs_diff(last) > 1 {
            still_since = Instant::now();
        }
        last = now;
    }
    last
}

/// `toolshed serve --http` on a free loopback port with a token file
/// holding `token` (and [`UNSCOPED`]), and `extra` arguments; returns the
/// process and its address once it serves.
async fn serve(dir: &std::path::Path, token: &str, extra: &[&str]) -> (tokio::process::Child, SocketAddr) {
    let tokens = dir.join("tokens.toml");
    std::fs::write(
        &tokens,
        format!(
            "[[token]]\nsha256 = \"{}\"\nowner_id = \"u-1\"\nowner_name = \"ada\"\norganization_id = \"{org}\"\n\
             [[token]]\nsha256 = \"{}\"\nowner_id = \"u-2\"\nowner_name = \"bob\"\norganization_id = \"{org}\"\nscopes = [\"openid\"]\n",
            hash_token(token),
            hash_token(UNSCOPED),
            org = toolshed_local::LOCAL_ORG
        ),
    )
    .unwrap();
    let mut command = tokio::process::Command::new(TOOLSHED);
    command.arg("--data-dir").arg(data_dir(dir)).args(["serve", "--http", "127.0.0.1:0", "--auth-tokens"]).arg(&tokens).args(extra);
    crate::support::serving_http(command).await
}

/// What a client that means no harm sees: the metadata and an
/// `initialize`, each on a new connection, and how long each took.
async fn well_behaved(addr: SocketAddr, token: &str) -> [(u16, Duration); 2] {
    toolshed_mcp::tls::ensure_provider();
    let fresh = || reqwest::Client::builder().pool_max_idle_per_host(0).timeout(Duration::from_secs(10)).build().unwrap();
    let started = Instant::now();
    let metadata = fresh().get(format!("http://{addr}/.well-known/oauth-protected-resource")).send().await.map(|r| r.status().as_u16()).unwrap_or(0);
    let metadata = (metadata, started.elapsed());
    let started = Instant::now();
    let initialize = serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "probe", "version": "1" } } });
    let mcp = fresh()
        .post(format!("http://{addr}/mcp"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(initialize.to_string())
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    [metadata, (mcp, started.elapsed())]
}

/// Opens `count` sockets to `addr` from the attackers' addresses, sending
/// nothing on any; returns those that connected.
async fn half_open(addr: SocketAddr, count: usize) -> Vec<tokio::net::TcpStream> {
    use futures::StreamExt;
    let connects = futures::stream::iter(0..count).map(|i| async move {
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % ATTACKERS as usize) as u8));
        let socket = tokio::net::TcpSocket::new_v4().ok()?;
        socket.bind(SocketAddr::new(source, 0)).ok()?;
        tokio::time::timeout(Duration::from_secs(5), socket.connect(addr)).await.ok()?.ok()
    });
    connects.buffer_unordered(512).filter_map(|s| async move { s }).collect().await
}

/// Twenty thousand sockets from ten addresses connect to `serve --http`
/// and never send a byte (a slowloris, or plain descriptor exhaustion).
/// The server holds at most its cap per address of them, turns the rest
/// away at once and closes those it held once the header timeout passes;
/// meanwhile a client from another address is answered within a second,
/// and the server's descriptors and memory stay within the caps' bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_silent_sockets_leave_serve_answering_within_a_second_with_bounded_descriptors_and_memory() {
    if let Ok(target) = std::env::var(HOLDER_VARIABLE) {
        return hold_sockets_for_the_parent(&target).await;
    }
    let own = raise_descriptor_limit(HALF_OPEN);
    let count = HALF_OPEN;
    let dir = tempfile::tempdir().unwrap();
    let per_address = PER_ADDRESS.to_string();
    let header_timeout = HEADER_TIMEOUT_SECS.to_string();
    let (server, addr) = serve(dir.path(), "tok", &["--max-connections-per-address", &per_address, "--header-read-timeout", &header_timeout]).await;
    let pid = server.id().unwrap();
    for (status, _) in well_behaved(addr, "tok").await {
        assert_eq!(status, 200, "before the attack");
    }
    // serve compiles its plugins in the background once it serves: the
    // baseline is taken once its memory has settled.
    let rss_before = settled_resident_mib(pid).await;
    let fds_before = open_descriptors(pid);

    let started = Instant::now();
    // Where the hard descriptor limit is below the count and cannot be
    // raised, a second process of this test holds the rest.
    let mut holder = (own < count).then(|| spawn_holder(addr, count - own));
    let sockets = half_open(addr, own).await;
    let held_by_holder = match &mut holder {
        Some(holder) => holder.connected().await,
        None => 0,
    };
    let connected = sockets.len() + held_by_holder;
    let connect_time = started.elapsed();
    let answers = well_behaved(addr, "tok").await;
    let (fds_during, rss_during) = (open_descriptors(pid), resident_mib(pid));
    eprintln!(
        "{connected} of {count} silent sockets connected in {} ms; serve: {fds_before} -> {fds_during} descriptors, {rss_before} -> {rss_during} MiB resident; \
         metadata answered {} in {} ms, initialize {} in {} ms",
        connect_time.as_millis(),
        answers[0].0,
        answers[0].1.as_millis(),
        answers[1].0,
        answers[1].1.as_millis()
    );
    assert!(connected >= count * 9 / 10, "only {connected} of {count} sockets connected");
    for ((status, took), what) in answers.iter().zip(["the metadata", "initialize on /mcp"]) {
        assert_eq!(*status, 200, "{what} under {connected} silent sockets");
        assert!(*took < Duration::from_secs(1), "{what} took {} ms under {connected} silent sockets", took.as_millis());
    }
    // The caps: ten addresses of 64 connections each, and a few to spare.
    let held = ATTACKERS as usize * PER_ADDRESS;
    assert!(fds_during <= fds_before + held + 32, "serve went from {fds_before} to {fds_during} descriptors under {connected} silent sockets");
    // Each connection held costs a task and hyper's buffers, some KiB; 640
    // of them stay far under 64 MiB (the flood itself costs nothing more).
    assert!(rss_during <= rss_before + 64, "serve went from {rss_before} to {rss_during} MiB under {connected} silent sockets");

    // Past the header timeout, the silent sockets it held are closed.
    tokio::time::sleep(Duration::from_secs(HEADER_TIMEOUT_SECS) + Duration::from_millis(1_500)).await;
    let fds_after = open_descriptors(pid);
    eprintln!("{fds_after} descriptors {} s after the attack, the sockets still open", HEADER_TIMEOUT_SECS + 1);
    assert!(fds_after <= fds_before + 16, "serve still holds {fds_after} descriptors (from {fds_before}) after the header timeout");
    drop(sockets);
    drop(holder);
}

/// The variable that makes a run of the twenty-thousand test hold sockets
/// for its parent instead: `ADDRESS,COUNT`.
const HOLDER_VARIABLE: &str = "TOOLSHED_TEST_HOLD_SILENT_SOCKETS";
/// How the holder's report line starts.
const HELD: &str = "silent sockets held: ";

/// A second process of this test that holds some of the silent sockets.
struct Holder {
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Holder {
    /// How many sockets it connected, once it has opened them all.
    async fn connected(&mut self) -> usize {
        // The test harness writes its own lines around the report.
        loop {
            let line = self.lines.next_line().await.unwrap().expect("the socket holder exited before it reported");
            if let Some(held) = line.strip_prefix(HELD) {
                return held.trim().parse().unwrap_or_else(|_| panic!("the socket holder reported {line:?}"));
            }
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn spawn_holder(addr: SocketAddr, count: usize) -> Holder {
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "sockets::twenty_thousand_silent_sockets_leave_serve_answering_within_a_second_with_bounded_descriptors_and_memory", "--nocapture", "--test-threads", "1"])
        .env(HOLDER_VARIABLE, format!("{addr},{count}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    Holder { child, lines }
}

/// The holder's side: connect, say how many connected on a line of its
/// own, and keep the sockets until the parent closes stdin or is gone.
async fn hold_sockets_for_the_parent(target: &str) {
    let (addr, count) = target.split_once(',').expect("ADDRESS,COUNT");
    let (addr, count): (SocketAddr, usize) = (addr.parse().unwrap(), count.parse().unwrap());
    let count = raise_descriptor_limit(count);
    let sockets = half_open(addr, count).await;
    println!("\n{HELD}{}", sockets.len());
    let mut rest = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut rest).await;
    drop(sockets);
}

/// Reads one HTTP/1.1 answer from `stream`: its status, its headers in
/// lowercase, and its body (by Content-Length).
async fn read_answer(stream: &mut tokio::io::BufReader<tokio::net::TcpStream>) -> std::io::Result<(u16, Vec<(String, String)>, String)> {
    let mut status_line = String::new();
    if stream.read_line(&mut status_line).await? == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before an answer"));
    }
    let status = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).await?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse::<usize>().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await?;
    Ok((status, headers, String::from_utf8_lossy(&body).into_owned()))
}

/// A client that sends its headers, pauses, then sends its body (as httpx
/// does), is refused (no token, a bad one, one without the scope), and
/// sends its next request on the same connection: a hundred rounds (401s
/// and 403s), each
/// refusal read whole and each next request answered, never a reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_client_that_sends_its_body_late_keeps_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = serve(dir.path(), "good", &[]).await;
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"late","version":"1"}}}"#;
    let mut resets = Vec::new();
    for round in 0..100 {
        let (authorization, refused) = match round % 3 {
            0 => (String::new(), 401),
            1 => ("authorization: Bearer not-a-token\r\n".to_string(), 401),
            _ => (format!("authorization: Bearer {UNSCOPED}\r\n"), 403),
        };
        let mut stream = tokio::io::BufReader::new(tokio::net::TcpStream::connect(addr).await.unwrap());
        let head = format!(
            "POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\n{authorization}content-length: {}\r\n\r\n",
            body.len()
        );
        let exchange = async {
            stream.get_mut().write_all(head.as_bytes()).await?;
            tokio::time::sleep(Duration::from_millis(30)).await;
            stream.get_mut().write_all(body.as_bytes()).await?;
            let (status, headers, _) = read_answer(&mut stream).await?;
            assert_eq!(status, refused, "round {round}");
            assert!(!headers.iter().any(|(n, v)| n == "connection" && v.eq_ignore_ascii_case("close")), "round {round}: a drained refusal keeps the connection");
            let next = format!("GET /.well-known/oauth-protected-resource HTTP/1.1\r\nhost: {addr}\r\n\r\n");
            stream.get_mut().write_all(next.as_bytes()).await?;
            let (status, _, metadata) = read_answer(&mut stream).await?;
            assert_eq!(status, 200, "round {round}: {metadata}");
            assert!(serde_json::from_str::<Value>(&metadata).is_ok(), "round {round}: {metadata}");
            Ok::<_, std::io::Error>(())
        };
        if let Err(e) = tokio::time::timeout(Duration::from_secs(10), exchange).await.expect("each round ends within 10 s") {
            resets.push((round, e.to_string()));
        }
    }
    assert!(resets.is_empty(), "{} of 100 rounds failed on the connection: {resets:?}", resets.len());
}

/// Reads `stream` until the server closes it; returns what it sent and
/// how long that took.
async fn until_closed(stream: &mut tokio::net::TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => seen.extend_from_slice(&buffer[..n]),
            Err(_) => panic!("the server kept the connection open for 10 s: {}", String::from_utf8_lossy(&seen)),
        }
    }
    (String::from_utf8_lossy(&seen).into_owned(), started.elapsed())
}

async fn connect_from(source: [u8; 4], addr: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::V4(source.into()), 0)).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Each phase of a connection has its deadline (1 s each here): a head
/// that stops halfway, a body that stops halfway (answered 408), and a
/// kept-alive connection that sends nothing more are all closed; and a
/// connection past the cap of its address, or of the server, is answered
/// 503 and closed at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_phase_of_a_connection_has_a_deadline_and_the_caps_turn_the_rest_away() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--header-read-timeout", "1", "--body-read-timeout", "1", "--idle-timeout", "1", "--max-connections", "6", "--max-connections-per-address", "4"];
    let (_server, addr) = serve(dir.path(), "tok", &flags).await;
    let within = |took: Duration| took >= Duration::from_millis(800) && took < Duration::from_secs(4);

    let mut slow_head = connect_from([127, 0, 0, 1], addr).await;
    slow_head.write_all(b"GET /.well-known/oauth-protected-resource HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    let (_, took) = until_closed(&mut slow_head).await;
    assert!(within(took), "a head that stopped halfway was closed after {} ms", took.as_millis());

    let mut slow_body = connect_from([127, 0, 0, 1], addr).await;
    let head = "POST /mcp HTTP/1.1\r\nhost: x\r\nauthorization: Bearer tok\r\ncontent-type: application/json\r\n\
                accept: application/json, text/event-stream\r\ncontent-length: 100\r\n\r\n{\"jsonrpc\":";
    slow_body.write_all(head.as_bytes()).await.unwrap();
    let (answer, took) = until_closed(&mut slow_body).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "a body that stopped halfway: {answer}");
    assert!(within(took), "a body that stopped halfway was answered after {} ms", took.as_millis());

    let mut idle = connect_from([127, 0, 0, 1], addr).await;
    idle.write_all(b"GET /.well-known/oauth-protected-resource HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let (answer, took) = until_closed(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(within(took), "an idle connection was closed {} ms after its answer", took.as_millis());

    // Four silent sockets fill 127.0.0.5's share; a fifth is turned away.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from([127, 0, 0, 5], addr).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (answer, took) = until_closed(&mut connect_from([127, 0, 0, 5], addr).await).await;
    assert!(answer.starts_with("HTTP/1.1 503") && took < Duration::from_millis(500), "past the address's cap: {answer} after {} ms", took.as_millis());
    // Two more from elsewhere fill the server; the next from a third address is turned away.
    for _ in 0..2 {
        held.push(connect_from([127, 0, 0, 6], addr).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (answer, took) = until_closed(&mut connect_from([127, 0, 0, 7], addr).await).await;
    assert!(answer.starts_with("HTTP/1.1 503") && took < Duration::from_millis(500), "past the server's cap: {answer} after {} ms", took.as_millis());
    // Once the silent ones are closed at their header timeout, there is room again.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let mut later = connect_from([127, 0, 0, 7], addr).await;
    later.write_all(b"GET /.well-known/oauth-protected-resource HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
    let (answer, _) = until_closed(&mut later).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "after the timeout: {answer}");
}
