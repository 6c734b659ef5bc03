//! Chats belong to owners, and each owner has chats of its own: a chat is
//! named by (owner, chat id), everywhere chats are stored and locked. The
//! same chat id named by two owners is two chats, so no caller can reach,
//! claim or squat on another's chat, their default chat included.
//!
//! A server asks a [`ChatDirectory`] before it runs a call in a chat: the
//! directory refuses only for a quota of the caller's or its own failure,
//! never because the id is in use by someone else.

use async_trait::async_trait;

use crate::context::CallContext;
use crate::error::{Category, HostError};
use crate::quota::QuotaExceeded;

/// Why a chat cannot be used by the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatRefused {
    /// The chat is new and the caller has as many chats as its quota allows.
    #[error("{0}")]
    Quota(QuotaExceeded),
    /// The directory could not answer. The text is for the host's log: it
    /// may name the store and its query.
    #[error("the chat directory failed: {0}")]
    Failed(String),
}

impl ChatRefused {
    /// The error object a remote caller gets for chat `chat`: a quota
    /// names itself; a failure says only that the chat could not be read,
    /// and its detail goes to the log.
    pub fn error(&self, chat: &str) -> HostError {
        match self {
            ChatRefused::Quota(quota) => quota.error(),
            ChatRefused::Failed(detail) => {
                tracing::warn!(chat = %chat, "the chat directory failed: {detail}");
                HostError::new(Category::InternalError, "CHAT_DIRECTORY_FAILED", "the host could not read this chat: its store failed; the detail is in the host's log")
                    .suggest("Try again in a moment; if it keeps failing, tell the operator.")
            }
        }
    }
}

/// The owners of chats.
#[async_trait]
pub trait ChatDirectory: Send + Sync + 'static {
    /// Checks that `cx.owner_id` may use its chat `cx.chat_id` (in
    /// `cx.organization_id`): a chat of theirs already kept, their default
    /// chat, or a new chat within their chat quota.
    ///
    /// # Errors
    ///
    /// [`ChatRefused::Quota`] when the chat is new and the owner is at its
    /// quota; [`ChatRefused::Failed`] when the directory cannot answer.
    async fn claim(&self, cx: &CallContext) -> Result<(), ChatRefused>;
}

/// A chat's full name: its owner and the id the owner gave it. Stores and
/// lock tables key chats by this, never by the id alone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChatKey {
    /// The owner.
    pub owner_id: String,
    /// The id the owner (or its client) named.
    pub chat_id: String,
}

impl ChatKey {
    /// The chat of a call.
    pub fn of(cx: &CallContext) -> Self {
        Self { owner_id: cx.owner_id.clone(), chat_id: cx.chat_id.clone() }
    }
}

/// The longest chat id a client may name.
pub const MAX_CHAT_ID_BYTES: usize = 128;

/// Whether `id` can name a chat: 1 to [`MAX_CHAT_ID_BYTES`] letters,
/// digits, `-`, `_`, `.` or `:`.
pub fn is_chat_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_CHAT_ID_BYTES && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The id of the chat a principal's calls use when they name none and
/// have no session: the same for every call of the same owner. It names a
/// chat within the owner's own chats, so another owner naming the same id
/// gets a chat of their own, never this one.
pub fn default_chat(owner_id: &str) -> String {
    // FNV-1a over the owner id: stable across processes and releases.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in owner_id.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("default-{hash:016x}")
}

/// Whether `chat_id` is the default chat of `owner_id`: every owner may use
/// it, whatever its chat quota, so a sessionless caller is never shut out.
pub fn is_default_chat(owner_id: &str, chat_id: &str) -> bool {
    chat_id == default_chat(owner_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_owner_has_one_stable_default_chat() {
        assert_eq!(default_chat("alice"), default_chat("alice"));
        assert_ne!(default_chat("alice"), default_chat("bob"));
        assert!(is_chat_id(&default_chat("alice")));
        assert!(is_default_chat("alice", &default_chat("alice")) && !is_default_chat("bob", &default_chat("alice")));
        assert!(!is_chat_id("../x") && !is_chat_id("") && !is_chat_id(&"a".repeat(129)));
    }

    #[test]
    fn a_failure_keeps_its_detail_out_of_the_answer() {
        let answer = ChatRefused::Failed("database: error returned from database: relation \"chats\" does not exist".into()).error("c1").to_json();
        let text = answer.to_string();
        assert!(!text.contains("relation") && !text.contains("database:"), "{text}");
        assert_eq!(answer["code"], "CHAT_DIRECTORY_FAILED");
    }
}
