//! The native baseline: the workspace tools' own logic, compiled into the
//! host and answered by the same scenario as [`InstantBackend`](super::scenario::InstantBackend),
//! in the guest's types and without the sandbox.

use std::time::{SystemTime, UNIX_EPOCH};

use workspace_tools::Capabilities;
use workspace_tools::wit::toolshed::infra::control::{CreateBuildRequest, CreateWorkspaceRequest, CreatedWorkspace};
use workspace_tools::wit::toolshed::infra::db::ChatBinding;
use workspace_tools::wit::toolshed::infra::types::{
    Agent, Build, Chat, ControlError, Job, JobStatus, QueryError, Template, TemplateParameter, Transition, Workspace,
};

use super::scenario::{ORG, PARAMETERS, scenario_agent, scenario_parameter, scenario_template};
use workspace_tools::wit::toolshed::infra::types as guest_types;

/// The scenario in the guest's types, answered synchronously.
pub struct NativeHost {
    templates: Vec<Template>,
}

impl NativeHost {
    /// `templates` templates, as [`InstantBackend::new`](super::scenario::InstantBackend::new) makes them.
    pub fn new(templates: usize) -> Self {
        let templates = (0..templates.max(1)).map(|i| scenario_template!(guest_types, i)).collect();
        Self { templates }
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn build(id: &str) -> Build {
    Build { id: id.to_string(), workspace_id: "ws".into(), job_id: "job-0".into(), transition: Transition::Start, template_version_id: None }
}

impl Capabilities for NativeHost {
    type Guard = ();

    fn now(&self) -> u64 {
        now_ms()
    }
    fn sleep(&self, ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    fn pause(&self, ms: u64, _state: &[u8]) {
        self.sleep(ms);
    }
    fn resumed(&self) -> Option<Vec<u8>> {
        None
    }
    fn wait_budget(&self) -> Option<u64> {
        None
    }
    fn build_log_line(&self, _build_id: &str) -> Option<String> {
        None
    }
    fn lock(&self, _key: &str) -> Result<Self::Guard, String> {
        Ok(())
    }
    fn chat_updated(&self) {}
    fn progress(&self, _message: &str) {}
    fn random(&self) -> u64 {
        now_ms().wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
    fn chat(&self) -> Result<Chat, QueryError> {
        Ok(Chat { id: "chat".into(), owner_id: "owner".into(), organization_id: ORG.into(), workspace_id: None, build_id: None, agent_id: None })
    }
    fn workspace(&self, _id: &str) -> Result<Workspace, QueryError> {
        Err(QueryError::NotFound)
    }
    fn latest_build(&self, _workspace_id: &str) -> Result<Build, QueryError> {
        Err(QueryError::NotFound)
    }
    fn build(&self, id: &str) -> Result<Build, QueryError> {
        Ok(build(id))
    }
    fn job(&self, id: &str) -> Result<Job, QueryError> {
        Ok(Job { id: id.to_string(), status: JobStatus::Succeeded, error: None })
    }
    fn build_agents(&self, _build_id: &str) -> Result<Vec<Agent>, QueryError> {
        Ok(vec![scenario_agent!(guest_types, now_ms())])
    }
    fn agent(&self, _id: &str) -> Result<Agent, QueryError> {
        Ok(scenario_agent!(guest_types, now_ms()))
    }
    fn templates(&self) -> Result<Vec<Template>, QueryError> {
        Ok(self.templates.clone())
    }
    fn template(&self, id: &str) -> Result<Template, QueryError> {
        self.templates.iter().find(|t| t.id == id).cloned().ok_or(QueryError::NotFound)
    }
    fn template_parameters(&self, _version_id: &str) -> Result<Vec<TemplateParameter>, QueryError> {
        Ok((0..PARAMETERS).map(|i| scenario_parameter!(guest_types, i)).collect())
    }
    fn workspace_ttl(&self) -> Result<String, QueryError> {
        Ok("2h".into())
    }
    fn template_allowlist(&self) -> Result<Vec<String>, QueryError> {
        Ok(Vec::new())
    }
    fn bind_chat(&self, _binding: &ChatBinding) -> Result<(), QueryError> {
        Ok(())
    }
    fn create_workspace(&self, request: &CreateWorkspaceRequest) -> Result<CreatedWorkspace, ControlError> {
        Ok(CreatedWorkspace {
            workspace: Workspace {
                id: "ws".into(),
                name: request.name.clone(),
                owner_name: "bench".into(),
                template_id: request.template_id.clone(),
                deleted: false,
            },
            build: build("build"),
        })
    }
    fn create_build(&self, _request: &CreateBuildRequest) -> Result<Build, ControlError> {
        Ok(build("build"))
    }
    fn start_uses_active_version(&self, _workspace_id: &str) -> bool {
        false
    }
    fn can_connect(&self) -> bool {
        true
    }
    fn connect(&self, _agent_id: &str, _timeout_ms: u64) -> Result<(), String> {
        Ok(())
    }
}
