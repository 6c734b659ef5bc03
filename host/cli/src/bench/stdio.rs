//! MCP over stdio: the CPU `toolshed serve` spends per call, against the
//! same call made in process on a host opened the way `serve` opens it
//! (the local backend in a fresh data directory, the built-in plugins, the
//! default policy and capacity). Both sides make the same quick call,
//! `list_templates {}`, with the same number in flight, so the ratio is the
//! cost of the MCP layer: framing, JSON, rmcp's dispatch and the server's
//! own checks.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context;
use serde_json::{Value, json};
use toolshed_runtime::{Arguments, CallContext, CallOptions, Toolshed};

use super::median;
use crate::app::{App, HostOptions};

/// What one run of the stdio benchmark found.
#[derive(Debug, Clone, Copy)]
pub struct StdioFigures {
    /// CPU time of the `serve` process per call, in µs.
    pub server_cpu_us_per_call: f64,
    /// CPU time of this process per call made in process, in µs.
    pub in_process_cpu_us_per_call: f64,
    /// Calls answered per second over stdio.
    pub calls_per_s: f64,
    /// The `serve` process's peak RSS in MiB during the measured rounds.
    pub server_peak_rss_mib: f64,
}

/// The tool both sides call: quick, and answered from the local store.
pub(crate) const TOOL: &str = "list_templates";

/// What `getrusage(who)` says of this process or thread.
pub(crate) fn rusage(who: libc::c_int) -> libc::rusage {
    // SAFETY: getrusage only writes the struct it is given.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut usage);
        usage
    }
}

/// This process's CPU time so far (user and system), in µs.
pub(crate) fn own_cpu_us() -> f64 {
    let usage = rusage(libc::RUSAGE_SELF);
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    us(usage.ru_utime) + us(usage.ru_stime)
}

/// Process `pid`'s CPU time so far (user and system), in µs.
pub(crate) fn process_cpu_us(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name, which may itself hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')').context("a /proc stat line")?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).context("utime and stime in /proc stat");
    // SAFETY: sysconf reads a constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((ticks(11)? + ticks(12)?) * 1e6 / per_second)
}

/// The context a stdio session gives its calls: the local user, one chat.
fn session_context() -> CallContext {
    CallContext {
        chat_id: uuid::Uuid::new_v4().to_string(),
        owner_id: toolshed_local::LOCAL_OWNER.into(),
        owner_name: toolshed_local::LOCAL_OWNER_NAME.into(),
        organization_id: toolshed_local::LOCAL_ORG.into(),
    }
}

/// Makes `calls` calls with `in_flight` at a time.
pub(crate) async fn call_many(host: &Arc<Toolshed>, calls: usize, in_flight: usize) -> anyhow::Result<()> {
    let cx = Arc::new(session_context());
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..in_flight)
        .map(|_| {
            let (host, cx, next) = (host.clone(), cx.clone(), next.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < calls {
                    let options = CallOptions { progress: None, wait_budget: Some(toolshed_mcp::DEFAULT_WAIT_BUDGET), client: None };
                    let out = host.call_with(&cx, TOOL, Arguments::Text("{}"), options).await;
                    anyhow::ensure!(!out.is_error, "{TOOL} failed in process: {}", out.value);
                }
                Ok(())
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    Ok(())
}

/// A host opened the way `serve` opens it, in this process: the baseline
/// of the MCP rows.
pub(crate) struct ServeHost {
    tokio: tokio::runtime::Runtime,
    app: App,
    _data: tempfile::TempDir,
}

impl ServeHost {
    pub(crate) fn open() -> anyhow::Result<ServeHost> {
        let data = tempfile::tempdir()?;
        let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let global = HostOptions { data_dir: Some(data.path().to_path_buf()), database: None, plugins: None, policy: None, plugins_toml: None, registry: Default::default() };
        let app = tokio.block_on(async {
            let mut app = App::open_runner(&global).await?;
            app.loaded().await;
            anyhow::Ok(app)
        })?;
        Ok(ServeHost { tokio, app, _data: data })
    }

    /// Makes `calls` calls with `in_flight` at a time.
    pub(crate) fn call_many(&self, calls: usize, in_flight: usize) -> anyhow::Result<()> {
        self.tokio.block_on(call_many(&self.app.host, calls, in_flight))
    }
}

/// `toolshed serve` (this executable) as a child with a data directory of
/// its own, ended and reaped when dropped.
pub(crate) struct ServeChild {
    pub(crate) child: std::process::Child,
    /// A data directory of its own, removed after the child has ended.
    owned_data: Option<tempfile::TempDir>,
}

impl ServeChild {
    /// Starts `serve ARGS` with its standard input and output piped or not.
    pub(crate) fn start(args: &[&str], piped: bool) -> anyhow::Result<ServeChild> {
        let data = tempfile::tempdir()?;
        let mut serve = Self::start_in(data.path(), args, piped)?;
        serve.owned_data = Some(data);
        Ok(serve)
    }

    /// The same in the data directory `data`, which outlives it.
    pub(crate) fn start_in(data: &std::path::Path, args: &[&str], piped: bool) -> anyhow::Result<ServeChild> {
        let stdio = || if piped { Stdio::piped() } else { Stdio::null() };
        let child = Command::new(std::env::current_exe()?)
            .arg("serve")
            .args(args)
            .arg("--data-dir")
            .arg(data)
            .stdin(stdio())
            .stdout(stdio())
            .stderr(Stdio::null())
            .spawn()
            .context("starting toolshed serve")?;
        Ok(ServeChild { child, owned_data: None })
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `toolshed serve` child speaking newline-delimited JSON-RPC on stdio.
pub(crate) struct Server {
    serve: ServeChild,
    input: std::process::ChildStdin,
    output: BufReader<std::process::ChildStdout>,
    next_id: u64,
}

impl Server {
    fn start() -> anyhow::Result<Server> {
        Self::over(ServeChild::start(&[], true)?)
    }

    /// `serve ARGS` in the data directory `data`.
    pub(crate) fn start_in(data: &std::path::Path, args: &[&str]) -> anyhow::Result<Server> {
        Self::over(ServeChild::start_in(data, args, true)?)
    }

    fn over(mut serve: ServeChild) -> anyhow::Result<Server> {
        let input = serve.child.stdin.take().context("serve's stdin")?;
        let output = BufReader::new(serve.child.stdout.take().context("serve's stdout")?);
        Ok(Server { serve, input, output, next_id: 0 })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.serve.child.id()
    }

    /// Waits for the next notification named `method`, passing over others.
    pub(crate) fn notification(&mut self, method: &str) -> anyhow::Result<()> {
        let mut line = String::new();
        loop {
            line.clear();
            anyhow::ensure!(self.output.read_line(&mut line)? > 0, "serve closed its output before {method}");
            let message: Value = serde_json::from_str(&line).context("a JSON-RPC line from serve")?;
            if message.get("id").is_none() && message["method"] == method {
                return Ok(());
            }
        }
    }

    fn send(&mut self, method: &str, params: Value) -> anyhow::Result<u64> {
        self.next_id += 1;
        let request = json!({ "jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params });
        writeln!(self.input, "{request}")?;
        Ok(self.next_id)
    }

    fn notify(&mut self, method: &str) -> anyhow::Result<()> {
        writeln!(self.input, "{}", json!({ "jsonrpc": "2.0", "method": method }))?;
        Ok(())
    }

    /// The next response, skipping notifications.
    fn response(&mut self) -> anyhow::Result<Value> {
        let mut line = String::new();
        loop {
            line.clear();
            anyhow::ensure!(self.output.read_line(&mut line)? > 0, "serve closed its output");
            let message: Value = serde_json::from_str(&line).context("a JSON-RPC line from serve")?;
            if message.get("id").is_some() {
                if let Some(error) = message.get("error") {
                    anyhow::bail!("serve answered an error: {error}");
                }
                return Ok(message);
            }
        }
    }

    fn request(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        let id = self.send(method, params)?;
        loop {
            let response = self.response()?;
            if response["id"] == id {
                return Ok(response);
            }
        }
    }

    /// Initializes as a client at default settings would, and waits until
    /// the tools are listed.
    pub(crate) fn initialize(&mut self) -> anyhow::Result<()> {
        self.initialize_for(TOOL)
    }

    /// The same, waiting until `tool` is listed.
    pub(crate) fn initialize_for(&mut self, tool: &str) -> anyhow::Result<()> {
        let client = json!({ "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "toolshed-bench", "version": "0" } });
        self.request("initialize", client)?;
        self.notify("notifications/initialized")?;
        for _ in 0..300 {
            let listed = self.request("tools/list", json!({}))?;
            let tools = listed["result"]["tools"].as_array().cloned().unwrap_or_default();
            if tools.iter().any(|t| t["name"] == tool) {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        anyhow::bail!("serve never listed {tool}")
    }

    /// Makes `calls` calls of `tool`, each once the one before is answered.
    pub(crate) fn call_one_by_one(&mut self, tool: &str, arguments: &Value, calls: usize) -> anyhow::Result<()> {
        let call = json!({ "name": tool, "arguments": arguments });
        for _ in 0..calls {
            let response = self.request("tools/call", call.clone())?;
            anyhow::ensure!(response["result"]["isError"] != true, "{tool} failed over stdio: {response}");
        }
        Ok(())
    }

    /// Makes `calls` calls with `in_flight` outstanding at a time.
    fn call_many(&mut self, calls: usize, in_flight: usize) -> anyhow::Result<()> {
        let call = json!({ "name": TOOL, "arguments": {} });
        let mut sent = 0;
        while sent < calls.min(in_flight) {
            self.send("tools/call", call.clone())?;
            sent += 1;
        }
        for _ in 0..calls {
            let response = self.response()?;
            anyhow::ensure!(response["result"]["isError"] != true, "{TOOL} failed over stdio: {response}");
            if sent < calls {
                self.send("tools/call", call.clone())?;
                sent += 1;
            }
        }
        Ok(())
    }
}

/// How many times each side is measured, alternately; each figure is the
/// median, so a burst of other work on a shared machine moves neither much.
pub(crate) const ROUNDS: usize = 5;

/// Measures `calls` quick calls with `in_flight` at a time, over stdio to a
/// `toolshed serve` child (this executable) and in process on a host opened
/// as `serve` opens it, in alternating rounds.
///
/// # Errors
///
/// When `serve` cannot be started, or a call fails on either side.
pub fn measure(calls: usize, in_flight: usize) -> anyhow::Result<StdioFigures> {
    let mut server = Server::start()?;
    server.initialize()?;
    let pid = server.serve.child.id();

    let own = ServeHost::open()?;

    // Warm both sides.
    server.call_many(calls.min(200), in_flight)?;
    own.call_many(calls.min(200), in_flight)?;

    // The peak of the measured rounds alone, not of the start-up compile.
    super::memory::settle(pid)?;
    super::memory::reset_peak_rss(pid)?;
    let (mut served_cpu, mut served_rate, mut own_cpu) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let before = process_cpu_us(pid)?;
        let started = Instant::now();
        server.call_many(calls, in_flight)?;
        served_rate.push(calls as f64 / started.elapsed().as_secs_f64());
        served_cpu.push((process_cpu_us(pid)? - before) / calls as f64);

        let before = own_cpu_us();
        own.call_many(calls, in_flight)?;
        own_cpu.push((own_cpu_us() - before) / calls as f64);
    }
    Ok(StdioFigures {
        server_cpu_us_per_call: median(served_cpu),
        in_process_cpu_us_per_call: median(own_cpu),
        calls_per_s: median(served_rate),
        server_peak_rss_mib: super::memory::peak_rss_mib(pid)?,
    })
}
