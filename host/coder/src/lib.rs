//! toolshed-coder: a backend that drives a Coder deployment over its REST
//! API, so the workspace tools create, start and stop real Coder
//! workspaces.
//!
//! Every infra interface is answered from `/api/v2`, with the session token
//! in the `Coder-Session-Token` header of each request; chat bindings stay
//! in toolshed's own store, behind [`ChatStore`]. Calls act for the chat's
//! owner: workspaces are created under `/users/{owner}`, and a row whose
//! owner is not the caller reads as not found even when the token could
//! read it.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # async fn build() -> anyhow::Result<()> {
//! use toolshed_coder::{ClientConfig, CoderBackend, CoderConfig, MemoryChats, SessionToken};
//!
//! let token = SessionToken::from_file("coder.token".as_ref()).map_err(anyhow::Error::msg)?;
//! let config = CoderConfig::new(ClientConfig::new("https://coder.example.com", token));
//! let backend = Arc::new(CoderBackend::new(config, Arc::new(MemoryChats::default())).map_err(anyhow::Error::msg)?);
//! let me = backend.whoami().await?; // checks the URL and the token
//! let runtime = Arc::new(toolshed_runtime::Runtime::builder().capability(toolshed_infra::Infra).build()?);
//! let host = toolshed_runtime::Toolshed::builder(runtime).backend(&backend).build()?;
//! # let _ = (me, host); Ok(()) }
//! ```
//!
//! **Agents.** Over the API there is no tailnet: an agent counts as
//! reachable when Coder reports it `connected`, that is, when Coder's
//! control plane hears its heartbeats. This host never opens a connection
//! to the agent itself, so a network path that only this host lacks goes
//! unnoticed.

#![deny(missing_docs)]

pub mod api;
pub mod client;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use toolshed_infra::{
    Agent, AgentConnect, ApiError, Build, BuildLogs, BuildVersions, Chat, ChatBinding, Control, ControlError, CreateBuildRequest, CreateWorkspaceRequest,
    CreatedWorkspace, Db, InfraProviders, Job, QueryError, Refused, Template, TemplateParameter, Transition, Validation, Workspace, names,
};
use toolshed_runtime::chats::ChatKey;
use toolshed_runtime::{Backend, CallContext, Clock, Providers, SystemClock};

pub use client::{ClientConfig, CoderClient, CoderError, RetryPolicy, SessionToken};

use api::{CoderTemplate, CoderWorkspace, CreateBuild, CreateWorkspace, ParameterValue, RichParameter, User, WorkspaceAgent, WorkspaceBuild};

/// Where chats and their bindings are kept: toolshed's own store, since
/// Coder has no such thing. Chats are keyed by (owner, chat id): another
/// owner's chat of the same id is another chat.
#[async_trait]
pub trait ChatStore: Send + Sync + 'static {
    /// The calling chat of the calling owner.
    async fn chat(&self, cx: &CallContext) -> Result<Chat, QueryError>;
    /// Binds what `binding` gives to the calling chat; absent fields stay.
    /// A store that keeps quotas refuses a new chat past the owner's.
    async fn bind(&self, cx: &CallContext, binding: &ChatBinding) -> Result<(), Refused<QueryError>>;
}

/// Chats in memory, by owner and id: for tests and for embedders that keep
/// no chats.
#[derive(Default)]
pub struct MemoryChats(Mutex<HashMap<ChatKey, Chat>>);

#[async_trait]
impl ChatStore for MemoryChats {
    async fn chat(&self, cx: &CallContext) -> Result<Chat, QueryError> {
        let chats = self.0.lock().unwrap_or_else(|p| p.into_inner());
        Ok(chats.get(&ChatKey::of(cx)).cloned().unwrap_or_else(|| toolshed_infra::unbound_chat(cx)))
    }

    async fn bind(&self, cx: &CallContext, binding: &ChatBinding) -> Result<(), Refused<QueryError>> {
        let current = self.chat(cx).await?;
        let chat = Chat {
            workspace_id: binding.workspace_id.clone().or(current.workspace_id),
            build_id: binding.build_id.clone().or(current.build_id),
            agent_id: binding.agent_id.clone().or(current.agent_id),
            ..current
        };
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(ChatKey::of(cx), chat);
        Ok(())
    }
}

/// How the backend reaches Coder, and the chat settings Coder does not keep.
#[derive(Debug, Clone)]
pub struct CoderConfig {
    /// The deployment and its token.
    pub client: ClientConfig,
    /// The chat workspace TTL, such as "2h"; "0s" for none.
    pub workspace_ttl: String,
    /// Template ids the tools may use; empty allows all.
    pub template_allowlist: Vec<String>,
    /// How long since its last heartbeat an agent still counts as connected.
    pub inactive_disconnect_ms: u64,
}

impl CoderConfig {
    /// A configuration with no TTL and no allowlist.
    pub fn new(client: ClientConfig) -> Self {
        Self { client, workspace_ttl: "0s".into(), template_allowlist: Vec::new(), inactive_disconnect_ms: toolshed_contract::INACTIVE_DISCONNECT_MS }
    }
}

/// At most this many jobs and agents are remembered with their owners;
/// past it the memory starts over, and rows are read again.
const REMEMBERED: usize = 10_000;

/// A backend over one Coder deployment.
pub struct CoderBackend {
    client: CoderClient,
    chats: Arc<dyn ChatStore>,
    clock: Arc<dyn Clock>,
    config: CoderConfig,
    /// job id -> (build id, owner id): Coder reads a job through its build.
    jobs: Mutex<HashMap<String, (String, String)>>,
    /// agent id -> owner id, learned from builds the owner read.
    agents: Mutex<HashMap<String, String>>,
}

impl CoderBackend {
    /// A backend for the deployment `config` names, on the real clock.
    ///
    /// # Errors
    ///
    /// When the URL is not an http(s) URL.
    pub fn new(config: CoderConfig, chats: Arc<dyn ChatStore>) -> Result<Self, String> {
        Self::with_clock(config, chats, Arc::new(SystemClock))
    }

    /// A backend whose agent times and retry pauses follow `clock`, which
    /// must be the host's clock.
    ///
    /// # Errors
    ///
    /// When the URL is not an http(s) URL.
    pub fn with_clock(config: CoderConfig, chats: Arc<dyn ChatStore>, clock: Arc<dyn Clock>) -> Result<Self, String> {
        let client = CoderClient::new(config.client.clone(), clock.clone())?;
        Ok(Self { client, chats, clock, config, jobs: Mutex::default(), agents: Mutex::default() })
    }

    /// The user the token acts as (`GET /api/v2/users/me`): a start-up check
    /// that the URL is a Coder deployment and the token is accepted.
    ///
    /// # Errors
    ///
    /// A [`CoderError`]; [`CoderError::explain`] says what to do.
    pub async fn whoami(&self) -> Result<User, CoderError> {
        self.client.get(&["users", "me"], &[]).await
    }

    /// The HTTP client, for requests this backend does not make.
    pub fn client(&self) -> &CoderClient {
        &self.client
    }

    fn remember_job(&self, build: &WorkspaceBuild) {
        remember(&self.jobs, build.job.id.clone(), (build.id.clone(), build.workspace_owner_id.clone()));
        for agent in build.agents() {
            remember(&self.agents, agent.id.clone(), build.workspace_owner_id.clone());
        }
    }

    async fn owned_workspace(&self, cx: &CallContext, id: &str) -> Result<CoderWorkspace, QueryError> {
        let workspace: CoderWorkspace = self.client.get(&["workspaces", id], &[]).await.map_err(query_error)?;
        // The token may read more than the caller owns; the caller sees
        // only their own.
        if workspace.owner_id != cx.owner_id || workspace.id != id {
            return Err(QueryError::NotFound);
        }
        self.remember_job(&workspace.latest_build);
        Ok(workspace)
    }

    async fn owned_build(&self, cx: &CallContext, id: &str) -> Result<WorkspaceBuild, QueryError> {
        let build: WorkspaceBuild = self.client.get(&["workspacebuilds", id], &[]).await.map_err(query_error)?;
        if build.workspace_owner_id != cx.owner_id || build.id != id {
            return Err(QueryError::NotFound);
        }
        self.remember_job(&build);
        Ok(build)
    }

    async fn coder_template(&self, id: &str) -> Result<CoderTemplate, CoderError> {
        self.client.get(&["templates", id], &[]).await
    }

    fn agent_row(&self, agent: &WorkspaceAgent) -> Agent {
        agent.to_agent(self.clock.now_ms(), self.config.inactive_disconnect_ms)
    }

    /// An agent of the caller's, read from Coder.
    async fn owned_agent(&self, cx: &CallContext, id: &str) -> Result<WorkspaceAgent, QueryError> {
        if lookup(&self.agents, id).as_deref() != Some(cx.owner_id.as_str()) {
            // Not seen in a build of the caller's (or forgotten): look in the
            // build bound to the chat before answering not found.
            let chat = self.chats.chat(cx).await?;
            let Some(build_id) = chat.build_id else { return Err(QueryError::NotFound) };
            let build = self.owned_build(cx, &build_id).await?;
            if !build.agents().any(|a| a.id == id) {
                return Err(QueryError::NotFound);
            }
        }
        let agent: WorkspaceAgent = self.client.get(&["workspaceagents", id], &[]).await.map_err(query_error)?;
        if agent.id != id {
            return Err(QueryError::NotFound);
        }
        Ok(agent)
    }
}

fn remember<V>(map: &Mutex<HashMap<String, V>>, key: String, value: V) {
    if key.is_empty() {
        return;
    }
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    if map.len() >= REMEMBERED && !map.contains_key(&key) {
        map.clear();
    }
    map.insert(key, value);
}

fn lookup<V: Clone>(map: &Mutex<HashMap<String, V>>, key: &str) -> Option<V> {
    map.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
}

/// A read that failed: a 404 or 410, or an id that is not one, is not
/// found; anything else (a 403 included) says what happened.
fn query_error(e: CoderError) -> QueryError {
    match e {
        CoderError::NotAnId { .. } => QueryError::NotFound,
        _ if matches!(e.status(), Some(404 | 410)) => QueryError::NotFound,
        _ => QueryError::Failed(e.for_caller()),
    }
}

/// A write that failed: Coder's refusals keep their status, message, detail
/// and validations, which the tools recover from; the rest say what
/// happened.
///
/// What reaches the caller names no URL and none of a server error's text:
/// a 401, 403 or 5xx keeps its status and a sentence of ours (Coder's own
/// words go to the log); a 4xx keeps Coder's message, detail and
/// validations, which are about the request and what the model can fix.
fn control_error(e: CoderError) -> ControlError {
    match e {
        CoderError::Status { status, ref body, .. } => {
            let (message, detail) = match status {
                401 | 403 => (e.for_caller(), String::new()),
                500.. => (e.for_caller(), String::new()),
                _ => (body.message.clone(), body.detail.clone()),
            };
            ControlError::Api(ApiError {
                status,
                message,
                detail,
                validations: body.validations.iter().map(|v| Validation { field: v.field.clone(), detail: v.detail.clone() }).collect(),
            })
        }
        other => ControlError::Failed(other.for_caller()),
    }
}

/// Whether `id` is a UUID written as Coder writes user ids: lower-case
/// hex in groups of 8-4-4-4-12.
fn is_user_id(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

fn values(parameters: &[(String, String)]) -> Vec<ParameterValue> {
    parameters.iter().map(|(name, value)| ParameterValue { name: name.clone(), value: value.clone() }).collect()
}

fn malformed(reason: String) -> QueryError {
    QueryError::Failed(format!("Coder's answer could not be read: {reason}"))
}

/// A host over Coder gets the infra interfaces from it; chats, tasks and
/// registries stay with whatever backend keeps them.
impl Backend for CoderBackend {
    fn provide(self: &Arc<Self>, providers: &mut Providers) {
        providers.insert(InfraProviders::new(self.clone()));
    }
}

#[async_trait]
impl Db for CoderBackend {
    async fn chat(&self, cx: &CallContext) -> Result<Chat, QueryError> {
        self.chats.chat(cx).await
    }

    async fn workspace(&self, cx: &CallContext, id: &str) -> Result<Workspace, QueryError> {
        Ok(self.owned_workspace(cx, id).await?.to_workspace())
    }

    async fn latest_build(&self, cx: &CallContext, workspace_id: &str) -> Result<Build, QueryError> {
        let workspace = self.owned_workspace(cx, workspace_id).await?;
        if workspace.latest_build.id.is_empty() {
            return Err(QueryError::NotFound);
        }
        workspace.latest_build.to_build().map_err(malformed)
    }

    async fn build(&self, cx: &CallContext, id: &str) -> Result<Build, QueryError> {
        self.owned_build(cx, id).await?.to_build().map_err(malformed)
    }

    async fn job(&self, cx: &CallContext, id: &str) -> Result<Job, QueryError> {
        // Coder serves a workspace build's job with its build.
        let Some((build_id, owner)) = lookup(&self.jobs, id) else { return Err(QueryError::NotFound) };
        if owner != cx.owner_id {
            return Err(QueryError::NotFound);
        }
        let build = self.owned_build(cx, &build_id).await?;
        if build.job.id != id {
            return Err(QueryError::NotFound);
        }
        Ok(build.to_job())
    }

    async fn build_agents(&self, cx: &CallContext, build_id: &str) -> Result<Vec<Agent>, QueryError> {
        let build = self.owned_build(cx, build_id).await?;
        Ok(build.agents().map(|a| self.agent_row(a)).collect())
    }

    async fn agent(&self, cx: &CallContext, id: &str) -> Result<Agent, QueryError> {
        Ok(self.agent_row(&self.owned_agent(cx, id).await?))
    }

    async fn templates(&self, cx: &CallContext) -> Result<Vec<Template>, QueryError> {
        let filter = format!("organization:{}", cx.organization_id);
        let templates: Vec<CoderTemplate> = self.client.get(&["templates"], &[("q", &filter)]).await.map_err(query_error)?;
        Ok(templates.iter().map(CoderTemplate::to_template).collect())
    }

    async fn template(&self, _cx: &CallContext, id: &str) -> Result<Template, QueryError> {
        let template = self.coder_template(id).await.map_err(query_error)?;
        if template.id != id {
            return Err(QueryError::NotFound);
        }
        Ok(template.to_template())
    }

    async fn template_parameters(&self, _cx: &CallContext, version_id: &str) -> Result<Vec<TemplateParameter>, QueryError> {
        let parameters: Vec<RichParameter> =
            self.client.get(&["templateversions", version_id, "rich-parameters"], &[]).await.map_err(query_error)?;
        Ok(parameters.iter().map(RichParameter::to_parameter).collect())
    }

    async fn workspace_ttl(&self, _cx: &CallContext) -> Result<String, QueryError> {
        Ok(self.config.workspace_ttl.clone())
    }

    async fn template_allowlist(&self, _cx: &CallContext) -> Result<Vec<String>, QueryError> {
        Ok(self.config.template_allowlist.clone())
    }

    async fn bind_chat(&self, cx: &CallContext, binding: ChatBinding) -> Result<(), Refused<QueryError>> {
        // Bind only what Coder has and the caller owns.
        toolshed_infra::check_binding_owned(self, cx, &binding).await?;
        self.chats.bind(cx, &binding).await
    }
}

#[async_trait]
impl Control for CoderBackend {
    async fn create_workspace(&self, cx: &CallContext, request: CreateWorkspaceRequest) -> Result<CreatedWorkspace, Refused<ControlError>> {
        // Checked before Coder is asked, since a create cannot be undone:
        // the owner must be a user id (Coder reads `/users/{user}` as a
        // user name or `me` too, which could name another user, such as
        // the token's own), and the template must be on the allow-list.
        if !is_user_id(&cx.owner_id) {
            tracing::warn!(owner = %cx.owner_id, "refused a create for an owner that is not a Coder user id");
            return Err(ControlError::Api(ApiError {
                status: 403,
                message: "this caller cannot create Coder workspaces: its identity is not a Coder user id".into(),
                detail: String::new(),
                validations: vec![],
            })
            .into());
        }
        toolshed_infra::check_template_allowed(self, cx, &request.template_id).await?;
        let body = CreateWorkspace {
            template_id: request.template_id,
            name: request.name,
            rich_parameter_values: values(&request.parameters),
            ttl_ms: request.ttl_ms,
        };
        let workspace: CoderWorkspace = self.client.post(&["users", &cx.owner_id, "workspaces"], &body).await.map_err(control_error)?;
        if workspace.owner_id != cx.owner_id {
            tracing::error!(workspace = %workspace.id, owner = %workspace.owner_id, caller = %cx.owner_id, "Coder made a workspace for another owner than the caller");
            return Err(ControlError::Failed(format!("Coder made workspace {} for another owner", workspace.id)).into());
        }
        self.remember_job(&workspace.latest_build);
        let build = workspace.latest_build.to_build().map_err(ControlError::Failed)?;
        Ok(CreatedWorkspace { workspace: workspace.to_workspace(), build })
    }

    async fn create_build(&self, cx: &CallContext, request: CreateBuildRequest) -> Result<Build, Refused<ControlError>> {
        let not_found = |_| ControlError::Api(ApiError { status: 404, message: "workspace not found".into(), detail: String::new(), validations: vec![] });
        let workspace = self.owned_workspace(cx, &request.workspace_id).await.map_err(not_found)?;
        // Starting moves the workspace to the active version when its
        // template requires that, as Coder's own start does; otherwise Coder
        // keeps the version of the workspace's last build.
        let template_version_id = match request.transition {
            Transition::Start => {
                let template = self.coder_template(&workspace.template_id).await.map_err(control_error)?;
                template.require_active_version.then_some(template.active_version_id)
            }
            _ => None,
        };
        let body = CreateBuild {
            transition: names::transition_name(request.transition).to_string(),
            rich_parameter_values: values(&request.parameters),
            template_version_id,
        };
        let build: WorkspaceBuild = self.client.post(&["workspaces", &workspace.id, "builds"], &body).await.map_err(control_error)?;
        if build.workspace_id != workspace.id {
            return Err(ControlError::Failed(format!("Coder answered a build of another workspace ({})", build.workspace_id)).into());
        }
        self.remember_job(&WorkspaceBuild { workspace_owner_id: cx.owner_id.clone(), ..build.clone() });
        Ok(build.to_build().map_err(ControlError::Failed)?)
    }
}

#[async_trait]
impl AgentConnect for CoderBackend {
    fn available(&self) -> bool {
        true
    }

    /// Reachable means Coder reports the agent `connected`; no connection
    /// is made from this host (see the crate's docs).
    async fn connect(&self, cx: &CallContext, agent_id: &str, timeout: Duration) -> Result<(), String> {
        let read = self.owned_agent(cx, agent_id);
        let agent = match tokio::time::timeout(timeout, read).await {
            Ok(Ok(agent)) => agent,
            Ok(Err(QueryError::NotFound)) => return Err("agent not found".into()),
            Ok(Err(QueryError::Failed(reason))) => return Err(reason),
            Err(_) => return Err(format!("Coder did not report the agent's status within {} s", timeout.as_secs_f64())),
        };
        match agent.status.as_str() {
            "connected" => Ok(()),
            status => Err(format!("Coder reports agent {} as {status}, not connected", agent.name)),
        }
    }
}

#[async_trait]
impl BuildVersions for CoderBackend {
    /// Coder's own rule: a start builds the active version when the
    /// workspace's template sets `require_active_version`.
    async fn start_uses_active_version(&self, cx: &CallContext, workspace_id: &str) -> bool {
        let Ok(workspace) = self.owned_workspace(cx, workspace_id).await else { return false };
        self.coder_template(&workspace.template_id).await.is_ok_and(|t| t.require_active_version)
    }
}

#[async_trait]
impl BuildLogs for CoderBackend {
    /// Build output is not read over the API: heartbeats go without it.
    async fn last_line(&self, _cx: &CallContext, _build_id: &str) -> Option<String> {
        None
    }
}
