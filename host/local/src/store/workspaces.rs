//! Workspaces. A live workspace's name is unique per owner: the database
//! holds that, so two processes creating the same name cannot both win.

use super::builds::NewBuild;
use super::{Store, StoreError, StoreResult, rows};
use crate::store::WorkspaceRecord;

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
    /// of that name.
    pub async fn insert_workspace(&self, new: &NewWorkspace<'_>, now: u64) -> StoreResult<()> {
        let outcome = self
            .retry(|| async {
                let mut tx = self.begin_write().await?;
                let record = new.record;
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
