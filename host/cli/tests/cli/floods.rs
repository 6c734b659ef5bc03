//! A hostile plugin loaded from a plugin directory, as an outside author
//! would ship it, against the real `toolshed` processes: the host's memory
//! stays within its stated bound under floods, a log reader that never
//! reads never stops the host, and a plugin whose smoke call hangs never
//! delays `serve`.

use std::process::{Command, Stdio};
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, NumberOrString, ProgressToken, RequestMetaObject};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

use crate::support::{TOOLSHED, data_dir};

/// The bound the README states for one call under the default limits:
/// its linear memory, one copy of an import's argument (at most that
/// memory), and a few MiB of instance and host state.
const ONE_CALL_BOUND_MIB: u64 = 2 * 64 + 16;

/// The fixtures' entries, added to the built-in plugins' policy.
const FIXTURES_POLICY: &str = r#"
[plugins.hostile]
grants = ["toolshed:runtime/*", "toolshed:infra/db"]

[plugins.smoke-sleeps]
grants = ["toolshed:runtime/*", "toolshed:infra/db"]
smoke = { tool = "sleep_forever", deadline_s = 600 }
"#;

/// A test directory with a data directory, a plugin directory holding
/// `plugins`, and the policy above.
fn setup(plugins: &[(&str, &[u8])]) -> (tempfile::TempDir, Vec<std::ffi::OsString>) {
    let dir = tempfile::tempdir().unwrap();
    let plugin_dir = dir.path().join("plugins");
    std::fs::create_dir_all(&plugin_dir).unwrap();
    for (name, bytes) in plugins {
        std::fs::write(plugin_dir.join(format!("{name}.wasm")), bytes).unwrap();
    }
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, format!("{}\n{FIXTURES_POLICY}", toolshed_builtin::POLICY_TOML)).unwrap();
    let args = vec![
        "--data-dir".into(),
        data_dir(dir.path()).into_os_string(),
        "--plugins".into(),
        plugin_dir.into_os_string(),
        "--policy".into(),
        policy.into_os_string(),
    ];
    (dir, args)
}

/// Runs `toolshed ARGS call TOOL JSON` to its end; returns its result object
/// and its peak resident memory in MiB, read from the kernel when it is reaped.
fn call_measured(global: &[std::ffi::OsString], tool: &str, arguments: Value) -> (Value, u64) {
    let child = Command::new(TOOLSHED)
        .args(global)
        .args(["call", tool, &arguments.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).unwrap();
        text
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, not yet reaped; the pointers are valid.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
    let text = reader.join().unwrap();
    let result = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{tool} printed no JSON ({e}): {text}"));
    // ru_maxrss is in KiB on Linux.
    (result, usage.ru_maxrss as u64 / 1024)
}

#[test]
fn a_progress_flood_through_toolshed_call_stays_within_the_one_call_bound() {
    let (_dir, global) = setup(&[("hostile", toolshed_fixtures::HOSTILE)]);
    // The first run compiles the plugin into the cache; the second, like the
    // flood, loads it from there.
    call_measured(&global, "ping", json!({}));
    let (pong, baseline) = call_measured(&global, "ping", json!({}));
    assert_eq!(pong["text"], "pong");
    // A thousand progress messages of 4 MiB each.
    let (flood, peak) = call_measured(&global, "flood_progress", json!({ "count": 1_000, "bytes": 4 << 20 }));
    assert_eq!(flood["text"], "reported 1000", "{flood}");
    eprintln!("toolshed call: peak RSS {peak} MiB under a 1,000 x 4 MiB progress flood, {baseline} MiB for a ping");
    assert!(peak.saturating_sub(baseline) <= ONE_CALL_BOUND_MIB, "the flood took the host from {baseline} to {peak} MiB");
}

/// Peak resident memory of a running process, in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
}

fn with_progress(tool: &str, arguments: Value, token: i64) -> CallToolRequestParams {
    let mut call = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments.as_object().unwrap().clone());
    let mut meta = RequestMetaObject::default();
    meta.set_progress_token(ProgressToken(NumberOrString::Number(token)));
    call.meta = Some(meta);
    call
}

fn serve_command(global: &[std::ffi::OsString]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(TOOLSHED);
    command.args(global).arg("serve");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_progress_flood_through_serve_with_a_progress_token_stays_within_the_bound() {
    let (_dir, global) = setup(&[("hostile", toolshed_fixtures::HOSTILE)]);
    let transport = TokioChildProcess::new(serve_command(&global)).unwrap();
    let pid = transport.id().unwrap();
    let client = ().serve(transport).await.unwrap();
    let pong = client.call_tool(with_progress("ping", json!({}), 1)).await.unwrap();
    assert_eq!(pong.structured_content.unwrap()["text"], "pong");
    let baseline = peak_rss_mib(pid);
    // Three hundred messages of 16 MiB, each to be sent as a notification.
    let flood = client.call_tool(with_progress("flood_progress", json!({ "count": 300, "bytes": 16 << 20 }), 2)).await.unwrap();
    assert_eq!(flood.structured_content.unwrap()["text"], "reported 300");
    let peak = peak_rss_mib(pid);
    eprintln!("toolshed serve: peak RSS {peak} MiB under a 300 x 16 MiB progress flood, {baseline} MiB before");
    assert!(peak.saturating_sub(baseline) <= ONE_CALL_BOUND_MIB, "the flood took serve from {baseline} to {peak} MiB");
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_reader_that_never_reads_never_stops_serve() {
    let (_dir, global) = setup(&[("hostile", toolshed_fixtures::HOSTILE)]);
    let mut command = serve_command(&global);
    command.env("TOOLSHED_LOG", "warn");
    // stderr is a pipe that nobody reads: it fills after 64 KiB.
    let (transport, stderr) = TokioChildProcess::builder(command).stderr(Stdio::piped()).spawn().unwrap();
    let _never_read = stderr.expect("stderr is piped");
    let client = ().serve(transport).await.unwrap();
    let calls = async {
        for _ in 0..20 {
            let call = CallToolRequestParams::new("flood_log").with_arguments(json!({ "count": 1_000, "bytes": 1_000 }).as_object().unwrap().clone());
            let logged = client.call_tool(call).await.unwrap();
            assert_eq!(logged.structured_content.unwrap()["text"], "logged 1000");
        }
    };
    // Twenty calls of 64 KiB of log each: far more than the pipe holds.
    tokio::time::timeout(Duration::from_secs(60), calls).await.expect("serve kept answering with its log pipe full");
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_whose_smoke_call_hangs_delays_neither_initialize_nor_the_other_tools() {
    let (_dir, global) = setup(&[("workspace-tools", toolshed_builtin::WORKSPACE_TOOLS), ("smoke-sleeps", toolshed_fixtures::HOSTILE)]);
    let serving = async {
        let client = ().serve(TokioChildProcess::new(serve_command(&global)).unwrap()).await.expect("initialize answered");
        let tools = client.list_all_tools().await.unwrap();
        (client, tools)
    };
    // The hanging smoke call's deadline is ten minutes: only not waiting for it fits.
    let (client, tools) = tokio::time::timeout(Duration::from_secs(60), serving).await.expect("serve answered while a smoke call hung");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(names.contains(&"list_templates"), "{names:?}");
    assert!(!names.contains(&"ping"), "the hanging plugin is not served: {names:?}");
    client.cancel().await.unwrap();
}

/// Records each progress notification with its token and arrival time.
/// (rmcp's client sets the token of every request itself.)
#[derive(Clone, Default)]
struct Notes(std::sync::Arc<std::sync::Mutex<Vec<(i64, String, std::time::Instant)>>>);

impl rmcp::handler::client::ClientHandler for Notes {
    async fn on_progress(&self, params: rmcp::model::ProgressNotificationParam, _: rmcp::service::NotificationContext<rmcp::service::RoleClient>) {
        let token = match params.progress_token.0 {
            NumberOrString::Number(n) => n,
            NumberOrString::String(_) => -1,
        };
        self.0.lock().unwrap().push((token, params.message.unwrap_or_default(), std::time::Instant::now()));
    }

    fn get_info(&self) -> rmcp::model::ClientConfig {
        rmcp::model::ClientConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_chats_progress_flood_never_holds_back_another_chats_notifications() {
    let (_dir, global) = setup(&[("hostile", toolshed_fixtures::HOSTILE)]);
    let notes = Notes::default();
    let client = notes.clone().serve(TokioChildProcess::new(serve_command(&global)).unwrap()).await.unwrap();
    let flood = with_progress("flood_progress", json!({ "count": 60_000, "bytes": 32 << 10 }), 1);
    let mut steps = with_progress("progress_steps", json!({ "count": 20, "interval_ms": 100 }), 2);
    steps.meta.as_mut().unwrap().insert("chat_id".into(), json!("the-other-chat"));
    let flooding = client.call_tool(flood);
    let stepping = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        client.call_tool(steps).await
    };
    let (flooded, stepped) = tokio::join!(flooding, stepping);
    assert_eq!(flooded.unwrap().structured_content.unwrap()["text"], "reported 60000");
    assert_eq!(stepped.unwrap().structured_content.unwrap()["text"], "stepped 20");
    // rmcp numbers the progress tokens itself; the messages tell the calls apart.
    let notes = notes.0.lock().unwrap().clone();
    let other: Vec<&str> = notes.iter().map(|(_, m, _)| m.as_str()).filter(|m| m.starts_with("step ")).collect();
    let expected: Vec<String> = (1..=20).map(|i| format!("step {i}")).collect();
    assert_eq!(other, expected, "the other chat received every step, in order");
    let flood_notes = notes.iter().filter(|(_, m, _)| m.starts_with('p')).count();
    eprintln!("the flooding call's 60,000 reports reached the client as {flood_notes} notifications");
    // Figures for the record (timings are not asserted here): how long after
    // the flood's first notification the other chat's first step arrived,
    // and the longest gap between its steps, sent every 100 ms.
    let flood_began = notes.iter().find(|(_, m, _)| m.starts_with('p')).map(|(_, _, at)| *at);
    let steps: Vec<std::time::Instant> = notes.iter().filter(|(_, m, _)| m.starts_with("step ")).map(|(_, _, at)| *at).collect();
    let widest = steps.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
    if let Some(began) = flood_began {
        eprintln!(
            "the other chat's first step came {} ms after the flood began; its widest gap between steps was {} ms",
            steps[0].saturating_duration_since(began).as_millis(),
            widest.as_millis()
        );
    }
    client.cancel().await.unwrap();
}

/// Bytes written to the pipe behind `fd` and not yet read.
fn unread(fd: std::os::fd::RawFd) -> usize {
    let mut bytes: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer it is given.
    unsafe { libc::ioctl(fd, libc::FIONREAD, &mut bytes) };
    bytes.max(0) as usize
}

/// A client that sends thousands of calls and stops reading: serve's
/// output pipe fills, its writes would block, and it must neither spin,
/// nor die, nor grow past its bound; once the client reads again, every
/// call is answered exactly once.
#[test]
fn a_client_that_stops_reading_stalls_serve_within_its_bound_and_is_answered_once_it_reads() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::fd::AsRawFd;
    const CALLS: usize = 2_000;
    let (_dir, global) = setup(&[("hostile", toolshed_fixtures::HOSTILE)]);
    let mut serve = Command::new(TOOLSHED).args(&global).arg("serve").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let pid = serve.id();
    let mut input = serve.stdin.take().unwrap();
    let mut output = BufReader::new(serve.stdout.take().unwrap());
    let fd = output.get_ref().as_raw_fd();
    // The next answer, past any notification.
    let answer = |output: &mut BufReader<std::process::ChildStdout>| -> Value {
        loop {
            let mut line = String::new();
            assert!(output.read_line(&mut line).unwrap() > 0, "serve closed its output");
            let message: Value = serde_json::from_str(&line).unwrap();
            if message.get("id").is_some() {
                return message;
            }
        }
    };
    let initialize = json!({ "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "stops-reading", "version": "0" } } });
    writeln!(input, "{initialize}\n{}", json!({ "jsonrpc": "2.0", "method": "notifications/initialized" })).unwrap();
    assert_eq!(answer(&mut output)["id"], 0);
    writeln!(input, "{}", json!({ "jsonrpc": "2.0", "id": "list", "method": "tools/list" })).unwrap();
    assert_eq!(answer(&mut output)["id"], "list");
    let baseline = peak_rss_mib(pid);

    // The calls go out from a thread of their own: serve may stop reading
    // its input while its output is full.
    let writer = std::thread::spawn(move || {
        for id in 1..=CALLS {
            let call = json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": { "name": "ping", "arguments": {} } });
            if writeln!(input, "{call}").is_err() {
                break;
            }
        }
        input
    });
    // Wait until the output pipe is full: serve has more to say than the
    // pipe holds, and nobody reads.
    let mut full = false;
    for _ in 0..600 {
        if unread(fd) >= 60 << 10 {
            full = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(full, "serve's answers never filled the pipe: {} bytes", unread(fd));
    assert!(serve.try_wait().unwrap().is_none(), "serve died with its output full");
    let stalled = peak_rss_mib(pid);

    let mut answered = std::collections::HashSet::new();
    while answered.len() < CALLS {
        let message = answer(&mut output);
        let id = message["id"].as_u64().unwrap_or_else(|| panic!("an answer to no call: {message}"));
        let result = &message["result"]["structuredContent"];
        assert!(result["text"] == "pong" || result["code"] == "TOO_MANY_CALLS", "call {id}: {message}");
        assert!(answered.insert(id), "call {id} was answered twice");
    }
    let _input = writer.join().unwrap();
    let peak = peak_rss_mib(pid);
    eprintln!("toolshed serve: peak RSS {baseline} MiB before, {stalled} MiB with its output full, {peak} MiB after {CALLS} calls");
    assert!(peak.saturating_sub(baseline) <= ONE_CALL_BOUND_MIB, "a client that stopped reading took serve from {baseline} to {peak} MiB");
    let _ = serve.kill();
    let _ = serve.wait();
}
