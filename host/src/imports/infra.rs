//! db, control and agent-connect, delegated to the backend with the call's context.

use std::time::Duration;

use crate::bindings::toolshed::infra::{agent_connect, control, db, types};
use crate::bindings::{
    Agent, Build, Chat, ChatBinding, ControlError, CreateBuildRequest, CreateWorkspaceRequest,
    CreatedWorkspace, Job, QueryError, Template, TemplateParameter, Workspace,
};
use crate::state::CallState;

impl types::Host for CallState {}

impl db::Host for CallState {
    async fn get_chat(&mut self) -> wasmtime::Result<Result<Chat, QueryError>> {
        import!(self, self.shared.backend.chat(&self.cx).await)
    }
    async fn get_workspace(&mut self, id: String) -> wasmtime::Result<Result<Workspace, QueryError>> {
        import!(self, self.shared.backend.workspace(&self.cx, &id).await)
    }
    async fn get_latest_build(&mut self, workspace_id: String) -> wasmtime::Result<Result<Build, QueryError>> {
        import!(self, self.shared.backend.latest_build(&self.cx, &workspace_id).await)
    }
    async fn get_build(&mut self, id: String) -> wasmtime::Result<Result<Build, QueryError>> {
        import!(self, self.shared.backend.build(&self.cx, &id).await)
    }
    async fn get_job(&mut self, id: String) -> wasmtime::Result<Result<Job, QueryError>> {
        import!(self, self.shared.backend.job(&self.cx, &id).await)
    }
    async fn list_build_agents(&mut self, build_id: String) -> wasmtime::Result<Result<Vec<Agent>, QueryError>> {
        import!(self, self.shared.backend.build_agents(&self.cx, &build_id).await)
    }
    async fn get_agent(&mut self, id: String) -> wasmtime::Result<Result<Agent, QueryError>> {
        import!(self, self.shared.backend.agent(&self.cx, &id).await)
    }
    async fn list_templates(&mut self) -> wasmtime::Result<Result<Vec<Template>, QueryError>> {
        import!(self, self.shared.backend.templates(&self.cx).await)
    }
    async fn get_template(&mut self, id: String) -> wasmtime::Result<Result<Template, QueryError>> {
        import!(self, self.shared.backend.template(&self.cx, &id).await)
    }
    async fn get_template_parameters(&mut self, version_id: String) -> wasmtime::Result<Result<Vec<TemplateParameter>, QueryError>> {
        import!(self, self.shared.backend.template_parameters(&self.cx, &version_id).await)
    }
    async fn get_workspace_ttl(&mut self) -> wasmtime::Result<Result<String, QueryError>> {
        import!(self, self.shared.backend.workspace_ttl(&self.cx).await)
    }
    async fn get_template_allowlist(&mut self) -> wasmtime::Result<Result<Vec<String>, QueryError>> {
        import!(self, self.shared.backend.template_allowlist(&self.cx).await)
    }
    async fn bind_chat(&mut self, binding: ChatBinding) -> wasmtime::Result<Result<(), QueryError>> {
        // The backend checks that each id exists and is the owner's; the host
        // first refuses what cannot be an id at all, so no backend ever sees it.
        if let Err(refusal) = check_binding(&binding) {
            return import!(self, Err(refusal));
        }
        import!(self, self.shared.backend.bind_chat(&self.cx, binding).await)
    }
}

impl control::Host for CallState {
    async fn create_workspace(&mut self, request: CreateWorkspaceRequest) -> wasmtime::Result<Result<CreatedWorkspace, ControlError>> {
        import!(self, self.shared.backend.create_workspace(&self.cx, request).await)
    }
    async fn create_build(&mut self, request: CreateBuildRequest) -> wasmtime::Result<Result<Build, ControlError>> {
        import!(self, self.shared.backend.create_build(&self.cx, request).await)
    }
}

impl agent_connect::Host for CallState {
    async fn available(&mut self) -> wasmtime::Result<bool> {
        import!(self, self.shared.backend.can_connect_agents())
    }
    async fn connect(&mut self, agent_id: String, timeout_ms: u64) -> wasmtime::Result<Result<(), String>> {
        let timeout = Duration::from_millis(timeout_ms);
        import!(self, self.shared.backend.connect_agent(&self.cx, &agent_id, timeout).await)
    }
}

/// The longest id a binding may carry; every id the backends make is shorter.
pub const MAX_ID_BYTES: usize = 64;

/// Whether `id` can be an id: 1 to [`MAX_ID_BYTES`] letters, digits, `-` or `_`.
pub fn is_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_BYTES && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_binding(binding: &ChatBinding) -> Result<(), QueryError> {
    let fields = [("workspace_id", &binding.workspace_id), ("build_id", &binding.build_id), ("agent_id", &binding.agent_id)];
    for (field, id) in fields {
        if let Some(id) = id
            && !is_id(id)
        {
            return Err(QueryError::Failed(format!(
                "bind-chat: {field} {:?} is not an id (1 to {MAX_ID_BYTES} letters, digits, '-' or '_')",
                crate::text::clip(id, 80)
            )));
        }
    }
    Ok(())
}
