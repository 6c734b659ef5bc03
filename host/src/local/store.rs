//! The local backend's state, in SQLite: schema migrations on open, WAL, and
//! the rows the tools read.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::bindings::{Agent, Build, Chat, Job, JobStatus, LifecycleState, Template, Transition, Workspace};

/// The schema, one migration a step; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE chats (
        id TEXT PRIMARY KEY, owner_id TEXT NOT NULL, organization_id TEXT NOT NULL,
        workspace_id TEXT, build_id TEXT, agent_id TEXT);
     CREATE TABLE templates (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, display_name TEXT NOT NULL, description TEXT NOT NULL,
        organization_id TEXT NOT NULL, active_version_id TEXT NOT NULL,
        deprecated INTEGER NOT NULL DEFAULT 0, deleted INTEGER NOT NULL DEFAULT 0,
        require_active_version INTEGER NOT NULL DEFAULT 0);
     CREATE TABLE template_versions (
        id TEXT PRIMARY KEY, template_id TEXT NOT NULL, number INTEGER NOT NULL,
        manifest TEXT NOT NULL, created_at INTEGER NOT NULL);
     CREATE TABLE workspaces (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, owner_id TEXT NOT NULL, owner_name TEXT NOT NULL,
        template_id TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, ttl_ms INTEGER,
        dir TEXT NOT NULL, created_at INTEGER NOT NULL);
     CREATE TABLE builds (
        id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, number INTEGER NOT NULL, job_id TEXT NOT NULL,
        transition TEXT NOT NULL, template_version_id TEXT NOT NULL, parameters TEXT NOT NULL,
        created_at INTEGER NOT NULL);
     CREATE TABLE jobs (
        id TEXT PRIMARY KEY, status TEXT NOT NULL, error TEXT, pid INTEGER,
        started_at INTEGER, finished_at INTEGER);
     CREATE TABLE agents (
        id TEXT PRIMARY KEY, build_id TEXT NOT NULL, name TEXT NOT NULL, created_at INTEGER NOT NULL,
        first_connected_at INTEGER, last_connected_at INTEGER, disconnected_at INTEGER,
        lifecycle_state TEXT NOT NULL, pid INTEGER, socket TEXT NOT NULL);
     CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE registry_tasks (
        id TEXT PRIMARY KEY, status TEXT NOT NULL, message TEXT, url TEXT, created_at INTEGER NOT NULL);
     CREATE INDEX builds_by_workspace ON builds (workspace_id, number);
     CREATE INDEX agents_by_build ON agents (build_id);",
];

/// The database, shared by the host's tasks.
pub struct Store {
    connection: Mutex<Connection>,
}

/// A store error, as text for the tools.
pub type StoreResult<T> = Result<T, String>;

fn text(e: rusqlite::Error) -> String {
    format!("database: {e}")
}

/// The name of a transition in the database.
pub fn transition_name(t: Transition) -> &'static str {
    match t {
        Transition::Start => "start",
        Transition::Stop => "stop",
        Transition::Delete => "delete",
    }
}

fn transition(name: &str) -> Transition {
    match name {
        "stop" => Transition::Stop,
        "delete" => Transition::Delete,
        _ => Transition::Start,
    }
}

/// The name of a job status in the database.
pub fn status_name(s: JobStatus) -> &'static str {
    match s {
        JobStatus::Pending => "pending",
        JobStatus::Running => "running",
        JobStatus::Succeeded => "succeeded",
        JobStatus::Canceling => "canceling",
        JobStatus::Canceled => "canceled",
        JobStatus::Failed => "failed",
        JobStatus::Unknown => "unknown",
    }
}

fn status(name: &str) -> JobStatus {
    match name {
        "pending" => JobStatus::Pending,
        "running" => JobStatus::Running,
        "succeeded" => JobStatus::Succeeded,
        "canceling" => JobStatus::Canceling,
        "canceled" => JobStatus::Canceled,
        "failed" => JobStatus::Failed,
        _ => JobStatus::Unknown,
    }
}

/// The name of a lifecycle state in the database.
pub fn lifecycle_name(s: LifecycleState) -> &'static str {
    match s {
        LifecycleState::Created => "created",
        LifecycleState::Starting => "starting",
        LifecycleState::StartTimeout => "start_timeout",
        LifecycleState::StartError => "start_error",
        LifecycleState::Ready => "ready",
        LifecycleState::ShuttingDown => "shutting_down",
        LifecycleState::ShutdownTimeout => "shutdown_timeout",
        LifecycleState::ShutdownError => "shutdown_error",
        LifecycleState::Off => "off",
    }
}

fn lifecycle(name: &str) -> LifecycleState {
    match name {
        "starting" => LifecycleState::Starting,
        "start_timeout" => LifecycleState::StartTimeout,
        "start_error" => LifecycleState::StartError,
        "ready" => LifecycleState::Ready,
        "shutting_down" => LifecycleState::ShuttingDown,
        "shutdown_timeout" => LifecycleState::ShutdownTimeout,
        "shutdown_error" => LifecycleState::ShutdownError,
        "off" => LifecycleState::Off,
        _ => LifecycleState::Created,
    }
}

fn template_row(row: &Row<'_>) -> rusqlite::Result<Template> {
    Ok(Template {
        id: row.get("id")?,
        name: row.get("name")?,
        display_name: row.get("display_name")?,
        description: row.get("description")?,
        organization_id: row.get("organization_id")?,
        active_version_id: row.get("active_version_id")?,
        deprecated: row.get("deprecated")?,
        deleted: row.get("deleted")?,
        active_developers: row.get("active_developers")?,
    })
}

fn build_row(row: &Row<'_>) -> rusqlite::Result<Build> {
    Ok(Build {
        id: row.get("id")?,
        workspace_id: row.get("workspace_id")?,
        job_id: row.get("job_id")?,
        transition: transition(&row.get::<_, String>("transition")?),
        template_version_id: row.get("template_version_id")?,
    })
}

fn workspace_row(row: &Row<'_>) -> rusqlite::Result<Workspace> {
    Ok(Workspace {
        id: row.get("id")?,
        name: row.get("name")?,
        owner_name: row.get("owner_name")?,
        template_id: row.get("template_id")?,
        deleted: row.get("deleted")?,
    })
}

/// An agent row, with the settings the tools read.
fn agent_row(row: &Row<'_>) -> rusqlite::Result<Agent> {
    Ok(Agent {
        id: row.get("id")?,
        name: row.get("name")?,
        parent_id: None,
        display_order: 0,
        created_at: row.get::<_, i64>("created_at")? as u64,
        first_connected_at: row.get::<_, Option<i64>>("first_connected_at")?.map(|t| t as u64),
        last_connected_at: row.get::<_, Option<i64>>("last_connected_at")?.map(|t| t as u64),
        disconnected_at: row.get::<_, Option<i64>>("disconnected_at")?.map(|t| t as u64),
        connection_timeout_seconds: 120,
        lifecycle_state: lifecycle(&row.get::<_, String>("lifecycle_state")?),
        inactive_disconnect_ms: super::INACTIVE_DISCONNECT_MS,
    })
}

/// A workspace with what only the local backend needs.
#[derive(Debug, Clone)]
pub struct WorkspaceRecord {
    /// The row the tools see.
    pub workspace: Workspace,
    /// Its owner.
    pub owner_id: String,
    /// Its directory.
    pub dir: String,
}

/// A build with what the provisioner needs.
#[derive(Debug, Clone)]
pub struct BuildRecord {
    /// The row the tools see.
    pub build: Build,
    /// The parameter values it runs with.
    pub parameters: BTreeMap<String, String>,
    /// Its job's status.
    pub status: JobStatus,
}

/// An agent with its process.
#[derive(Debug, Clone)]
pub struct AgentRecord {
    /// The row the tools see.
    pub agent: Agent,
    /// The build it belongs to.
    pub build_id: String,
    /// Its process, while it runs.
    pub pid: Option<i64>,
    /// Its Unix socket.
    pub socket: String,
}

impl Store {
    /// Opens (creating) the database at `path`, in WAL mode, and migrates it.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened or migrated.
    pub fn open(path: &Path) -> anyhow::Result<Store> {
        let connection = Connection::open(path)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.busy_timeout(Duration::from_secs(5))?;
        let version: i64 = connection.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            connection.execute_batch(&format!("BEGIN; {migration}; PRAGMA user_version = {}; COMMIT;", i + 1))?;
        }
        Ok(Store { connection: Mutex::new(connection) })
    }

    pub(crate) fn db(&self) -> MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The chat, created on first use.
    pub fn chat(&self, id: &str, owner_id: &str, organization_id: &str) -> StoreResult<Chat> {
        let db = self.db();
        db.execute("INSERT OR IGNORE INTO chats (id, owner_id, organization_id) VALUES (?1, ?2, ?3)", params![id, owner_id, organization_id])
            .map_err(text)?;
        db.query_row("SELECT * FROM chats WHERE id = ?1", [id], |r| {
            Ok(Chat {
                id: r.get("id")?,
                owner_id: r.get("owner_id")?,
                organization_id: r.get("organization_id")?,
                workspace_id: r.get("workspace_id")?,
                build_id: r.get("build_id")?,
                agent_id: r.get("agent_id")?,
            })
        })
        .map_err(text)
    }

    /// Sets the chat's bindings that are given.
    pub fn bind(&self, chat_id: &str, workspace_id: Option<&str>, build_id: Option<&str>, agent_id: Option<&str>) -> StoreResult<()> {
        self.db()
            .execute(
                "UPDATE chats SET workspace_id = COALESCE(?2, workspace_id), build_id = COALESCE(?3, build_id),
                 agent_id = COALESCE(?4, agent_id) WHERE id = ?1",
                params![chat_id, workspace_id, build_id, agent_id],
            )
            .map(|_| ())
            .map_err(text)
    }

    /// The chats, for `toolshed workspaces`.
    pub fn chats(&self) -> StoreResult<Vec<(String, Option<String>)>> {
        let db = self.db();
        let mut statement = db.prepare("SELECT id, workspace_id FROM chats ORDER BY id").map_err(text)?;
        let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(text)?;
        rows.collect::<Result<_, _>>().map_err(text)
    }

    /// Every template, with its count of workspace owners as active developers.
    pub fn templates(&self) -> StoreResult<Vec<Template>> {
        let db = self.db();
        let mut statement = db
            .prepare(
                "SELECT t.*, (SELECT COUNT(DISTINCT owner_id) FROM workspaces w WHERE w.template_id = t.id AND w.deleted = 0)
                 AS active_developers FROM templates t ORDER BY name",
            )
            .map_err(text)?;
        let rows = statement.query_map([], template_row).map_err(text)?;
        rows.collect::<Result<_, _>>().map_err(text)
    }

    /// A template by id.
    pub fn template(&self, id: &str) -> StoreResult<Option<Template>> {
        self.db()
            .query_row(
                "SELECT t.*, (SELECT COUNT(DISTINCT owner_id) FROM workspaces w WHERE w.template_id = t.id AND w.deleted = 0)
                 AS active_developers FROM templates t WHERE id = ?1",
                [id],
                template_row,
            )
            .optional()
            .map_err(text)
    }

    /// Whether a template makes starts move to its active version.
    pub fn requires_active_version(&self, template_id: &str) -> StoreResult<bool> {
        self.db()
            .query_row("SELECT require_active_version FROM templates WHERE id = ?1", [template_id], |r| r.get(0))
            .optional()
            .map(|v| v.unwrap_or(false))
            .map_err(text)
    }

    /// A version's manifest, as JSON.
    pub fn version_manifest(&self, version_id: &str) -> StoreResult<Option<String>> {
        self.db().query_row("SELECT manifest FROM template_versions WHERE id = ?1", [version_id], |r| r.get(0)).optional().map_err(text)
    }

    /// Adds a version of template `name` (creating the template) and makes it active.
    pub fn push_template(&self, organization_id: &str, manifest_json: &str, name: &str, display_name: &str, description: &str, require_active: bool, now: u64) -> StoreResult<(String, String, i64)> {
        let mut db = self.db();
        let tx = db.transaction().map_err(text)?;
        let existing: Option<String> = tx.query_row("SELECT id FROM templates WHERE name = ?1", [name], |r| r.get(0)).optional().map_err(text)?;
        let template_id = existing.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let version_id = uuid::Uuid::new_v4().to_string();
        let number: i64 = tx
            .query_row("SELECT COALESCE(MAX(number), 0) + 1 FROM template_versions WHERE template_id = ?1", [&template_id], |r| r.get(0))
            .map_err(text)?;
        tx.execute(
            "INSERT INTO template_versions (id, template_id, number, manifest, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![version_id, template_id, number, manifest_json, now as i64],
        )
        .map_err(text)?;
        if existing.is_some() {
            tx.execute(
                "UPDATE templates SET active_version_id = ?2, display_name = ?3, description = ?4, require_active_version = ?5 WHERE id = ?1",
                params![template_id, version_id, display_name, description, require_active],
            )
            .map_err(text)?;
        } else {
            tx.execute(
                "INSERT INTO templates (id, name, display_name, description, organization_id, active_version_id, require_active_version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![template_id, name, display_name, description, organization_id, version_id, require_active],
            )
            .map_err(text)?;
        }
        tx.commit().map_err(text)?;
        Ok((template_id, version_id, number))
    }

    /// A workspace by id, with its owner and directory.
    pub fn workspace(&self, id: &str) -> StoreResult<Option<WorkspaceRecord>> {
        self.db()
            .query_row("SELECT * FROM workspaces WHERE id = ?1", [id], |r| {
                Ok(WorkspaceRecord { workspace: workspace_row(r)?, owner_id: r.get("owner_id")?, dir: r.get("dir")? })
            })
            .optional()
            .map_err(text)
    }

    /// Every workspace that is not deleted.
    pub fn workspaces(&self) -> StoreResult<Vec<WorkspaceRecord>> {
        let db = self.db();
        let mut statement = db.prepare("SELECT * FROM workspaces WHERE deleted = 0 ORDER BY created_at").map_err(text)?;
        let rows = statement
            .query_map([], |r| Ok(WorkspaceRecord { workspace: workspace_row(r)?, owner_id: r.get("owner_id")?, dir: r.get("dir")? }))
            .map_err(text)?;
        rows.collect::<Result<_, _>>().map_err(text)
    }

    /// Whether the owner has a live workspace of that name.
    pub fn name_taken(&self, owner_id: &str, name: &str) -> StoreResult<bool> {
        self.db()
            .query_row("SELECT COUNT(*) FROM workspaces WHERE owner_id = ?1 AND name = ?2 AND deleted = 0", [owner_id, name], |r| r.get::<_, i64>(0))
            .map(|n| n > 0)
            .map_err(text)
    }

    /// Adds a workspace.
    pub fn insert_workspace(&self, record: &WorkspaceRecord, ttl_ms: Option<u64>, now: u64) -> StoreResult<()> {
        self.db()
            .execute(
                "INSERT INTO workspaces (id, name, owner_id, owner_name, template_id, ttl_ms, dir, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    record.workspace.id,
                    record.workspace.name,
                    record.owner_id,
                    record.workspace.owner_name,
                    record.workspace.template_id,
                    ttl_ms.map(|t| t as i64),
                    record.dir,
                    now as i64
                ],
            )
            .map(|_| ())
            .map_err(text)
    }

    /// Adds a build and its pending job.
    pub fn insert_build(&self, build: &Build, parameters: &BTreeMap<String, String>, now: u64) -> StoreResult<()> {
        let mut db = self.db();
        let tx = db.transaction().map_err(text)?;
        let number: i64 = tx
            .query_row("SELECT COALESCE(MAX(number), 0) + 1 FROM builds WHERE workspace_id = ?1", [&build.workspace_id], |r| r.get(0))
            .map_err(text)?;
        tx.execute(
            "INSERT INTO builds (id, workspace_id, number, job_id, transition, template_version_id, parameters, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                build.id,
                build.workspace_id,
                number,
                build.job_id,
                transition_name(build.transition),
                build.template_version_id,
                serde_json::to_string(parameters).unwrap_or_default(),
                now as i64
            ],
        )
        .map_err(text)?;
        tx.execute("INSERT INTO jobs (id, status) VALUES (?1, 'pending')", [&build.job_id]).map_err(text)?;
        tx.commit().map_err(text)
    }

    fn build_query(&self, sql: &str, key: &str) -> StoreResult<Option<BuildRecord>> {
        self.db()
            .query_row(sql, [key], |r| {
                let parameters: String = r.get("parameters")?;
                Ok(BuildRecord {
                    build: build_row(r)?,
                    parameters: serde_json::from_str(&parameters).unwrap_or_default(),
                    status: status(&r.get::<_, String>("status")?),
                })
            })
            .optional()
            .map_err(text)
    }

    /// A build by id.
    pub fn build(&self, id: &str) -> StoreResult<Option<BuildRecord>> {
        self.build_query("SELECT b.*, j.status FROM builds b JOIN jobs j ON j.id = b.job_id WHERE b.id = ?1", id)
    }

    /// A workspace's newest build.
    pub fn latest_build(&self, workspace_id: &str) -> StoreResult<Option<BuildRecord>> {
        self.build_query(
            "SELECT b.*, j.status FROM builds b JOIN jobs j ON j.id = b.job_id WHERE b.workspace_id = ?1 ORDER BY b.number DESC LIMIT 1",
            workspace_id,
        )
    }

    /// The newest build of a workspace that ran a start successfully.
    pub fn latest_values(&self, workspace_id: &str) -> StoreResult<BTreeMap<String, String>> {
        Ok(self
            .build_query(
                "SELECT b.*, j.status FROM builds b JOIN jobs j ON j.id = b.job_id WHERE b.workspace_id = ?1 AND b.transition = 'start'
                 ORDER BY b.number DESC LIMIT 1",
                workspace_id,
            )?
            .map(|b| b.parameters)
            .unwrap_or_default())
    }

    /// The workspace that owns a job's build.
    pub fn job_owner(&self, job_id: &str) -> StoreResult<Option<String>> {
        self.db()
            .query_row("SELECT w.owner_id FROM builds b JOIN workspaces w ON w.id = b.workspace_id WHERE b.job_id = ?1", [job_id], |r| r.get(0))
            .optional()
            .map_err(text)
    }

    /// A job.
    pub fn job(&self, id: &str) -> StoreResult<Option<Job>> {
        self.db()
            .query_row("SELECT * FROM jobs WHERE id = ?1", [id], |r| {
                Ok(Job { id: r.get("id")?, status: status(&r.get::<_, String>("status")?), error: r.get("error")? })
            })
            .optional()
            .map_err(text)
    }

    /// Moves a job to `status`.
    pub fn set_job(&self, id: &str, status: JobStatus, error: Option<&str>, now: u64) -> StoreResult<()> {
        let column = if status == JobStatus::Running { "started_at" } else { "finished_at" };
        self.db()
            .execute(&format!("UPDATE jobs SET status = ?2, error = ?3, {column} = ?4 WHERE id = ?1"), params![id, status_name(status), error, now as i64])
            .map(|_| ())
            .map_err(text)
    }

    /// Marks jobs a previous host left pending or running as failed, and
    /// returns how many.
    pub fn fail_orphaned_jobs(&self, now: u64) -> StoreResult<usize> {
        self.db()
            .execute(
                "UPDATE jobs SET status = 'failed', finished_at = ?1,
                 error = 'the host stopped while this build was running; start the workspace again'
                 WHERE status IN ('pending', 'running', 'canceling')",
                [now as i64],
            )
            .map_err(text)
    }

    /// Adds an agent of a build.
    pub fn insert_agent(&self, id: &str, build_id: &str, name: &str, socket: &str, now: u64) -> StoreResult<()> {
        self.db()
            .execute(
                "INSERT INTO agents (id, build_id, name, created_at, lifecycle_state, socket) VALUES (?1, ?2, ?3, ?4, 'created', ?5)",
                params![id, build_id, name, now as i64, socket],
            )
            .map(|_| ())
            .map_err(text)
    }

    fn agents_query(&self, sql: &str, key: &str) -> StoreResult<Vec<AgentRecord>> {
        let db = self.db();
        let mut statement = db.prepare(sql).map_err(text)?;
        let rows = statement
            .query_map([key], |r| Ok(AgentRecord { agent: agent_row(r)?, build_id: r.get("build_id")?, pid: r.get("pid")?, socket: r.get("socket")? }))
            .map_err(text)?;
        rows.collect::<Result<_, _>>().map_err(text)
    }

    /// A build's agents.
    pub fn build_agents(&self, build_id: &str) -> StoreResult<Vec<AgentRecord>> {
        self.agents_query("SELECT * FROM agents WHERE build_id = ?1 ORDER BY name", build_id)
    }

    /// The agents of a workspace that have a process.
    pub fn running_agents(&self, workspace_id: &str) -> StoreResult<Vec<AgentRecord>> {
        self.agents_query(
            "SELECT a.* FROM agents a JOIN builds b ON b.id = a.build_id WHERE b.workspace_id = ?1 AND a.pid IS NOT NULL",
            workspace_id,
        )
    }

    /// An agent by id.
    pub fn agent(&self, id: &str) -> StoreResult<Option<AgentRecord>> {
        Ok(self.agents_query("SELECT * FROM agents WHERE id = ?1", id)?.into_iter().next())
    }

    /// The workspace owner of an agent.
    pub fn agent_owner(&self, agent_id: &str) -> StoreResult<Option<String>> {
        self.db()
            .query_row(
                "SELECT w.owner_id FROM agents a JOIN builds b ON b.id = a.build_id JOIN workspaces w ON w.id = b.workspace_id WHERE a.id = ?1",
                [agent_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(text)
    }

    /// Records the agent's process.
    pub fn set_agent_pid(&self, id: &str, pid: Option<i64>) -> StoreResult<()> {
        self.db().execute("UPDATE agents SET pid = ?2 WHERE id = ?1", params![id, pid]).map(|_| ()).map_err(text)
    }

    /// Records a successful connection to the agent.
    pub fn agent_connected(&self, id: &str, now: u64) -> StoreResult<()> {
        self.db()
            .execute(
                "UPDATE agents SET first_connected_at = COALESCE(first_connected_at, ?2), last_connected_at = ?2 WHERE id = ?1",
                params![id, now as i64],
            )
            .map(|_| ())
            .map_err(text)
    }

    /// Records the agent going away.
    pub fn agent_disconnected(&self, id: &str, now: u64) -> StoreResult<()> {
        self.db()
            .execute("UPDATE agents SET disconnected_at = ?2, lifecycle_state = 'off', pid = NULL WHERE id = ?1", params![id, now as i64])
            .map(|_| ())
            .map_err(text)
    }

    /// Sets an agent's lifecycle state.
    pub fn set_lifecycle(&self, id: &str, state: LifecycleState) -> StoreResult<()> {
        self.db().execute("UPDATE agents SET lifecycle_state = ?2 WHERE id = ?1", params![id, lifecycle_name(state)]).map(|_| ()).map_err(text)
    }

    /// A setting.
    pub fn setting(&self, key: &str) -> StoreResult<Option<String>> {
        self.db().query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0)).optional().map_err(text)
    }

    /// Sets a setting.
    pub fn set_setting(&self, key: &str, value: &str) -> StoreResult<()> {
        self.db()
            .execute("INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value", [key, value])
            .map(|_| ())
            .map_err(text)
    }

    /// Adds or updates a registry task.
    pub fn set_registry_task(&self, id: &str, status: &str, message: Option<&str>, url: Option<&str>, now: u64) -> StoreResult<()> {
        self.db()
            .execute(
                "INSERT INTO registry_tasks (id, status, message, url, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(id) DO UPDATE SET status = excluded.status, message = excluded.message, url = excluded.url",
                params![id, status, message, url, now as i64],
            )
            .map(|_| ())
            .map_err(text)
    }

    /// A registry task: (status, message, url).
    pub fn registry_task(&self, id: &str) -> StoreResult<Option<(String, Option<String>, Option<String>)>> {
        self.db()
            .query_row("SELECT status, message, url FROM registry_tasks WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()
            .map_err(text)
    }
}
