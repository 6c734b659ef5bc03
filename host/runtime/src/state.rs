//! What one call's Store holds.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::call_log::{CallLog, Origin};
use crate::chat_events::ChatEvents;
use crate::providers::Providers;
use crate::clock::Clock;
use crate::context::CallContext;
use crate::locks::{CallLocks, ChatLocks, LockTable};
use crate::park::{Carried, ParkRequest};
use crate::policy::{Limits, NetworkPolicy};
use crate::progress::{ProgressSink, Reporter};
use crate::limiter::CallLimiter;

/// What every call on a host shares: the clock, the locks, where events go,
/// and the providers of the capabilities.
pub struct Shared {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) locks: Arc<dyn ChatLocks>,
    pub(crate) events: Arc<dyn ChatEvents>,
    pub(crate) providers: Providers,
}

impl Shared {
    /// Shared state over `clock`, sending events to `events`, with `providers`
    /// and chat locks in this process.
    pub fn new(clock: Arc<dyn Clock>, events: Arc<dyn ChatEvents>, providers: Providers) -> Self {
        Self { clock, locks: Arc::new(LockTable::default()), events, providers }
    }
}

/// Who a call is, as its store knows it.
pub struct CallIdentity {
    /// The calling context.
    pub cx: CallContext,
    /// The plugin being called.
    pub plugin: Arc<str>,
    /// The tool being called.
    pub tool: Arc<str>,
}

/// The part of a call's state that capability crates use: who is calling,
/// and the accounting every host call goes through.
pub struct Call {
    cx: CallContext,
    plugin: Arc<str>,
    tool: Arc<str>,
    network: Option<Arc<NetworkPolicy>>,
    config: Arc<std::collections::BTreeMap<String, String>>,
    deadline: tokio::time::Instant,
    pub(crate) limiter: CallLimiter,
}

impl Call {
    /// The calling context, bound by the host.
    pub fn context(&self) -> &CallContext {
        &self.cx
    }

    /// The plugin being called.
    pub fn plugin(&self) -> &Arc<str> {
        &self.plugin
    }

    /// The tool being called.
    pub fn tool(&self) -> &Arc<str> {
        &self.tool
    }

    /// Where the plugin's policy lets it send HTTP requests, if anywhere.
    pub fn network(&self) -> Option<&Arc<NetworkPolicy>> {
        self.network.as_ref()
    }

    /// The plugin's configuration, from its policy.
    pub fn config(&self) -> &Arc<std::collections::BTreeMap<String, String>> {
        &self.config
    }

    /// When the call's deadline passes: nothing it waits on may outlast it.
    pub fn deadline(&self) -> tokio::time::Instant {
        self.deadline
    }

    /// A handle that restarts the guest's compute budget, for host work
    /// that completes while the guest waits on it outside [`Call::import`]
    /// (a response arriving on a stream the guest polls): waiting on it is
    /// not computation.
    pub fn compute_restart(&self) -> crate::limiter::ComputeRestart {
        self.limiter.restart_handle()
    }

    /// Answers one host call with `answer`: counts it against the call's
    /// import limit, and restarts the guest's compute budget when it
    /// returns, so time spent waiting in the host never counts as guest
    /// computation. Every host function goes through this.
    ///
    /// # Errors
    ///
    /// When the call has made as many host calls as its limit allows; the
    /// call then ends.
    pub async fn import<T>(&mut self, answer: impl AsyncFnOnce(&CallContext) -> T) -> wasmtime::Result<T> {
        self.limiter.enter_import()?;
        let out = answer(&self.cx).await;
        self.limiter.leave_import();
        Ok(out)
    }
}

/// The data of one call's Store: built fresh for each call, dropped after
/// it, with everything the host keeps on the call's behalf.
pub struct CallState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) call: Call,
    pub(crate) shared: Arc<Shared>,
    pub(crate) locks: CallLocks,
    pub(crate) progress: Reporter,
    pub(crate) log: CallLog,
    /// The caller's client, if the transport gave one.
    pub(crate) client: Option<Arc<dyn crate::client::Client>>,
    /// The content blocks the call has added.
    pub(crate) content: crate::content::CallContent,
    /// When the caller stops waiting, in ms on the host clock, if it does.
    pub(crate) wait_until: Option<u64>,
    /// The state the call's previous run parked with.
    pub(crate) resumed: Option<Vec<u8>>,
    /// How many times the call has parked.
    pub(crate) parks: u32,
    /// Set when this run parks the call.
    pub(crate) park: Option<ParkRequest>,
    /// Capabilities' state for this run, by type, made on first use.
    extensions: Vec<(std::any::TypeId, Box<dyn std::any::Any + Send>)>,
}

/// How a call is run, beyond who it is.
pub(crate) struct CallSetup<'a> {
    pub(crate) limits: &'a Limits,
    pub(crate) epoch: Arc<AtomicU64>,
    pub(crate) progress: Option<Arc<dyn ProgressSink>>,
    pub(crate) client: Option<Arc<dyn crate::client::Client>>,
    pub(crate) wait_until: Option<u64>,
    /// When the whole call must end.
    pub(crate) deadline: tokio::time::Instant,
    /// Where the plugin may send HTTP requests.
    pub(crate) network: Option<Arc<NetworkPolicy>>,
    /// The plugin's configuration.
    pub(crate) config: Arc<std::collections::BTreeMap<String, String>>,
}

impl CallState {
    /// State for a call by `who`, with WASI denied everything: no
    /// directories, sockets, environment or arguments.
    pub(crate) fn new(shared: Arc<Shared>, who: CallIdentity, setup: CallSetup<'_>) -> Self {
        let wasi = WasiCtx::builder().allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false).build();
        Self {
            wasi,
            table: ResourceTable::new(),
            call: Call {
                cx: who.cx,
                plugin: who.plugin,
                tool: who.tool,
                network: setup.network,
                config: setup.config,
                deadline: setup.deadline,
                limiter: CallLimiter::new(setup.limits, setup.epoch),
            },
            shared,
            locks: CallLocks::default(),
            progress: Reporter::new(setup.progress),
            log: CallLog::default(),
            client: setup.client,
            content: crate::content::CallContent::default(),
            wait_until: setup.wait_until,
            resumed: None,
            parks: 0,
            park: None,
            extensions: Vec::new(),
        }
    }

    /// Goes on with a parked call: its state, locks, progress numbering and
    /// budgets, as its last run left them.
    pub(crate) fn resume(&mut self, carried: Carried) {
        self.resumed = Some(carried.state);
        self.parks = carried.parks;
        self.locks = carried.locks;
        self.progress = carried.progress;
        self.log = carried.log;
        self.content = carried.content;
        self.call.limiter.carry_imports(carried.import_calls);
    }

    /// What the call keeps when this run parks it; the rest, the instance
    /// and its resources first, is dropped with the store.
    pub(crate) fn park_out(mut self, state: Vec<u8>) -> Carried {
        self.locks.put_down();
        Carried {
            state,
            parks: self.parks + 1,
            locks: self.locks,
            progress: self.progress,
            log: self.log,
            content: self.content,
            import_calls: self.call.limiter.import_calls(),
        }
    }

    /// The call's accounting and identity, and the host's providers: what a
    /// capability's host code needs, borrowed apart.
    pub fn split(&mut self) -> (&mut Call, &Providers) {
        (&mut self.call, &self.shared.providers)
    }

    /// The call's resource table, for capabilities that hand out resources.
    pub fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// A capability's state of type `T` for this run, made by `make` on
    /// first use, with the resource table beside it: what a capability
    /// whose interfaces keep state between host calls (as `wasi:http`
    /// does) hands its host code. It is dropped with the run.
    pub fn extension<T: Send + 'static>(&mut self, make: impl FnOnce(&Call, &Providers) -> T) -> (&mut T, &mut ResourceTable) {
        let id = std::any::TypeId::of::<T>();
        let at = match self.extensions.iter().position(|(t, _)| *t == id) {
            Some(at) => at,
            None => {
                let made = make(&self.call, &self.shared.providers);
                self.extensions.push((id, Box::new(made)));
                self.extensions.len() - 1
            }
        };
        let state = self.extensions[at].1.downcast_mut::<T>().expect("an extension is stored under its own type");
        (state, &mut self.table)
    }

    /// Writes a plugin's log line under this call's budget.
    pub(crate) fn write_log(&mut self, level: crate::call_log::Level, message: &str) {
        let origin = Origin { plugin: &self.call.plugin, tool: &self.call.tool, chat: &self.call.cx.chat_id };
        // The caller's client sees what the operator's log took, no more:
        // the same per-call budget bounds both.
        if let Some(line) = self.log.write(&origin, level, message)
            && let Some(client) = &self.client
        {
            client.log(level, &self.call.plugin, &line);
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}
