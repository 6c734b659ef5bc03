//! Builds and their jobs. A job is owned, under a lease, by the process
//! that runs it: the owner renews the lease while the job runs, and only a
//! job whose lease lapsed counts as orphaned.

use std::collections::BTreeMap;

use sqlx::{Any, Row, Transaction};

use super::rows::JobLease;
use super::{Dialect, Store, StoreError, StoreResult, rows};
use crate::process::ProcessRecord;
use toolshed_infra::{Build, Job, JobStatus, Transition};
use crate::store::BuildRecord;

/// A build to add, with its pending job.
#[derive(Debug, Clone)]
pub struct NewBuild<'a> {
    /// The build.
    pub build: &'a Build,
    /// The values it runs with.
    pub parameters: &'a BTreeMap<String, String>,
    /// Who holds its job, and until when: queued ([`super::super::Lease::queued`])
    /// until a process claims it.
    pub lease: JobLease,
}

/// A job whose owner stopped renewing its lease.
#[derive(Debug, Clone)]
pub struct ExpiredJob {
    /// The job.
    pub id: String,
    /// The process group its script ran in, if it started: its leader's
    /// pid, start time and host.
    pub process: Option<ProcessRecord>,
}

impl ExpiredJob {
    fn of(row: &sqlx::any::AnyRow) -> StoreResult<ExpiredJob> {
        Ok(ExpiredJob { id: row.try_get("id")?, process: rows::process(row)? })
    }
}

/// Why an orphaned job failed, for the model.
pub const ORPHANED: &str = "the process running this build stopped before it finished; start the workspace again";

/// A build with its job's status, followed by `$tail`.
macro_rules! select_builds {
    ($tail:literal) => {
        concat!("SELECT b.*, j.status FROM builds b JOIN jobs j ON j.id = b.job_id ", $tail)
    };
}

impl Store {
    pub(super) async fn insert_build_in(tx: &mut Transaction<'static, Any>, new: &NewBuild<'_>, now: u64) -> StoreResult<()> {
        let build = new.build;
        let number: i64 = sqlx::query("SELECT COALESCE(MAX(number), 0) + 1 AS next FROM builds WHERE workspace_id = $1")
            .bind(&build.workspace_id)
            .fetch_one(&mut **tx)
            .await?
            .try_get("next")?;
        let parameters = serde_json::to_string(new.parameters).map_err(|e| StoreError::Malformed { what: "build's parameters", detail: e.to_string() })?;
        sqlx::query(
            "INSERT INTO builds (id, workspace_id, number, job_id, transition, template_version_id, parameters, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&build.id)
        .bind(&build.workspace_id)
        .bind(number)
        .bind(&build.job_id)
        .bind(rows::transition_name(build.transition))
        .bind(build.template_version_id.as_deref().unwrap_or_default())
        .bind(parameters)
        .bind(now as i64)
        .execute(&mut **tx)
        .await?;
        sqlx::query("INSERT INTO jobs (id, status, owner, lease_expires_at) VALUES ($1, 'pending', $2, $3)")
            .bind(&build.job_id)
            .bind(&new.lease.owner)
            .bind(new.lease.expires_at as i64)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Adds a build of an existing workspace, unless one is pending or
    /// running under a live lease: the check and the insert are one
    /// transaction, so of two parallel requests exactly one starts a build.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] when a build of the workspace is under way;
    /// [`StoreError::Quota`] when a start would take its owner past the
    /// quota of live workspaces.
    pub async fn insert_build(&self, new: &NewBuild<'_>, now: u64) -> StoreResult<()> {
        self.retry(|| async {
            let mut tx = self.begin_write().await?;
            if self.dialect() == Dialect::Postgres {
                sqlx::query("SELECT id FROM workspaces WHERE id = $1 FOR UPDATE").bind(&new.build.workspace_id).execute(&mut *tx).await?;
            }
            let latest = sqlx::query(
                "SELECT j.status, j.lease_expires_at FROM builds b JOIN jobs j ON j.id = b.job_id
                 WHERE b.workspace_id = $1 ORDER BY b.number DESC LIMIT 1",
            )
            .bind(&new.build.workspace_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = latest {
                let status = rows::status(&row.try_get::<String, _>("status")?);
                let lease: Option<i64> = row.try_get("lease_expires_at")?;
                let live = lease.is_some_and(|until| until as u64 > now);
                if matches!(status, JobStatus::Pending | JobStatus::Running | JobStatus::Canceling) && live {
                    return Err(StoreError::Conflict("a build of this workspace is already running".into()));
                }
            }
            if matches!(new.build.transition, Transition::Start) {
                let owner: Option<String> =
                    sqlx::query("SELECT owner_id FROM workspaces WHERE id = $1").bind(&new.build.workspace_id).fetch_optional(&mut *tx).await?.map(|r| r.try_get("owner_id")).transpose()?;
                if let Some(owner) = owner {
                    self.check_live_workspaces(&mut tx, &owner, &new.build.workspace_id).await?;
                }
            }
            Self::insert_build_in(&mut tx, new, now).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn build_query(&self, sql: &'static str, key: &str) -> StoreResult<Option<BuildRecord>> {
        let row = self.retry(|| async { Ok(sqlx::query(sql).bind(key).fetch_optional(self.pool()).await?) }).await?;
        row.as_ref().map(rows::build).transpose()
    }

    /// A build by id.
    pub async fn build(&self, id: &str) -> StoreResult<Option<BuildRecord>> {
        self.build_query(select_builds!("WHERE b.id = $1"), id).await
    }

    /// The build a job runs.
    pub async fn build_of_job(&self, job_id: &str) -> StoreResult<Option<BuildRecord>> {
        self.build_query(select_builds!("WHERE b.job_id = $1"), job_id).await
    }

    /// A workspace's newest build.
    pub async fn latest_build(&self, workspace_id: &str) -> StoreResult<Option<BuildRecord>> {
        self.build_query(select_builds!("WHERE b.workspace_id = $1 ORDER BY b.number DESC LIMIT 1"), workspace_id).await
    }

    /// The values of a workspace's newest start build.
    pub async fn latest_values(&self, workspace_id: &str) -> StoreResult<BTreeMap<String, String>> {
        let sql = select_builds!("WHERE b.workspace_id = $1 AND b.transition = 'start' ORDER BY b.number DESC LIMIT 1");
        Ok(self.build_query(sql, workspace_id).await?.map(|b| b.parameters).unwrap_or_default())
    }

    /// The owner of the workspace a job builds.
    pub async fn job_owner(&self, job_id: &str) -> StoreResult<Option<String>> {
        let row = self
            .retry(|| async {
                Ok(sqlx::query("SELECT w.owner_id FROM builds b JOIN workspaces w ON w.id = b.workspace_id WHERE b.job_id = $1")
                    .bind(job_id)
                    .fetch_optional(self.pool())
                    .await?)
            })
            .await?;
        Ok(row.map(|r| r.try_get("owner_id")).transpose()?)
    }

    /// A job and its lease, as last written.
    pub async fn job(&self, id: &str) -> StoreResult<Option<(Job, Option<JobLease>)>> {
        let row = self.retry(|| async { Ok(sqlx::query("SELECT * FROM jobs WHERE id = $1").bind(id).fetch_optional(self.pool()).await?) }).await?;
        row.as_ref().map(rows::job).transpose()
    }

    /// Marks a job running in the process group `group` leads, if `owner`
    /// still holds it.
    pub async fn job_running(&self, id: &str, owner: &str, group: Option<&ProcessRecord>, now: u64) -> StoreResult<bool> {
        let done = self
            .retry(|| async {
                let sql = "UPDATE jobs SET status = 'running', started_at = $3, pid = $4, proc_start = $5, host = $6
                           WHERE id = $1 AND owner = $2 AND status = 'pending'";
                Ok(sqlx::query(sql)
                    .bind(id)
                    .bind(owner)
                    .bind(now as i64)
                    .bind(group.map(|p| p.pid))
                    .bind(group.map(|p| p.start))
                    .bind(group.map(|p| p.host.as_str()))
                    .execute(self.pool())
                    .await?)
            })
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends a job with `status`, if `owner` still holds it; its lease ends too.
    pub async fn finish_job(&self, id: &str, owner: &str, status: JobStatus, error: Option<&str>, now: u64) -> StoreResult<bool> {
        let done = self
            .retry(|| async {
                Ok(sqlx::query(
                    "UPDATE jobs SET status = $3, error = $4, finished_at = $5, lease_expires_at = NULL
                     WHERE id = $1 AND owner = $2 AND status IN ('pending', 'running', 'canceling')",
                )
                .bind(id)
                .bind(owner)
                .bind(rows::status_name(status))
                .bind(error)
                .bind(now as i64)
                .execute(self.pool())
                .await?)
            })
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Claims, for `owner` until `until`, up to `limit` queued jobs (pending,
    /// unowned, their queue lease not lapsed at `now`), or only job `only`
    /// when given, and returns their ids. On PostgreSQL the rows are taken
    /// with `FOR UPDATE SKIP LOCKED`, so hosts claiming at once each get
    /// other jobs and none waits on another.
    pub async fn claim_queued_jobs(&self, owner: &str, now: u64, until: u64, only: Option<&str>, limit: u32) -> StoreResult<Vec<String>> {
        let queued = match self.dialect() {
            Dialect::Postgres => {
                "SELECT id FROM jobs WHERE status = 'pending' AND owner IS NULL AND lease_expires_at >= $1 AND (CAST($2 AS TEXT) IS NULL OR id = CAST($2 AS TEXT))
                 LIMIT $3 FOR UPDATE SKIP LOCKED"
            }
            Dialect::Sqlite => {
                "SELECT id FROM jobs WHERE status = 'pending' AND owner IS NULL AND lease_expires_at >= $1 AND (CAST($2 AS TEXT) IS NULL OR id = CAST($2 AS TEXT))
                 LIMIT $3"
            }
        };
        self.retry(|| async {
            let mut tx = self.begin_write().await?;
            let rows = sqlx::query(queued).bind(now as i64).bind(only).bind(i64::from(limit)).fetch_all(&mut *tx).await?;
            let mut claimed = Vec::with_capacity(rows.len());
            for row in &rows {
                let id: String = row.try_get("id")?;
                sqlx::query("UPDATE jobs SET owner = $2, lease_expires_at = $3 WHERE id = $1 AND owner IS NULL")
                    .bind(&id)
                    .bind(owner)
                    .bind(until as i64)
                    .execute(&mut *tx)
                    .await?;
                claimed.push(id);
            }
            tx.commit().await?;
            Ok(claimed)
        })
        .await
    }

    /// Extends the lease of every unfinished job `owner` holds to `until`.
    pub async fn renew_leases(&self, owner: &str, until: u64) -> StoreResult<u64> {
        let done = self
            .retry(|| async {
                Ok(sqlx::query("UPDATE jobs SET lease_expires_at = $2 WHERE owner = $1 AND status IN ('pending', 'running', 'canceling')")
                    .bind(owner)
                    .bind(until as i64)
                    .execute(self.pool())
                    .await?)
            })
            .await?;
        Ok(done.rows_affected())
    }

    /// Fails every unfinished job whose lease lapsed before `now`, and
    /// returns them, so their processes can be stopped.
    pub async fn fail_expired_jobs(&self, now: u64) -> StoreResult<Vec<ExpiredJob>> {
        self.retry(|| async {
            let mut tx = self.begin_write().await?;
            let rows = sqlx::query(
                "SELECT id, pid, proc_start, host FROM jobs
                 WHERE status IN ('pending', 'running', 'canceling') AND (lease_expires_at IS NULL OR lease_expires_at < $1)",
            )
            .bind(now as i64)
            .fetch_all(&mut *tx)
            .await?;
            let expired: Vec<ExpiredJob> = rows.iter().map(ExpiredJob::of).collect::<StoreResult<_>>()?;
            for job in &expired {
                sqlx::query(
                    "UPDATE jobs SET status = 'failed', error = $2, finished_at = $3, lease_expires_at = NULL
                     WHERE id = $1 AND status IN ('pending', 'running', 'canceling')",
                )
                .bind(&job.id)
                .bind(ORPHANED)
                .bind(now as i64)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(expired)
        })
        .await
    }

    /// Takes over, for `owner` until `until`, every unfinished job whose
    /// lease lapsed before `now` and that fewer than `max_attempts`
    /// processes have started: each goes back to pending, to run again.
    /// Fails the others. Returns (taken over, failed), so the processes of
    /// both can be stopped.
    pub async fn adopt_expired_jobs(&self, owner: &str, now: u64, until: u64, max_attempts: u32) -> StoreResult<(Vec<ExpiredJob>, Vec<ExpiredJob>)> {
        let lapsed = if self.dialect() == Dialect::Postgres {
            "SELECT id, pid, proc_start, host, attempts FROM jobs
             WHERE status IN ('pending', 'running', 'canceling') AND (lease_expires_at IS NULL OR lease_expires_at < $1)
             FOR UPDATE SKIP LOCKED"
        } else {
            "SELECT id, pid, proc_start, host, attempts FROM jobs
             WHERE status IN ('pending', 'running', 'canceling') AND (lease_expires_at IS NULL OR lease_expires_at < $1)"
        };
        self.retry(|| async {
            let mut tx = self.begin_write().await?;
            let rows = sqlx::query(lapsed).bind(now as i64).fetch_all(&mut *tx).await?;
            let (mut adopted, mut failed) = (Vec::new(), Vec::new());
            for row in &rows {
                let job = ExpiredJob::of(row)?;
                let attempts: i64 = row.try_get("attempts")?;
                if attempts < i64::from(max_attempts) {
                    sqlx::query(
                        "UPDATE jobs SET status = 'pending', owner = $2, lease_expires_at = $3, attempts = attempts + 1,
                             pid = NULL, proc_start = NULL, host = NULL, started_at = NULL
                         WHERE id = $1",
                    )
                    .bind(&job.id)
                    .bind(owner)
                    .bind(until as i64)
                    .execute(&mut *tx)
                    .await?;
                    adopted.push(job);
                } else {
                    sqlx::query("UPDATE jobs SET status = 'failed', error = $2, finished_at = $3, lease_expires_at = NULL WHERE id = $1")
                        .bind(&job.id)
                        .bind(ORPHANED)
                        .bind(now as i64)
                        .execute(&mut *tx)
                        .await?;
                    failed.push(job);
                }
            }
            tx.commit().await?;
            Ok((adopted, failed))
        })
        .await
    }
}
