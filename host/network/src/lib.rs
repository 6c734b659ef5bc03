//! toolshed-network: outgoing HTTP requests for plugins, through
//! `wasi:http/outgoing-handler`, held to each plugin's allow-list.
//!
//! Register [`Network`] on the runtime and give each host a
//! [`NetworkProviders`] (the secrets the host adds to requests, and how it
//! resolves names). A plugin is linked with `wasi:http` only when its policy
//! grants it (`"wasi:http/*"`), and every request it sends goes through
//! [`guard`] first: a destination its `network` section does not list, a
//! name that resolves into a range the entry does not name, or a request
//! past its bounds is refused with `HttpRequestDenied` (or the error code of
//! the bound) before any connection is made, and logged with the plugin,
//! the tool and the chat. The host connects to the very address it checked.
//! See `docs/network.md`.

#![deny(missing_docs)]

pub mod allow_list;
mod body;
pub mod config;
pub mod guard;
pub mod secrets;
mod send;
mod who;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use toolshed_runtime::state::CallState;
use toolshed_runtime::wasmtime::component::Linker;
use toolshed_runtime::{Capability, Providers};
use wasmtime_wasi_http::{WasiHttp, WasiHttpCtxView};

pub use config::Config;
pub use secrets::{NoSecrets, Secret, SecretStore, Secrets};

/// The unversioned names of the interfaces this capability links.
pub const INTERFACES: [&str; 2] = ["wasi:http/outgoing-handler", "wasi:http/types"];

/// Resolves host names to addresses; the host checks every address it
/// answers before connecting to one of them.
pub trait Resolve: Send + Sync + 'static {
    /// The addresses of `host` at `port`.
    fn resolve(&self, host: String, port: u16) -> std::pin::Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send>>;
}

/// The system's resolver.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: String, port: u16) -> std::pin::Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), port)).await?.collect()) })
    }
}

/// What answers the network capability on one host.
#[derive(Clone)]
pub struct NetworkProviders {
    /// The secrets requests carry in the headers the policy binds.
    pub secrets: Arc<dyn Secrets>,
    /// How names are resolved.
    pub resolver: Arc<dyn Resolve>,
    /// Open connections per plugin.
    connections: Arc<Mutex<HashMap<Arc<str>, Arc<tokio::sync::Semaphore>>>>,
    /// Refuse every request: the host that runs smoke calls.
    deny_all: bool,
}

impl NetworkProviders {
    /// Providers adding secrets from `secrets`, resolving with the system.
    pub fn new(secrets: Arc<dyn Secrets>) -> Self {
        Self { secrets, resolver: Arc::new(SystemResolver), connections: Arc::default(), deny_all: false }
    }

    /// The same, resolving names with `resolver`.
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolve>) -> Self {
        self.resolver = resolver;
        self
    }

    /// Providers that refuse every request, as smoke calls get.
    pub fn deny_all() -> Self {
        Self { deny_all: true, ..Self::new(Arc::new(NoSecrets)) }
    }

    /// The semaphore counting `plugin`'s open connections, `max` at most.
    fn connections(&self, plugin: &Arc<str>, max: u32) -> Arc<tokio::sync::Semaphore> {
        let mut all = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        all.entry(plugin.clone()).or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(max as usize))).clone()
    }
}

/// The network capability, to register on a runtime.
#[derive(Debug, Default, Clone, Copy)]
pub struct Network;

/// What one run of a call keeps for `wasi:http`: its context and its guard.
struct HttpState {
    ctx: wasmtime_wasi_http::WasiHttpCtx,
    guard: guard::Guard,
}

fn http_view(state: &mut CallState) -> WasiHttpCtxView<'_> {
    let (http, table) = state.extension(|call, providers| HttpState {
        ctx: wasmtime_wasi_http::WasiHttpCtx::new(),
        guard: guard::Guard::new(call, providers.get::<NetworkProviders>().cloned()),
    });
    WasiHttpCtxView { ctx: &mut http.ctx, table, hooks: &mut http.guard }
}

impl Capability for Network {
    fn name(&self) -> &str {
        "network"
    }

    fn interfaces(&self) -> &[&'static str] {
        &INTERFACES
    }

    fn add_to_linker(&self, linker: &mut Linker<CallState>) -> toolshed_runtime::wasmtime::Result<()> {
        use wasmtime_wasi_http::p2::bindings::{LinkOptions, http};
        http::outgoing_handler::add_to_linker::<CallState, WasiHttp>(linker, http_view)?;
        http::types::add_to_linker::<CallState, WasiHttp>(linker, &LinkOptions::default().into(), http_view)
    }

    fn empty_providers(&self, providers: &mut Providers) {
        providers.insert(NetworkProviders::deny_all());
    }

    fn provided(&self, providers: &Providers) -> bool {
        providers.get::<NetworkProviders>().is_some()
    }
}
