//! Build ownership by lease.
//!
//! The process that creates a build owns its job and runs it. While it
//! lives it renews the lease of every job it owns, every
//! [`Lease::renew_every`]. A job whose lease lapsed belongs to a process
//! that died (or froze): whichever process looks next fails the job and
//! stops its process group, if that group is still the one the owner
//! started. Opening the backend looks; so does every running backend, at
//! each renewal.
//!
//! The default lease is 15 s, renewed every 5 s: a renewal can be missed
//! twice (a stalled disk, a busy machine) before the build is given up, and
//! a build whose host was killed is failed within 15 s, well inside the
//! tools' two-second polls and ten-minute build limit.

use std::sync::Arc;
use std::time::Duration;

use super::process::{self, Started};
use super::store::{JobLease, Store, StoreResult};
use super::now_ms;

/// How long a job's owner holds it, and how often the owner renews.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// How long a claim holds without renewal.
    pub period: Duration,
    /// How often a live owner renews its claims.
    pub renew_every: Duration,
}

impl Default for Lease {
    fn default() -> Self {
        Self { period: Duration::from_secs(15), renew_every: Duration::from_secs(5) }
    }
}

impl Lease {
    /// A lease of `period`, renewed three times a period.
    pub fn of(period: Duration) -> Self {
        Self { period, renew_every: period / 3 }
    }

    /// The claim `owner` makes at `now`.
    pub fn claim(&self, owner: &str, now: u64) -> JobLease {
        JobLease { owner: owner.to_string(), expires_at: now + self.period.as_millis() as u64 }
    }
}

/// This process's name as a job owner: unique across processes and across
/// backends opened by one process.
pub fn process_owner() -> String {
    format!("{}:{}", std::process::id(), uuid::Uuid::new_v4())
}

/// Fails every job whose lease lapsed and stops its process group.
///
/// # Errors
///
/// When the store fails.
pub async fn fail_orphans(store: &Store) -> StoreResult<usize> {
    let expired = store.fail_expired_jobs(now_ms()).await?;
    for job in &expired {
        tracing::warn!(job = %job.id, "the process running this build stopped renewing its lease; the build is marked failed");
        if let (Some(pid), Some(start)) = (job.pgid, job.proc_start) {
            process::stop_group(Started { pid, start }, Duration::from_secs(2)).await;
        }
    }
    Ok(expired.len())
}

/// Renews this process's leases and fails orphaned jobs, until dropped.
pub struct Keeper {
    task: tokio::task::JoinHandle<()>,
}

impl Keeper {
    /// Starts renewing the leases `owner` holds in `store`.
    pub fn start(store: Arc<Store>, owner: String, lease: Lease) -> Keeper {
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(lease.renew_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let until = now_ms() + lease.period.as_millis() as u64;
                if let Err(e) = store.renew_leases(&owner, until).await {
                    tracing::warn!("renewing build leases: {e}");
                }
                if let Err(e) = fail_orphans(&store).await {
                    tracing::warn!("failing orphaned builds: {e}");
                }
            }
        });
        Keeper { task }
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}
