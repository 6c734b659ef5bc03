//! The record of what plugins asked the backend to do.

use std::sync::{Arc, Mutex};

use toolshed_runtime::CallContext;
use toolshed_runtime::progress::{Progress, ProgressSink};
use toolshed_infra::{ChatBinding, CreateBuildRequest, CreateWorkspaceRequest};
use toolshed_platform::ProvisionRequest;

/// One call a plugin made that changes something or signals the front end.
#[derive(Debug, Clone)]
pub enum Call {
    /// control.create-workspace
    CreateWorkspace(CreateWorkspaceRequest),
    /// control.create-build
    CreateBuild(CreateBuildRequest),
    /// agent-connect.connect, with the agent id
    Connect(String),
    /// db.bind-chat
    Bind(ChatBinding),
    /// events.chat-updated
    ChatUpdated,
    /// events.progress
    Progress(String),
    /// registry.start-provisioning
    Provision(ProvisionRequest),
    /// registry.get-task, with the task id
    PollTask(String),
}

/// What a read asked the backend for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadKind {
    /// db.get-chat
    Chat,
    /// db.get-workspace, with the workspace id
    Workspace(String),
    /// db.get-latest-build, with the workspace id
    LatestBuild(String),
    /// db.get-build, with the build id
    Build(String),
    /// db.get-job, with the job id
    Job(String),
    /// db.list-build-agents, with the build id
    BuildAgents(String),
    /// db.get-agent, with the agent id: how startup scripts are watched
    Agent(String),
    /// db.list-templates
    Templates,
    /// db.get-template, with the template id
    Template(String),
    /// db.get-template-parameters, with the version id
    TemplateParameters(String),
    /// registry.get-task, with the task id
    Task(String),
}

/// One read a plugin made, and when, on the backend's (virtual) clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// Milliseconds since the Unix epoch on the backend's clock.
    pub at_ms: u64,
    /// What was read.
    pub kind: ReadKind,
}

/// One connection attempt: when it began, to which agent, and the timeout
/// the plugin gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Milliseconds since the Unix epoch on the backend's clock.
    pub at_ms: u64,
    /// The agent tried.
    pub agent_id: String,
    /// The attempt's timeout, in ms.
    pub timeout_ms: u64,
}

/// Every recorded call, with the chat that made it.
#[derive(Clone, Default)]
pub struct Recorder {
    calls: Arc<Mutex<Vec<(String, Call)>>>,
    /// When each call in `calls` was made, on the (virtual) tokio clock.
    times: Arc<Mutex<Vec<tokio::time::Instant>>>,
    reads: Arc<Mutex<Vec<Read>>>,
    attempts: Arc<Mutex<Vec<Attempt>>>,
}

impl Recorder {
    pub(crate) fn push(&self, cx: &CallContext, call: Call) {
        // Both under the calls lock, so the two lists stay in step.
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.push((cx.chat_id.clone(), call));
        self.times.lock().unwrap_or_else(|e| e.into_inner()).push(tokio::time::Instant::now());
    }

    pub(crate) fn read(&self, at_ms: u64, kind: ReadKind) {
        self.reads.lock().unwrap_or_else(|e| e.into_inner()).push(Read { at_ms, kind });
    }

    pub(crate) fn attempt(&self, attempt: Attempt) {
        self.attempts.lock().unwrap_or_else(|e| e.into_inner()).push(attempt);
    }

    /// Every read plugins made, in order, each with its virtual time: the
    /// poll schedules of SPEC §1 are asserted on these.
    pub fn reads(&self) -> Vec<Read> {
        self.reads.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The virtual times (ms since the epoch) of the reads `select` picks.
    pub fn read_times(&self, select: impl Fn(&ReadKind) -> bool) -> Vec<u64> {
        self.reads().into_iter().filter(|r| select(&r.kind)).map(|r| r.at_ms).collect()
    }

    /// Every connection attempt, in order.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.attempts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A progress sink that records every report of a call in chat `cx`.
    pub fn progress_sink(&self, cx: &CallContext) -> Arc<dyn ProgressSink> {
        Arc::new(RecordProgress { recorder: self.clone(), cx: cx.clone() })
    }

    /// The progress messages reported in chat `chat_id`, in order.
    pub fn progress(&self, chat_id: &str) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter_map(|(chat, c)| match c {
                Call::Progress(message) if chat == chat_id => Some(message),
                _ => None,
            })
            .collect()
    }

    /// The progress messages reported in chat `chat_id`, each with when it
    /// was reported, in order.
    pub fn progress_timed(&self, chat_id: &str) -> Vec<(tokio::time::Instant, String)> {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let times = self.times.lock().unwrap_or_else(|e| e.into_inner());
        calls
            .iter()
            .zip(times.iter())
            .filter_map(|((chat, c), at)| match c {
                Call::Progress(message) if chat == chat_id => Some((*at, message.clone())),
                _ => None,
            })
            .collect()
    }

    /// All calls, in order.
    pub fn calls(&self) -> Vec<(String, Call)> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many recorded calls match `filter`.
    pub fn count(&self, filter: impl Fn(&Call) -> bool) -> usize {
        self.calls().iter().filter(|(_, c)| filter(c)).count()
    }

    /// The create-workspace requests made.
    pub fn creates(&self) -> Vec<CreateWorkspaceRequest> {
        self.calls().into_iter().filter_map(|(_, c)| if let Call::CreateWorkspace(r) = c { Some(r) } else { None }).collect()
    }

    /// The create-build requests made.
    pub fn builds(&self) -> Vec<CreateBuildRequest> {
        self.calls().into_iter().filter_map(|(_, c)| if let Call::CreateBuild(r) = c { Some(r) } else { None }).collect()
    }

    /// The registry provisioning requests made.
    pub fn provisions(&self) -> Vec<ProvisionRequest> {
        self.calls().into_iter().filter_map(|(_, c)| if let Call::Provision(r) = c { Some(r) } else { None }).collect()
    }

    /// How many connection attempts were made.
    pub fn connects(&self) -> usize {
        self.count(|c| matches!(c, Call::Connect(_)))
    }

    /// How many times chat-updated fired.
    pub fn chat_updates(&self) -> usize {
        self.count(|c| matches!(c, Call::ChatUpdated))
    }

    /// Forgets everything recorded so far.
    pub fn clear(&self) {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.clear();
        self.times.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.reads.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.attempts.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// Records each progress report of one call as [`Call::Progress`].
struct RecordProgress {
    recorder: Recorder,
    cx: CallContext,
}

impl ProgressSink for RecordProgress {
    fn report(&self, progress: Progress) {
        self.recorder.push(&self.cx, Call::Progress(progress.message));
    }
}
