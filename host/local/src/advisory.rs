//! Chat locks that hold across hosts: PostgreSQL advisory locks.
//!
//! Hosts that share one PostgreSQL database must not run the same chat's
//! guarded step at once (two replicas creating two workspaces for one chat),
//! so a plugin's lock is a session-level advisory lock, held for as long as
//! the guest holds it, which for a create is the whole build wait. A host
//! holds all its locks on a few sessions of its own ([`SESSIONS`]), not a
//! connection per lock, so thousands of waiting calls need no more server
//! connections than a handful. When the call ends the lock is unlocked on
//! the session that took it; when the host dies its sessions close, and
//! PostgreSQL releases their locks with them.
//!
//! Within one host a lock is first taken in the in-process [`LockTable`]:
//! session locks are reentrant, so two calls of one host must never both
//! ask the server, and a host has at most one call polling any one lock.
//! Waiting polls `pg_try_advisory_lock` with a backoff instead of blocking
//! a session in `pg_advisory_lock`. Each statement runs in a task of its
//! own that reports back; if the call stopped waiting meanwhile, that task
//! unlocks what it took, so a call that ends while waiting leaves nothing
//! held.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};
use toolshed_runtime::async_trait;
use toolshed_runtime::locks::{ChatLocks, LockGuard, LockName, LockTable, LockUnavailable};

/// How many sessions a host holds its locks on.
pub const SESSIONS: usize = 4;
/// The first pause between two tries of a lock another host holds.
const FIRST_PAUSE: Duration = Duration::from_millis(2);
/// The longest pause between two tries.
const LONGEST_PAUSE: Duration = Duration::from_millis(50);

/// One session locks are held on; reconnected when it fails.
struct Session {
    url: Arc<str>,
    connection: Mutex<Option<PgConnection>>,
}

impl Session {
    /// Runs `sql` with `key` on this session and returns its answer. A
    /// session that fails is dropped (its locks go with it, as the server
    /// releases them) and, when `retry`, the statement runs once more on a
    /// fresh one.
    async fn ask(&self, sql: &'static str, key: i64, retry: bool) -> Result<bool, LockUnavailable> {
        let mut connection = self.connection.lock().await;
        for attempt in 0..2 {
            if connection.is_none() {
                let fresh = PgConnection::connect(&self.url).await.map_err(|e| LockUnavailable(format!("connect to PostgreSQL: {e}")))?;
                *connection = Some(fresh);
            }
            let session = connection.as_mut().expect("connected above");
            match sqlx::query_scalar::<_, bool>(sql).bind(key).fetch_one(session).await {
                Ok(answer) => return Ok(answer),
                Err(e) => {
                    tracing::warn!("a PostgreSQL session holding chat locks failed; its locks are released: {e}");
                    *connection = None;
                    if !retry || attempt == 1 {
                        return Err(LockUnavailable(format!("advisory lock {key}: {e}")));
                    }
                }
            }
        }
        unreachable!("the loop returns on its second attempt")
    }
}

/// Chat locks in a PostgreSQL database, shared by every host using it.
pub struct AdvisoryLocks {
    local: LockTable,
    sessions: Arc<[Session]>,
}

impl AdvisoryLocks {
    /// Locks in the database at `url` (`postgres://...`). Sessions are
    /// opened as locks are first taken.
    pub fn new(url: &str) -> Self {
        let url: Arc<str> = url.into();
        let sessions = (0..SESSIONS).map(|_| Session { url: url.clone(), connection: Mutex::new(None) }).collect();
        Self { local: LockTable::default(), sessions }
    }

    /// Tries `key` once on `slot`'s session, in a task of its own: if the
    /// caller stops waiting before the answer, a lock taken is unlocked.
    async fn try_once(&self, slot: usize, key: i64) -> Result<bool, LockUnavailable> {
        let (answer, asked) = oneshot::channel();
        let sessions = self.sessions.clone();
        tokio::spawn(async move {
            let session = &sessions[slot];
            let taken = session.ask("SELECT pg_try_advisory_lock($1)", key, true).await;
            if let Err(Ok(true)) = answer.send(taken) {
                let _ = session.ask("SELECT pg_advisory_unlock($1)", key, false).await;
            }
        });
        asked.await.unwrap_or_else(|_| Err(LockUnavailable("the lock task ended without an answer".into())))
    }
}

/// The advisory lock key of a lock name: 64 bits of its SHA-256, so every
/// host, whatever its build, names a lock alike. Two names that share a key
/// only wait for each other; they never both run.
pub fn advisory_key(name: &LockName) -> i64 {
    let mut hash = Sha256::new();
    for part in [name.plugin.as_bytes(), name.owner.as_bytes(), name.chat.as_bytes(), name.key.as_bytes()] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    let digest = hash.finalize();
    i64::from_le_bytes(digest[..8].try_into().expect("a SHA-256 digest has 32 bytes"))
}

/// A held advisory lock: the session holding it, and the in-process lock
/// in front of it.
struct Held {
    key: i64,
    slot: usize,
    sessions: Arc<[Session]>,
    local: Option<OwnedMutexGuard<()>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let Some(local) = self.local.take() else { return };
        let (key, slot, sessions) = (self.key, self.slot, self.sessions.clone());
        // Unlocking needs a round trip; without a runtime to run it the host
        // is ending, and its sessions close, which releases the lock as well.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            let _ = sessions[slot].ask("SELECT pg_advisory_unlock($1)", key, false).await;
            // The next waiter in this process goes only once the server
            // lock is free, so its first try succeeds.
            drop(local);
        });
    }
}

#[async_trait]
impl ChatLocks for AdvisoryLocks {
    async fn acquire(&self, name: &LockName) -> Result<LockGuard, LockUnavailable> {
        let local = self.local.lock(name).await;
        let key = advisory_key(name);
        let slot = (key as u64 % self.sessions.len() as u64) as usize;
        let mut pause = FIRST_PAUSE;
        loop {
            if self.try_once(slot, key).await? {
                return Ok(LockGuard::new(Held { key, slot, sessions: self.sessions.clone(), local: Some(local) }));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    }
}
