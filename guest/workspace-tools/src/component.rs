//! The thin adapter between the WIT bindings and the tool logic.

use crate::capabilities::Capabilities;
use crate::wit::exports::toolshed::tools::workspace_tools::{self as api, Guest};
use crate::wit::toolshed::infra::{agent_connect, control, db, types};
use crate::wit::toolshed::builds::{logs, versions};
use crate::wit::exports::toolshed::tools::{prompts, resources};
use crate::wit::toolshed::runtime::{ask, call, clock, content, events, locks, park};

/// The host as the tool logic sees it inside the component.
struct ComponentHost;

impl Capabilities for ComponentHost {
    type Guard = locks::LockGuard;

    fn now(&self) -> u64 {
        clock::now()
    }
    fn sleep(&self, ms: u64) {
        clock::sleep(ms)
    }
    fn pause(&self, ms: u64, state: &[u8]) {
        park::park(ms, state);
        // The host ends the run inside park; it never returns here.
        unreachable!("park returned");
    }
    fn resumed(&self) -> Option<Vec<u8>> {
        park::resumed()
    }
    fn lock(&self, key: &str) -> Result<Self::Guard, String> {
        locks::acquire(key).map_err(|e| format!("{e:?}"))
    }
    fn chat_updated(&self) {
        events::chat_updated()
    }
    fn progress(&self, message: &str) {
        events::progress(message)
    }
    fn random(&self) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        // RandomState draws its keys from WASI random.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(clock::now());
        hasher.finish()
    }
    fn wait_budget(&self) -> Option<u64> {
        call::wait_budget()
    }
    fn build_log_line(&self, build_id: &str) -> Option<String> {
        logs::last_line(build_id)
    }
    fn build_output(&self, build_id: &str) -> Option<String> {
        logs::output(build_id, crate::output::MAX_BYTES)
    }
    fn chat(&self) -> Result<types::Chat, types::QueryError> {
        db::get_chat()
    }
    fn workspace(&self, id: &str) -> Result<types::Workspace, types::QueryError> {
        db::get_workspace(id)
    }
    fn latest_build(&self, workspace_id: &str) -> Result<types::Build, types::QueryError> {
        db::get_latest_build(workspace_id)
    }
    fn build(&self, id: &str) -> Result<types::Build, types::QueryError> {
        db::get_build(id)
    }
    fn job(&self, id: &str) -> Result<types::Job, types::QueryError> {
        db::get_job(id)
    }
    fn build_agents(&self, build_id: &str) -> Result<Vec<types::Agent>, types::QueryError> {
        db::list_build_agents(build_id)
    }
    fn agent(&self, id: &str) -> Result<types::Agent, types::QueryError> {
        db::get_agent(id)
    }
    fn templates(&self) -> Result<Vec<types::Template>, types::QueryError> {
        db::list_templates()
    }
    fn template(&self, id: &str) -> Result<types::Template, types::QueryError> {
        db::get_template(id)
    }
    fn template_parameters(&self, version_id: &str) -> Result<Vec<types::TemplateParameter>, types::QueryError> {
        db::get_template_parameters(version_id)
    }
    fn workspace_ttl(&self) -> Result<String, types::QueryError> {
        db::get_workspace_ttl()
    }
    fn template_allowlist(&self) -> Result<Vec<String>, types::QueryError> {
        db::get_template_allowlist()
    }
    fn bind_chat(&self, binding: &db::ChatBinding) -> Result<(), types::QueryError> {
        db::bind_chat(binding)
    }
    fn create_workspace(&self, request: &control::CreateWorkspaceRequest) -> Result<control::CreatedWorkspace, types::ControlError> {
        control::create_workspace(request)
    }
    fn create_build(&self, request: &control::CreateBuildRequest) -> Result<types::Build, types::ControlError> {
        control::create_build(request)
    }
    fn start_uses_active_version(&self, workspace_id: &str) -> bool {
        versions::start_uses_active_version(workspace_id)
    }
    fn can_ask(&self) -> bool {
        ask::can_ask()
    }
    fn ask(&self, message: &str, form: &str) -> crate::capabilities::Asked {
        use crate::capabilities::Asked;
        match ask::ask(message, form) {
            Ok(ask::Answer::Accept(json)) => match serde_json::from_str(&json) {
                Ok(serde_json::Value::Object(fields)) => Asked::Answer(fields),
                _ => Asked::Unavailable,
            },
            Ok(ask::Answer::Decline | ask::Answer::Cancel) => Asked::Declined,
            Err(_) => Asked::Unavailable,
        }
    }
    fn can_connect(&self) -> bool {
        agent_connect::available()
    }
    fn connect(&self, agent_id: &str, timeout_ms: u64) -> Result<(), String> {
        agent_connect::connect(agent_id, timeout_ms)
    }
}

struct Plugin;

impl Guest for Plugin {
    fn list_templates(args: api::ListTemplatesArgs) -> Result<api::ListTemplatesResult, api::ToolError> {
        crate::list_templates(&ComponentHost, args)
    }
    fn read_template(args: api::ReadTemplateArgs) -> Result<api::ReadTemplateResult, api::ToolError> {
        crate::read_template(&ComponentHost, args)
    }
    fn create_workspace(args: api::CreateWorkspaceArgs) -> Result<api::CreateWorkspaceResult, api::ToolError> {
        let result = crate::create_workspace(&ComponentHost, args)?;
        link_output(result.build_id.as_deref());
        Ok(result)
    }
    fn start_workspace(args: api::StartWorkspaceArgs) -> Result<api::StartWorkspaceResult, api::ToolError> {
        let result = crate::start_workspace(&ComponentHost, args)?;
        link_output(result.build_id.as_deref());
        Ok(result)
    }
    fn stop_workspace() -> Result<api::StopWorkspaceResult, api::ToolError> {
        let result = crate::stop_workspace(&ComponentHost)?;
        link_output(result.build_id.as_deref());
        Ok(result)
    }
}

/// Links the answer to the output of the build it made or waited on, a
/// resource its owner can read. A refused link loses only the link.
fn link_output(build_id: Option<&str>) {
    if let Some(build_id) = build_id {
        let link = content::Link {
            uri: crate::output::uri(build_id),
            name: format!("build {build_id} output"),
            description: Some("What the build printed: read it to see why a build failed.".into()),
            mime_type: Some("text/plain".into()),
        };
        let _ = content::add(&content::Block::ResourceLink(link));
    }
}

impl crate::wit::exports::toolshed::tools::resources::Guest for Plugin {
    fn list_resources() -> resources::Listing {
        let template = resources::ResourceTemplate {
            uri_template: crate::output::URI_TEMPLATE.into(),
            name: "build-output".into(),
            title: Some("Build output".into()),
            description: Some("What one of your builds printed; create, start and stop answers link to theirs.".into()),
            mime_type: Some("text/plain".into()),
        };
        resources::Listing { resources: Vec::new(), templates: vec![template] }
    }

    fn read_resource(uri: String) -> Result<resources::ReadAnswer, api::ToolError> {
        let text = crate::output::read(&ComponentHost, &uri)?;
        Ok(resources::ReadAnswer { contents: vec![resources::Contents { uri, mime_type: Some("text/plain".into()), body: content::Body::Text(text) }] })
    }
}

impl crate::wit::exports::toolshed::tools::prompts::Guest for Plugin {
    fn list_prompts() -> prompts::PromptListing {
        let template = prompts::PromptArgument {
            name: "template".into(),
            description: Some("The name of the template to use, if the user named one.".into()),
            required: false,
        };
        let prompt = prompts::Prompt {
            name: crate::guide::NAME.into(),
            title: Some("Provision a workspace".into()),
            description: Some(crate::guide::DESCRIPTION.into()),
            arguments: vec![template],
        };
        prompts::PromptListing { prompts: vec![prompt] }
    }

    fn get_prompt(name: String, arguments: Vec<(String, String)>) -> Result<prompts::PromptAnswer, api::ToolError> {
        if name != crate::guide::NAME {
            return Err(toolshed_guest::error(
                toolshed_guest::types::ErrorCategory::FileNotFound,
                "PROMPT_NOT_FOUND",
                format!("no prompt named {name}; the workspace tools offer {}", crate::guide::NAME),
            ));
        }
        let template = arguments.iter().find(|(k, _)| k == "template").map(|(_, v)| v.as_str());
        let message = prompts::Message { role: prompts::Role::User, content: content::Block::Text(crate::guide::text(template)) };
        Ok(prompts::PromptAnswer { description: Some(crate::guide::DESCRIPTION.into()), messages: vec![message] })
    }
}

crate::wit::export!(Plugin with_types_in crate::wit);
