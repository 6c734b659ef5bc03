//! Workspace agents: their rows, their processes, and what they report.

use sqlx::Row;

use super::{Store, StoreResult, rows};
use toolshed_infra::LifecycleState;
use crate::process::ProcessRecord;
use crate::store::AgentRecord;

/// A new agent of a build.
#[derive(Debug, Clone)]
pub struct NewAgent<'a> {
    /// Its id.
    pub id: &'a str,
    /// The build it belongs to.
    pub build_id: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Its Unix socket.
    pub socket: &'a str,
}

impl Store {
    /// Adds an agent of a build.
    pub async fn insert_agent(&self, new: &NewAgent<'_>, now: u64) -> StoreResult<()> {
        self.retry(|| async {
            sqlx::query("INSERT INTO agents (id, build_id, name, created_at, lifecycle_state, socket) VALUES ($1, $2, $3, $4, 'created', $5)")
                .bind(new.id)
                .bind(new.build_id)
                .bind(new.name)
                .bind(now as i64)
                .bind(new.socket)
                .execute(self.pool())
                .await?;
            Ok(())
        })
        .await
    }

    async fn agents_query(&self, sql: &'static str, key: &str, inactive_ms: u64) -> StoreResult<Vec<AgentRecord>> {
        let rows = self.retry(|| async { Ok(sqlx::query(sql).bind(key).fetch_all(self.pool()).await?) }).await?;
        rows.iter().map(|r| rows::agent(r, inactive_ms)).collect()
    }

    /// A build's agents; `inactive_ms` is how long one stays connected
    /// without a heartbeat.
    pub async fn build_agents(&self, build_id: &str, inactive_ms: u64) -> StoreResult<Vec<AgentRecord>> {
        self.agents_query("SELECT * FROM agents WHERE build_id = $1 ORDER BY name", build_id, inactive_ms).await
    }

    /// The agents of a workspace that have a process.
    pub async fn running_agents(&self, workspace_id: &str, inactive_ms: u64) -> StoreResult<Vec<AgentRecord>> {
        let sql = "SELECT a.* FROM agents a JOIN builds b ON b.id = a.build_id WHERE b.workspace_id = $1 AND a.pid IS NOT NULL";
        self.agents_query(sql, workspace_id, inactive_ms).await
    }

    /// An agent by id.
    pub async fn agent(&self, id: &str, inactive_ms: u64) -> StoreResult<Option<AgentRecord>> {
        Ok(self.agents_query("SELECT * FROM agents WHERE id = $1", id, inactive_ms).await?.into_iter().next())
    }

    /// The owner of the workspace an agent serves.
    pub async fn agent_owner(&self, agent_id: &str) -> StoreResult<Option<String>> {
        let row = self
            .retry(|| async {
                Ok(sqlx::query(
                    "SELECT w.owner_id FROM agents a JOIN builds b ON b.id = a.build_id JOIN workspaces w ON w.id = b.workspace_id WHERE a.id = $1",
                )
                .bind(agent_id)
                .fetch_optional(self.pool())
                .await?)
            })
            .await?;
        Ok(row.map(|r| r.try_get("owner_id")).transpose()?)
    }

    /// Records the agent's process: its pid, when it started, and the host
    /// that started it.
    pub async fn set_agent_process(&self, id: &str, process: Option<&ProcessRecord>) -> StoreResult<()> {
        self.retry(|| async {
            sqlx::query("UPDATE agents SET pid = $2, proc_start = $3, host = $4 WHERE id = $1")
                .bind(id)
                .bind(process.map(|p| p.pid))
                .bind(process.map(|p| p.start))
                .bind(process.map(|p| p.host.as_str()))
                .execute(self.pool())
                .await?;
            Ok(())
        })
        .await
    }

    /// Records a successful connection to, or a heartbeat of, the agent.
    pub async fn agent_connected(&self, id: &str, now: u64) -> StoreResult<()> {
        self.retry(|| async {
            sqlx::query("UPDATE agents SET first_connected_at = COALESCE(first_connected_at, $2), last_connected_at = $2 WHERE id = $1")
                .bind(id)
                .bind(now as i64)
                .execute(self.pool())
                .await?;
            Ok(())
        })
        .await
    }

    /// Records the agent going away.
    pub async fn agent_disconnected(&self, id: &str, now: u64) -> StoreResult<()> {
        self.retry(|| async {
            sqlx::query("UPDATE agents SET disconnected_at = $2, lifecycle_state = 'off', pid = NULL, proc_start = NULL, host = NULL WHERE id = $1")
                .bind(id)
                .bind(now as i64)
                .execute(self.pool())
                .await?;
            Ok(())
        })
        .await
    }

    /// Sets an agent's lifecycle state.
    pub async fn set_lifecycle(&self, id: &str, state: LifecycleState) -> StoreResult<()> {
        self.retry(|| async {
            sqlx::query("UPDATE agents SET lifecycle_state = $2 WHERE id = $1").bind(id).bind(rows::lifecycle_name(state)).execute(self.pool()).await?;
            Ok(())
        })
        .await
    }
}
