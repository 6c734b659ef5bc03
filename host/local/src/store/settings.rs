//! Settings and registry provisioning tasks.

use sqlx::Row;

use super::{Store, StoreResult};

/// A registry provisioning task as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryTaskRecord {
    /// pending, running, completed, failed or cancelled.
    pub status: String,
    /// The platform's note.
    pub message: Option<String>,
    /// Where the registry is, once completed.
    pub url: Option<String>,
}

impl Store {
    /// A setting.
    pub async fn setting(&self, key: &str) -> StoreResult<Option<String>> {
        let row = self
            .retry(|| async { Ok(sqlx::query("SELECT value FROM settings WHERE key = $1").bind(key).fetch_optional(self.pool()).await?) })
            .await?;
        Ok(row.map(|r| r.try_get("value")).transpose()?)
    }

    /// Sets a setting.
    pub async fn set_setting(&self, key: &str, value: &str) -> StoreResult<()> {
        self.retry(|| async {
            sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
                .bind(key)
                .bind(value)
                .execute(self.pool())
                .await?;
            Ok(())
        })
        .await
    }

    /// Adds a registry task of `owner_id` that makes the registry
    /// directory `dir`, which counts for `bytes` of the owner's stored
    /// bytes (once, however many tasks make it).
    ///
    /// # Errors
    ///
    /// [`super::StoreError::Quota`] when a new directory would take the
    /// owner past its stored-bytes quota; counted after the owner's quota
    /// turn, in the insert's transaction.
    pub async fn insert_registry_task(&self, id: &str, owner_id: &str, dir: &str, bytes: u64, status: &str, now: u64) -> StoreResult<()> {
        self.retry(|| async {
            let mut tx = self.begin_write().await?;
            Self::quota_turn(&mut tx, owner_id).await?;
            let known = sqlx::query("SELECT 1 AS known FROM registry_tasks WHERE owner_id = $1 AND dir = $2 LIMIT 1")
                .bind(owner_id)
                .bind(dir)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if !known && self.stored_bytes_in(&mut tx, owner_id).await?.saturating_add(bytes) > self.quotas().stored_bytes {
                return Err(super::StoreError::Quota(toolshed_runtime::quota::Quota::StoredBytes.exceeded(self.quotas())));
            }
            sqlx::query("INSERT INTO registry_tasks (id, owner_id, dir, bytes, status, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(id)
                .bind(owner_id)
                .bind(dir)
                .bind(bytes as i64)
                .bind(status)
                .bind(now as i64)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Records how a registry task went.
    pub async fn update_registry_task(&self, id: &str, task: &RegistryTaskRecord) -> StoreResult<()> {
        self.retry(|| async {
            sqlx::query("UPDATE registry_tasks SET status = $2, message = $3, url = $4 WHERE id = $1")
                .bind(id)
                .bind(&task.status)
                .bind(task.message.as_deref())
                .bind(task.url.as_deref())
                .execute(self.pool())
                .await?;
            Ok(())
        })
        .await
    }

    /// A registry task of `owner_id`; another owner's reads as absent.
    pub async fn registry_task(&self, id: &str, owner_id: &str) -> StoreResult<Option<RegistryTaskRecord>> {
        let row = self
            .retry(|| async {
                Ok(sqlx::query("SELECT status, message, url FROM registry_tasks WHERE id = $1 AND owner_id = $2")
                    .bind(id)
                    .bind(owner_id)
                    .fetch_optional(self.pool())
                    .await?)
            })
            .await?;
        row.map(|r| Ok(RegistryTaskRecord { status: r.try_get("status")?, message: r.try_get("message")?, url: r.try_get("url")? })).transpose()
    }
}
