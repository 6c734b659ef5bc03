//! Chats belong to owners. A server asks a [`ChatDirectory`] before it runs
//! a call in a chat: a chat id new to the directory becomes the caller's,
//! and another owner's chat id reads as not found, so it is never bound,
//! read or written through the caller.

use async_trait::async_trait;

use crate::context::CallContext;

/// Why a chat cannot be used by the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatRefused {
    /// The chat id belongs to another owner (or is not a chat id at all);
    /// to the caller it does not exist.
    #[error("chat not found")]
    NotFound,
    /// The directory could not answer.
    #[error("the chat directory failed: {0}")]
    Failed(String),
}

/// The owners of chats.
#[async_trait]
pub trait ChatDirectory: Send + Sync + 'static {
    /// Makes `cx.chat_id` a chat of `cx.owner_id` (in `cx.organization_id`)
    /// if it is new, and checks that it is theirs if it is not.
    ///
    /// # Errors
    ///
    /// [`ChatRefused::NotFound`] when another owner has the chat.
    async fn claim(&self, cx: &CallContext) -> Result<(), ChatRefused>;
}

/// The longest chat id a client may name.
pub const MAX_CHAT_ID_BYTES: usize = 128;

/// Whether `id` can name a chat: 1 to [`MAX_CHAT_ID_BYTES`] letters,
/// digits, `-`, `_`, `.` or `:`.
pub fn is_chat_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_CHAT_ID_BYTES && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The chat a principal's calls use when they name none and have no
/// session: the same for every call of the same owner, and no other owner's.
pub fn default_chat(owner_id: &str) -> String {
    // FNV-1a over the owner id: stable across processes and releases.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in owner_id.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("default-{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_owner_has_one_stable_default_chat() {
        assert_eq!(default_chat("alice"), default_chat("alice"));
        assert_ne!(default_chat("alice"), default_chat("bob"));
        assert!(is_chat_id(&default_chat("alice")));
        assert!(!is_chat_id("../x") && !is_chat_id("") && !is_chat_id(&"a".repeat(129)));
    }
}
