//! Chats and what is bound to them. A chat is keyed by its owner and the id
//! the owner gave it, so the same id named by two owners is two chats.
//! Reading a chat never writes one; binding something to a new chat makes
//! it, within the owner's chat quota.

use sqlx::Row;
use toolshed_infra::Chat;
use toolshed_runtime::chats::is_default_chat;
use toolshed_runtime::quota::Quota;

use super::{Store, StoreError, StoreResult, rows};

/// What to bind to a chat; absent fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct Binding<'a> {
    /// A workspace.
    pub workspace_id: Option<&'a str>,
    /// A build.
    pub build_id: Option<&'a str>,
    /// An agent.
    pub agent_id: Option<&'a str>,
}

impl Store {
    /// Chat `id` of `owner_id`: its row, or an unbound chat when none
    /// exists yet. Another owner's chat of the same id is not this one.
    pub async fn chat(&self, id: &str, owner_id: &str, organization_id: &str) -> StoreResult<Chat> {
        let row = self
            .retry(|| async {
                Ok(sqlx::query("SELECT * FROM chats WHERE owner_id = $1 AND id = $2").bind(owner_id).bind(id).fetch_optional(self.pool()).await?)
            })
            .await?;
        match row {
            Some(row) => rows::chat(&row),
            None => Ok(Chat {
                id: id.to_string(),
                owner_id: owner_id.to_string(),
                organization_id: organization_id.to_string(),
                workspace_id: None,
                build_id: None,
                agent_id: None,
            }),
        }
    }

    /// Whether `owner_id` may use chat `id`: one it has, its default chat,
    /// or a new one within its chat quota. A look, not a reservation: the
    /// bind that makes the chat checks again.
    ///
    /// # Errors
    ///
    /// [`StoreError::Quota`] when the chat is new and the owner is at its
    /// quota.
    pub async fn may_use_chat(&self, id: &str, owner_id: &str) -> StoreResult<()> {
        if is_default_chat(owner_id, id) {
            return Ok(());
        }
        let row = self
            .retry(|| async {
                Ok(sqlx::query(
                    "SELECT (SELECT COUNT(*) FROM chats WHERE owner_id = $1 AND id = $2) AS mine, (SELECT COUNT(*) FROM chats WHERE owner_id = $1) AS chats",
                )
                .bind(owner_id)
                .bind(id)
                .fetch_one(self.pool())
                .await?)
            })
            .await?;
        let (mine, chats): (i64, i64) = (row.try_get("mine")?, row.try_get("chats")?);
        if mine == 0 && chats as u64 >= self.quotas().chats {
            return Err(StoreError::Quota(Quota::Chats.exceeded(self.quotas())));
        }
        Ok(())
    }

    /// Binds what `binding` gives to chat `id` of `owner_id`, making the
    /// chat on first use. The owner's chats are counted in the same
    /// transaction as the insert, after the owner's quota turn, so hosts
    /// sharing the database never make more than the quota between them.
    ///
    /// # Errors
    ///
    /// [`StoreError::Quota`] when the chat is new, is not the owner's
    /// default chat, and the owner is at its chat quota.
    pub async fn bind(&self, id: &str, owner_id: &str, organization_id: &str, binding: &Binding<'_>) -> StoreResult<()> {
        self.retry(|| async {
            let mut tx = self.begin_write().await?;
            Self::quota_turn(&mut tx, owner_id).await?;
            if !is_default_chat(owner_id, id) {
                let row = sqlx::query(
                    "SELECT (SELECT COUNT(*) FROM chats WHERE owner_id = $1 AND id = $2) AS mine, (SELECT COUNT(*) FROM chats WHERE owner_id = $1) AS chats",
                )
                .bind(owner_id)
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                let (mine, chats): (i64, i64) = (row.try_get("mine")?, row.try_get("chats")?);
                if mine == 0 && chats as u64 >= self.quotas().chats {
                    return Err(StoreError::Quota(Quota::Chats.exceeded(self.quotas())));
                }
            }
            sqlx::query(
                "INSERT INTO chats (owner_id, id, organization_id, workspace_id, build_id, agent_id)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (owner_id, id) DO UPDATE SET
                    workspace_id = COALESCE(excluded.workspace_id, chats.workspace_id),
                    build_id = COALESCE(excluded.build_id, chats.build_id),
                    agent_id = COALESCE(excluded.agent_id, chats.agent_id)",
            )
            .bind(owner_id)
            .bind(id)
            .bind(organization_id)
            .bind(binding.workspace_id)
            .bind(binding.build_id)
            .bind(binding.agent_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Every chat and the workspace bound to it.
    pub async fn chats(&self) -> StoreResult<Vec<(String, Option<String>)>> {
        let rows = self.retry(|| async { Ok(sqlx::query("SELECT id, workspace_id FROM chats ORDER BY owner_id, id").fetch_all(self.pool()).await?) }).await?;
        rows.iter().map(|r| Ok((r.try_get("id")?, r.try_get("workspace_id")?))).collect()
    }
}
