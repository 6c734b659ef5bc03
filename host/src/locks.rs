//! Chat-scoped named locks shared by every call on one host.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// A lock a guest holds. Dropping it, or dropping the call's store, releases it,
/// so a guest that traps while holding a lock never blocks the chat.
pub struct HeldLock {
    _guard: OwnedMutexGuard<()>,
}

/// The host's lock table: one async mutex per (chat, key).
#[derive(Default)]
pub struct LockTable {
    locks: Mutex<Locks>,
}

#[derive(Default)]
struct Locks {
    by_key: HashMap<(String, String), Arc<AsyncMutex<()>>>,
    /// The size past which unused entries are swept, so a sweep costs
    /// amortized constant time per acquire.
    sweep_at: usize,
}

impl LockTable {
    /// Waits for the lock `key` of chat `chat_id`, then holds it.
    pub async fn acquire(&self, chat_id: &str, key: &str) -> HeldLock {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            if locks.by_key.len() >= locks.sweep_at {
                // Forget locks nobody holds or waits for, so the table stays small.
                locks.by_key.retain(|_, lock| Arc::strong_count(lock) > 1 || lock.try_lock().is_err());
                locks.sweep_at = (locks.by_key.len() * 2).max(64);
            }
            locks.by_key.entry((chat_id.to_string(), key.to_string())).or_default().clone()
        };
        HeldLock { _guard: lock.lock_owned().await }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_same_key_in_one_chat_is_exclusive() {
        let table = LockTable::default();
        let held = table.acquire("chat-a", "ws").await;
        let other_chat = tokio::time::timeout(std::time::Duration::from_millis(50), table.acquire("chat-b", "ws")).await;
        assert!(other_chat.is_ok(), "another chat must not wait");
        let same_chat = tokio::time::timeout(std::time::Duration::from_millis(50), table.acquire("chat-a", "ws")).await;
        assert!(same_chat.is_err(), "the same chat must wait");
        drop(held);
        let after = tokio::time::timeout(std::time::Duration::from_millis(50), table.acquire("chat-a", "ws")).await;
        assert!(after.is_ok(), "released on drop");
    }

    #[tokio::test]
    async fn unused_locks_are_forgotten() {
        let table = LockTable::default();
        for i in 0..1_000 {
            drop(table.acquire(&format!("chat-{i}"), "ws").await);
        }
        let size = table.locks.lock().unwrap().by_key.len();
        assert!(size <= 128, "{size} entries kept for 1,000 released locks");
    }
}
