//! Quotas per principal: what one caller may keep on the host at once.
//!
//! Each quota bounds something a caller makes and the host keeps for it:
//! live workspaces (each keeps an agent process), chats, tasks (each kept
//! with its raw arguments for a day) and stored bytes (task arguments and
//! results, registry directories). A backend counts what the caller holds
//! in the same transaction as the insert that would add to it, so two
//! hosts sharing a store cannot both pass the check. A refusal is
//! [`QuotaExceeded`]: a recoverable error naming the quota, its limit, and
//! what to stop or delete.

use serde_json::json;

use crate::error::{Category, HostError};

/// How much one principal may keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Workspaces whose latest build starts them: each keeps an agent.
    pub live_workspaces: u64,
    /// Chats with something bound to them.
    pub chats: u64,
    /// Tasks kept, whatever their state, until they are purged.
    pub tasks: u64,
    /// Bytes kept: task arguments and results, registry directories.
    pub stored_bytes: u64,
}

impl Default for Quotas {
    /// Generous for one person: 20 live workspaces, 1,000 chats, 200 tasks
    /// and 64 MiB stored.
    fn default() -> Self {
        Self { live_workspaces: 20, chats: 1_000, tasks: 200, stored_bytes: 64 << 20 }
    }
}

/// One of the quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quota {
    /// [`Quotas::live_workspaces`].
    LiveWorkspaces,
    /// [`Quotas::chats`].
    Chats,
    /// [`Quotas::tasks`].
    Tasks,
    /// [`Quotas::stored_bytes`].
    StoredBytes,
}

impl Quota {
    /// The quota's snake_case name, as error objects and flags give it.
    pub fn name(self) -> &'static str {
        match self {
            Quota::LiveWorkspaces => "live_workspaces",
            Quota::Chats => "chats",
            Quota::Tasks => "tasks",
            Quota::StoredBytes => "stored_bytes",
        }
    }

    /// The limit `quotas` set for this quota.
    pub fn limit(self, quotas: &Quotas) -> u64 {
        match self {
            Quota::LiveWorkspaces => quotas.live_workspaces,
            Quota::Chats => quotas.chats,
            Quota::Tasks => quotas.tasks,
            Quota::StoredBytes => quotas.stored_bytes,
        }
    }

    /// The refusal of this quota under `quotas`.
    pub fn exceeded(self, quotas: &Quotas) -> QuotaExceeded {
        QuotaExceeded { quota: self, limit: self.limit(quotas) }
    }
}

/// A request refused because the caller is at one of its quotas. A host
/// function that meets it ends the call with [`QuotaExceeded::error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("quota {} of {limit} is used up", quota.name())]
pub struct QuotaExceeded {
    /// Which quota.
    pub quota: Quota,
    /// Its limit.
    pub limit: u64,
}

impl QuotaExceeded {
    /// The error object: `QUOTA_EXCEEDED`, `resource_unavailable`
    /// (recoverable), a `quota` field with the quota's name and limit, and
    /// a suggestion saying what to stop or delete.
    pub fn error(&self) -> HostError {
        let (what, suggestion) = match self.quota {
            Quota::LiveWorkspaces => (
                format!("you already have {} running workspaces, the most one user may have", self.limit),
                "Stop a workspace you no longer need (stop_workspace in the chat that uses it), then try again.",
            ),
            Quota::Chats => (
                format!("you already have {} chats with a workspace bound, the most one user may have", self.limit),
                "Continue in one of your existing chats (omit _meta.chat_id to use your default chat), or ask the operator to raise --max-chats.",
            ),
            Quota::Tasks => (
                format!("you already have {} tasks kept, the most one user may have; tasks are kept for 24 h", self.limit),
                "Make the call without the tasks extension, or wait for older tasks to expire (24 h after they began); cancel tasks you no longer need.",
            ),
            Quota::StoredBytes => (
                format!("what you have stored (task arguments and results, registries) would pass {} bytes, the most one user may keep", self.limit),
                "Make smaller calls, wait for older tasks to expire (24 h after they began), or ask the operator to delete registries you no longer need.",
            ),
        };
        HostError::new(Category::ResourceUnavailable, "QUOTA_EXCEEDED", format!("quota {} exceeded: {what}", self.quota.name()))
            .field("quota", json!({ "name": self.quota.name(), "limit": self.limit }))
            .suggest(suggestion)
    }
}

/// What a provider answers when a request may be refused for a quota: the
/// answer the plugin sees (`E`), or a quota that ends the call.
#[derive(Debug, Clone, PartialEq)]
pub enum Refused<E> {
    /// An answer for the plugin.
    Error(E),
    /// A quota of the caller's.
    Quota(QuotaExceeded),
}

impl<E> From<E> for Refused<E> {
    fn from(error: E) -> Self {
        Refused::Error(error)
    }
}

impl<E> Refused<E> {
    /// The plugin's answer, or the error that ends the call.
    ///
    /// # Errors
    ///
    /// [`QuotaExceeded`], as the call's trap: the host answers the caller
    /// with [`QuotaExceeded::error`].
    pub fn into_answer(self) -> Result<E, wasmtime::Error> {
        match self {
            Refused::Error(error) => Ok(error),
            Refused::Quota(quota) => Err(wasmtime::Error::new(quota)),
        }
    }

    /// The plugin's answer, if this is one.
    pub fn error(self) -> Option<E> {
        match self {
            Refused::Error(error) => Some(error),
            Refused::Quota(_) => None,
        }
    }
}

/// A provider's answer as the plugin gets it: a result or an error for
/// the plugin passes; a quota ends the call, and the host answers the
/// caller with [`QuotaExceeded::error`].
///
/// # Errors
///
/// [`QuotaExceeded`], as the call's trap.
pub fn settle<T, E>(answer: Result<T, Refused<E>>) -> wasmtime::Result<Result<T, E>> {
    match answer {
        Ok(value) => Ok(Ok(value)),
        Err(Refused::Error(error)) => Ok(Err(error)),
        Err(Refused::Quota(quota)) => Err(wasmtime::Error::new(quota)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_its_quota_and_limit_and_is_recoverable() {
        let error = Quota::Tasks.exceeded(&Quotas::default()).error().to_json();
        assert_eq!(error["code"], "QUOTA_EXCEEDED");
        assert_eq!(error["category"], "resource_unavailable");
        assert_eq!(error["recoverable"], true);
        assert_eq!(error["quota"], json!({ "name": "tasks", "limit": 200 }));
        assert!(error["suggestions"][0].as_str().unwrap().contains("cancel"));
    }
}
