//! The seams a host is built from: the [`Backend`] that answers the
//! infrastructure imports, and the [`Clock`] every wait goes through.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use crate::bindings::{
    Agent, Build, Chat, ChatBinding, ControlError, CreateBuildRequest, CreateWorkspaceRequest,
    CreatedWorkspace, Job, PlatformError, ProvisionRequest, QueryError, Task, Template,
    TemplateParameter, Workspace,
};

/// Who is calling: bound by the host for each call, never taken from the
/// model's arguments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallContext {
    /// The chat the call belongs to.
    pub chat_id: String,
    /// The user who owns the chat.
    pub owner_id: String,
    /// The organization the chat belongs to.
    pub organization_id: String,
}

/// Answers the infrastructure imports for every plugin call.
///
/// Every method receives the calling context; implementations must scope
/// reads to it, so that a row of another owner reads as
/// [`QueryError::NotFound`].
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The calling chat and what is bound to it.
    async fn chat(&self, cx: &CallContext) -> Result<Chat, QueryError>;
    /// A workspace of the chat's owner.
    async fn workspace(&self, cx: &CallContext, id: &str) -> Result<Workspace, QueryError>;
    /// A workspace's newest build.
    async fn latest_build(&self, cx: &CallContext, workspace_id: &str) -> Result<Build, QueryError>;
    /// A build by id.
    async fn build(&self, cx: &CallContext, id: &str) -> Result<Build, QueryError>;
    /// A provisioner job by id.
    async fn job(&self, cx: &CallContext, id: &str) -> Result<Job, QueryError>;
    /// The agents of a build.
    async fn build_agents(&self, cx: &CallContext, build_id: &str) -> Result<Vec<Agent>, QueryError>;
    /// An agent by id.
    async fn agent(&self, cx: &CallContext, id: &str) -> Result<Agent, QueryError>;
    /// Templates the caller can see.
    async fn templates(&self, cx: &CallContext) -> Result<Vec<Template>, QueryError>;
    /// A template by id.
    async fn template(&self, cx: &CallContext, id: &str) -> Result<Template, QueryError>;
    /// A template version's parameters.
    async fn template_parameters(&self, cx: &CallContext, version_id: &str) -> Result<Vec<TemplateParameter>, QueryError>;
    /// The chat workspace TTL setting, such as "2h".
    async fn workspace_ttl(&self, cx: &CallContext) -> Result<String, QueryError>;
    /// Template ids chat tools may use; empty allows all.
    async fn template_allowlist(&self, cx: &CallContext) -> Result<Vec<String>, QueryError>;
    /// Binds a workspace, build or agent to the chat.
    async fn bind_chat(&self, cx: &CallContext, binding: ChatBinding) -> Result<(), QueryError>;

    /// Creates a workspace for the chat's owner and starts its first build.
    async fn create_workspace(&self, cx: &CallContext, request: CreateWorkspaceRequest) -> Result<CreatedWorkspace, ControlError>;
    /// Starts a build of a workspace.
    async fn create_build(&self, cx: &CallContext, request: CreateBuildRequest) -> Result<Build, ControlError>;

    /// Whether this backend can reach agents at all.
    fn can_connect_agents(&self) -> bool;
    /// One attempt to reach an agent within `timeout`.
    async fn connect_agent(&self, cx: &CallContext, agent_id: &str, timeout: Duration) -> Result<(), String>;

    /// Starts provisioning a container registry. A backend without a
    /// deployment platform answers that it cannot reach one.
    async fn start_registry(&self, cx: &CallContext, request: ProvisionRequest) -> Result<Task, PlatformError> {
        let _ = (cx, request);
        Err(PlatformError::Connection("this host has no deployment platform".into()))
    }
    /// Reads a registry provisioning task.
    async fn registry_task(&self, cx: &CallContext, id: &str) -> Result<Task, PlatformError> {
        let _ = (cx, id);
        Err(PlatformError::Connection("this host has no deployment platform".into()))
    }

    /// The chat's bindings changed; forward to the front end.
    async fn chat_updated(&self, cx: &CallContext);
}

/// The time source for `clock.now` and `clock.sleep`.
///
/// Tests inject a virtual clock so a ten-minute wait runs in milliseconds.
#[async_trait]
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Waits for `duration`.
    async fn sleep(&self, duration: Duration);
}

/// The real clock: system time and tokio timers.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// A clock on tokio's timer: it follows tokio's paused, auto-advancing time
/// in tests, and starts at `epoch_ms`.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: tokio::time::Instant,
    epoch_ms: u64,
}

impl TokioClock {
    /// A clock reading `epoch_ms` now and advancing with tokio's time.
    pub fn starting_at(epoch_ms: u64) -> Self {
        Self { start: tokio::time::Instant::now(), epoch_ms }
    }
}

#[async_trait]
impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        self.epoch_ms + self.start.elapsed().as_millis() as u64
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// A backend with nothing in it: reads find nothing, control requests fail.
/// Used for smoke calls of new plugin versions, and for listing tools.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullBackend;

#[async_trait]
impl Backend for NullBackend {
    async fn chat(&self, _: &CallContext) -> Result<Chat, QueryError> {
        Err(QueryError::NotFound)
    }
    async fn workspace(&self, _: &CallContext, _: &str) -> Result<Workspace, QueryError> {
        Err(QueryError::NotFound)
    }
    async fn latest_build(&self, _: &CallContext, _: &str) -> Result<Build, QueryError> {
        Err(QueryError::NotFound)
    }
    async fn build(&self, _: &CallContext, _: &str) -> Result<Build, QueryError> {
        Err(QueryError::NotFound)
    }
    async fn job(&self, _: &CallContext, _: &str) -> Result<Job, QueryError> {
        Err(QueryError::NotFound)
    }
    async fn build_agents(&self, _: &CallContext, _: &str) -> Result<Vec<Agent>, QueryError> {
        Ok(Vec::new())
    }
    async fn agent(&self, _: &CallContext, _: &str) -> Result<Agent, QueryError> {
        Err(QueryError::NotFound)
    }
    async fn templates(&self, _: &CallContext) -> Result<Vec<Template>, QueryError> {
        Ok(Vec::new())
    }
    async fn template(&self, _: &CallContext, _: &str) -> Result<Template, QueryError> {
        Err(QueryError::NotFound)
    }
    async fn template_parameters(&self, _: &CallContext, _: &str) -> Result<Vec<TemplateParameter>, QueryError> {
        Ok(Vec::new())
    }
    async fn workspace_ttl(&self, _: &CallContext) -> Result<String, QueryError> {
        Ok("0s".into())
    }
    async fn template_allowlist(&self, _: &CallContext) -> Result<Vec<String>, QueryError> {
        Ok(Vec::new())
    }
    async fn bind_chat(&self, _: &CallContext, _: ChatBinding) -> Result<(), QueryError> {
        Err(QueryError::NotFound)
    }
    async fn create_workspace(&self, _: &CallContext, _: CreateWorkspaceRequest) -> Result<CreatedWorkspace, ControlError> {
        Err(ControlError::Failed("this host has no backend".into()))
    }
    async fn create_build(&self, _: &CallContext, _: CreateBuildRequest) -> Result<Build, ControlError> {
        Err(ControlError::Failed("this host has no backend".into()))
    }
    fn can_connect_agents(&self) -> bool {
        false
    }
    async fn connect_agent(&self, _: &CallContext, _: &str, _: Duration) -> Result<(), String> {
        Err("this host has no backend".into())
    }
    async fn chat_updated(&self, _: &CallContext) {}
}

/// Real time running `factor` times faster: a two-second poll takes a
/// twentieth of that at factor 20. For tests and demos against real
/// processes, where a paused clock would race ahead of them.
#[derive(Debug, Clone, Copy)]
pub struct ScaledClock {
    start: std::time::Instant,
    epoch_ms: u64,
    factor: u32,
}

impl ScaledClock {
    /// A clock reading the real time now and running `factor` times faster.
    pub fn new(factor: u32) -> Self {
        Self { start: std::time::Instant::now(), epoch_ms: SystemClock.now_ms(), factor: factor.max(1) }
    }
}

#[async_trait]
impl Clock for ScaledClock {
    fn now_ms(&self) -> u64 {
        self.epoch_ms + self.start.elapsed().as_millis() as u64 * u64::from(self.factor)
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration / self.factor).await;
    }
}
