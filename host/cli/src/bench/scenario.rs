//! The benchmark scenario: a stateless backend that answers at once, and
//! the same answers in the guest's own types for the native baseline.
//!
//! Builds are stateless too: a build's creation time is written into its
//! job id, so a job reads as succeeded once `build_ms` have passed, without
//! any table to grow with ten thousand waiting calls.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use toolshed_infra::{
    Agent, AgentConnect, Build, Chat, ChatBinding, Control, ControlError, CreateBuildRequest, CreateWorkspaceRequest, CreatedWorkspace,
    Db, Job, JobStatus, QueryError, Template, TemplateParameter, Transition, Workspace,
};
use toolshed_runtime::{CallContext, Clock};

/// The organization every benchmark chat belongs to.
pub const ORG: &str = "b0000000-0000-4000-8000-000000000001";
/// The template every create uses.
pub const TEMPLATE: &str = "d0000000-0000-4000-8000-000000000000";

/// The scenario's rows, written once and built in either type family: the
/// host's bindings (for the hosted path) or the guest's (for the native
/// baseline). Both are generated from the same WIT, so their fields match.
macro_rules! scenario_template {
    ($types:path, $i:expr) => {{
        use $types as types;
        let i: usize = $i;
        types::Template {
            id: format!("d0000000-0000-4000-8000-{i:012x}"),
            name: format!("template-{i:03}"),
            display_name: format!("Template {i}"),
            description: "A development environment with the usual tools installed.".into(),
            organization_id: $crate::bench::scenario::ORG.into(),
            active_version_id: format!("e0000000-0000-4000-8000-{i:012x}"),
            deprecated: false,
            deleted: false,
            active_developers: (i % 17) as u32,
        }
    }};
}

macro_rules! scenario_parameter {
    ($types:path, $i:expr) => {{
        use $types as types;
        let i: usize = $i;
        types::TemplateParameter {
            name: format!("param_{i}"),
            type_: "string".into(),
            required: i == 0,
            display_name: format!("Parameter {i}"),
            description: "What this parameter controls.".into(),
            default_value: (i > 0).then(|| "default".to_string()),
            mutable: i % 2 == 0,
            ephemeral: false,
            form_type: "input".into(),
            options: Vec::new(),
            validation_regex: None,
            validation_min: None,
            validation_max: None,
        }
    }};
}

macro_rules! scenario_agent {
    ($types:path, $now:expr) => {{
        use $types as types;
        let now: u64 = $now;
        types::Agent {
            id: "agent".into(),
            name: "main".into(),
            parent_id: None,
            display_order: 0,
            created_at: now,
            first_connected_at: Some(now),
            last_connected_at: Some(now),
            disconnected_at: None,
            connection_timeout_seconds: 120,
            lifecycle_state: types::LifecycleState::Ready,
            inactive_disconnect_ms: toolshed_contract::INACTIVE_DISCONNECT_MS,
        }
    }};
}

pub(crate) use {scenario_agent, scenario_parameter, scenario_template};

/// How many parameters the scenario's template versions take.
pub const PARAMETERS: usize = 4;

/// A backend answering every query at once from fixed data.
pub struct InstantBackend {
    templates: Vec<Template>,
    build_ms: u64,
    clock: Arc<dyn Clock>,
}

impl InstantBackend {
    /// `templates` templates; builds succeed `build_ms` after they start.
    pub fn new(templates: usize, build_ms: u64, clock: Arc<dyn Clock>) -> Self {
        let templates = (0..templates.max(1)).map(|i| scenario_template!(toolshed_infra, i)).collect();
        Self { templates, build_ms, clock }
    }
}

fn build(id: &str, created_ms: u64) -> Build {
    Build {
        id: id.to_string(),
        workspace_id: format!("ws-{id}"),
        job_id: format!("job-{created_ms}"),
        transition: Transition::Start,
        template_version_id: None,
    }
}

#[async_trait]
impl Db for InstantBackend {
    async fn chat(&self, cx: &CallContext) -> Result<Chat, QueryError> {
        Ok(toolshed_infra::unbound_chat(cx))
    }
    async fn workspace(&self, _: &CallContext, _: &str) -> Result<Workspace, QueryError> {
        Err(QueryError::NotFound)
    }
    async fn latest_build(&self, _: &CallContext, _: &str) -> Result<Build, QueryError> {
        Err(QueryError::NotFound)
    }
    async fn build(&self, _: &CallContext, id: &str) -> Result<Build, QueryError> {
        let created = id.strip_prefix("build-").and_then(|t| t.parse().ok()).unwrap_or(0);
        Ok(build(id, created))
    }
    async fn job(&self, _: &CallContext, id: &str) -> Result<Job, QueryError> {
        let created: u64 = id.strip_prefix("job-").and_then(|t| t.parse().ok()).ok_or(QueryError::NotFound)?;
        let done = self.clock.now_ms() >= created + self.build_ms;
        Ok(Job { id: id.to_string(), status: if done { JobStatus::Succeeded } else { JobStatus::Running }, error: None })
    }
    async fn build_agents(&self, _: &CallContext, _: &str) -> Result<Vec<Agent>, QueryError> {
        Ok(vec![scenario_agent!(toolshed_infra, self.clock.now_ms())])
    }
    async fn agent(&self, _: &CallContext, _: &str) -> Result<Agent, QueryError> {
        Ok(scenario_agent!(toolshed_infra, self.clock.now_ms()))
    }
    async fn templates(&self, _: &CallContext) -> Result<Vec<Template>, QueryError> {
        Ok(self.templates.clone())
    }
    async fn template(&self, _: &CallContext, id: &str) -> Result<Template, QueryError> {
        self.templates.iter().find(|t| t.id == id).cloned().ok_or(QueryError::NotFound)
    }
    async fn template_parameters(&self, _: &CallContext, _: &str) -> Result<Vec<TemplateParameter>, QueryError> {
        Ok((0..PARAMETERS).map(|i| scenario_parameter!(toolshed_infra, i)).collect())
    }
    async fn workspace_ttl(&self, _: &CallContext) -> Result<String, QueryError> {
        Ok("2h".into())
    }
    async fn template_allowlist(&self, _: &CallContext) -> Result<Vec<String>, QueryError> {
        Ok(Vec::new())
    }
    async fn bind_chat(&self, _: &CallContext, _: ChatBinding) -> Result<(), toolshed_infra::Refused<QueryError>> {
        Ok(())
    }
}

#[async_trait]
impl Control for InstantBackend {
    async fn create_workspace(&self, cx: &CallContext, request: CreateWorkspaceRequest) -> Result<CreatedWorkspace, toolshed_infra::Refused<ControlError>> {
        let now = self.clock.now_ms();
        let id = format!("build-{now}");
        Ok(CreatedWorkspace {
            workspace: Workspace {
                id: format!("ws-{}", cx.chat_id),
                name: request.name,
                owner_name: "bench".into(),
                template_id: request.template_id,
                deleted: false,
            },
            build: build(&id, now),
        })
    }
    async fn create_build(&self, _: &CallContext, _: CreateBuildRequest) -> Result<Build, toolshed_infra::Refused<ControlError>> {
        let now = self.clock.now_ms();
        Ok(build(&format!("build-{now}"), now))
    }
}

#[async_trait]
impl toolshed_infra::BuildLogs for InstantBackend {
    async fn last_line(&self, _: &CallContext, _: &str) -> Option<String> {
        None
    }
}

#[async_trait]
impl toolshed_infra::BuildVersions for InstantBackend {
    async fn start_uses_active_version(&self, _: &CallContext, _: &str) -> bool {
        false
    }
}

#[async_trait]
impl AgentConnect for InstantBackend {
    fn available(&self) -> bool {
        true
    }
    async fn connect(&self, _: &CallContext, _: &str, _: Duration) -> Result<(), String> {
        Ok(())
    }
}
