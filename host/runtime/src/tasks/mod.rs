//! Tasks: tool calls that outlive the request that made them.
//!
//! A task is written to a [`TaskJournal`] before anyone hears of it, then
//! run by this process, which holds it under a lease it renews. If the
//! process dies, the lease lapses, and the next runner (a `Tasks` whose
//! keeper runs) claims the task and calls the tool again with the same
//! arguments: the tools a task runs must be idempotent, as the workspace
//! tools are. A task whose runners keep dying is given up after
//! [`TaskSettings::max_attempts`].
//!
//! A task runs on the plugin version serving its tool when it starts (or
//! resumes); a hot swap while it runs changes nothing for it, as for any
//! call.
//!
//! ```
//! # use std::sync::Arc;
//! # use toolshed_runtime::tasks::{MemoryJournal, Tasks, TaskSettings};
//! # async fn run(host: Arc<toolshed_runtime::Toolshed>, cx: toolshed_runtime::CallContext) -> anyhow::Result<()> {
//! let tasks = Tasks::new(host, Arc::new(MemoryJournal::default()), TaskSettings::default());
//! let task = tasks.start(&cx, "stop_workspace", serde_json::json!({})).await.map_err(|e| anyhow::anyhow!("{}", e.to_json()))?;
//! let ended = tasks.wait(&cx.owner_id, &task.id).await?;
//! println!("{:?}", ended.map(|t| t.result));
//! # Ok(()) }
//! ```

mod journal;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

pub use journal::{JournalError, MemoryJournal, TaskEnd, TaskJournal, TaskRecord, TaskState};

use crate::clock::Clock;
use crate::context::CallContext;
use crate::error::{Category, HostError};
use crate::host::{Arguments, CallOptions, Toolshed};

/// How tasks are kept and resumed.
#[derive(Debug, Clone)]
pub struct TaskSettings {
    /// How long after its creation a task may be purged.
    pub ttl: Duration,
    /// How long a runner's claim holds without renewal.
    pub lease: Duration,
    /// How often a runner renews its claims, claims lapsed tasks and purges.
    pub renew_every: Duration,
    /// How many runners may start a task before it is given up.
    pub max_attempts: u32,
    /// How often a task's latest progress is written to the journal, at most.
    pub note_every: Duration,
    /// How often [`Tasks::wait`] reads a task another process runs.
    pub poll_every: Duration,
}

impl Default for TaskSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(24 * 60 * 60),
            lease: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
            max_attempts: 3,
            note_every: Duration::from_secs(1),
            poll_every: Duration::from_millis(500),
        }
    }
}

/// A task this process runs.
struct RunningTask {
    /// Ends its instance.
    abort: tokio::task::AbortHandle,
    /// Turns true when it ends.
    done: watch::Receiver<bool>,
    /// Whose it is.
    owner_id: String,
}

/// Tasks of one host, over one journal.
pub struct Tasks {
    host: Arc<Toolshed>,
    journal: Arc<dyn TaskJournal>,
    clock: Arc<dyn Clock>,
    settings: TaskSettings,
    /// This process, as a runner of tasks.
    runner: String,
    /// The tasks this process runs, by id.
    running: Mutex<HashMap<String, RunningTask>>,
}

impl Tasks {
    /// Tasks of `host`, recorded in `journal`.
    pub fn new(host: Arc<Toolshed>, journal: Arc<dyn TaskJournal>, settings: TaskSettings) -> Arc<Tasks> {
        let clock = host.clock();
        let runner = format!("{}:{}", std::process::id(), uuid::Uuid::new_v4());
        Arc::new(Tasks { host, journal, clock, settings, runner, running: Mutex::new(HashMap::new()) })
    }

    /// How many tasks this process runs now.
    pub fn running(&self) -> usize {
        self.running_map().len()
    }

    /// How many tasks of `owner_id` this process runs now.
    pub fn running_for(&self, owner_id: &str) -> usize {
        self.running_map().values().filter(|t| t.owner_id == owner_id).count()
    }

    fn running_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, RunningTask>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new task record for `tool` called in `cx`, or the error that
    /// refuses it (an unknown tool). A tool of a plugin still installing is
    /// waited for.
    async fn record(&self, cx: &CallContext, tool: &str, arguments: Value) -> Result<TaskRecord, HostError> {
        let Some((_, plugin)) = self.host.resolve(tool).await else {
            let names: Vec<String> = self.host.tools().iter().map(|t| t.name.to_string()).collect();
            return Err(HostError::unknown_tool(tool, &names));
        };
        let now = self.clock.now_ms();
        Ok(TaskRecord {
            id: uuid::Uuid::new_v4().to_string(),
            owner_id: cx.owner_id.clone(),
            owner_name: cx.owner_name.clone(),
            organization_id: cx.organization_id.clone(),
            chat_id: cx.chat_id.clone(),
            tool: tool.to_string(),
            arguments,
            plugin: plugin.name.to_string(),
            plugin_version: plugin.hash.clone(),
            state: TaskState::Working,
            status_message: None,
            result: None,
            is_error: false,
            created_at_ms: now,
            updated_at_ms: now,
            ttl_ms: self.settings.ttl.as_millis() as u64,
            runner: None,
            lease_expires_at_ms: None,
            attempts: 0,
        })
    }

    /// Records a task calling `tool` with `arguments` in `cx`, durably, and
    /// runs it here.
    ///
    /// # Errors
    ///
    /// The error object refusing the task: an unknown tool, a quota of the
    /// caller's (`QUOTA_EXCEEDED`), or a journal that cannot record it.
    pub async fn start(self: &Arc<Self>, cx: &CallContext, tool: &str, arguments: Value) -> Result<TaskRecord, HostError> {
        let mut task = self.record(cx, tool, arguments).await?;
        task.runner = Some(self.runner.clone());
        task.lease_expires_at_ms = Some(task.created_at_ms + self.settings.lease.as_millis() as u64);
        task.attempts = 1;
        self.journal.insert(&task).await.map_err(insert_refused)?;
        self.spawn(task.clone());
        Ok(task)
    }

    /// Records a task that no process runs yet: the next runner to look
    /// claims it. For callers that will not stay to run it.
    ///
    /// # Errors
    ///
    /// As [`Tasks::start`].
    pub async fn enqueue(&self, cx: &CallContext, tool: &str, arguments: Value) -> Result<TaskRecord, HostError> {
        let task = self.record(cx, tool, arguments).await?;
        self.journal.insert(&task).await.map_err(insert_refused)?;
        Ok(task)
    }

    /// Runs `task` (held by this runner) in the background.
    fn spawn(self: &Arc<Self>, task: TaskRecord) {
        let (done_tx, done_rx) = watch::channel(false);
        let this = self.clone();
        let id = task.id.clone();
        // Hold the map's lock across the spawn, so the task cannot end and
        // remove itself before it is entered.
        let mut running = self.running_map();
        let (key, owner_id) = (id.clone(), task.owner_id.clone());
        let handle = tokio::spawn(async move {
            this.run(task).await;
            this.running_map().remove(&id);
            let _ = done_tx.send(true);
        });
        running.insert(key, RunningTask { abort: handle.abort_handle(), done: done_rx, owner_id });
    }

    async fn run(&self, task: TaskRecord) {
        let cx = task.context();
        let (sink, mut latest) = crate::progress::latest();
        // The latest progress goes to the journal, at most every
        // `note_every`, so a flood of progress is one write a second.
        let notes = {
            let (journal, clock, id, runner, every) =
                (self.journal.clone(), self.clock.clone(), task.id.clone(), self.runner.clone(), self.settings.note_every);
            tokio::spawn(async move {
                while latest.changed().await.is_ok() {
                    let Some(progress) = latest.borrow_and_update().clone() else { continue };
                    if let Err(e) = journal.note(&id, &runner, &progress.message, clock.now_ms()).await {
                        tracing::warn!(task = %id, "recording task progress: {e}");
                    }
                    clock.sleep(every).await;
                }
            })
        };
        let options = CallOptions { progress: Some(sink), wait_budget: None, client: None };
        let out = self.host.call_with(&cx, &task.tool, Arguments::Json(&task.arguments), options).await;
        notes.abort();
        let end = TaskEnd { state: TaskState::Completed, result: out.value, is_error: out.is_error, message: None };
        match self.journal.finish(&task.id, &self.runner, &end, self.clock.now_ms()).await {
            Ok(true) => {}
            Ok(false) => tracing::info!(task = %task.id, "the task ended elsewhere (cancelled, or claimed after a lapse); its answer here is dropped"),
            Err(e) => tracing::warn!(task = %task.id, "recording the end of the task: {e}"),
        }
    }

    /// Task `id` of `owner_id`; another owner's task reads as absent.
    ///
    /// # Errors
    ///
    /// When the journal fails.
    pub async fn get(&self, owner_id: &str, id: &str) -> Result<Option<TaskRecord>, JournalError> {
        self.journal.get(owner_id, id).await
    }

    /// The newest `limit` tasks of `owner_id`.
    ///
    /// # Errors
    ///
    /// When the journal fails.
    pub async fn list(&self, owner_id: &str, limit: usize) -> Result<Vec<TaskRecord>, JournalError> {
        self.journal.list(owner_id, limit).await
    }

    /// Cancels task `id` of `owner_id`: marks it cancelled and, if this
    /// process runs it, ends its instance now (another runner ends it at
    /// its next renewal). Returns the task as it now is.
    ///
    /// # Errors
    ///
    /// When the journal fails.
    pub async fn cancel(&self, owner_id: &str, id: &str) -> Result<Option<TaskRecord>, JournalError> {
        let task = self.journal.cancel(owner_id, id, self.clock.now_ms()).await?;
        if task.as_ref().is_some_and(|t| t.state == TaskState::Cancelled) {
            self.abort(id);
        }
        Ok(task)
    }

    /// Ends the instance of task `id` if this process runs it.
    fn abort(&self, id: &str) {
        if let Some(task) = self.running_map().remove(id) {
            // Dropping the call drops its store: the instance ends here.
            task.abort.abort();
        }
    }

    /// Waits until task `id` of `owner_id` ends, and returns it; `None` if
    /// there is no such task.
    ///
    /// # Errors
    ///
    /// When the journal fails.
    pub async fn wait(&self, owner_id: &str, id: &str) -> Result<Option<TaskRecord>, JournalError> {
        loop {
            let Some(task) = self.journal.get(owner_id, id).await? else { return Ok(None) };
            if task.state.is_terminal() {
                return Ok(Some(task));
            }
            let local = self.running_map().get(id).map(|t| t.done.clone());
            match local {
                // Run here: wake when it ends, then read how.
                Some(mut done) => {
                    let _ = done.wait_for(|ended| *ended).await;
                }
                None => self.clock.sleep(self.settings.poll_every).await,
            }
        }
    }

    /// Claims every task whose runner stopped renewing its lease (or that
    /// no runner holds yet) and runs it here again; gives up those started
    /// too often. Returns how many it resumed.
    ///
    /// # Errors
    ///
    /// When the journal fails.
    pub async fn resume_lapsed(self: &Arc<Self>) -> Result<usize, JournalError> {
        let now = self.clock.now_ms();
        let until = now + self.settings.lease.as_millis() as u64;
        let mut resumed = 0;
        for task in self.journal.claim_lapsed(&self.runner, now, until).await? {
            if task.attempts > self.settings.max_attempts {
                let message = format!("given up: its runner stopped {} times while it ran", task.attempts - 1);
                let error = HostError::new(Category::InternalError, "TASK_ABANDONED", message.clone())
                    .suggest(format!("Call {} again if it is still wanted.", task.tool));
                let end = TaskEnd { state: TaskState::Failed, result: error.to_json(), is_error: true, message: Some(message) };
                self.journal.finish(&task.id, &self.runner, &end, now).await?;
                continue;
            }
            if task.attempts > 1 {
                tracing::info!(task = %task.id, tool = %task.tool, attempt = task.attempts, "resuming a task whose runner stopped");
            }
            self.spawn(task);
            resumed += 1;
        }
        Ok(resumed)
    }

    /// One round of a runner's upkeep: renew its claims, end the tasks
    /// cancelled elsewhere, resume lapsed tasks and purge expired ones.
    ///
    /// # Errors
    ///
    /// When the journal fails.
    pub async fn tend(self: &Arc<Self>) -> Result<(), JournalError> {
        let until = self.clock.now_ms() + self.settings.lease.as_millis() as u64;
        let ids: Vec<String> = self.running_map().keys().cloned().collect();
        for gone in self.journal.renew(&self.runner, until, &ids).await? {
            self.abort(&gone);
        }
        self.resume_lapsed().await?;
        self.journal.purge(self.clock.now_ms()).await?;
        Ok(())
    }

    /// Tends the tasks every [`TaskSettings::renew_every`] until the
    /// returned handle is dropped: what a process that runs tasks keeps.
    pub fn keep(self: &Arc<Self>) -> TaskKeeper {
        let this = self.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Err(e) = this.tend().await {
                    tracing::warn!("tending tasks: {e}");
                }
                this.clock.sleep(this.settings.renew_every).await;
            }
        });
        TaskKeeper { task }
    }
}

/// Keeps a runner's tasks tended while it lives.
pub struct TaskKeeper {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TaskKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The error object refusing a task: a quota names itself; a journal's
/// failure keeps its detail (which may quote the store) for the log.
fn insert_refused(refused: crate::quota::Refused<JournalError>) -> HostError {
    match refused {
        crate::quota::Refused::Quota(quota) => quota.error(),
        crate::quota::Refused::Error(e) => {
            tracing::warn!("a task could not be recorded: {}", e.0);
            HostError::new(Category::InternalError, "TASK_JOURNAL_FAILED", "the task could not be recorded: the task store failed; the detail is in the host's log")
                .suggest("Try again in a moment; if it keeps failing, tell the operator.")
        }
    }
}
