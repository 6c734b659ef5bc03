//! How long one chat's progress flood holds back another chat's next
//! notification, through the MCP server and an rmcp client in one process.
//!
//! Chat B reports a step every 50 ms. At a random moment chat A starts a
//! flood of 20,000 progress reports of 32 KiB. The delay is the time from
//! A's start to B's next notification, against the same measure with no
//! flood, both in this run. `cargo bench -p toolshed --bench floods` runs it
//! in full; `cargo test` runs it once, small, so it keeps building.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::handler::client::ClientHandler;
use rmcp::model::{CallToolRequestParams, ClientConfig, ProgressNotificationParam};
use rmcp::service::{NotificationContext, RoleClient};
use serde_json::json;
use toolshed_runtime::Toolshed;

#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<Vec<(String, Instant)>>>);

impl ClientHandler for Arrivals {
    async fn on_progress(&self, params: ProgressNotificationParam, _: NotificationContext<RoleClient>) {
        self.0.lock().unwrap().push((params.message.unwrap_or_default(), Instant::now()));
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::default()
    }
}

fn call(tool: &str, arguments: serde_json::Value, chat: &str) -> CallToolRequestParams {
    let mut request = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments.as_object().unwrap().clone());
    let mut meta = rmcp::model::RequestMetaObject::default();
    meta.insert("chat_id".into(), json!(chat));
    request.meta = Some(meta);
    request
}

/// One trial: the delay from the flood's start (or, without a flood, the
/// same moment) to the stepping chat's next notification, in ms.
async fn trial(host: &Arc<Toolshed>, flood: bool, offset_ms: u64) -> f64 {
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    let principal = toolshed_mcp::Principal { owner_id: "bench".into(), owner_name: "bench".into(), organization_id: "bench".into(), scopes: vec![] };
    let settings = Arc::new(toolshed_mcp::ServerSettings::new(principal, None));
    let server = toolshed_mcp::McpServer::new(host.clone(), settings, Some("bench".into()));
    tokio::spawn(async move { server.serve(server_io).await.unwrap().waiting().await });
    let arrivals = Arrivals::default();
    let client = Arc::new(arrivals.clone().serve(client_io).await.unwrap());
    let stepping = {
        let client = client.clone();
        tokio::spawn(async move { client.call_tool(call("progress_steps", json!({ "count": 40, "interval_ms": 50 }), "chat-b")).await })
    };
    tokio::time::sleep(Duration::from_millis(200 + offset_ms)).await;
    let started = Instant::now();
    let flooding = flood.then(|| {
        let client = client.clone();
        tokio::spawn(async move { client.call_tool(call("flood_progress", json!({ "count": 20_000, "bytes": 32 << 10 }), "chat-a")).await })
    });
    let next = loop {
        let seen = arrivals.0.lock().unwrap().iter().find(|(m, t)| m.starts_with("step ") && *t > started).map(|(_, t)| *t);
        if let Some(t) = seen {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    if let Some(flooding) = flooding {
        flooding.await.unwrap().unwrap();
    }
    stepping.await.unwrap().unwrap();
    next.duration_since(started).as_secs_f64() * 1e3
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let trials = if full { 15 } else { 1 };
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    tokio.block_on(async {
        let policy = toolshed_runtime::Policy::from_toml("[plugins.hostile]\ngrants = [\"toolshed:runtime/*\", \"toolshed:infra/db\"]\n").unwrap();
        let runtime = Arc::new(toolshed_standard::runtime().policy(policy).build().unwrap());
        let host = Arc::new(Toolshed::builder(runtime).provide(toolshed_infra::InfraProviders::new(Arc::new(toolshed_infra::EmptyInfra))).build().unwrap());
        host.install("hostile", toolshed_fixtures::HOSTILE.to_vec()).await.unwrap();
        let (mut quiet, mut flooded) = (Vec::new(), Vec::new());
        for i in 0..trials {
            // Spread the start over the 50 ms step interval.
            let offset = (i as u64 * 7) % 50;
            quiet.push(trial(&host, false, offset).await);
            flooded.push(trial(&host, true, offset).await);
        }
        let (quiet, flooded) = (median(quiet), median(flooded));
        println!("another chat's next progress notification after a flood starts, median of {trials}:");
        println!("  without a flood  {quiet:.1} ms");
        println!("  with a flood     {flooded:.1} ms ({:.2}x)", flooded / quiet);
    });
}
