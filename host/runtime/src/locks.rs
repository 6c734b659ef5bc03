//! Named locks for plugins: private to the plugin, scoped to the chat, and
//! bounded per call.
//!
//! A lock is named by (plugin, owner, chat, key): a plugin can neither take
//! nor wait on another plugin's lock, and two chats never contend, two
//! owners' chats of the same id included. A call may
//! hold at most [`MAX_HELD_PER_CALL`] locks with keys of at most
//! [`MAX_KEY_BYTES`], and taking a key it already holds is refused at once
//! instead of waiting for itself forever.
//!
//! Where the locks live is the host's choice, through [`ChatLocks`]: the
//! in-process [`LockTable`] by default, or a service several hosts share
//! (toolshed-local's PostgreSQL advisory locks), so that two hosts never
//! run the same chat's guarded step at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// The longest lock key a plugin may use.
pub const MAX_KEY_BYTES: usize = 256;
/// The most locks one call may hold at once.
pub const MAX_HELD_PER_CALL: usize = 16;

/// A guest's handle on a lock its call holds. Dropping the handle releases
/// the lock. The lock itself belongs to the call ([`CallLocks`]), so it is
/// released when the call ends however its runs ended, a trap included, and
/// it stays held while the call is parked between runs.
pub struct HeldLock {
    key: String,
}

impl HeldLock {
    /// The key the guest named.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// The full name of a lock: whose, in which chat, and the guest's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LockName {
    /// The plugin taking it; no other plugin can contend for it.
    pub plugin: Arc<str>,
    /// The owner of the chat: chats are keyed by (owner, chat id), so
    /// another owner's chat of the same id is another lock.
    pub owner: String,
    /// The chat it guards.
    pub chat: String,
    /// The key the guest named, at most [`MAX_KEY_BYTES`].
    pub key: String,
}

/// Proof that a lock is held; dropping it releases the lock.
pub struct LockGuard(#[allow(dead_code)] Box<dyn Send + Sync>);

impl LockGuard {
    /// A guard that releases its lock when `held` is dropped.
    pub fn new(held: impl Send + Sync + 'static) -> Self {
        Self(Box::new(held))
    }
}

/// Why a lock could not be taken: the service that keeps it failed. The
/// call then ends with this reason, since running the guarded step
/// unguarded could do it twice.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the lock service failed: {0}")]
pub struct LockUnavailable(pub String);

/// Where a host's chat locks live.
#[async_trait]
pub trait ChatLocks: Send + Sync {
    /// Waits for the lock `name`, then holds it until the guard drops. A
    /// dropped future must leave nothing held.
    async fn acquire(&self, name: &LockName) -> Result<LockGuard, LockUnavailable>;
}

/// Why a lock request was refused. Each ends the call: the plugin is
/// misusing the interface, and waiting would not help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockMisuse {
    /// The key is longer than [`MAX_KEY_BYTES`].
    #[error("a lock key of {0} bytes is longer than the limit of {MAX_KEY_BYTES} bytes")]
    KeyTooLong(usize),
    /// The call already holds [`MAX_HELD_PER_CALL`] locks.
    #[error("the call already holds {MAX_HELD_PER_CALL} locks, the most one call may hold")]
    TooMany,
    /// The call already holds this key.
    #[error("the call already holds lock {0:?}; taking it again would wait forever")]
    AlreadyHeld(String),
}

impl LockMisuse {
    /// A stable UPPER_SNAKE code for error objects.
    pub fn code(&self) -> &'static str {
        match self {
            LockMisuse::KeyTooLong(_) => "LOCK_KEY_TOO_LONG",
            LockMisuse::TooMany => "TOO_MANY_LOCKS",
            LockMisuse::AlreadyHeld(_) => "LOCK_ALREADY_HELD",
        }
    }
}

/// The locks one call holds, checked before every acquire.
#[derive(Default)]
pub struct CallLocks {
    held: Vec<CallLock>,
}

struct CallLock {
    key: String,
    _guard: LockGuard,
    /// Whether the current run holds a handle on it; false for a lock
    /// carried over a park and not yet taken back.
    in_hand: bool,
}

/// What an acquire the checks allow should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Wait for the lock service, as for any lock.
    New,
    /// Hand back the lock the call kept while it was parked, at once.
    Carried,
}

impl CallLocks {
    /// Checks that the call may take `key` now, and how.
    ///
    /// # Errors
    ///
    /// [`LockMisuse`] when the key is too long, the call holds too many
    /// locks, or the current run holds this key already.
    pub fn check(&self, key: &str) -> Result<Take, LockMisuse> {
        if key.len() > MAX_KEY_BYTES {
            return Err(LockMisuse::KeyTooLong(key.len()));
        }
        match self.held.iter().find(|lock| lock.key == key) {
            Some(lock) if lock.in_hand => Err(LockMisuse::AlreadyHeld(key.to_string())),
            Some(_) => Ok(Take::Carried),
            None if self.held.len() >= MAX_HELD_PER_CALL => Err(LockMisuse::TooMany),
            None => Ok(Take::New),
        }
    }

    /// Records that the call took `key`, held through `guard`, and returns
    /// the guest's handle on it.
    pub fn taken(&mut self, key: &str, guard: LockGuard) -> HeldLock {
        self.held.push(CallLock { key: key.to_string(), _guard: guard, in_hand: true });
        HeldLock { key: key.to_string() }
    }

    /// Hands the current run the lock `key` the call kept over a park.
    pub fn take_back(&mut self, key: &str) -> Option<HeldLock> {
        let lock = self.held.iter_mut().find(|lock| lock.key == key && !lock.in_hand)?;
        lock.in_hand = true;
        Some(HeldLock { key: key.to_string() })
    }

    /// Releases `key`.
    pub fn released(&mut self, key: &str) {
        if let Some(i) = self.held.iter().position(|lock| lock.key == key) {
            self.held.swap_remove(i);
        }
    }

    /// The run ends by parking: its handles go with its instance, and the
    /// call keeps the locks until a later run takes them back or the call
    /// ends.
    pub fn put_down(&mut self) {
        for lock in &mut self.held {
            lock.in_hand = false;
        }
    }
}

/// The in-process lock table: one async mutex per (plugin, owner, chat, key).
#[derive(Default)]
pub struct LockTable {
    locks: Mutex<Locks>,
}

#[derive(Default)]
struct Locks {
    by_name: HashMap<LockName, Arc<AsyncMutex<()>>>,
    /// The size past which unused entries are swept, so a sweep costs
    /// amortized constant time per acquire.
    sweep_at: usize,
}

impl LockTable {
    /// Waits for the lock `key` of `plugin` in chat `chat_id` of `owner`,
    /// then holds it.
    pub async fn acquire(&self, plugin: &Arc<str>, owner: &str, chat_id: &str, key: &str) -> LockGuard {
        let name = LockName { plugin: plugin.clone(), owner: owner.to_string(), chat: chat_id.to_string(), key: key.to_string() };
        LockGuard::new(self.lock(&name).await)
    }

    /// Waits for the lock `name`, then holds it until the guard drops.
    pub async fn lock(&self, name: &LockName) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            if locks.by_name.len() >= locks.sweep_at {
                // Forget locks nobody holds or waits for, so the table stays small.
                locks.by_name.retain(|_, lock| Arc::strong_count(lock) > 1 || lock.try_lock().is_err());
                locks.sweep_at = (locks.by_name.len() * 2).max(64);
            }
            locks.by_name.entry(name.clone()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// How many lock entries the table keeps now, held or not yet swept.
    pub fn len(&self) -> usize {
        self.locks.lock().unwrap_or_else(|e| e.into_inner()).by_name.len()
    }

    /// Whether the table keeps no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl ChatLocks for LockTable {
    async fn acquire(&self, name: &LockName) -> Result<LockGuard, LockUnavailable> {
        Ok(LockGuard::new(self.lock(name).await))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn takes(table: &LockTable, plugin: &Arc<str>, chat: &str) -> bool {
        takes_as(table, plugin, "owner", chat).await
    }

    async fn takes_as(table: &LockTable, plugin: &Arc<str>, owner: &str, chat: &str) -> bool {
        tokio::time::timeout(Duration::from_millis(50), table.acquire(plugin, owner, chat, "ws")).await.is_ok()
    }

    #[tokio::test]
    async fn the_same_key_is_exclusive_only_within_one_plugin_and_chat() {
        let table = LockTable::default();
        let (tools, other): (Arc<str>, Arc<str>) = ("tools".into(), "other".into());
        let held = table.acquire(&tools, "owner", "chat-a", "ws").await;
        assert!(takes(&table, &tools, "chat-b").await, "another chat must not wait");
        assert!(takes_as(&table, &tools, "intruder", "chat-a").await, "another owner's chat of the same id must not wait");
        assert!(takes(&table, &other, "chat-a").await, "another plugin must not wait");
        assert!(!takes(&table, &tools, "chat-a").await, "the same plugin and chat must wait");
        drop(held);
        assert!(takes(&table, &tools, "chat-a").await, "released on drop");
    }

    #[tokio::test]
    async fn unused_locks_are_forgotten() {
        let table = LockTable::default();
        let plugin: Arc<str> = "p".into();
        for i in 0..1_000 {
            drop(table.acquire(&plugin, "owner", &format!("chat-{i}"), "ws").await);
        }
        assert!(table.len() <= 128, "{} entries kept for 1,000 released locks", table.len());
    }

    #[test]
    fn a_call_may_not_take_a_key_twice_too_many_keys_or_a_long_key() {
        let mut call = CallLocks::default();
        assert_eq!(call.check("a"), Ok(Take::New));
        call.taken("a", LockGuard::new(()));
        assert_eq!(call.check("a"), Err(LockMisuse::AlreadyHeld("a".into())));
        assert_eq!(call.check(&"k".repeat(MAX_KEY_BYTES + 1)), Err(LockMisuse::KeyTooLong(MAX_KEY_BYTES + 1)));
        for i in 1..MAX_HELD_PER_CALL {
            call.taken(&i.to_string(), LockGuard::new(()));
        }
        assert_eq!(call.check("one more"), Err(LockMisuse::TooMany));
        call.released("a");
        assert_eq!(call.check("a"), Ok(Take::New));
    }

    #[tokio::test]
    async fn a_parked_call_keeps_its_locks_and_takes_them_back_once() {
        let table = LockTable::default();
        let plugin: Arc<str> = "p".into();
        let mut call = CallLocks::default();
        call.taken("ws", table.acquire(&plugin, "owner", "chat", "ws").await);
        call.put_down();
        assert!(!takes(&table, &plugin, "chat").await, "a parked call's lock stays held");
        assert_eq!(call.check("ws"), Ok(Take::Carried));
        assert!(call.take_back("ws").is_some());
        assert_eq!(call.check("ws"), Err(LockMisuse::AlreadyHeld("ws".into())), "taken back once, then held");
        assert!(call.take_back("ws").is_none());
        drop(call);
        assert!(takes(&table, &plugin, "chat").await, "released when the call ends");
    }
}
