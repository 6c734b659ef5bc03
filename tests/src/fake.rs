//! A scripted, in-memory [`Backend`] on virtual time that records every call.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use toolshed_infra::{
    Agent, AgentConnect, ApiError, BuildLogs, BuildVersions, Build, Chat, ChatBinding, Control, ControlError, CreateBuildRequest, CreateWorkspaceRequest,
    CreatedWorkspace, Db, InfraProviders, Job, QueryError, Refused, Template, TemplateParameter, Transition, Validation, Workspace,
};
use toolshed_platform::{PlatformError, PlatformProviders, ProvisionRequest, Registry, Task};
use toolshed_runtime::chats::ChatKey;
use toolshed_runtime::{Backend, CallContext, ChatDirectory, ChatEvents, ChatRefused, Clock, Providers};

use crate::ids;
use crate::record::{Attempt, Call, ReadKind, Recorder};
use crate::script::{AgentSpec, BuildPlan, ConnectScript, Heartbeat, JobScript, TaskScript};

/// How long a connection stays counted as connected without a heartbeat.
pub const INACTIVE_DISCONNECT_MS: u64 = toolshed_contract::INACTIVE_DISCONNECT_MS;

struct BuildRow {
    build: Build,
    created_at: u64,
    job: JobScript,
    agents: Vec<(Agent, AgentSpec)>,
    parameters: Vec<(String, String)>,
}

struct WorkspaceRow {
    workspace: Workspace,
    owner_id: String,
}

#[derive(Default)]
struct World {
    /// Chats by (owner, chat id), as a real store keys them.
    chats: HashMap<ChatKey, Chat>,
    workspaces: Vec<WorkspaceRow>,
    builds: Vec<BuildRow>,
    templates: Vec<Template>,
    parameters: HashMap<String, Vec<TemplateParameter>>,
    ttl: Option<Result<String, QueryError>>,
    allowlist: Vec<String>,
    plans: VecDeque<BuildPlan>,
    default_plan: BuildPlan,
    create_errors: VecDeque<ControlError>,
    build_errors: VecDeque<ControlError>,
    connect_attempts: HashMap<String, u32>,
    can_connect: bool,
    registry_plans: VecDeque<TaskScript>,
    provision_errors: VecDeque<PlatformError>,
    poll_errors: VecDeque<PlatformError>,
    tasks: HashMap<String, (u64, TaskScript, String, String)>,
    /// The organizations each owner belongs to: the templates they can see.
    memberships: HashMap<String, Vec<String>>,
    /// The template each version belongs to.
    versions: HashMap<String, String>,
    /// The templates whose starts build the active version.
    require_active: Vec<String>,
    /// Errors the next job reads answer with, in order.
    job_read_errors: VecDeque<QueryError>,
    /// Errors the next agent reads answer with, in order.
    agent_read_errors: VecDeque<QueryError>,
}

/// The fake backend. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct FakeBackend {
    world: Arc<Mutex<World>>,
    clock: Arc<dyn Clock>,
    recorder: Recorder,
}

impl FakeBackend {
    /// An empty backend on `clock`, able to connect to agents.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        let memberships = HashMap::from([(ids::OWNER.to_string(), vec![ids::ORG.to_string(), ids::OTHER_ORG.to_string()])]);
        let world = World { can_connect: true, ttl: Some(Ok("0s".into())), memberships, ..World::default() };
        Self { world: Arc::new(Mutex::new(world)), clock, recorder: Recorder::default() }
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record of every call plugins made.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// The current virtual time in milliseconds.
    pub fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Adds a template of `organization_id` with an active version and returns it.
    pub fn add_template(&self, name: &str, organization_id: &str, active_developers: u32) -> Template {
        let template = Template {
            id: ids::fresh(),
            name: name.to_string(),
            display_name: String::new(),
            description: String::new(),
            organization_id: organization_id.to_string(),
            active_version_id: ids::fresh(),
            deprecated: false,
            deleted: false,
            active_developers,
        };
        let mut world = self.world();
        world.versions.insert(template.active_version_id.clone(), template.id.clone());
        world.templates.push(template.clone());
        template
    }

    /// Makes `owner_id` a member of exactly `organizations`: the templates
    /// of other organizations are invisible to them, as in a real store.
    pub fn set_memberships(&self, owner_id: &str, organizations: &[&str]) {
        self.world().memberships.insert(owner_id.to_string(), organizations.iter().map(|o| o.to_string()).collect());
    }

    /// Changes a template in place.
    pub fn edit_template(&self, id: &str, edit: impl FnOnce(&mut Template)) {
        if let Some(t) = self.world().templates.iter_mut().find(|t| t.id == id) {
            edit(t);
        }
    }

    /// Makes starts of `template_id`'s workspaces build its active version
    /// (`required`), or the version of the workspace's last build (the
    /// default, as in Coder), as a template's `require_active_version` does.
    pub fn require_active_version(&self, template_id: &str, required: bool) {
        let mut world = self.world();
        world.require_active.retain(|t| t != template_id);
        if required {
            world.require_active.push(template_id.to_string());
        }
    }

    /// Sets the parameters of template version `version_id`.
    pub fn set_parameters(&self, version_id: &str, parameters: Vec<TemplateParameter>) {
        self.world().parameters.insert(version_id.to_string(), parameters);
    }

    /// Publishes a new active version of a template and returns its id.
    pub fn new_template_version(&self, template_id: &str, parameters: Vec<TemplateParameter>) -> String {
        let version = ids::fresh();
        self.world().versions.insert(version.clone(), template_id.to_string());
        self.set_parameters(&version, parameters);
        self.edit_template(template_id, |t| t.active_version_id = version.clone());
        version
    }

    /// Sets the chat workspace TTL setting, or makes it unreadable with `Err`.
    pub fn set_ttl(&self, ttl: Result<&str, QueryError>) {
        self.world().ttl = Some(ttl.map(str::to_string));
    }

    /// Sets the template allowlist (empty allows all).
    pub fn set_allowlist(&self, ids: &[&str]) {
        self.world().allowlist = ids.iter().map(|s| s.to_string()).collect();
    }

    /// Whether agents can be connected to at all.
    pub fn set_can_connect(&self, can: bool) {
        self.world().can_connect = can;
    }

    /// Sets what every build does unless a plan is queued.
    pub fn set_default_plan(&self, plan: BuildPlan) {
        self.world().default_plan = plan;
    }

    /// Queues the plan of the next build.
    pub fn push_plan(&self, plan: BuildPlan) {
        self.world().plans.push_back(plan);
    }

    /// Makes the next create-workspace request fail with `error`.
    pub fn fail_next_create(&self, error: ControlError) {
        self.world().create_errors.push_back(error);
    }

    /// Makes the next create-build request fail with `error`.
    pub fn fail_next_build(&self, error: ControlError) {
        self.world().build_errors.push_back(error);
    }

    /// Queues how the next registry provisioning task goes (by default it
    /// completes after nine seconds).
    pub fn push_registry_plan(&self, script: TaskScript) {
        self.world().registry_plans.push_back(script);
    }

    /// Makes the next start of provisioning fail with `error`.
    pub fn fail_next_provision(&self, error: PlatformError) {
        self.world().provision_errors.push_back(error);
    }

    /// Makes the next read of a job (db.get-job) fail with `error`.
    pub fn fail_next_job_read(&self, error: QueryError) {
        self.world().job_read_errors.push_back(error);
    }

    /// Makes the next read of an agent (db.get-agent, how startup scripts
    /// are watched) fail with `error`.
    pub fn fail_next_agent_read(&self, error: QueryError) {
        self.world().agent_read_errors.push_back(error);
    }

    /// Makes the next task poll fail with `error`.
    pub fn fail_next_poll(&self, error: PlatformError) {
        self.world().poll_errors.push_back(error);
    }

    /// Adds a workspace of the default owner built from `template` with one
    /// build following `plan` (transition `transition`), binds it to the
    /// default chat, and returns (workspace, build).
    pub fn add_workspace(&self, template: &Template, transition: Transition, plan: BuildPlan) -> (Workspace, Build) {
        let workspace = Workspace {
            id: ids::fresh(),
            name: format!("ws-{}", &ids::fresh()[30..]),
            owner_name: ids::OWNER_NAME.into(),
            template_id: template.id.clone(),
            deleted: false,
        };
        let mut world = self.world();
        world.workspaces.push(WorkspaceRow { workspace: workspace.clone(), owner_id: ids::OWNER.into() });
        let build = insert_build(&mut world, self.clock.now_ms(), &workspace.id, transition, Some(template.active_version_id.clone()), plan, Vec::new());
        let chat = chat_row(&mut world, &default_context());
        chat.workspace_id = Some(workspace.id.clone());
        chat.build_id = Some(build.id.clone());
        (workspace, build)
    }

    /// Adds a build to an existing workspace, as if started elsewhere.
    pub fn add_build(&self, workspace_id: &str, transition: Transition, version: Option<String>, plan: BuildPlan) -> Build {
        let mut world = self.world();
        insert_build(&mut world, self.clock.now_ms(), workspace_id, transition, version, plan, Vec::new())
    }

    /// Gives a workspace to another owner.
    pub fn reassign_workspace(&self, id: &str, owner_id: &str) {
        if let Some(row) = self.world().workspaces.iter_mut().find(|w| w.workspace.id == id) {
            row.owner_id = owner_id.to_string();
        }
    }

    /// Marks a workspace deleted.
    pub fn delete_workspace(&self, id: &str) {
        if let Some(row) = self.world().workspaces.iter_mut().find(|w| w.workspace.id == id) {
            row.workspace.deleted = true;
        }
    }

    /// Binds a workspace to a chat, as another tool would have.
    pub fn bind(&self, cx: &CallContext, workspace_id: &str) {
        let mut world = self.world();
        chat_row(&mut world, cx).workspace_id = Some(workspace_id.to_string());
    }

    /// The chat as the backend stores it.
    pub fn chat(&self, cx: &CallContext) -> Chat {
        chat_row(&mut self.world(), cx).clone()
    }

    /// The workspaces of all owners that are not deleted.
    pub fn live_workspaces(&self) -> Vec<Workspace> {
        self.world().workspaces.iter().filter(|w| !w.workspace.deleted).map(|w| w.workspace.clone()).collect()
    }

    /// A build by id.
    pub fn build_by_id(&self, id: &str) -> Option<Build> {
        self.world().builds.iter().find(|b| b.build.id == id).map(|b| b.build.clone())
    }

    /// When build `id` was created, in ms since the epoch on the virtual clock.
    pub fn build_created_at(&self, id: &str) -> Option<u64> {
        self.world().builds.iter().find(|b| b.build.id == id).map(|b| b.created_at)
    }

    /// The name of an agent, by id.
    pub fn agent_name(&self, id: &str) -> Option<String> {
        self.world().builds.iter().flat_map(|b| b.agents.iter()).find(|(a, _)| a.id == id).map(|(a, _)| a.name.clone())
    }

    fn sees_template(world: &World, cx: &CallContext, template: &Template) -> bool {
        world.memberships.get(&cx.owner_id).is_some_and(|orgs| orgs.contains(&template.organization_id))
    }

    fn owns_workspace(world: &World, cx: &CallContext, workspace_id: &str) -> bool {
        world.workspaces.iter().any(|w| w.workspace.id == workspace_id && w.owner_id == cx.owner_id)
    }

    fn agent_view(&self, agent: &Agent, spec: &AgentSpec, built_at: u64) -> Agent {
        let now = self.clock.now_ms();
        let mut agent = agent.clone();
        agent.lifecycle_state = spec.lifecycle_at(now.saturating_sub(built_at));
        match spec.heartbeat {
            Heartbeat::Connected => {
                agent.first_connected_at = Some(agent.created_at);
                agent.last_connected_at = Some(now);
            }
            Heartbeat::Connecting => {
                agent.created_at = now;
            }
            Heartbeat::Disconnected => {
                agent.first_connected_at = Some(agent.created_at);
                agent.last_connected_at = Some(agent.created_at);
                agent.disconnected_at = Some(agent.created_at + 1);
            }
            Heartbeat::Stale => {
                agent.first_connected_at = Some(agent.created_at);
                agent.last_connected_at = Some(now.saturating_sub(INACTIVE_DISCONNECT_MS + 1_000));
            }
            Heartbeat::TimedOut => {
                agent.connection_timeout_seconds = 1;
                agent.created_at = now.saturating_sub(60_000);
            }
            Heartbeat::NeverConnectedFor(ms) => {
                agent.connection_timeout_seconds = 600;
                agent.created_at = now.saturating_sub(ms);
            }
            Heartbeat::LastHeardAgo(ms) => {
                agent.first_connected_at = Some(agent.created_at);
                agent.last_connected_at = Some(now.saturating_sub(ms));
            }
        }
        agent
    }

    fn read(&self, kind: ReadKind) {
        self.recorder.read(self.clock.now_ms(), kind);
    }
}

/// The context of the default chat.
pub fn default_context() -> CallContext {
    CallContext { chat_id: ids::CHAT.into(), owner_id: ids::OWNER.into(), owner_name: ids::OWNER_NAME.into(), organization_id: ids::ORG.into() }
}

fn chat_row<'a>(world: &'a mut World, cx: &CallContext) -> &'a mut Chat {
    world.chats.entry(ChatKey::of(cx)).or_insert_with(|| toolshed_infra::unbound_chat(cx))
}

fn insert_build(
    world: &mut World,
    now: u64,
    workspace_id: &str,
    transition: Transition,
    version: Option<String>,
    plan: BuildPlan,
    parameters: Vec<(String, String)>,
) -> Build {
    let build = Build {
        id: ids::fresh(),
        workspace_id: workspace_id.to_string(),
        job_id: ids::fresh(),
        transition,
        template_version_id: version,
    };
    let agent_ids: Vec<String> = plan.agents.iter().map(|_| ids::fresh()).collect();
    let agents = plan
        .agents
        .iter()
        .zip(&agent_ids)
        .map(|(spec, id)| {
            let agent = Agent {
                id: id.clone(),
                name: spec.name.clone(),
                parent_id: spec.parent.map(|i| agent_ids[i].clone()),
                display_order: spec.display_order,
                created_at: now,
                first_connected_at: None,
                last_connected_at: None,
                disconnected_at: None,
                connection_timeout_seconds: 600,
                lifecycle_state: spec.lifecycle_at(0),
                inactive_disconnect_ms: INACTIVE_DISCONNECT_MS,
            };
            (agent, spec.clone())
        })
        .collect();
    world.builds.push(BuildRow { build: build.clone(), created_at: now, job: plan.job, agents, parameters });
    build
}

/// Every answer takes a scheduler turn, as a real database round trip
/// would, so concurrent calls interleave between queries.
async fn round_trip() {
    tokio::task::yield_now().await;
}

fn next_plan(world: &mut World) -> BuildPlan {
    world.plans.pop_front().unwrap_or_else(|| world.default_plan.clone())
}

/// Every capability, and the chat events, answered by the fake.
impl Backend for FakeBackend {
    fn provide(self: &Arc<Self>, providers: &mut Providers) {
        providers.insert(InfraProviders::new(self.clone()));
        providers.insert(PlatformProviders::new(self.clone()));
    }

    fn chat_events(self: &Arc<Self>) -> Option<Arc<dyn ChatEvents>> {
        Some(self.clone())
    }
}

#[async_trait]
impl Db for FakeBackend {
    async fn chat(&self, cx: &CallContext) -> Result<Chat, QueryError> {
        round_trip().await;
        self.read(ReadKind::Chat);
        let mut world = self.world();
        Ok(chat_row(&mut world, cx).clone())
    }

    async fn workspace(&self, cx: &CallContext, id: &str) -> Result<Workspace, QueryError> {
        round_trip().await;
        self.read(ReadKind::Workspace(id.to_string()));
        let world = self.world();
        world
            .workspaces
            .iter()
            .find(|w| w.workspace.id == id && w.owner_id == cx.owner_id)
            .map(|w| w.workspace.clone())
            .ok_or(QueryError::NotFound)
    }

    async fn latest_build(&self, cx: &CallContext, workspace_id: &str) -> Result<Build, QueryError> {
        round_trip().await;
        self.read(ReadKind::LatestBuild(workspace_id.to_string()));
        let world = self.world();
        if !Self::owns_workspace(&world, cx, workspace_id) {
            return Err(QueryError::NotFound);
        }
        world.builds.iter().rev().find(|b| b.build.workspace_id == workspace_id).map(|b| b.build.clone()).ok_or(QueryError::NotFound)
    }

    async fn build(&self, cx: &CallContext, id: &str) -> Result<Build, QueryError> {
        round_trip().await;
        self.read(ReadKind::Build(id.to_string()));
        let world = self.world();
        world
            .builds
            .iter()
            .find(|b| b.build.id == id && Self::owns_workspace(&world, cx, &b.build.workspace_id))
            .map(|b| b.build.clone())
            .ok_or(QueryError::NotFound)
    }

    async fn job(&self, cx: &CallContext, id: &str) -> Result<Job, QueryError> {
        round_trip().await;
        self.read(ReadKind::Job(id.to_string()));
        let now = self.clock.now_ms();
        let mut world = self.world();
        if let Some(error) = world.job_read_errors.pop_front() {
            return Err(error);
        }
        let row = world
            .builds
            .iter()
            .find(|b| b.build.job_id == id && Self::owns_workspace(&world, cx, &b.build.workspace_id))
            .ok_or(QueryError::NotFound)?;
        let status = row.job.status_at(now.saturating_sub(row.created_at));
        let error = matches!(status, toolshed_infra::JobStatus::Failed).then(|| row.job.error.clone()).flatten();
        Ok(Job { id: id.to_string(), status, error })
    }

    async fn build_agents(&self, cx: &CallContext, build_id: &str) -> Result<Vec<Agent>, QueryError> {
        round_trip().await;
        self.read(ReadKind::BuildAgents(build_id.to_string()));
        let world = self.world();
        let row = world
            .builds
            .iter()
            .find(|b| b.build.id == build_id && Self::owns_workspace(&world, cx, &b.build.workspace_id))
            .ok_or(QueryError::NotFound)?;
        Ok(row.agents.iter().map(|(a, spec)| self.agent_view(a, spec, row.created_at)).collect())
    }

    async fn agent(&self, cx: &CallContext, id: &str) -> Result<Agent, QueryError> {
        round_trip().await;
        self.read(ReadKind::Agent(id.to_string()));
        let mut world = self.world();
        if let Some(error) = world.agent_read_errors.pop_front() {
            return Err(error);
        }
        for row in &world.builds {
            if let Some((agent, spec)) = row.agents.iter().find(|(a, _)| a.id == id) {
                if !Self::owns_workspace(&world, cx, &row.build.workspace_id) {
                    return Err(QueryError::NotFound);
                }
                return Ok(self.agent_view(agent, spec, row.created_at));
            }
        }
        Err(QueryError::NotFound)
    }

    async fn templates(&self, cx: &CallContext) -> Result<Vec<Template>, QueryError> {
        round_trip().await;
        self.read(ReadKind::Templates);
        let world = self.world();
        Ok(world.templates.iter().filter(|t| Self::sees_template(&world, cx, t)).cloned().collect())
    }

    async fn template(&self, cx: &CallContext, id: &str) -> Result<Template, QueryError> {
        round_trip().await;
        self.read(ReadKind::Template(id.to_string()));
        let world = self.world();
        world.templates.iter().find(|t| t.id == id && Self::sees_template(&world, cx, t)).cloned().ok_or(QueryError::NotFound)
    }

    async fn template_parameters(&self, cx: &CallContext, version_id: &str) -> Result<Vec<TemplateParameter>, QueryError> {
        round_trip().await;
        self.read(ReadKind::TemplateParameters(version_id.to_string()));
        let world = self.world();
        let template = world.versions.get(version_id).and_then(|t| world.templates.iter().find(|x| x.id == *t));
        if !template.is_some_and(|t| Self::sees_template(&world, cx, t)) {
            return Err(QueryError::NotFound);
        }
        Ok(world.parameters.get(version_id).cloned().unwrap_or_default())
    }

    async fn workspace_ttl(&self, _cx: &CallContext) -> Result<String, QueryError> {
        round_trip().await;
        self.world().ttl.clone().unwrap_or(Ok("0s".into()))
    }

    async fn template_allowlist(&self, _cx: &CallContext) -> Result<Vec<String>, QueryError> {
        round_trip().await;
        Ok(self.world().allowlist.clone())
    }

    async fn bind_chat(&self, cx: &CallContext, binding: ChatBinding) -> Result<(), Refused<QueryError>> {
        round_trip().await;
        self.recorder.push(cx, Call::Bind(binding.clone()));
        let mut world = self.world();
        // Like a real store: only rows that exist and are the owner's.
        let owns_build = |id: &str| world.builds.iter().any(|b| b.build.id == id && Self::owns_workspace(&world, cx, &b.build.workspace_id));
        let owns_agent = |id: &str| {
            world.builds.iter().any(|b| b.agents.iter().any(|(a, _)| a.id == id) && Self::owns_workspace(&world, cx, &b.build.workspace_id))
        };
        if binding.workspace_id.as_deref().is_some_and(|id| !Self::owns_workspace(&world, cx, id))
            || binding.build_id.as_deref().is_some_and(|id| !owns_build(id))
            || binding.agent_id.as_deref().is_some_and(|id| !owns_agent(id))
        {
            return Err(QueryError::NotFound.into());
        }
        let chat = chat_row(&mut world, cx);
        if let Some(id) = binding.workspace_id {
            chat.workspace_id = Some(id);
        }
        if let Some(id) = binding.build_id {
            chat.build_id = Some(id);
        }
        if let Some(id) = binding.agent_id {
            chat.agent_id = Some(id);
        }
        Ok(())
    }

}

#[async_trait]
impl Control for FakeBackend {
    async fn create_workspace(&self, cx: &CallContext, request: CreateWorkspaceRequest) -> Result<CreatedWorkspace, Refused<ControlError>> {
        round_trip().await;
        self.recorder.push(cx, Call::CreateWorkspace(request.clone()));
        // Like a real backend, whatever the plugin checked: only a template
        // on the allow-list.
        toolshed_infra::check_template_allowed(self, cx, &request.template_id).await?;
        let now = self.clock.now_ms();
        let mut world = self.world();
        if let Some(error) = world.create_errors.pop_front() {
            return Err(error.into());
        }
        let taken = world
            .workspaces
            .iter()
            .any(|w| w.owner_id == cx.owner_id && !w.workspace.deleted && w.workspace.name == request.name);
        if taken {
            return Err(ControlError::Api(ApiError {
                status: 409,
                message: format!("workspace {:?} already exists", request.name),
                detail: String::new(),
                validations: vec![Validation { field: "name".into(), detail: "already in use".into() }],
            })
            .into());
        }
        let template = world.templates.iter().find(|t| t.id == request.template_id && Self::sees_template(&world, cx, t)).cloned().ok_or_else(|| {
            ControlError::Api(ApiError { status: 404, message: "template not found".into(), detail: String::new(), validations: vec![] })
        })?;
        let workspace = Workspace {
            id: ids::fresh(),
            name: request.name.clone(),
            owner_name: ids::OWNER_NAME.into(),
            template_id: template.id.clone(),
            deleted: false,
        };
        world.workspaces.push(WorkspaceRow { workspace: workspace.clone(), owner_id: cx.owner_id.clone() });
        let plan = next_plan(&mut world);
        let build = insert_build(&mut world, now, &workspace.id, Transition::Start, Some(template.active_version_id), plan, request.parameters);
        Ok(CreatedWorkspace { workspace, build })
    }

    async fn create_build(&self, cx: &CallContext, request: CreateBuildRequest) -> Result<Build, Refused<ControlError>> {
        round_trip().await;
        self.recorder.push(cx, Call::CreateBuild(request.clone()));
        let now = self.clock.now_ms();
        let mut world = self.world();
        if let Some(error) = world.build_errors.pop_front() {
            return Err(error.into());
        }
        let Some(row) = world.workspaces.iter().find(|w| w.workspace.id == request.workspace_id && w.owner_id == cx.owner_id) else {
            return Err(ControlError::Api(ApiError { status: 404, message: "workspace not found".into(), detail: String::new(), validations: vec![] }).into());
        };
        let template_id = row.workspace.template_id.clone();
        let active = world.templates.iter().find(|t| t.id == template_id).map(|t| t.active_version_id.clone());
        let last = world.builds.iter().rev().find(|b| b.build.workspace_id == request.workspace_id).and_then(|b| b.build.template_version_id.clone());
        // A start moves to the active version only when the template
        // requires it; every other build keeps the last build's version.
        let version = match request.transition {
            Transition::Start if world.require_active.contains(&template_id) => active,
            _ => last.or(active),
        };
        // Values given before carry over; the new version's required
        // parameters must all have one.
        let mut values: Vec<(String, String)> = world
            .builds
            .iter()
            .filter(|b| b.build.workspace_id == request.workspace_id)
            .flat_map(|b| b.parameters.clone())
            .collect();
        values.extend(request.parameters.clone());
        if request.transition == Transition::Start {
            let required = version.as_ref().and_then(|v| world.parameters.get(v)).cloned().unwrap_or_default();
            let missing: Vec<Validation> = required
                .iter()
                .filter(|p| p.required && p.default_value.is_none() && !values.iter().any(|(n, _)| *n == p.name))
                .map(|p| Validation { field: p.name.clone(), detail: "a value is required".into() })
                .collect();
            if !missing.is_empty() {
                return Err(ControlError::Api(ApiError {
                    status: 400,
                    message: "Unable to validate parameters".into(),
                    detail: String::new(),
                    validations: missing,
                })
                .into());
            }
        }
        let plan = next_plan(&mut world);
        Ok(insert_build(&mut world, now, &request.workspace_id, request.transition, version, plan, request.parameters))
    }

}

#[async_trait]
impl AgentConnect for FakeBackend {
    fn available(&self) -> bool {
        self.world().can_connect
    }

    async fn connect(&self, cx: &CallContext, agent_id: &str, timeout: Duration) -> Result<(), String> {
        round_trip().await;
        self.recorder.push(cx, Call::Connect(agent_id.to_string()));
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.recorder.attempt(Attempt { at_ms: self.clock.now_ms(), agent_id: agent_id.to_string(), timeout_ms });
        let outcome = {
            let mut world = self.world();
            let script = world
                .builds
                .iter()
                .flat_map(|b| b.agents.iter())
                .find(|(a, _)| a.id == agent_id)
                .map(|(_, spec)| spec.connect.clone());
            let attempts = world.connect_attempts.entry(agent_id.to_string()).or_default();
            *attempts += 1;
            match script {
                None => Err("agent not found".to_string()),
                Some(ConnectScript::Succeeds) => Ok(()),
                Some(ConnectScript::Fails(reason)) => Err(reason),
                Some(ConnectScript::FailsTimes(n)) if *attempts <= n => Err("connection refused".to_string()),
                Some(ConnectScript::FailsTimes(_)) => Ok(()),
            }
        };
        if outcome.is_err() {
            self.clock.sleep(timeout).await;
        }
        outcome
    }

}

#[async_trait]
impl Registry for FakeBackend {
    async fn start_provisioning(&self, cx: &CallContext, request: ProvisionRequest) -> Result<Task, Refused<PlatformError>> {
        round_trip().await;
        self.recorder.push(cx, Call::Provision(request.clone()));
        let now = self.clock.now_ms();
        let mut world = self.world();
        if let Some(error) = world.provision_errors.pop_front() {
            return Err(error.into());
        }
        let script = world.registry_plans.pop_front().unwrap_or_else(|| TaskScript::completes_after(9_000));
        let id = ids::fresh();
        let url = format!("registry.example.test/{}/{}", request.project_id, request.registry_name);
        let status = script.status_at(0);
        world.tasks.insert(id.clone(), (now, script, url, cx.owner_id.clone()));
        Ok(Task { id, status, message: None, registry_url: None })
    }

    async fn task(&self, cx: &CallContext, id: &str) -> Result<Task, PlatformError> {
        round_trip().await;
        self.read(ReadKind::Task(id.to_string()));
        self.recorder.push(cx, Call::PollTask(id.to_string()));
        let now = self.clock.now_ms();
        let mut world = self.world();
        if let Some(error) = world.poll_errors.pop_front() {
            return Err(error);
        }
        let (started, script, url, _) =
            world.tasks.get(id).filter(|(.., owner)| *owner == cx.owner_id).ok_or_else(|| PlatformError::NotFound(format!("task {id}")))?;
        let status = script.status_at(now.saturating_sub(*started));
        let done = !matches!(status, toolshed_platform::TaskStatus::Pending | toolshed_platform::TaskStatus::Running);
        Ok(Task {
            id: id.to_string(),
            status,
            message: if done { script.message.clone() } else { None },
            registry_url: matches!(status, toolshed_platform::TaskStatus::Completed).then(|| url.clone()),
        })
    }

}

#[async_trait]
impl BuildLogs for FakeBackend {
    async fn last_line(&self, cx: &CallContext, build_id: &str) -> Option<String> {
        round_trip().await;
        let world = self.world();
        let row = world.builds.iter().find(|b| b.build.id == build_id && Self::owns_workspace(&world, cx, &b.build.workspace_id))?;
        row.job.log_line.clone()
    }

    /// The fake's builds print one line: their output is that line.
    async fn output(&self, cx: &CallContext, build_id: &str, _max_bytes: usize) -> Option<String> {
        self.last_line(cx, build_id).await
    }
}

#[async_trait]
impl BuildVersions for FakeBackend {
    async fn start_uses_active_version(&self, cx: &CallContext, workspace_id: &str) -> bool {
        round_trip().await;
        let world = self.world();
        world
            .workspaces
            .iter()
            .find(|w| w.workspace.id == workspace_id && w.owner_id == cx.owner_id)
            .is_some_and(|w| world.require_active.contains(&w.workspace.template_id))
    }
}

#[async_trait]
impl ChatDirectory for FakeBackend {
    /// Chats are keyed by (owner, id): every chat id names a chat of the
    /// caller's own, so nothing is refused (the fake keeps no quotas).
    async fn claim(&self, cx: &CallContext) -> Result<(), ChatRefused> {
        round_trip().await;
        chat_row(&mut self.world(), cx);
        Ok(())
    }
}

#[async_trait]
impl ChatEvents for FakeBackend {
    async fn chat_updated(&self, cx: &CallContext) {
        round_trip().await;
        self.recorder.push(cx, Call::ChatUpdated);
    }

}
