//! Scripts: how jobs and agents behave over virtual time.

use toolshed_infra::{JobStatus, LifecycleState};
use toolshed_platform::TaskStatus;

/// A provisioner job's statuses over time, from the moment it is created.
#[derive(Debug, Clone)]
pub struct JobScript {
    /// `(milliseconds after creation, status from then on)`, in order.
    pub steps: Vec<(u64, JobStatus)>,
    /// The job's error text once it has failed.
    pub error: Option<String>,
    /// The last line the build printed, as `toolshed:builds/logs` shows it.
    pub log_line: Option<String>,
}

impl JobScript {
    /// Pending, then running, then succeeded after `ms`.
    pub fn succeeds_after(ms: u64) -> Self {
        Self { steps: vec![(0, JobStatus::Pending), (ms / 2, JobStatus::Running), (ms, JobStatus::Succeeded)], error: None, log_line: None }
    }

    /// Already succeeded.
    pub fn succeeded() -> Self {
        Self { steps: vec![(0, JobStatus::Succeeded)], error: None, log_line: None }
    }

    /// Running, then failed after `ms` with `error`.
    pub fn fails_after(ms: u64, error: &str) -> Self {
        Self { steps: vec![(0, JobStatus::Running), (ms, JobStatus::Failed)], error: Some(error.to_string()), log_line: None }
    }

    /// Running, then `status` after `ms`.
    pub fn ends_after(ms: u64, status: JobStatus) -> Self {
        Self { steps: vec![(0, JobStatus::Running), (ms, status)], error: None, log_line: None }
    }

    /// Running forever.
    pub fn never_finishes() -> Self {
        Self { steps: vec![(0, JobStatus::Running)], error: None, log_line: None }
    }

    /// The same script, with `line` as the build's last line of output.
    pub fn printing(mut self, line: &str) -> Self {
        self.log_line = Some(line.to_string());
        self
    }

    /// The status `elapsed_ms` after creation.
    pub fn status_at(&self, elapsed_ms: u64) -> JobStatus {
        self.steps.iter().take_while(|(at, _)| *at <= elapsed_ms).last().map_or(JobStatus::Pending, |(_, s)| *s)
    }
}

/// What the agent's connection looks like in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// Connected, with a fresh heartbeat at every read.
    Connected,
    /// Created but never connected, within its connection timeout.
    Connecting,
    /// Connected once, then disconnected.
    Disconnected,
    /// Never connected and past its connection timeout.
    TimedOut,
    /// Connected once, with no disconnect recorded, but silent for longer
    /// than the inactivity limit.
    Stale,
    /// Never connected, created this many ms before each read, with a
    /// connection timeout of 600 s: for the edges of SPEC 3.2.
    NeverConnectedFor(u64),
    /// Connected, last heard from this many ms before each read: for the
    /// edge of the inactivity limit.
    LastHeardAgo(u64),
}

/// How connection attempts to an agent go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectScript {
    /// Every attempt succeeds at once.
    Succeeds,
    /// Every attempt fails with the text, after using its whole timeout.
    Fails(String),
    /// The first `n` attempts fail, then attempts succeed.
    FailsTimes(u32),
}

/// A workspace agent in a scripted build.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    /// The agent's name.
    pub name: String,
    /// Index of the parent agent in the same build, for sub-agents.
    pub parent: Option<usize>,
    /// Display order.
    pub display_order: i32,
    /// Its database connection times.
    pub heartbeat: Heartbeat,
    /// Connection attempts.
    pub connect: ConnectScript,
    /// `(milliseconds after the build, lifecycle state from then on)`.
    pub lifecycle: Vec<(u64, LifecycleState)>,
}

impl AgentSpec {
    /// A connected agent whose startup scripts finish after two seconds.
    pub fn ready(name: &str) -> Self {
        Self {
            name: name.to_string(),
            parent: None,
            display_order: 0,
            heartbeat: Heartbeat::Connected,
            connect: ConnectScript::Succeeds,
            lifecycle: vec![(0, LifecycleState::Starting), (2_000, LifecycleState::Ready)],
        }
    }

    /// Sets the display order.
    pub fn order(mut self, display_order: i32) -> Self {
        self.display_order = display_order;
        self
    }

    /// Makes this a sub-agent of the build's agent at `index`.
    pub fn child_of(mut self, index: usize) -> Self {
        self.parent = Some(index);
        self
    }

    /// Sets the database connection state.
    pub fn heartbeat(mut self, heartbeat: Heartbeat) -> Self {
        self.heartbeat = heartbeat;
        self
    }

    /// Sets how connection attempts go.
    pub fn connect(mut self, connect: ConnectScript) -> Self {
        self.connect = connect;
        self
    }

    /// Sets the lifecycle steps.
    pub fn lifecycle(mut self, steps: Vec<(u64, LifecycleState)>) -> Self {
        self.lifecycle = steps;
        self
    }

    /// The lifecycle state `elapsed_ms` after the build.
    pub fn lifecycle_at(&self, elapsed_ms: u64) -> LifecycleState {
        self.lifecycle.iter().take_while(|(at, _)| *at <= elapsed_ms).last().map_or(LifecycleState::Created, |(_, s)| *s)
    }
}

/// What the next build the backend creates will do.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    /// The job's statuses.
    pub job: JobScript,
    /// The build's agents.
    pub agents: Vec<AgentSpec>,
}

impl Default for BuildPlan {
    fn default() -> Self {
        Self { job: JobScript::succeeds_after(10_000), agents: vec![AgentSpec::ready("main")] }
    }
}

impl BuildPlan {
    /// A build whose job follows `job`, with one ready agent.
    pub fn job(job: JobScript) -> Self {
        Self { job, ..Self::default() }
    }

    /// Replaces the agents.
    pub fn agents(mut self, agents: Vec<AgentSpec>) -> Self {
        self.agents = agents;
        self
    }
}

/// A registry provisioning task's statuses over time, from its start.
#[derive(Debug, Clone)]
pub struct TaskScript {
    /// `(milliseconds after the start, status from then on)`, in order.
    pub steps: Vec<(u64, TaskStatus)>,
    /// The platform's note once the task ends.
    pub message: Option<String>,
}

impl TaskScript {
    /// Pending, running, then completed after `ms`.
    pub fn completes_after(ms: u64) -> Self {
        Self { steps: vec![(0, TaskStatus::Pending), (ms / 3, TaskStatus::Running), (ms, TaskStatus::Completed)], message: None }
    }

    /// Running, then `status` after `ms`, with the platform's `message`.
    pub fn ends_after(ms: u64, status: TaskStatus, message: Option<&str>) -> Self {
        Self { steps: vec![(0, TaskStatus::Running), (ms, status)], message: message.map(str::to_string) }
    }

    /// Running forever.
    pub fn never_finishes() -> Self {
        Self { steps: vec![(0, TaskStatus::Running)], message: None }
    }

    /// The status `elapsed_ms` after the start.
    pub fn status_at(&self, elapsed_ms: u64) -> TaskStatus {
        self.steps.iter().take_while(|(at, _)| *at <= elapsed_ms).last().map_or(TaskStatus::Pending, |(_, s)| *s)
    }
}
