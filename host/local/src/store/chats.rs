//! Chats and what is bound to them. A chat belongs to the owner who first
//! bound something to it; reading a chat never writes one.

use super::{Store, StoreResult, rows};
use toolshed_infra::Chat;

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

/// A chat as an owner sees it.
#[derive(Debug, Clone)]
pub enum ChatView {
    /// The chat, bound or not yet.
    Chat(Chat),
    /// The chat id belongs to another owner.
    Foreign,
}

impl Store {
    /// Chat `id` as `owner_id` sees it: its row, an unbound chat when none
    /// exists yet, or [`ChatView::Foreign`] when another owner has it.
    pub async fn chat(&self, id: &str, owner_id: &str, organization_id: &str) -> StoreResult<ChatView> {
        let row = self
            .retry(|| async { Ok(sqlx::query("SELECT * FROM chats WHERE id = $1").bind(id).fetch_optional(self.pool()).await?) })
            .await?;
        match row {
            Some(row) => {
                let chat = rows::chat(&row)?;
                Ok(if chat.owner_id == owner_id { ChatView::Chat(chat) } else { ChatView::Foreign })
            }
            None => Ok(ChatView::Chat(Chat {
                id: id.to_string(),
                owner_id: owner_id.to_string(),
                organization_id: organization_id.to_string(),
                workspace_id: None,
                build_id: None,
                agent_id: None,
            })),
        }
    }

    /// Binds what `binding` gives to chat `id` of `owner_id`, creating the
    /// chat on first use. Returns false, binding nothing, when the chat is
    /// another owner's.
    pub async fn bind(&self, id: &str, owner_id: &str, organization_id: &str, binding: &Binding<'_>) -> StoreResult<bool> {
        let updated = self
            .retry(|| async {
                Ok(sqlx::query(
                    "INSERT INTO chats (id, owner_id, organization_id, workspace_id, build_id, agent_id)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (id) DO UPDATE SET
                        workspace_id = COALESCE(excluded.workspace_id, chats.workspace_id),
                        build_id = COALESCE(excluded.build_id, chats.build_id),
                        agent_id = COALESCE(excluded.agent_id, chats.agent_id)
                     WHERE chats.owner_id = excluded.owner_id",
                )
                .bind(id)
                .bind(owner_id)
                .bind(organization_id)
                .bind(binding.workspace_id)
                .bind(binding.build_id)
                .bind(binding.agent_id)
                .execute(self.pool())
                .await?)
            })
            .await?;
        Ok(updated.rows_affected() > 0)
    }

    /// Every chat and the workspace bound to it.
    pub async fn chats(&self) -> StoreResult<Vec<(String, Option<String>)>> {
        let rows = self.retry(|| async { Ok(sqlx::query("SELECT id, workspace_id FROM chats ORDER BY id").fetch_all(self.pool()).await?) }).await?;
        rows.iter().map(|r| Ok((sqlx::Row::try_get(r, "id")?, sqlx::Row::try_get(r, "workspace_id")?))).collect()
    }
}
