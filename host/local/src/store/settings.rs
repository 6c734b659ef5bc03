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

    /// Adds a registry task of `owner_id`.
    pub async fn insert_registry_task(&self, id: &str, owner_id: &str, status: &str, now: u64) -> StoreResult<()> {
        self.retry(|| async {
            sqlx::query("INSERT INTO registry_tasks (id, owner_id, status, created_at) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(owner_id)
                .bind(status)
                .bind(now as i64)
                .execute(self.pool())
                .await?;
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
