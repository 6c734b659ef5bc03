//! The task journal: tasks are rows, claimed by runners under a lease.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;
use toolshed_runtime::quota::{Quota, Refused};
use toolshed_runtime::tasks::{JournalError, TaskEnd, TaskJournal, TaskRecord, TaskState};

use super::{Dialect, Store, StoreError, StoreResult};

/// The columns of a task row, in the order `INSERT` binds them.
macro_rules! columns {
    () => {
        "id, owner_id, owner_name, organization_id, chat_id, tool, arguments, plugin, plugin_version, state,
         status_message, result, is_error, created_at, updated_at, ttl_ms, runner, lease_expires_at, attempts"
    };
}

/// Working tasks whose claim lapsed, oldest first; on PostgreSQL, rows
/// another replica is claiming are skipped, not waited for.
const LAPSED: &str = "SELECT id FROM tasks WHERE state = 'working' AND (lease_expires_at IS NULL OR lease_expires_at < $1) ORDER BY created_at LIMIT 100";
const LAPSED_SKIP_LOCKED: &str = "SELECT id FROM tasks WHERE state = 'working' AND (lease_expires_at IS NULL OR lease_expires_at < $1) ORDER BY created_at LIMIT 100 FOR UPDATE SKIP LOCKED";

fn task(row: &AnyRow) -> StoreResult<TaskRecord> {
    let json = |column: &str, text: Option<String>| -> StoreResult<Option<serde_json::Value>> {
        text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Malformed { what: "task", detail: format!("{column}: {e}") })).transpose()
    };
    let arguments: String = row.try_get("arguments")?;
    Ok(TaskRecord {
        id: row.try_get("id")?,
        owner_id: row.try_get("owner_id")?,
        owner_name: row.try_get("owner_name")?,
        organization_id: row.try_get("organization_id")?,
        chat_id: row.try_get("chat_id")?,
        tool: row.try_get("tool")?,
        arguments: json("arguments", Some(arguments))?.unwrap_or_default(),
        plugin: row.try_get("plugin")?,
        plugin_version: row.try_get("plugin_version")?,
        state: TaskState::parse(&row.try_get::<String, _>("state")?),
        status_message: row.try_get("status_message")?,
        result: json("result", row.try_get("result")?)?,
        is_error: row.try_get::<i64, _>("is_error")? != 0,
        created_at_ms: row.try_get::<i64, _>("created_at")? as u64,
        updated_at_ms: row.try_get::<i64, _>("updated_at")? as u64,
        ttl_ms: row.try_get::<i64, _>("ttl_ms")? as u64,
        runner: row.try_get("runner")?,
        lease_expires_at_ms: row.try_get::<Option<i64>, _>("lease_expires_at")?.map(|v| v as u64),
        attempts: row.try_get::<i64, _>("attempts")? as u32,
    })
}

/// A journal error for the caller. Its text may reach a remote client, so
/// it names no query, table or server: the detail goes to the log.
fn failed(e: StoreError) -> JournalError {
    tracing::warn!("the task journal failed: {e}");
    JournalError("the task store failed; the detail is in the host's log".into())
}

impl Store {
    async fn task_query(&self, sql: &'static str, binds: &[&str], limit: Option<i64>) -> StoreResult<Vec<TaskRecord>> {
        self.retry(|| async {
            let mut query = sqlx::query(sql);
            for value in binds {
                query = query.bind(*value);
            }
            if let Some(limit) = limit {
                query = query.bind(limit);
            }
            query.fetch_all(self.pool()).await?.iter().map(task).collect()
        })
        .await
    }
}

#[async_trait]
impl TaskJournal for Store {
    async fn insert(&self, t: &TaskRecord) -> Result<(), Refused<JournalError>> {
        let arguments = t.arguments.to_string();
        let result = t.result.as_ref().map(|r| r.to_string());
        let outcome = self
            .retry(|| async {
                let mut tx = self.begin_write().await?;
                // The owner's tasks and bytes are counted after its quota
                // turn and in the transaction of the insert: hosts sharing
                // the database never pass a quota between them.
                Self::quota_turn(&mut tx, &t.owner_id).await?;
                let tasks: i64 = sqlx::query("SELECT COUNT(*) AS tasks FROM tasks WHERE owner_id = $1")
                    .bind(&t.owner_id)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("tasks")?;
                if tasks as u64 >= self.quotas().tasks {
                    return Err(StoreError::Quota(Quota::Tasks.exceeded(self.quotas())));
                }
                let adding = (arguments.len() + result.as_ref().map_or(0, String::len)) as u64;
                if self.stored_bytes_in(&mut tx, &t.owner_id).await?.saturating_add(adding) > self.quotas().stored_bytes {
                    return Err(StoreError::Quota(Quota::StoredBytes.exceeded(self.quotas())));
                }
                sqlx::query(concat!(
                    "INSERT INTO tasks (",
                    columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
                ))
                .bind(&t.id)
                .bind(&t.owner_id)
                .bind(&t.owner_name)
                .bind(&t.organization_id)
                .bind(&t.chat_id)
                .bind(&t.tool)
                .bind(&arguments)
                .bind(&t.plugin)
                .bind(&t.plugin_version)
                .bind(t.state.name())
                .bind(t.status_message.as_deref())
                .bind(result.as_deref())
                .bind(i64::from(t.is_error))
                .bind(t.created_at_ms as i64)
                .bind(t.updated_at_ms as i64)
                .bind(t.ttl_ms as i64)
                .bind(t.runner.as_deref())
                .bind(t.lease_expires_at_ms.map(|v| v as i64))
                .bind(i64::from(t.attempts))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            })
            .await;
        match outcome {
            Ok(()) => Ok(()),
            Err(StoreError::Quota(quota)) => Err(Refused::Quota(quota)),
            Err(e) => Err(Refused::Error(failed(e))),
        }
    }

    async fn get(&self, owner_id: &str, id: &str) -> Result<Option<TaskRecord>, JournalError> {
        let sql = concat!("SELECT ", columns!(), " FROM tasks WHERE id = $1 AND owner_id = $2");
        Ok(self.task_query(sql, &[id, owner_id], None).await.map_err(failed)?.pop())
    }

    async fn list(&self, owner_id: &str, limit: usize) -> Result<Vec<TaskRecord>, JournalError> {
        let sql = concat!("SELECT ", columns!(), " FROM tasks WHERE owner_id = $1 ORDER BY created_at DESC, id LIMIT $2");
        self.task_query(sql, &[owner_id], Some(limit.min(10_000) as i64)).await.map_err(failed)
    }

    async fn note(&self, id: &str, runner: &str, message: &str, now: u64) -> Result<(), JournalError> {
        self.retry(|| async {
            sqlx::query("UPDATE tasks SET status_message = $3, updated_at = $4 WHERE id = $1 AND runner = $2 AND state = 'working'")
                .bind(id)
                .bind(runner)
                .bind(message)
                .bind(now as i64)
                .execute(self.pool())
                .await?;
            Ok(())
        })
        .await
        .map_err(failed)
    }

    async fn finish(&self, id: &str, runner: &str, end: &TaskEnd, now: u64) -> Result<bool, JournalError> {
        let answer = end.result.to_string();
        self.retry(|| async {
            let mut tx = self.begin_write().await?;
            let Some(owner) = sqlx::query("SELECT owner_id FROM tasks WHERE id = $1 AND runner = $2 AND state = 'working'")
                .bind(id)
                .bind(runner)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get::<String, _>("owner_id"))
                .transpose()?
            else {
                return Ok(false);
            };
            // A result that would take its owner past the stored-bytes
            // quota is not kept: the task ends with the quota's error.
            Self::quota_turn(&mut tx, &owner).await?;
            let stored = self.stored_bytes_in(&mut tx, &owner).await?;
            let (result, is_error, message) = if stored.saturating_add(answer.len() as u64) > self.quotas().stored_bytes {
                let error = Quota::StoredBytes.exceeded(self.quotas()).error();
                tracing::info!(task = %id, bytes = answer.len(), "a task's result is not kept: its owner is at the stored-bytes quota");
                (error.to_json().to_string(), true, Some(error.message))
            } else {
                (answer.clone(), end.is_error, end.message.clone())
            };
            let done = sqlx::query(
                "UPDATE tasks SET state = $3, result = $4, is_error = $5, status_message = $6, updated_at = $7,
                     runner = NULL, lease_expires_at = NULL
                 WHERE id = $1 AND runner = $2 AND state = 'working'",
            )
            .bind(id)
            .bind(runner)
            .bind(end.state.name())
            .bind(result)
            .bind(i64::from(is_error))
            .bind(message)
            .bind(now as i64)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(done.rows_affected() == 1)
        })
        .await
        .map_err(failed)
    }

    async fn cancel(&self, owner_id: &str, id: &str, now: u64) -> Result<Option<TaskRecord>, JournalError> {
        self.retry(|| async {
            sqlx::query(
                "UPDATE tasks SET state = 'cancelled', status_message = 'cancelled by its owner', updated_at = $3, lease_expires_at = NULL
                 WHERE id = $1 AND owner_id = $2 AND state = 'working'",
            )
            .bind(id)
            .bind(owner_id)
            .bind(now as i64)
            .execute(self.pool())
            .await?;
            Ok(())
        })
        .await
        .map_err(failed)?;
        self.get(owner_id, id).await
    }

    async fn renew(&self, runner: &str, until: u64, ids: &[String]) -> Result<Vec<String>, JournalError> {
        self.retry(|| async {
            sqlx::query("UPDATE tasks SET lease_expires_at = $2 WHERE runner = $1 AND state = 'working'")
                .bind(runner)
                .bind(until as i64)
                .execute(self.pool())
                .await?;
            Ok(())
        })
        .await
        .map_err(failed)?;
        // One read of what this runner still holds, whatever the count.
        let held: std::collections::HashSet<String> = self
            .retry(|| async {
                Ok(sqlx::query("SELECT id FROM tasks WHERE runner = $1 AND state = 'working'")
                    .bind(runner)
                    .fetch_all(self.pool())
                    .await?
                    .iter()
                    .map(|r| r.try_get("id"))
                    .collect::<Result<_, _>>()?)
            })
            .await
            .map_err(failed)?;
        Ok(ids.iter().filter(|id| !held.contains(*id)).cloned().collect())
    }

    async fn claim_lapsed(&self, runner: &str, now: u64, until: u64) -> Result<Vec<TaskRecord>, JournalError> {
        let lapsed = if self.dialect() == Dialect::Postgres { LAPSED_SKIP_LOCKED } else { LAPSED };
        self.retry(|| async {
            let mut tx = self.begin_write().await?;
            let ids: Vec<String> = sqlx::query(lapsed)
            .bind(now as i64)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?;
            let mut claimed = Vec::new();
            for id in &ids {
                sqlx::query("UPDATE tasks SET runner = $2, lease_expires_at = $3, attempts = attempts + 1, updated_at = $4 WHERE id = $1")
                    .bind(id)
                    .bind(runner)
                    .bind(until as i64)
                    .bind(now as i64)
                    .execute(&mut *tx)
                    .await?;
                let row = sqlx::query(concat!("SELECT ", columns!(), " FROM tasks WHERE id = $1")).bind(id).fetch_one(&mut *tx).await?;
                claimed.push(task(&row)?);
            }
            tx.commit().await?;
            Ok(claimed)
        })
        .await
        .map_err(failed)
    }

    async fn purge(&self, now: u64) -> Result<usize, JournalError> {
        self.retry(|| async {
            let done = sqlx::query("DELETE FROM tasks WHERE created_at + ttl_ms < $1").bind(now as i64).execute(self.pool()).await?;
            Ok(done.rows_affected() as usize)
        })
        .await
        .map_err(failed)
    }
}
