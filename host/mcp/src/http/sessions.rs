//! Legacy sessions, each bound to the principal that opened it, and
//! counted against [`HttpLimits`](super::HttpLimits).
//!
//! A session id is a bearer of state (the session's chat, its streams), so
//! knowing one must not be enough to use it: a request that names a session
//! of another principal is answered as if the session did not exist (404),
//! whether it reads, writes, streams or deletes. The gate makes that check
//! before the transport sees the request; the manager here records the
//! owner when the transport creates the session, from the principal of the
//! request being served ([`CALLER`]), so there is no moment when a session
//! exists without its owner.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_core::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::{LocalSessionManager, LocalSessionManagerError};
use rmcp::transport::streamable_http_server::session::{EventStore, ServerSseMessage};
use rmcp::transport::streamable_http_server::{SessionId, SessionManager};

use crate::SessionGauge;

tokio::task_local! {
    /// The principal of the request being served, while the transport
    /// handles it.
    pub(crate) static CALLER: Caller;
}

/// Who a request is from, as the session manager sees it.
pub(crate) struct Caller {
    /// The principal's owner id (empty without authentication: one user).
    pub owner: String,
    /// Set when the request would have opened a session past a cap.
    pub turned_away: std::cell::Cell<bool>,
}

/// Why the manager did not do what the transport asked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionsError {
    /// The local manager's own error.
    #[error(transparent)]
    Local(#[from] LocalSessionManagerError),
    /// A cap on sessions was reached.
    #[error("too many sessions")]
    Full,
}

/// Sessions with their owners, within caps.
pub(crate) struct OwnedSessions {
    inner: LocalSessionManager,
    owners: Mutex<Owners>,
    max: usize,
    max_per_owner: usize,
    gauge: Arc<SessionGauge>,
}

#[derive(Default)]
struct Owners {
    by_session: HashMap<SessionId, String>,
    per_owner: HashMap<String, usize>,
}

impl OwnedSessions {
    pub(crate) fn new(inner: LocalSessionManager, max: usize, max_per_owner: usize, gauge: Arc<SessionGauge>) -> Self {
        Self { inner, owners: Mutex::default(), max, max_per_owner, gauge }
    }

    fn owners(&self) -> std::sync::MutexGuard<'_, Owners> {
        self.owners.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether session `id` exists, whoever owns it.
    pub(crate) fn exists(&self, id: &str) -> bool {
        self.owners().by_session.contains_key(id)
    }

    /// Whether session `id` exists and belongs to `owner`.
    pub(crate) fn owned_by(&self, id: &str, owner: &str) -> bool {
        self.owners().by_session.get(id).is_some_and(|o| o == owner)
    }

    /// Whether the request being served may act on session `id`: inside a
    /// request, only its owner; outside one (the transport closing a
    /// session whose worker ended), always.
    fn callers(&self, id: &SessionId) -> bool {
        CALLER.try_with(|caller| self.owned_by(id, &caller.owner)).unwrap_or(true)
    }

    fn forget(&self, id: &SessionId) {
        let mut owners = self.owners();
        if let Some(owner) = owners.by_session.remove(id) {
            if let Some(count) = owners.per_owner.get_mut(&owner) {
                *count -= 1;
                if *count == 0 {
                    owners.per_owner.remove(&owner);
                }
            }
            self.gauge.closed();
        }
    }
}

impl SessionManager for OwnedSessions {
    type Error = SessionsError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let owner = CALLER.try_with(|caller| caller.owner.clone()).unwrap_or_default();
        {
            let owners = self.owners();
            if owners.by_session.len() >= self.max || owners.per_owner.get(&owner).copied().unwrap_or(0) >= self.max_per_owner {
                let _ = CALLER.try_with(|caller| caller.turned_away.set(true));
                return Err(SessionsError::Full);
            }
        }
        let (id, transport) = self.inner.create_session().await?;
        let mut owners = self.owners();
        owners.by_session.insert(id.clone(), owner.clone());
        *owners.per_owner.entry(owner).or_default() += 1;
        self.gauge.opened();
        Ok((id, transport))
    }

    async fn initialize_session(&self, id: &SessionId, message: ClientJsonRpcMessage) -> Result<ServerJsonRpcMessage, Self::Error> {
        Ok(self.inner.initialize_session(id, message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.callers(id) && self.inner.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        if !self.callers(id) {
            return Ok(());
        }
        let closed = self.inner.close_session(id).await;
        self.forget(id);
        Ok(closed?)
    }

    async fn create_stream(&self, id: &SessionId, message: ClientJsonRpcMessage) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.create_stream(id, message).await?)
    }

    async fn accept_message(&self, id: &SessionId, message: ClientJsonRpcMessage) -> Result<(), Self::Error> {
        Ok(self.inner.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(&self, id: &SessionId) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.create_standalone_stream(id).await?)
    }

    async fn resume(&self, id: &SessionId, last_event_id: String) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.resume(id, last_event_id).await?)
    }

    fn event_store(&self) -> Option<Arc<dyn EventStore>> {
        self.inner.event_store()
    }
}
