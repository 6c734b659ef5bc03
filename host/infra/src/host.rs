//! The host side of db, control and agent-connect: each call is accounted
//! by the runtime, then answered by the host's providers.

use std::time::Duration;

use toolshed_runtime::quota::settle;
use toolshed_runtime::wasmtime;

use crate::bindings::toolshed::builds::{logs, versions};
use crate::bindings::toolshed::infra::{agent_connect, control, db, types};
use crate::{
    Agent, Build, Chat, ChatBinding, ControlError, CreateBuildRequest, CreateWorkspaceRequest, CreatedWorkspace, InfraProviders,
    InfraView, Job, QueryError, Template, TemplateParameter, Workspace,
};

impl InfraView<'_> {
    fn providers(&self) -> wasmtime::Result<InfraProviders> {
        // A plugin is only linked with infra when its policy grants it, and
        // a host whose policy grants it does not start without a provider
        // (`ToolshedBuilder::build`); this guards a host built otherwise.
        self.providers.cloned().ok_or_else(|| wasmtime::format_err!("this host grants the infra interfaces but provides no backend for them"))
    }
}

impl types::Host for InfraView<'_> {}

impl db::Host for InfraView<'_> {
    async fn get_chat(&mut self) -> wasmtime::Result<Result<Chat, QueryError>> {
        let p = self.providers()?;
        self.call.import(async |cx| p.db.chat(cx).await).await
    }
    async fn get_workspace(&mut self, id: String) -> wasmtime::Result<Result<Workspace, QueryError>> {
        let p = self.providers()?;
        self.call.import(async |cx| p.db.workspace(cx, &id).await).await
    }
    async fn get_latest_build(&mut self, workspace_id: String) -> wasmtime::Result<Result<Build, QueryError>> {
        let p = self.providers()?;
        self.call.import(async |cx| p.db.latest_build(cx, &workspace_id).await).await
    }
    async fn get_build(&mut self, id: String) -> wasmtime::Result<Result<Build, QueryError>> {
        let p = self.providers()?;
        self.call.import(async |cx| p.db.build(cx, &id).await).await
    }
    async fn get_job(&mut self, id: String) -> wasmtime::Result<Result<Job, QueryError>> {
        let p = self.providers()?;
        self.call.import(async |cx| p.db.job(cx, &id).await).await
    }
    async fn list_build_agents(&mut self, build_id: String) -> wasmtime::Result<Result<Vec<Agent>, QueryError>> {
        let p = self.providers()?;
        self.call.import(async |cx| p.db.build_agents(cx, &build_id).await).await
    }
    async fn get_agent(&mut self, id: String) -> wasmtime::Result<Result<Agent, QueryError>> {
        let p = self.providers()?;
        self.call.import(async |cx| p.db.agent(cx, &id).await).await
    }
    async fn list_templates(&mut self) -> wasmtime::Result<Result<Vec<Template>, QueryError>> {
        let p = self.providers()?;
        self.call.import(async |cx| p.db.templates(cx).await).await
    }
    async fn get_template(&mut self, id: String) -> wasmtime::Result<Result<Template, QueryError>> {
        let p = self.providers()?;
        self.call.import(async |cx| p.db.template(cx, &id).await).await
    }
    async fn get_template_parameters(&mut self, version_id: String) -> wasmtime::Result<Result<Vec<TemplateParameter>, QueryError>> {
        let p = self.providers()?;
        self.call.import(async |cx| p.db.template_parameters(cx, &version_id).await).await
    }
    async fn get_workspace_ttl(&mut self) -> wasmtime::Result<Result<String, QueryError>> {
        let p = self.providers()?;
        self.call.import(async |cx| p.db.workspace_ttl(cx).await).await
    }
    async fn get_template_allowlist(&mut self) -> wasmtime::Result<Result<Vec<String>, QueryError>> {
        let p = self.providers()?;
        self.call.import(async |cx| p.db.template_allowlist(cx).await).await
    }
    async fn bind_chat(&mut self, binding: ChatBinding) -> wasmtime::Result<Result<(), QueryError>> {
        let p = self.providers()?;
        // The backend checks that each id exists and is the owner's; the host
        // first refuses what cannot be an id at all, so no backend ever sees it.
        if let Err(refusal) = check_binding(&binding) {
            return self.call.import(async |_| Err(refusal)).await;
        }
        settle(self.call.import(async |cx| p.db.bind_chat(cx, binding).await).await?)
    }
}

impl control::Host for InfraView<'_> {
    async fn create_workspace(&mut self, request: CreateWorkspaceRequest) -> wasmtime::Result<Result<CreatedWorkspace, ControlError>> {
        let p = self.providers()?;
        settle(self.call.import(async |cx| p.control.create_workspace(cx, request).await).await?)
    }
    async fn create_build(&mut self, request: CreateBuildRequest) -> wasmtime::Result<Result<Build, ControlError>> {
        let p = self.providers()?;
        settle(self.call.import(async |cx| p.control.create_build(cx, request).await).await?)
    }
}

impl agent_connect::Host for InfraView<'_> {
    async fn available(&mut self) -> wasmtime::Result<bool> {
        let p = self.providers()?;
        self.call.import(async |_| p.agents.available()).await
    }
    async fn connect(&mut self, agent_id: String, timeout_ms: u64) -> wasmtime::Result<Result<(), String>> {
        let p = self.providers()?;
        let timeout = Duration::from_millis(timeout_ms);
        self.call.import(async |cx| p.agents.connect(cx, &agent_id, timeout).await).await
    }
}

impl logs::Host for InfraView<'_> {
    async fn last_line(&mut self, build_id: String) -> wasmtime::Result<Option<String>> {
        let p = self.providers()?;
        if !is_id(&build_id) {
            return self.call.import(async |_| None).await;
        }
        // Cut here too: a backend's line becomes the guest's progress.
        self.call.import(async |cx| p.logs.last_line(cx, &build_id).await.map(|l| toolshed_runtime::text::clip(&l, 1024))).await
    }

    async fn output(&mut self, build_id: String, max_bytes: u32) -> wasmtime::Result<Option<String>> {
        let p = self.providers()?;
        if !is_id(&build_id) {
            return self.call.import(async |_| None).await;
        }
        let max = max_bytes.min(MAX_OUTPUT_BYTES) as usize;
        self.call.import(async |cx| p.logs.output(cx, &build_id, max).await.map(|text| tail(&text, max))).await
    }
}

/// The last `max` bytes of `text` at most, cut at a character boundary.
fn tail(text: &str, max: usize) -> String {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

/// The most of a build's output one read returns.
pub const MAX_OUTPUT_BYTES: u32 = 64 << 10;

impl versions::Host for InfraView<'_> {
    async fn start_uses_active_version(&mut self, workspace_id: String) -> wasmtime::Result<bool> {
        let p = self.providers()?;
        if !is_id(&workspace_id) {
            return self.call.import(async |_| false).await;
        }
        self.call.import(async |cx| p.versions.start_uses_active_version(cx, &workspace_id).await).await
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
                toolshed_runtime::text::clip(id, 80)
            )));
        }
    }
    Ok(())
}
