//! The objects that answer a host's capability calls: a backend's
//! providers, held by type, so each capability finds its own.

use std::any::{Any, TypeId};
use std::sync::Arc;

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


/// A backend: what answers a host's capabilities. It puts the providers of
/// the capabilities it offers into a host's [`Providers`], once, when the
/// host is built ([`ToolshedBuilder::backend`](crate::ToolshedBuilder::backend)).
///
/// Its methods take the backend shared, since its providers hold it.
pub trait Backend: Send + Sync + 'static {
    /// Puts the providers of the capabilities this backend answers into
    /// `providers`, such as `toolshed_infra::InfraProviders`.
    fn provide(self: &Arc<Self>, providers: &mut Providers);

    /// Where chat-updated events go (default: nowhere).
    fn chat_events(self: &Arc<Self>) -> Option<Arc<dyn crate::chat_events::ChatEvents>> {
        None
    }

    /// The chat locks every host over this backend's shared state uses
    /// (default: each host locks in its own process).
    fn chat_locks(self: &Arc<Self>) -> Option<Arc<dyn crate::locks::ChatLocks>> {
        None
    }
}
