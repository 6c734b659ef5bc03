//! Capabilities: families of host interfaces beyond the runtime's own, each
//! defined in a crate of its own (`toolshed-infra`, `toolshed-platform`, or
//! an embedder's).
//!
//! A capability has two halves, kept apart the way wasmtime-wasi keeps an
//! interface's linking apart from its state:
//!
//! - a [`Capability`], registered on the [`Runtime`](crate::Runtime): the
//!   interfaces it defines and how to add them to a linker. A plugin is
//!   linked with exactly the capabilities its policy grants, so an
//!   ungranted interface does not exist for it.
//! - its providers, given to each [`Toolshed`](crate::Toolshed) in
//!   [`Providers`]: the objects that answer the calls (a backend). The
//!   capability's host code finds them through [`CallState::split`].

use std::any::{Any, TypeId};
use std::sync::Arc;

use async_trait::async_trait;
use wasmtime::component::Linker;

use crate::context::CallContext;
use crate::state::CallState;

/// A family of host interfaces a plugin may be granted.
pub trait Capability: Send + Sync + 'static {
    /// A short name for messages, such as `infra`.
    fn name(&self) -> &str;

    /// The interfaces it defines, unversioned, such as `toolshed:infra/db`.
    fn interfaces(&self) -> &[&'static str];

    /// Adds every interface (at every version it serves) to `linker`.
    ///
    /// # Errors
    ///
    /// When an interface is already defined.
    fn add_to_linker(&self, linker: &mut Linker<CallState>) -> wasmtime::Result<()>;

    /// Providers that answer as an empty host would: reads find nothing and
    /// requests fail. Smoke calls of new plugin versions run against them.
    fn empty_providers(&self, providers: &mut Providers);
}

/// The objects that answer a host's capability calls, by type.
#[derive(Clone, Default)]
pub struct Providers {
    entries: Vec<(TypeId, Arc<dyn Any + Send + Sync>)>,
}

impl Providers {
    /// No providers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the provider of type `T`.
    pub fn insert<T: Any + Send + Sync>(&mut self, provider: T) -> &mut Self {
        let id = TypeId::of::<T>();
        self.entries.retain(|(t, _)| *t != id);
        self.entries.push((id, Arc::new(provider)));
        self
    }

    /// The provider of type `T`, if there is one.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        let id = TypeId::of::<T>();
        self.entries.iter().find(|(t, _)| *t == id).and_then(|(_, p)| p.downcast_ref::<T>())
    }
}

/// Where chat-updated events go: the front end showing the chat.
#[async_trait]
pub trait ChatEvents: Send + Sync + 'static {
    /// The chat's bound workspace, build or agent changed.
    async fn chat_updated(&self, cx: &CallContext);
}

/// Events that go nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEvents;

#[async_trait]
impl ChatEvents for NoEvents {
    async fn chat_updated(&self, _cx: &CallContext) {}
}
