//! The durable record of tasks: what a [`TaskJournal`] keeps, and an
//! in-memory journal for tests and embedders without a database.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;

use crate::context::CallContext;

/// Where a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// Running, or waiting for a runner to resume it.
    Working,
    /// The tool answered; the answer may be an error object.
    Completed,
    /// The host gave the task up without an answer (its runners kept dying).
    Failed,
    /// Cancelled by its owner.
    Cancelled,
}

impl TaskState {
    /// The state's name, as stored and shown.
    pub fn name(self) -> &'static str {
        match self {
            TaskState::Working => "working",
            TaskState::Completed => "completed",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }

    /// The state named `name`; unknown names read as failed.
    pub fn parse(name: &str) -> TaskState {
        match name {
            "working" => TaskState::Working,
            "completed" => TaskState::Completed,
            "cancelled" => TaskState::Cancelled,
            _ => TaskState::Failed,
        }
    }

    /// Whether the task has ended.
    pub fn is_terminal(self) -> bool {
        self != TaskState::Working
    }
}

/// One task: a tool call that outlives the request that made it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    /// The task's id, a UUID.
    pub id: String,
    /// Who made the call; only they can read or cancel the task.
    pub owner_id: String,
    /// The owner's user name.
    pub owner_name: String,
    /// The owner's organization.
    pub organization_id: String,
    /// The chat the call runs in.
    pub chat_id: String,
    /// The tool called.
    pub tool: String,
    /// Its arguments.
    pub arguments: Value,
    /// The plugin that served the tool when the task was made.
    pub plugin: String,
    /// That plugin's content hash.
    pub plugin_version: String,
    /// Where the task is.
    pub state: TaskState,
    /// The latest progress of the call, while it works; why it ended else.
    pub status_message: Option<String>,
    /// The tool's answer, once completed.
    pub result: Option<Value>,
    /// Whether that answer is an error object.
    pub is_error: bool,
    /// When the task was made, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// When it last changed.
    pub updated_at_ms: u64,
    /// How long after its creation the task may be purged.
    pub ttl_ms: u64,
    /// The process running it, if one claimed it.
    pub runner: Option<String>,
    /// Until when that claim holds without renewal.
    pub lease_expires_at_ms: Option<u64>,
    /// How many times a runner has started the call.
    pub attempts: u32,
}

impl TaskRecord {
    /// The calling context the task's call runs in.
    pub fn context(&self) -> CallContext {
        CallContext {
            chat_id: self.chat_id.clone(),
            owner_id: self.owner_id.clone(),
            owner_name: self.owner_name.clone(),
            organization_id: self.organization_id.clone(),
        }
    }
}

/// Why the journal could not answer.
#[derive(Debug, thiserror::Error)]
#[error("task journal: {0}")]
pub struct JournalError(pub String);

/// Durable storage of tasks, shared by every process that runs them.
///
/// Every method that names an owner answers only for that owner's tasks:
/// another owner's task reads as absent.
#[async_trait]
pub trait TaskJournal: Send + Sync + 'static {
    /// Records a new task. It is durable when this returns. A journal that
    /// keeps quotas ([`crate::quota`]) counts the owner's tasks and stored
    /// bytes in the same transaction as the insert, and refuses past them.
    async fn insert(&self, task: &TaskRecord) -> Result<(), crate::quota::Refused<JournalError>>;
    /// Task `id` of `owner_id`.
    async fn get(&self, owner_id: &str, id: &str) -> Result<Option<TaskRecord>, JournalError>;
    /// The newest `limit` tasks of `owner_id`, newest first.
    async fn list(&self, owner_id: &str, limit: usize) -> Result<Vec<TaskRecord>, JournalError>;
    /// Sets the status message of a working task `runner` holds.
    async fn note(&self, id: &str, runner: &str, message: &str, now: u64) -> Result<(), JournalError>;
    /// Ends a working task `runner` holds; false when it is no longer
    /// working or no longer `runner`'s.
    async fn finish(&self, id: &str, runner: &str, end: &TaskEnd, now: u64) -> Result<bool, JournalError>;
    /// Cancels task `id` of `owner_id` if it is working, and returns it as
    /// it now is.
    async fn cancel(&self, owner_id: &str, id: &str, now: u64) -> Result<Option<TaskRecord>, JournalError>;
    /// Extends every claim of `runner` on a working task to `until`, and
    /// returns which of `ids` are no longer working (cancelled or purged).
    async fn renew(&self, runner: &str, until: u64, ids: &[String]) -> Result<Vec<String>, JournalError>;
    /// Claims for `runner`, until `until`, every working task whose claim
    /// lapsed before `now` (or that no runner holds), counting an attempt.
    async fn claim_lapsed(&self, runner: &str, now: u64, until: u64) -> Result<Vec<TaskRecord>, JournalError>;
    /// Deletes every task whose time to live ended before `now`.
    async fn purge(&self, now: u64) -> Result<usize, JournalError>;
}

/// How a task ended.
#[derive(Debug, Clone)]
pub struct TaskEnd {
    /// Completed or failed.
    pub state: TaskState,
    /// The tool's answer, or the host's error object.
    pub result: Value,
    /// Whether it is an error object.
    pub is_error: bool,
    /// Why, in a sentence, for a failed task.
    pub message: Option<String>,
}

/// A journal in memory: tasks last as long as the process, and no quota
/// holds them (quotas are kept by a shared store, such as toolshed-local's).
#[derive(Default)]
pub struct MemoryJournal {
    tasks: Mutex<HashMap<String, TaskRecord>>,
}

impl MemoryJournal {
    fn tasks(&self) -> std::sync::MutexGuard<'_, HashMap<String, TaskRecord>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl TaskJournal for MemoryJournal {
    async fn insert(&self, task: &TaskRecord) -> Result<(), crate::quota::Refused<JournalError>> {
        self.tasks().insert(task.id.clone(), task.clone());
        Ok(())
    }

    async fn get(&self, owner_id: &str, id: &str) -> Result<Option<TaskRecord>, JournalError> {
        Ok(self.tasks().get(id).filter(|t| t.owner_id == owner_id).cloned())
    }

    async fn list(&self, owner_id: &str, limit: usize) -> Result<Vec<TaskRecord>, JournalError> {
        let mut tasks: Vec<TaskRecord> = self.tasks().values().filter(|t| t.owner_id == owner_id).cloned().collect();
        tasks.sort_by(|a, b| b.created_at_ms.cmp(&a.created_at_ms).then_with(|| a.id.cmp(&b.id)));
        tasks.truncate(limit);
        Ok(tasks)
    }

    async fn note(&self, id: &str, runner: &str, message: &str, now: u64) -> Result<(), JournalError> {
        if let Some(task) = self.tasks().get_mut(id).filter(|t| t.state == TaskState::Working && t.runner.as_deref() == Some(runner)) {
            task.status_message = Some(message.to_string());
            task.updated_at_ms = now;
        }
        Ok(())
    }

    async fn finish(&self, id: &str, runner: &str, end: &TaskEnd, now: u64) -> Result<bool, JournalError> {
        let mut tasks = self.tasks();
        let Some(task) = tasks.get_mut(id).filter(|t| t.state == TaskState::Working && t.runner.as_deref() == Some(runner)) else {
            return Ok(false);
        };
        task.state = end.state;
        task.result = Some(end.result.clone());
        task.is_error = end.is_error;
        task.status_message = end.message.clone();
        task.updated_at_ms = now;
        task.runner = None;
        task.lease_expires_at_ms = None;
        Ok(true)
    }

    async fn cancel(&self, owner_id: &str, id: &str, now: u64) -> Result<Option<TaskRecord>, JournalError> {
        let mut tasks = self.tasks();
        let Some(task) = tasks.get_mut(id).filter(|t| t.owner_id == owner_id) else { return Ok(None) };
        if task.state == TaskState::Working {
            task.state = TaskState::Cancelled;
            task.status_message = Some("cancelled by its owner".into());
            task.updated_at_ms = now;
            task.lease_expires_at_ms = None;
        }
        Ok(Some(task.clone()))
    }

    async fn renew(&self, runner: &str, until: u64, ids: &[String]) -> Result<Vec<String>, JournalError> {
        let mut tasks = self.tasks();
        for task in tasks.values_mut().filter(|t| t.state == TaskState::Working && t.runner.as_deref() == Some(runner)) {
            task.lease_expires_at_ms = Some(until);
        }
        Ok(ids.iter().filter(|id| tasks.get(*id).is_none_or(|t| t.state != TaskState::Working)).cloned().collect())
    }

    async fn claim_lapsed(&self, runner: &str, now: u64, until: u64) -> Result<Vec<TaskRecord>, JournalError> {
        let mut claimed = Vec::new();
        for task in self.tasks().values_mut() {
            if task.state == TaskState::Working && task.lease_expires_at_ms.is_none_or(|at| at < now) {
                task.runner = Some(runner.to_string());
                task.lease_expires_at_ms = Some(until);
                task.attempts += 1;
                task.updated_at_ms = now;
                claimed.push(task.clone());
            }
        }
        claimed.sort_by_key(|t| t.created_at_ms);
        Ok(claimed)
    }

    async fn purge(&self, now: u64) -> Result<usize, JournalError> {
        let mut tasks = self.tasks();
        let before = tasks.len();
        tasks.retain(|_, t| t.created_at_ms.saturating_add(t.ttl_ms) >= now);
        Ok(before - tasks.len())
    }
}
