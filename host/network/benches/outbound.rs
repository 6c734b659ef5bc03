//! An outbound GET from a plugin to a loopback server against the same GET
//! from native reqwest in the host: the median of each and their ratio
//! (target: at most 1.5x). Each side opens a connection per request, as
//! the plugin's requests do.
//!
//! `cargo bench -p toolshed-network --bench outbound`

use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use toolshed_network::{Config, Network, NetworkProviders, SecretStore};
use toolshed_runtime::{CallContext, Policy, Runtime, Toolshed};

const SAMPLES: usize = 300;

/// Answers every connection's request with a small 200, then closes it.
async fn server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello").await;
                let _ = stream.shutdown().await;
            });
        }
    });
    port
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    // reqwest takes the process's TLS provider, as the binary installs it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let port = server().await;
        let policy = Policy::from_toml(&format!(
            "[plugins.net]\ngrants = [\"toolshed:runtime/*\", \"wasi:http/*\", \"wasi:config/*\"]\n\
             [plugins.net.network]\nmax_requests = 1000\n\
             [[plugins.net.network.allow]]\nurl = \"http://localhost:{port}/\"\nmethods = [\"GET\"]\naddresses = [\"loopback\"]\n"
        ))
        .unwrap();
        let runtime = Arc::new(Runtime::builder().capability(Network).capability(Config).policy(policy).build().unwrap());
        let host = Toolshed::builder(runtime).provide(NetworkProviders::new(Arc::new(SecretStore::new()))).build().unwrap();
        host.install("net", toolshed_fixtures::NETWORK.to_vec()).await.unwrap();
        let cx = CallContext { chat_id: "bench".into(), owner_id: "bench".into(), owner_name: "bench".into(), organization_id: "bench".into() };
        let url = format!("http://localhost:{port}/ok");
        let arguments = serde_json::json!({ "method": "GET", "url": url, "follow": false }).to_string();
        let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();

        // Warm both paths, then alternate so both see the same machine.
        for _ in 0..20 {
            assert_eq!(host.call(&cx, "fetch", &arguments).await.value["status"], 200);
            assert_eq!(client.get(&url).send().await.unwrap().text().await.unwrap(), "hello");
        }
        let (mut plugin, mut native) = (Vec::new(), Vec::new());
        for _ in 0..SAMPLES {
            let start = Instant::now();
            let out = host.call(&cx, "fetch", &arguments).await;
            plugin.push(start.elapsed().as_secs_f64() * 1e6);
            assert_eq!(out.value["body"], "hello", "{}", out.value);

            let start = Instant::now();
            let body = client.get(&url).send().await.unwrap().text().await.unwrap();
            native.push(start.elapsed().as_secs_f64() * 1e6);
            assert_eq!(body, "hello");
        }
        // What a call of the same plugin costs without a request: the floor
        // the plugin's side pays before its GET.
        let mut floor = Vec::new();
        for _ in 0..SAMPLES {
            let start = Instant::now();
            host.call(&cx, "read_setting", r#"{"key": "none"}"#).await;
            floor.push(start.elapsed().as_secs_f64() * 1e6);
        }
        let (plugin, native, floor) = (median(plugin), median(native), median(floor));
        println!("outbound GET to loopback, median of {SAMPLES}: plugin {plugin:.1} us, native reqwest {native:.1} us, ratio {:.2}x (target 1.5x)", plugin / native);
        println!("a call of the same plugin without a request: {floor:.1} us; the GET inside the plugin: {:.1} us, {:.2}x native", plugin - floor, (plugin - floor) / native);
    });
}
