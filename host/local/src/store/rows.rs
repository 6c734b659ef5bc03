//! Rows as the store keeps them, and their names for the enums.

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{StoreError, StoreResult};
use crate::process::ProcessRecord;
use toolshed_infra::{Agent, Build, Chat, Job, JobStatus, LifecycleState, Template, Transition, Workspace};

pub use toolshed_infra::names::{lifecycle_name, status_name, transition_name};
pub(super) use toolshed_infra::names::status;

fn transition(text: &str) -> StoreResult<Transition> {
    toolshed_infra::names::transition(text).ok_or_else(|| StoreError::Malformed { what: "transition", detail: format!("{text:?}") })
}

fn lifecycle(text: &str) -> StoreResult<LifecycleState> {
    toolshed_infra::names::lifecycle(text).ok_or_else(|| StoreError::Malformed { what: "lifecycle state", detail: format!("{text:?}") })
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
    /// Its job's status, as last written.
    pub status: JobStatus,
}

/// Who runs a job, and until when that claim holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLease {
    /// The process that claimed the job; none while it waits in the queue
    /// for a process to claim it.
    pub owner: Option<String>,
    /// When the claim lapses unless renewed, in ms since the Unix epoch.
    pub expires_at: u64,
}

/// An agent with its process.
#[derive(Debug, Clone)]
pub struct AgentRecord {
    /// The row the tools see.
    pub agent: Agent,
    /// The build it belongs to.
    pub build_id: String,
    /// Its process while it runs: pid, start time (to tell it from a later
    /// process with the same id) and the host that started it.
    pub process: Option<ProcessRecord>,
    /// Its Unix socket.
    pub socket: String,
}

fn ms(value: Option<i64>) -> Option<u64> {
    value.map(|t| t.max(0) as u64)
}

/// The process a row records, if it records one whole: a pid with no host
/// (written before hosts were recorded) is no process any host may signal.
pub(super) fn process(row: &AnyRow) -> StoreResult<Option<ProcessRecord>> {
    let (pid, start, host): (Option<i64>, Option<i64>, Option<String>) = (row.try_get("pid")?, row.try_get("proc_start")?, row.try_get("host")?);
    Ok(match (pid, start, host) {
        (Some(pid), Some(start), Some(host)) => Some(ProcessRecord { pid, start, host }),
        _ => None,
    })
}

pub(super) fn flag(row: &AnyRow, column: &str) -> StoreResult<bool> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

pub(super) fn chat(row: &AnyRow) -> StoreResult<Chat> {
    Ok(Chat {
        id: row.try_get("id")?,
        owner_id: row.try_get("owner_id")?,
        organization_id: row.try_get("organization_id")?,
        workspace_id: row.try_get("workspace_id")?,
        build_id: row.try_get("build_id")?,
        agent_id: row.try_get("agent_id")?,
    })
}

pub(super) fn template(row: &AnyRow) -> StoreResult<Template> {
    Ok(Template {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        display_name: row.try_get("display_name")?,
        description: row.try_get("description")?,
        organization_id: row.try_get("organization_id")?,
        active_version_id: row.try_get("active_version_id")?,
        deprecated: flag(row, "deprecated")?,
        deleted: flag(row, "deleted")?,
        active_developers: row.try_get::<i64, _>("active_developers")?.clamp(0, i64::from(u32::MAX)) as u32,
    })
}

pub(super) fn workspace(row: &AnyRow) -> StoreResult<WorkspaceRecord> {
    Ok(WorkspaceRecord {
        workspace: Workspace {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            owner_name: row.try_get("owner_name")?,
            template_id: row.try_get("template_id")?,
            deleted: flag(row, "deleted")?,
        },
        owner_id: row.try_get("owner_id")?,
        dir: row.try_get("dir")?,
    })
}

pub(super) fn build(row: &AnyRow) -> StoreResult<BuildRecord> {
    let parameters: String = row.try_get("parameters")?;
    Ok(BuildRecord {
        build: Build {
            id: row.try_get("id")?,
            workspace_id: row.try_get("workspace_id")?,
            job_id: row.try_get("job_id")?,
            transition: transition(&row.try_get::<String, _>("transition")?)?,
            template_version_id: row.try_get("template_version_id")?,
        },
        parameters: serde_json::from_str(&parameters).map_err(|e| StoreError::Malformed { what: "build's parameters", detail: e.to_string() })?,
        status: status(&row.try_get::<String, _>("status")?),
    })
}

pub(super) fn job(row: &AnyRow) -> StoreResult<(Job, Option<JobLease>)> {
    let job = Job { id: row.try_get("id")?, status: status(&row.try_get::<String, _>("status")?), error: row.try_get("error")? };
    let owner: Option<String> = row.try_get("owner")?;
    let expires: Option<i64> = row.try_get("lease_expires_at")?;
    let lease = ms(expires).map(|expires_at| JobLease { owner, expires_at });
    Ok((job, lease))
}

pub(super) fn agent(row: &AnyRow, inactive_disconnect_ms: u64) -> StoreResult<AgentRecord> {
    Ok(AgentRecord {
        agent: Agent {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            parent_id: None,
            display_order: 0,
            created_at: row.try_get::<i64, _>("created_at")?.max(0) as u64,
            first_connected_at: ms(row.try_get("first_connected_at")?),
            last_connected_at: ms(row.try_get("last_connected_at")?),
            disconnected_at: ms(row.try_get("disconnected_at")?),
            connection_timeout_seconds: 120,
            lifecycle_state: lifecycle(&row.try_get::<String, _>("lifecycle_state")?)?,
            inactive_disconnect_ms,
        },
        build_id: row.try_get("build_id")?,
        process: process(row)?,
        socket: row.try_get("socket")?,
    })
}
