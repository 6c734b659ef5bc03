//! The schema, one migration a step, in SQL both engines read.
//!
//! `toolshed_schema` records how many steps a database has. Migrating runs
//! in one write transaction (on PostgreSQL under an advisory lock), so hosts
//! that start together migrate once.

use sqlx::Row;

use super::{Dialect, Store, StoreResult};

/// The steps; integers are BIGINT and flags 0 or 1 on both engines.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE chats (
        id TEXT PRIMARY KEY, owner_id TEXT NOT NULL, organization_id TEXT NOT NULL,
        workspace_id TEXT, build_id TEXT, agent_id TEXT);
     CREATE TABLE templates (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, display_name TEXT NOT NULL, description TEXT NOT NULL,
        organization_id TEXT NOT NULL, active_version_id TEXT NOT NULL,
        deprecated BIGINT NOT NULL DEFAULT 0, deleted BIGINT NOT NULL DEFAULT 0,
        require_active_version BIGINT NOT NULL DEFAULT 0);
     CREATE TABLE template_versions (
        id TEXT PRIMARY KEY, template_id TEXT NOT NULL, number BIGINT NOT NULL,
        manifest TEXT NOT NULL, created_at BIGINT NOT NULL);
     CREATE TABLE workspaces (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, owner_id TEXT NOT NULL, owner_name TEXT NOT NULL,
        template_id TEXT NOT NULL, deleted BIGINT NOT NULL DEFAULT 0, ttl_ms BIGINT,
        dir TEXT NOT NULL, created_at BIGINT NOT NULL);
     CREATE TABLE builds (
        id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, number BIGINT NOT NULL, job_id TEXT NOT NULL,
        transition TEXT NOT NULL, template_version_id TEXT NOT NULL, parameters TEXT NOT NULL,
        created_at BIGINT NOT NULL);
     CREATE TABLE jobs (
        id TEXT PRIMARY KEY, status TEXT NOT NULL, error TEXT, pid BIGINT,
        started_at BIGINT, finished_at BIGINT);
     CREATE TABLE agents (
        id TEXT PRIMARY KEY, build_id TEXT NOT NULL, name TEXT NOT NULL, created_at BIGINT NOT NULL,
        first_connected_at BIGINT, last_connected_at BIGINT, disconnected_at BIGINT,
        lifecycle_state TEXT NOT NULL, pid BIGINT, socket TEXT NOT NULL);
     CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE registry_tasks (
        id TEXT PRIMARY KEY, status TEXT NOT NULL, message TEXT, url TEXT, created_at BIGINT NOT NULL);
     CREATE INDEX builds_by_workspace ON builds (workspace_id, number);
     CREATE INDEX agents_by_build ON agents (build_id)",
    // 2: jobs are owned under a lease by the process that runs them; process
    // start times tell our processes from others that reuse their ids; names
    // and build numbers are unique; registry tasks belong to an owner.
    "ALTER TABLE jobs ADD COLUMN owner TEXT;
     ALTER TABLE jobs ADD COLUMN lease_expires_at BIGINT;
     ALTER TABLE jobs ADD COLUMN proc_start BIGINT;
     ALTER TABLE agents ADD COLUMN proc_start BIGINT;
     ALTER TABLE registry_tasks ADD COLUMN owner_id TEXT;
     CREATE UNIQUE INDEX workspaces_owner_name ON workspaces (owner_id, name) WHERE deleted = 0;
     CREATE UNIQUE INDEX builds_workspace_number ON builds (workspace_id, number);
     CREATE INDEX jobs_by_status ON jobs (status)",
    // 3: tasks, the durable record of calls that outlive their request; a
    // job counts how many processes have started it.
    "CREATE TABLE tasks (
        id TEXT PRIMARY KEY, owner_id TEXT NOT NULL, owner_name TEXT NOT NULL, organization_id TEXT NOT NULL,
        chat_id TEXT NOT NULL, tool TEXT NOT NULL, arguments TEXT NOT NULL, plugin TEXT NOT NULL,
        plugin_version TEXT NOT NULL, state TEXT NOT NULL, status_message TEXT, result TEXT,
        is_error BIGINT NOT NULL DEFAULT 0, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
        ttl_ms BIGINT NOT NULL, runner TEXT, lease_expires_at BIGINT, attempts BIGINT NOT NULL DEFAULT 0);
     CREATE INDEX tasks_by_owner ON tasks (owner_id, created_at);
     CREATE INDEX tasks_by_state ON tasks (state, lease_expires_at);
     ALTER TABLE jobs ADD COLUMN attempts BIGINT NOT NULL DEFAULT 1",
    // 4: a recorded pid names a process only on the host that started it:
    // that host's identity (boot id, host name, PID namespace) beside it.
    "ALTER TABLE jobs ADD COLUMN host TEXT;
     ALTER TABLE agents ADD COLUMN host TEXT",
    // 5: chats are keyed by (owner, id): one owner's chat id is never
    // another's chat. Quotas per owner take a turn on the owner's row, so
    // two hosts never both pass a check; registry tasks carry the directory
    // they made and the bytes it counts for.
    "CREATE TABLE owned_chats (
        owner_id TEXT NOT NULL, id TEXT NOT NULL, organization_id TEXT NOT NULL,
        workspace_id TEXT, build_id TEXT, agent_id TEXT,
        PRIMARY KEY (owner_id, id));
     INSERT INTO owned_chats (owner_id, id, organization_id, workspace_id, build_id, agent_id)
        SELECT owner_id, id, organization_id, workspace_id, build_id, agent_id FROM chats;
     DROP TABLE chats;
     ALTER TABLE owned_chats RENAME TO chats;
     CREATE TABLE quota_owners (owner_id TEXT PRIMARY KEY, turns BIGINT NOT NULL DEFAULT 0);
     ALTER TABLE registry_tasks ADD COLUMN dir TEXT;
     ALTER TABLE registry_tasks ADD COLUMN bytes BIGINT NOT NULL DEFAULT 0;
     CREATE INDEX registry_tasks_by_owner ON registry_tasks (owner_id);
     CREATE INDEX workspaces_by_owner ON workspaces (owner_id, deleted)",
];

/// How many steps the code knows.
pub const LATEST: usize = MIGRATIONS.len();

/// Brings the database up to [`LATEST`].
pub(super) async fn migrate(store: &Store) -> StoreResult<()> {
    store
        .retry(|| async {
            let mut tx = store.begin_write().await?;
            if store.dialect() == Dialect::Postgres {
                // Any constant key: only migrations take it.
                sqlx::query("SELECT pg_advisory_xact_lock(7305042181)").execute(&mut *tx).await?;
            }
            sqlx::query("CREATE TABLE IF NOT EXISTS toolshed_schema (version BIGINT NOT NULL)").execute(&mut *tx).await?;
            let recorded = sqlx::query("SELECT version FROM toolshed_schema").fetch_optional(&mut *tx).await?;
            let mut version = match recorded {
                Some(row) => row.try_get::<i64, _>("version")? as usize,
                None => {
                    let version = legacy_version(store, &mut tx).await?;
                    sqlx::query("INSERT INTO toolshed_schema (version) VALUES ($1)").bind(version as i64).execute(&mut *tx).await?;
                    version
                }
            };
            while version < LATEST {
                sqlx::raw_sql(MIGRATIONS[version]).execute(&mut *tx).await?;
                version += 1;
                sqlx::query("UPDATE toolshed_schema SET version = $1").bind(version as i64).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
}

/// The step a database made before `toolshed_schema` existed: SQLite files
/// of the first release count their steps in `user_version`.
async fn legacy_version(store: &Store, tx: &mut sqlx::Transaction<'static, sqlx::Any>) -> StoreResult<usize> {
    if store.dialect() != Dialect::Sqlite {
        return Ok(0);
    }
    let row = sqlx::query("PRAGMA user_version").fetch_one(&mut **tx).await?;
    Ok(row.try_get::<i64, _>(0)?.max(0) as usize)
}
