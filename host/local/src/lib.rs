//! toolshed-local, the embedded local backend: state in SQLite (or
//! PostgreSQL), templates from directories, builds as real processes, agents
//! as real `toolshed agent` processes reached over Unix sockets, registries
//! as OCI layout directories.
//!
//! Many processes share one data directory: `serve`, every CLI command and
//! the agents. So a build belongs to the process running it, under a lease
//! it renews ([`Lease`]); only a build whose lease lapsed is orphaned, and
//! whichever process looks next fails it. Nothing a plugin passes in is
//! trusted: names are checked, paths stay under the data directory, and
//! every read is scoped to the caller. Nothing a template runs is trusted
//! either: workspace processes get an allow-listed environment
//! ([`environment`]) and run in a sandbox ([`sandbox`]) that shows them
//! their workspace directory and none of the host's data or processes; the
//! data directory and the store are private to the host's user
//! ([`private`]).

#![deny(missing_docs)]

pub mod advisory;
pub mod agent;
pub mod environment;
pub mod lease;
pub mod manifest;
pub mod paths;
pub mod private;
pub mod process;
mod provisioner;
pub mod registry;
pub mod sandbox;
pub mod scratch;
pub mod store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::sync::broadcast;

use toolshed_infra::{
    Agent, AgentConnect, ApiError, BuildLogs, BuildVersions, Build, Chat, ChatBinding, Control, ControlError, CreateBuildRequest, CreateWorkspaceRequest,
    CreatedWorkspace, Db, InfraProviders, Job, JobStatus, QueryError, Refused, Template, TemplateParameter, Transition, Validation, Workspace,
};
use toolshed_platform::names::status_name;
use toolshed_platform::{PlatformError, PlatformProviders, ProvisionRequest, Registry, Task, TaskStatus};
use toolshed_runtime::quota::Quotas;
use toolshed_runtime::{Backend, CallContext, ChatDirectory, ChatEvents, ChatRefused, Providers};
pub use lease::{Lease, Orphans};
pub use sandbox::{Sandbox, SandboxMode};
use manifest::Manifest;
use provisioner::Provisioner;
use store::{Binding, JobLease, NewBuild, NewWorkspace, Store, StoreError, WorkspaceRecord};

/// How long since its last heartbeat an agent still counts as connected.
pub const INACTIVE_DISCONNECT_MS: u64 = toolshed_contract::INACTIVE_DISCONNECT_MS;

/// The owner every local call acts for.
pub const LOCAL_OWNER: &str = "a1000000-0000-4000-8000-000000000001";
/// The owner's name in workspace names (`local/<name>`).
pub const LOCAL_OWNER_NAME: &str = "local";
/// The organization of local templates and chats.
pub const LOCAL_ORG: &str = "b1000000-0000-4000-8000-000000000001";

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The calling context of chat `chat_id` on the local backend.
pub fn local_context(chat_id: &str) -> CallContext {
    CallContext { chat_id: chat_id.to_string(), owner_id: LOCAL_OWNER.into(), owner_name: LOCAL_OWNER_NAME.into(), organization_id: LOCAL_ORG.into() }
}

/// Something worth showing a person while a call waits.
#[derive(Debug, Clone, PartialEq)]
pub enum LocalEvent {
    /// A line of a build's output, or its end.
    Build {
        /// The build.
        build_id: String,
        /// The line.
        line: String,
    },
    /// A chat's bindings changed.
    ChatUpdated {
        /// The chat's owner: chats are keyed by (owner, chat id).
        owner_id: String,
        /// The chat.
        chat_id: String,
    },
}

/// Where the local backend keeps its state, and how it starts agents.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// The data directory: workspaces, logs, registries, and the SQLite
    /// database unless `database` names another.
    pub data_dir: PathBuf,
    /// The database every host of a deployment shares (`postgres://...`);
    /// default: SQLite in the data directory. Hosts sharing a PostgreSQL
    /// database share the data directory too (workspaces, build logs and
    /// agent sockets are files in it), and take chat locks in PostgreSQL.
    pub database: Option<String>,
    /// The program started as `<program> agent ...` for each workspace agent.
    pub agent_program: PathBuf,
    /// How long a build's owner holds it without renewing.
    pub lease: Lease,
    /// What this process does with builds whose process died: a process
    /// that stays up to run tasks adopts them; a one-shot command fails them.
    pub orphans: Orphans,
    /// Whether workspace processes must run in the bubblewrap sandbox
    /// (default: when it works here, with a warning when it does not).
    pub sandbox: SandboxMode,
    /// How often agents heartbeat and check that their workspace's data is
    /// still there.
    pub heartbeat: Duration,
    /// What each owner may keep: live workspaces, chats, tasks and stored
    /// bytes, counted in the store so every host sharing it holds them.
    pub quotas: Quotas,
}

impl LocalConfig {
    /// The default data directory: `$XDG_DATA_HOME/toolshed`, or
    /// `~/.local/share/toolshed`.
    pub fn default_data_dir() -> PathBuf {
        std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("share")))
            .unwrap_or_else(|| PathBuf::from("."))
            .join("toolshed")
    }

    /// A configuration for `data_dir` with the default lease.
    pub fn new(data_dir: impl Into<PathBuf>, agent_program: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            agent_program: agent_program.into(),
            database: None,
            lease: Lease::default(),
            orphans: Orphans::Fail,
            sandbox: SandboxMode::default(),
            heartbeat: agent::HEARTBEAT,
            quotas: Quotas::default(),
        }
    }
}

/// The embedded local backend.
pub struct LocalBackend {
    store: Arc<Store>,
    provisioner: Arc<Provisioner>,
    data_dir: PathBuf,
    events: broadcast::Sender<LocalEvent>,
    locks: Option<Arc<dyn toolshed_runtime::locks::ChatLocks>>,
    sandbox: Sandbox,
    _keeper: provisioner::Keeper,
}

/// The result of `template push`.
#[derive(Debug, Clone)]
pub struct PushedTemplate {
    /// The template's id.
    pub template_id: String,
    /// The new version's id.
    pub version_id: String,
    /// The new version's number.
    pub number: i64,
}

impl LocalBackend {
    /// Opens the backend in `config.data_dir`: makes the data directory
    /// private (0700, and its logs), decides the sandbox, migrates the
    /// database, fails builds whose owner's lease lapsed, and starts
    /// renewing the leases of the builds this process will run.
    ///
    /// # Errors
    ///
    /// When the data directory or the database cannot be opened, or the
    /// sandbox is required and cannot run.
    pub async fn open(config: LocalConfig) -> anyhow::Result<Arc<LocalBackend>> {
        private::dir(&config.data_dir).map_err(|e| anyhow::anyhow!("the data directory {}: {e}", config.data_dir.display()))?;
        private::dir(&config.data_dir.join("logs"))?;
        let sandbox = Sandbox::choose(config.sandbox, &config.data_dir).await?;
        let store = Arc::new(
            match &config.database {
                Some(url) => Store::open(url).await?,
                None => Store::open_file(&config.data_dir.join("toolshed.db")).await?,
            }
            .with_quotas(config.quotas),
        );
        let locks = config.database.as_deref().filter(|_| store.dialect() == store::Dialect::Postgres).map(|url| Arc::new(advisory::AdvisoryLocks::new(url)) as _);
        let events = broadcast::channel(1024).0;
        let owner = lease::process_owner();
        let provisioner = Arc::new(Provisioner {
            store: store.clone(),
            data_dir: config.data_dir.clone(),
            agent_program: config.agent_program,
            database: config.database.clone(),
            events: events.clone(),
            owner: owner.clone(),
            lease: config.lease,
            sandbox: sandbox.clone(),
            heartbeat: config.heartbeat,
        });
        provisioner.look_after_orphans(config.orphans).await?;
        let keeper = provisioner.keep(config.orphans);
        Ok(Arc::new(LocalBackend { store, provisioner, data_dir: config.data_dir, events, locks, sandbox, _keeper: keeper }))
    }

    /// How workspace processes run, as decided when the backend opened.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// A stream of build output and chat updates.
    pub fn subscribe(&self) -> broadcast::Receiver<LocalEvent> {
        self.events.subscribe()
    }

    /// The task journal, in the same database.
    pub fn journal(&self) -> Arc<dyn toolshed_runtime::tasks::TaskJournal> {
        self.store.clone()
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Where a build's log is.
    pub fn log_path(&self, build_id: &str) -> PathBuf {
        self.provisioner.log_path(build_id)
    }

    /// Adds the template in `dir` as a new version of the local
    /// organization's template and makes it active.
    ///
    /// # Errors
    ///
    /// When the manifest is missing or invalid.
    pub async fn push_template(&self, dir: &Path) -> anyhow::Result<PushedTemplate> {
        self.push_template_for(LOCAL_ORG, dir).await
    }

    /// Adds the template in `dir` as a new version of `organization_id`'s
    /// template and makes it active.
    ///
    /// # Errors
    ///
    /// When the manifest is missing or invalid.
    pub async fn push_template_for(&self, organization_id: &str, dir: &Path) -> anyhow::Result<PushedTemplate> {
        let manifest = Manifest::read(dir)?;
        let json = serde_json::to_string(&manifest)?;
        let new = store::NewVersion {
            organization_id,
            name: &manifest.name,
            display_name: &manifest.display_name,
            description: &manifest.description,
            require_active_version: manifest.require_active_version,
            manifest: &json,
            now: now_ms(),
        };
        let pushed = self.store.push_template(&new).await?;
        Ok(PushedTemplate { template_id: pushed.template_id, version_id: pushed.version_id, number: pushed.number })
    }

    /// Stops every agent of every workspace (for a clean shutdown of tests).
    pub async fn stop_all_agents(&self) {
        for workspace in self.store.workspaces().await.unwrap_or_default() {
            self.provisioner.stop_agents(&workspace.workspace.id).await;
        }
    }

    async fn manifest(&self, version_id: &str) -> Result<Manifest, String> {
        self.provisioner.manifest(version_id).await
    }

    async fn owned_workspace(&self, cx: &CallContext, id: &str) -> Result<WorkspaceRecord, QueryError> {
        match self.store.workspace(id).await {
            Ok(Some(record)) if record.owner_id == cx.owner_id => Ok(record),
            Ok(_) => Err(QueryError::NotFound),
            Err(e) => Err(failed(e)),
        }
    }

    /// A template the caller can see: one of the caller's organization.
    async fn visible_template(&self, cx: &CallContext, id: &str) -> Result<Template, QueryError> {
        match self.store.template(id).await.map_err(failed)? {
            Some(t) if t.organization_id == cx.organization_id => Ok(t),
            _ => Err(QueryError::NotFound),
        }
    }

    /// The job as it stands: a job whose owner's lease lapsed more than a
    /// lease period ago has failed, whether or not a process has written
    /// that down yet. (Within that period a runner may still take it over.)
    fn effective(job: Job, lease: Option<JobLease>, cutoff: u64) -> Job {
        let unfinished = matches!(job.status, JobStatus::Pending | JobStatus::Running | JobStatus::Canceling);
        if unfinished && lease.is_none_or(|l| l.expires_at < cutoff) {
            return Job { status: JobStatus::Failed, error: Some(store::ORPHANED.into()), ..job };
        }
        job
    }
}

fn api(status: u16, message: &str, validations: Vec<Validation>) -> ControlError {
    ControlError::Api(ApiError { status, message: message.into(), detail: String::new(), validations })
}

/// What a plugin (and through it a remote caller) is told when the store
/// fails: that it failed, never its query, tables or server; the detail
/// goes to the host's log.
const STORE_FAILED: &str = "the backend's store failed; the detail is in the host's log";

fn store_text(e: StoreError) -> String {
    tracing::warn!("the store failed: {e}");
    STORE_FAILED.into()
}

fn failed(e: StoreError) -> QueryError {
    tracing::warn!("the store failed: {e}");
    QueryError::Failed(STORE_FAILED.into())
}

fn control_failed(e: StoreError) -> Refused<ControlError> {
    match e {
        StoreError::Conflict(message) => api(409, &message, vec![]).into(),
        StoreError::Quota(quota) => Refused::Quota(quota),
        other => {
            tracing::warn!("the store failed: {other}");
            ControlError::Failed(STORE_FAILED.into()).into()
        }
    }
}

fn platform_failed(e: StoreError) -> Refused<PlatformError> {
    match e {
        StoreError::Quota(quota) => Refused::Quota(quota),
        other => {
            tracing::warn!("the store failed: {other}");
            PlatformError::BadResponse(STORE_FAILED.into()).into()
        }
    }
}

/// What one registry directory counts for in its owner's stored bytes: an
/// empty OCI layout (three directories, two small files) in 4 KiB blocks.
pub const REGISTRY_BYTES: u64 = 20 << 10;

#[async_trait]
impl Db for LocalBackend {
    async fn chat(&self, cx: &CallContext) -> Result<Chat, QueryError> {
        self.store.chat(&cx.chat_id, &cx.owner_id, &cx.organization_id).await.map_err(failed)
    }

    async fn workspace(&self, cx: &CallContext, id: &str) -> Result<Workspace, QueryError> {
        self.owned_workspace(cx, id).await.map(|r| r.workspace)
    }

    async fn latest_build(&self, cx: &CallContext, workspace_id: &str) -> Result<Build, QueryError> {
        self.owned_workspace(cx, workspace_id).await?;
        self.store.latest_build(workspace_id).await.map_err(failed)?.map(|b| b.build).ok_or(QueryError::NotFound)
    }

    async fn build(&self, cx: &CallContext, id: &str) -> Result<Build, QueryError> {
        let record = self.store.build(id).await.map_err(failed)?.ok_or(QueryError::NotFound)?;
        self.owned_workspace(cx, &record.build.workspace_id).await?;
        Ok(record.build)
    }

    async fn job(&self, cx: &CallContext, id: &str) -> Result<Job, QueryError> {
        if self.store.job_owner(id).await.map_err(failed)?.as_deref() != Some(cx.owner_id.as_str()) {
            return Err(QueryError::NotFound);
        }
        let (job, lease) = self.store.job(id).await.map_err(failed)?.ok_or(QueryError::NotFound)?;
        Ok(Self::effective(job, lease, now_ms().saturating_sub(self.provisioner.lease.period.as_millis() as u64)))
    }

    async fn build_agents(&self, cx: &CallContext, build_id: &str) -> Result<Vec<Agent>, QueryError> {
        self.build(cx, build_id).await?;
        Ok(self.store.build_agents(build_id, INACTIVE_DISCONNECT_MS).await.map_err(failed)?.into_iter().map(|a| a.agent).collect())
    }

    async fn agent(&self, cx: &CallContext, id: &str) -> Result<Agent, QueryError> {
        if self.store.agent_owner(id).await.map_err(failed)?.as_deref() != Some(cx.owner_id.as_str()) {
            return Err(QueryError::NotFound);
        }
        self.store.agent(id, INACTIVE_DISCONNECT_MS).await.map_err(failed)?.map(|a| a.agent).ok_or(QueryError::NotFound)
    }

    async fn templates(&self, cx: &CallContext) -> Result<Vec<Template>, QueryError> {
        self.store.templates(&cx.organization_id).await.map_err(failed)
    }

    async fn template(&self, cx: &CallContext, id: &str) -> Result<Template, QueryError> {
        self.visible_template(cx, id).await
    }

    async fn template_parameters(&self, cx: &CallContext, version_id: &str) -> Result<Vec<TemplateParameter>, QueryError> {
        let version = self.store.version(version_id).await.map_err(failed)?.ok_or(QueryError::NotFound)?;
        if version.organization_id != cx.organization_id {
            return Err(QueryError::NotFound);
        }
        let manifest: Manifest = serde_json::from_str(&version.manifest).map_err(|e| QueryError::Failed(format!("template version {version_id}: {e}")))?;
        Ok(manifest.template_parameters())
    }

    async fn workspace_ttl(&self, _cx: &CallContext) -> Result<String, QueryError> {
        Ok(self.store.setting("chat_workspace_ttl").await.map_err(failed)?.unwrap_or_else(|| "0s".into()))
    }

    async fn template_allowlist(&self, _cx: &CallContext) -> Result<Vec<String>, QueryError> {
        let list = self.store.setting("template_allowlist").await.map_err(failed)?.unwrap_or_default();
        Ok(list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
    }

    async fn bind_chat(&self, cx: &CallContext, binding: ChatBinding) -> Result<(), Refused<QueryError>> {
        toolshed_infra::check_binding_owned(self, cx, &binding).await?;
        let binding =
            Binding { workspace_id: binding.workspace_id.as_deref(), build_id: binding.build_id.as_deref(), agent_id: binding.agent_id.as_deref() };
        match self.store.bind(&cx.chat_id, &cx.owner_id, &cx.organization_id, &binding).await {
            Ok(()) => Ok(()),
            Err(StoreError::Quota(quota)) => Err(Refused::Quota(quota)),
            Err(e) => Err(failed(e).into()),
        }
    }
}

#[async_trait]
impl Control for LocalBackend {
    async fn create_workspace(&self, cx: &CallContext, request: CreateWorkspaceRequest) -> Result<CreatedWorkspace, Refused<ControlError>> {
        let dir = paths::workspace_dir(&self.data_dir, &paths::owner_dir(&cx.owner_id, &cx.owner_name), &request.name)
            .map_err(|detail| api(400, "Invalid workspace name", vec![Validation { field: "name".into(), detail }]))?;
        let template = self.visible_template(cx, &request.template_id).await.map_err(|_| api(404, "template not found", vec![]))?;
        // What the tools check, enforced here too: a plugin granted control
        // cannot create from a template the allow-list leaves out.
        toolshed_infra::check_template_allowed(self, cx, &template.id).await?;
        let manifest = self.manifest(&template.active_version_id).await.map_err(ControlError::Failed)?;
        let values = manifest
            .resolve(&BTreeMap::new(), &request.parameters)
            .map_err(|problems| api(400, "Unable to validate parameters", problems))?;
        let workspace = Workspace {
            id: uuid::Uuid::new_v4().to_string(),
            name: request.name.clone(),
            owner_name: toolshed_runtime::text::one_line(&toolshed_runtime::text::clip(&cx.owner_name, 64)),
            template_id: template.id.clone(),
            deleted: false,
        };
        let record = WorkspaceRecord { workspace: workspace.clone(), owner_id: cx.owner_id.clone(), dir: dir.display().to_string() };
        let build = Build {
            id: uuid::Uuid::new_v4().to_string(),
            workspace_id: workspace.id.clone(),
            job_id: uuid::Uuid::new_v4().to_string(),
            transition: Transition::Start,
            template_version_id: Some(template.active_version_id.clone()),
        };
        let now = now_ms();
        let new = NewWorkspace {
            record: &record,
            ttl_ms: request.ttl_ms,
            build: NewBuild { build: &build, parameters: &values, lease: self.provisioner.queued(now) },
        };
        self.store.insert_workspace(&new, now).await.map_err(control_failed)?;
        if self.provisioner.claim(&build.job_id).await {
            self.provisioner.start(build.clone(), record, manifest, values);
        }
        Ok(CreatedWorkspace { workspace, build })
    }

    async fn create_build(&self, cx: &CallContext, request: CreateBuildRequest) -> Result<Build, Refused<ControlError>> {
        let record = self.owned_workspace(cx, &request.workspace_id).await.map_err(|_| api(404, "workspace not found", vec![]))?;
        let template = self.visible_template(cx, &record.workspace.template_id).await.map_err(|_| api(404, "template not found", vec![]))?;
        let latest = self.store.latest_build(&record.workspace.id).await.map_err(control_failed)?;
        let previous_version = latest.as_ref().map(|b| b.build.template_version_id.clone().unwrap_or_default()).filter(|v| !v.is_empty());
        let requires_active = self.store.requires_active_version(&template.id).await.map_err(control_failed)?;
        let version = match request.transition {
            Transition::Start if requires_active => template.active_version_id.clone(),
            _ => previous_version.unwrap_or_else(|| template.active_version_id.clone()),
        };
        let manifest = self.manifest(&version).await.map_err(ControlError::Failed)?;
        let earlier = self.store.latest_values(&record.workspace.id).await.map_err(control_failed)?;
        let values = match request.transition {
            Transition::Start => manifest.resolve(&earlier, &request.parameters).map_err(|problems| api(400, "Unable to validate parameters", problems))?,
            _ => earlier,
        };
        let build = Build {
            id: uuid::Uuid::new_v4().to_string(),
            workspace_id: record.workspace.id.clone(),
            job_id: uuid::Uuid::new_v4().to_string(),
            transition: request.transition,
            template_version_id: Some(version),
        };
        let now = now_ms();
        let new = NewBuild { build: &build, parameters: &values, lease: self.provisioner.queued(now) };
        // The check that no build runs and the insert are one transaction.
        self.store.insert_build(&new, now).await.map_err(control_failed)?;
        if self.provisioner.claim(&build.job_id).await {
            self.provisioner.start(build.clone(), record, manifest, values);
        }
        Ok(build)
    }

}

#[async_trait]
impl AgentConnect for LocalBackend {
    fn available(&self) -> bool {
        true
    }

    async fn connect(&self, cx: &CallContext, agent_id: &str, timeout: Duration) -> Result<(), String> {
        if self.store.agent_owner(agent_id).await.map_err(store_text)?.as_deref() != Some(cx.owner_id.as_str()) {
            return Err("agent not found".into());
        }
        let agent = self.store.agent(agent_id, INACTIVE_DISCONNECT_MS).await.map_err(store_text)?.ok_or("agent not found")?;
        // A refused connection fails at once, as a dial to a closed port does;
        // the tool's pause between attempts spaces the retries.
        let outcome = agent::ping(Path::new(&agent.socket), timeout).await;
        if outcome.is_ok() {
            self.store.agent_connected(agent_id, now_ms()).await.map_err(store_text)?;
        }
        outcome
    }

}

#[async_trait]
impl BuildVersions for LocalBackend {
    async fn start_uses_active_version(&self, cx: &CallContext, workspace_id: &str) -> bool {
        let Ok(record) = self.owned_workspace(cx, workspace_id).await else { return false };
        self.store.requires_active_version(&record.workspace.template_id).await.unwrap_or(false)
    }
}

#[async_trait]
impl BuildLogs for LocalBackend {
    async fn last_line(&self, cx: &CallContext, build_id: &str) -> Option<String> {
        self.build(cx, build_id).await.ok()?;
        last_line(&self.log_path(build_id))
    }

    async fn output(&self, cx: &CallContext, build_id: &str, max_bytes: usize) -> Option<String> {
        self.build(cx, build_id).await.ok()?;
        output_tail(&self.log_path(build_id), max_bytes)
    }
}

/// At most the last `max` bytes of the file at `path`, reading only those.
fn output_tail(path: &Path, max: usize) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    let length = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(max as u64))).ok()?;
    let mut tail = Vec::with_capacity(max.min(length as usize));
    file.take(max as u64).read_to_end(&mut tail).ok()?;
    Some(String::from_utf8_lossy(&tail).into_owned())
}

/// The last non-empty line of the file at `path`, reading only its end.
fn last_line(path: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    let length = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(8 << 10))).ok()?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).ok()?;
    let text = String::from_utf8_lossy(&tail);
    text.lines().rev().map(str::trim).find(|l| !l.is_empty()).map(str::to_string)
}

#[async_trait]
impl ChatDirectory for LocalBackend {
    /// Chats are keyed by (owner, id), so the chat is the caller's; it may
    /// be used if it is kept already, is the default chat, or fits the
    /// caller's chat quota. Nothing is written: a chat is kept once
    /// something is bound to it.
    async fn claim(&self, cx: &CallContext) -> Result<(), ChatRefused> {
        match self.store.may_use_chat(&cx.chat_id, &cx.owner_id).await {
            Ok(()) => Ok(()),
            Err(StoreError::Quota(quota)) => Err(ChatRefused::Quota(quota)),
            Err(e) => Err(ChatRefused::Failed(e.to_string())),
        }
    }
}

/// A host over the local backend gets the infra and platform interfaces,
/// the chat events, and, on PostgreSQL, the chat locks every host shares.
impl Backend for LocalBackend {
    fn provide(self: &Arc<Self>, providers: &mut Providers) {
        providers.insert(InfraProviders::new(self.clone()));
        providers.insert(PlatformProviders::new(self.clone()));
    }

    fn chat_events(self: &Arc<Self>) -> Option<Arc<dyn ChatEvents>> {
        Some(self.clone())
    }

    /// On PostgreSQL, advisory locks, so two hosts never run one chat's
    /// guarded step at once. None on SQLite, where the hosts of one data
    /// directory are one machine's processes and in-process locks are the
    /// default.
    fn chat_locks(self: &Arc<Self>) -> Option<Arc<dyn toolshed_runtime::locks::ChatLocks>> {
        self.locks.clone()
    }
}

#[async_trait]
impl ChatEvents for LocalBackend {
    async fn chat_updated(&self, cx: &CallContext) {
        let _ = self.events.send(LocalEvent::ChatUpdated { owner_id: cx.owner_id.clone(), chat_id: cx.chat_id.clone() });
    }
}

#[async_trait]
impl Registry for LocalBackend {
    async fn start_provisioning(&self, cx: &CallContext, request: ProvisionRequest) -> Result<Task, Refused<PlatformError>> {
        let dir = registry::registry_dir(&self.data_dir, &cx.owner_id, &cx.owner_name, &request.project_id, &request.registry_name)
            .map_err(PlatformError::BadResponse)?;
        let id = uuid::Uuid::new_v4().to_string();
        // The directory counts for its owner's stored bytes, once; past the
        // quota nothing is made.
        let relative = dir.strip_prefix(&self.data_dir).unwrap_or(&dir).display().to_string();
        self.store
            .insert_registry_task(&id, &cx.owner_id, &relative, REGISTRY_BYTES, status_name(TaskStatus::Running), now_ms())
            .await
            .map_err(platform_failed)?;
        let (store, task_id) = (self.store.clone(), id.clone());
        tokio::spawn(async move {
            let task = match registry::create_layout(&dir) {
                Ok(()) => store::RegistryTaskRecord { status: status_name(TaskStatus::Completed).into(), message: None, url: Some(format!("oci:{}", dir.display())) },
                Err(e) => store::RegistryTaskRecord { status: status_name(TaskStatus::Failed).into(), message: Some(format!("creating {}: {e}", dir.display())), url: None },
            };
            if let Err(e) = store.update_registry_task(&task_id, &task).await {
                tracing::warn!(task = %task_id, "could not record the registry task's end: {e}");
            }
        });
        Ok(Task { id, status: TaskStatus::Running, message: None, registry_url: None })
    }

    async fn task(&self, cx: &CallContext, id: &str) -> Result<Task, PlatformError> {
        let task = self
            .store
            .registry_task(id, &cx.owner_id)
            .await
            .map_err(|e| {
                tracing::warn!("the store failed: {e}");
                PlatformError::BadResponse(STORE_FAILED.into())
            })?
            .ok_or_else(|| PlatformError::NotFound(format!("task {}", toolshed_runtime::text::clip(id, 80))))?;
        let status = toolshed_platform::names::status(&task.status).unwrap_or(TaskStatus::Running);
        Ok(Task { id: id.to_string(), status, message: task.message, registry_url: task.url })
    }
}
