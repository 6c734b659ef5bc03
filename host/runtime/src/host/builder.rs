//! Composing a host: a runtime, a clock, and a backend that provides the
//! capabilities the policy grants. A granted capability nobody provides is
//! refused here, at start-up, not when a plugin first calls it.

use std::sync::Arc;

use tokio::sync::{broadcast, watch};

use super::generation::Served;
use super::{Stats, Toolshed};
use crate::chat_events::{ChatEvents, NoEvents};
use crate::clock::{Clock, SystemClock};
use crate::locks::ChatLocks;
use crate::providers::{Backend, Providers};
use crate::runtime::Runtime;
use crate::state::Shared;

/// How to build a [`Toolshed`]: its clock, and the backend whose providers
/// answer its capabilities.
pub struct ToolshedBuilder {
    runtime: Arc<Runtime>,
    clock: Arc<dyn Clock>,
    events: Arc<dyn ChatEvents>,
    locks: Option<Arc<dyn ChatLocks>>,
    providers: Providers,
}

/// A capability the policy grants to plugins, with no provider to answer it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the policy grants the {capability} capability ({interfaces}), but no backend provides it: give the host a backend that does, or remove the grant"
)]
pub struct MissingProvider {
    /// The capability's name, such as `infra`.
    pub capability: String,
    /// Its interfaces the policy grants.
    pub interfaces: String,
}

impl ToolshedBuilder {
    pub(super) fn new(runtime: Arc<Runtime>) -> Self {
        ToolshedBuilder { runtime, clock: Arc::new(SystemClock), events: Arc::new(NoEvents), locks: None, providers: Providers::new() }
    }

    /// The clock every wait goes through (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The backend: its providers answer the capabilities it offers, its
    /// chat events go to the front end, and its chat locks, if it shares
    /// state with other hosts, keep a chat's guarded steps on one host at a
    /// time. A later backend's providers replace an earlier one's of the
    /// same capability.
    pub fn backend<B: Backend>(mut self, backend: &Arc<B>) -> Self {
        backend.provide(&mut self.providers);
        if let Some(events) = backend.chat_events() {
            self.events = events;
        }
        if let Some(locks) = backend.chat_locks() {
            self.locks = Some(locks);
        }
        self
    }

    /// Adds the provider of one capability, such as `toolshed_infra::InfraProviders`,
    /// beside the backend's.
    pub fn provide<T: std::any::Any + Send + Sync>(mut self, provider: T) -> Self {
        self.providers.insert(provider);
        self
    }

    /// The host, serving no plugins yet.
    ///
    /// # Errors
    ///
    /// [`MissingProvider`] for a capability the policy grants that no
    /// provider answers.
    pub fn build(self) -> Result<Toolshed, MissingProvider> {
        if let Some((capability, interfaces)) = self.runtime.unprovided(&self.providers).into_iter().next() {
            return Err(MissingProvider { capability, interfaces: interfaces.join(", ") });
        }
        let mut shared = Shared::new(self.clock, self.events, self.providers);
        if let Some(locks) = self.locks {
            shared.locks = locks;
        }
        let shared = Arc::new(shared);
        let smoke = Arc::new(Shared::new(Arc::new(SystemClock), Arc::new(NoEvents), self.runtime.empty_providers()));
        Ok(Toolshed {
            runtime: self.runtime,
            shared,
            smoke,
            served: Arc::new(Served::empty()),
            refusals: broadcast::channel(64).0,
            installing: Arc::new(watch::channel(0).0),
            stats: Stats::default(),
        })
    }
}

impl Toolshed {
    /// A builder for a host on `runtime`.
    pub fn builder(runtime: Arc<Runtime>) -> ToolshedBuilder {
        ToolshedBuilder::new(runtime)
    }
}
