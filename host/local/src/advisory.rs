//! Chat locks that hold across hosts: PostgreSQL advisory locks.
//!
//! Hosts that share one PostgreSQL database must not run the same chat's
//! guarded step at once (two replicas creating two workspaces for one chat),
//! so a plugin's lock is a session-level advisory lock, held on a connection
//! of its own for as long as the guest holds it. When the call ends the lock
//! is unlocked and the connection kept for the next one; when the host dies
//! its connections close, and PostgreSQL releases their locks with them.
//!
//! Within one host a lock is first taken in the in-process [`LockTable`], so
//! a host has at most one connection waiting on any one lock. Waiting on
//! PostgreSQL polls `pg_try_advisory_lock` with a backoff instead of
//! blocking in `pg_advisory_lock`: a call that ends while waiting then
//! leaves nothing behind on the server, where a blocked statement whose
//! client went away could still take the lock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use toolshed_runtime::async_trait;
use toolshed_runtime::locks::{ChatLocks, LockGuard, LockName, LockTable, LockUnavailable};

/// The first pause between two tries of a lock another host holds.
const FIRST_PAUSE: Duration = Duration::from_millis(2);
/// The longest pause between two tries.
const LONGEST_PAUSE: Duration = Duration::from_millis(50);
/// How many unlocked connections are kept for the next lock.
const IDLE_CONNECTIONS: usize = 16;

/// Chat locks in a PostgreSQL database, shared by every host using it.
pub struct AdvisoryLocks {
    url: String,
    local: LockTable,
    idle: Arc<Mutex<Vec<PgConnection>>>,
}

impl AdvisoryLocks {
    /// Locks in the database at `url` (`postgres://...`). Connections are
    /// opened as locks are taken.
    pub fn new(url: &str) -> Self {
        Self { url: url.to_string(), local: LockTable::default(), idle: Arc::default() }
    }

    async fn connection(&self) -> Result<PgConnection, LockUnavailable> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(connection) => Ok(connection),
            None => PgConnection::connect(&self.url).await.map_err(|e| LockUnavailable(format!("connect to PostgreSQL: {e}"))),
        }
    }
}

/// The advisory lock key of a lock name: 64 bits of its SHA-256, so every
/// host, whatever its build, names a lock alike. Two names that share a key
/// only wait for each other; they never both run.
pub fn advisory_key(name: &LockName) -> i64 {
    let mut hash = Sha256::new();
    for part in [name.plugin.as_bytes(), name.chat.as_bytes(), name.key.as_bytes()] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    let digest = hash.finalize();
    i64::from_le_bytes(digest[..8].try_into().expect("a SHA-256 digest has 32 bytes"))
}

/// A held advisory lock: the connection holding it, and the in-process lock
/// in front of it.
struct Held {
    key: i64,
    connection: Option<PgConnection>,
    local: Option<tokio::sync::OwnedMutexGuard<()>>,
    idle: Arc<Mutex<Vec<PgConnection>>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let (Some(mut connection), local) = (self.connection.take(), self.local.take()) else { return };
        let (key, idle) = (self.key, self.idle.clone());
        // Unlocking needs a round trip; without a runtime to run it, dropping
        // the connection closes it, which releases the lock as well.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            let unlocked = sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1)").bind(key).fetch_one(&mut connection).await;
            if matches!(unlocked, Ok(true)) {
                let mut idle = idle.lock().unwrap_or_else(|e| e.into_inner());
                if idle.len() < IDLE_CONNECTIONS {
                    idle.push(connection);
                }
            }
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
        // Owned by this future until the lock is held: a call that ends
        // while waiting drops it, closing the connection.
        let mut connection = self.connection().await?;
        let (mut pause, mut reconnected) = (FIRST_PAUSE, false);
        loop {
            let taken = match sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)").bind(key).fetch_one(&mut connection).await {
                Ok(taken) => taken,
                // A kept connection may have died with the server since; a
                // fresh one gets one more try.
                Err(_) if !reconnected => {
                    reconnected = true;
                    connection = PgConnection::connect(&self.url).await.map_err(|e| LockUnavailable(format!("connect to PostgreSQL: {e}")))?;
                    continue;
                }
                Err(e) => return Err(LockUnavailable(format!("take advisory lock {key}: {e}"))),
            };
            if taken {
                return Ok(LockGuard::new(Held { key, connection: Some(connection), local: Some(local), idle: self.idle.clone() }));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    }
}
