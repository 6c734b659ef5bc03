//! Build ownership by lease.
//!
//! A new build's job waits in the store's queue, pending and unowned, for
//! one period. The process that created it claims it at once and runs it;
//! a process that stays up to run tasks also claims any queued job, so a
//! job whose creator died between queueing and claiming still runs. Claims
//! take rows with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so hosts sharing
//! one database never claim a job twice. While a process lives it renews
//! the lease of every job it owns, every
//! [`Lease::renew_every`]. A job whose lease lapsed belongs to a process
//! that died (or froze). A process that runs tasks takes the job over and
//! runs its script again (start and stop scripts can run again), once; a
//! one-shot command fails it one lease period later. Either stops the old
//! process group first, if that group is still the one the owner started.
//! Opening the backend looks; so does every running backend, at each
//! renewal.
//!
//! The default lease is 15 s, renewed every 5 s: a renewal can be missed
//! twice (a stalled disk, a busy machine) before the build is given up, and
//! a build whose host was killed is failed within 15 s, well inside the
//! tools' two-second polls and ten-minute build limit.

use std::time::Duration;

use super::process;
use super::store::{ExpiredJob, JobLease, Store, StoreResult};

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
        JobLease { owner: Some(owner.to_string()), expires_at: now + self.period.as_millis() as u64 }
    }

    /// A job queued at `now`: no process holds it yet, and one must claim
    /// it within a period, or it counts as orphaned.
    pub fn queued(&self, now: u64) -> JobLease {
        JobLease { owner: None, expires_at: now + self.period.as_millis() as u64 }
    }
}

/// This process's name as a job owner: unique across processes and across
/// backends opened by one process.
pub fn process_owner() -> String {
    format!("{}:{}", std::process::id(), uuid::Uuid::new_v4())
}

/// How many processes may start one job: its owner, and one runner that
/// takes it over when the owner dies. A job orphaned again is failed.
pub const MAX_JOB_ATTEMPTS: u32 = 2;

/// Fails every job whose lease lapsed before `cutoff` and stops its
/// process group.
///
/// # Errors
///
/// When the store fails.
pub async fn fail_orphans(store: &Store, cutoff: u64) -> StoreResult<usize> {
    let expired = store.fail_expired_jobs(cutoff).await?;
    for job in &expired {
        tracing::warn!(job = %job.id, "the process running this build stopped renewing its lease; the build is marked failed");
        stop(job).await;
    }
    Ok(expired.len())
}

/// Stops the process group a lapsed job's script ran in, if this host
/// started it and it is still the group its owner started. A pid recorded
/// by another host names nothing here, so it is never signalled.
pub async fn stop(job: &ExpiredJob) {
    let Some(recorded) = &job.process else { return };
    match recorded.local() {
        Some(started) => process::stop_group(started, Duration::from_secs(2)).await,
        None => tracing::info!(job = %job.id, host = %recorded.host, "the build's script ran on another host; it is not signalled from here"),
    }
}

/// What a process does with jobs whose owner died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orphans {
    /// Take them over and run them again (a process that stays up to run
    /// tasks: `serve`, the task runner). Over [`MAX_JOB_ATTEMPTS`], fail them.
    Adopt,
    /// Fail them, one lease period after they lapsed, so a runner looking
    /// at the same time gets to adopt them first (a one-shot command).
    Fail,
}
