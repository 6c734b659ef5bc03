//! Workspaces. A live workspace's name is unique per owner: the database
//! holds that, so two processes creating the same name cannot both win.
//! How many run at once is held to the owner's quota the same way.

use sqlx::{Any, Row, Transaction};
use toolshed_runtime::quota::Quota;

use super::builds::NewBuild;
use super::{Store, StoreError, StoreResult, rows};
use crate::store::WorkspaceRecord;

/// The owner's running workspaces other than one: those whose newest build
/// starts them and has not failed or been canceled. Each keeps an agent.
const LIVE_WORKSPACES: &str = "SELECT COUNT(*) AS live FROM workspaces w
      JOIN builds b ON b.workspace_id = w.id AND b.number = (SELECT MAX(number) FROM builds WHERE workspace_id = w.id)
      JOIN jobs j ON j.id = b.job_id
     WHERE w.owner_id = $1 AND w.deleted = 0 AND w.id <> $2 AND b.transition = 'start' AND j.status NOT IN ('failed', 'canceled')";

/// A workspace to add with its first build.
#[derive(Debug, Clone)]
pub struct NewWorkspace<'a> {
    /// The workspace.
    pub record: &'a WorkspaceRecord,
    /// Its TTL, if any.
    pub ttl_ms: Option<u64>,
    /// Its first build.
    pub build: NewBuild<'a>,
}

impl Store {
    /// Checks, in `tx` and after taking the owner's quota turn, that
    /// starting `workspace_id` keeps `owner_id` within its quota of live
    /// workspaces.
    pub(super) async fn check_live_workspaces(&self, tx: &mut Transaction<'static, Any>, owner_id: &str, workspace_id: &str) -> StoreResult<()> {
        Self::quota_turn(tx, owner_id).await?;
        let live: i64 = sqlx::query(LIVE_WORKSPACES).bind(owner_id).bind(workspace_id).fetch_one(&mut **tx).await?.try_get("live")?;
        if live as u64 >= self.quotas().live_workspaces {
            return Err(StoreError::Quota(Quota::LiveWorkspaces.exceeded(self.quotas())));
        }
        Ok(())
    }

    /// A workspace by id, of any owner.
    pub async fn workspace(&self, id: &str) -> StoreResult<Option<WorkspaceRecord>> {
        let row = self.retry(|| async { Ok(sqlx::query("SELECT * FROM workspaces WHERE id = $1").bind(id).fetch_optional(self.pool()).await?) }).await?;
        row.as_ref().map(rows::workspace).transpose()
    }

    /// Every workspace that is not deleted, oldest first.
    pub async fn workspaces(&self) -> StoreResult<Vec<WorkspaceRecord>> {
        let rows = self
            .retry(|| async { Ok(sqlx::query("SELECT * FROM workspaces WHERE deleted = 0 ORDER BY created_at").fetch_all(self.pool()).await?) })
            .await?;
        rows.iter().map(rows::workspace).collect()
    }

    /// Adds a workspace and its first build in one transaction.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] when the owner already has a live workspace
    /// of that name; [`StoreError::Quota`] when the owner already runs as
    /// many workspaces as its quota allows.
    pub async fn insert_workspace(&self, new: &NewWorkspace<'_>, now: u64) -> StoreResult<()> {
        let outcome = self
            .retry(|| async {
                let mut tx = self.begin_write().await?;
                let record = new.record;
                self.check_live_workspaces(&mut tx, &record.owner_id, &record.workspace.id).await?;
                sqlx::query(
                    "INSERT INTO workspaces (id, name, owner_id, owner_name, template_id, ttl_ms, dir, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&record.workspace.id)
                .bind(&record.workspace.name)
                .bind(&record.owner_id)
                .bind(&record.workspace.owner_name)
                .bind(&record.workspace.template_id)
                .bind(new.ttl_ms.map(|t| t as i64))
                .bind(&record.dir)
                .bind(now as i64)
                .execute(&mut *tx)
                .await?;
                Self::insert_build_in(&mut tx, &new.build, now).await?;
                tx.commit().await?;
                Ok(())
            })
            .await;
        match outcome {
            Err(e) if e.is_unique_violation() => Err(StoreError::Conflict(format!("a workspace named {} already exists", new.record.workspace.name))),
            other => other,
        }
    }
}
