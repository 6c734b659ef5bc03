//! The embedded local backend: state in SQLite, templates from directories,
//! builds as real processes, agents as real `toolshed agent` processes
//! reached over Unix sockets, registries as OCI layout directories.

pub mod agent;
pub mod manifest;
mod provisioner;
pub mod registry;
pub mod store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::backend::{Backend, CallContext};
use crate::bindings::{
    Agent, ApiError, Build, Chat, ChatBinding, ControlError, CreateBuildRequest, CreateWorkspaceRequest, CreatedWorkspace,
    Job, JobStatus, PlatformError, ProvisionRequest, QueryError, Task, TaskStatus, Template, TemplateParameter, Transition,
    Workspace,
};
use manifest::Manifest;
use provisioner::Provisioner;
use store::{Store, WorkspaceRecord};

/// How long since its last heartbeat an agent still counts as connected.
pub const INACTIVE_DISCONNECT_MS: u64 = 30_000;

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
    CallContext { chat_id: chat_id.to_string(), owner_id: LOCAL_OWNER.into(), organization_id: LOCAL_ORG.into() }
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
        /// The chat.
        chat_id: String,
    },
}

/// Where the local backend keeps its state, and how it starts agents.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// The data directory: database, workspaces, logs, registries.
    pub data_dir: PathBuf,
    /// The program started as `<program> agent ...` for each workspace agent.
    pub agent_program: PathBuf,
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
}

/// The embedded local backend.
pub struct LocalBackend {
    store: Arc<Store>,
    provisioner: Arc<Provisioner>,
    data_dir: PathBuf,
    events: broadcast::Sender<LocalEvent>,
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
    /// Opens the backend in `config.data_dir`: migrates the database and
    /// fails builds a previous host left running.
    ///
    /// # Errors
    ///
    /// When the data directory or the database cannot be opened.
    pub fn open(config: LocalConfig) -> anyhow::Result<Arc<LocalBackend>> {
        std::fs::create_dir_all(&config.data_dir)?;
        let store = Arc::new(Store::open(&config.data_dir.join("toolshed.db"))?);
        let orphaned = store.fail_orphaned_jobs(now_ms()).map_err(anyhow::Error::msg)?;
        if orphaned > 0 {
            tracing::warn!("{orphaned} builds were running when the host last stopped; they are marked failed");
        }
        let events = broadcast::channel(1024).0;
        let provisioner = Arc::new(Provisioner {
            store: store.clone(),
            data_dir: config.data_dir.clone(),
            agent_program: config.agent_program,
            events: events.clone(),
        });
        Ok(Arc::new(LocalBackend { store, provisioner, data_dir: config.data_dir, events }))
    }

    /// A stream of build output, progress and chat updates.
    pub fn subscribe(&self) -> broadcast::Receiver<LocalEvent> {
        self.events.subscribe()
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

    /// Adds the template in `dir` as a new version and makes it active.
    ///
    /// # Errors
    ///
    /// When the manifest is missing or invalid.
    pub fn push_template(&self, dir: &Path) -> anyhow::Result<PushedTemplate> {
        let manifest = Manifest::read(dir)?;
        let json = serde_json::to_string(&manifest)?;
        let (template_id, version_id, number) = self
            .store
            .push_template(LOCAL_ORG, &json, &manifest.name, &manifest.display_name, &manifest.description, manifest.require_active_version, now_ms())
            .map_err(anyhow::Error::msg)?;
        Ok(PushedTemplate { template_id, version_id, number })
    }

    /// Stops every agent of every workspace (for a clean shutdown of tests).
    pub fn stop_all_agents(&self) {
        for workspace in self.store.workspaces().unwrap_or_default() {
            self.provisioner.stop_agents(&workspace.workspace.id);
        }
    }

    fn manifest(&self, version_id: &str) -> Result<Manifest, String> {
        let json = self.store.version_manifest(version_id)?.ok_or_else(|| format!("template version {version_id} not found"))?;
        serde_json::from_str(&json).map_err(|e| format!("template version {version_id}: {e}"))
    }

    fn owned_workspace(&self, cx: &CallContext, id: &str) -> Result<WorkspaceRecord, QueryError> {
        match self.store.workspace(id) {
            Ok(Some(record)) if record.owner_id == cx.owner_id => Ok(record),
            Ok(_) => Err(QueryError::NotFound),
            Err(e) => Err(QueryError::Failed(e)),
        }
    }
}

fn api(status: u16, message: &str, validations: Vec<crate::bindings::Validation>) -> ControlError {
    ControlError::Api(ApiError { status, message: message.into(), detail: String::new(), validations })
}

fn failed(e: String) -> QueryError {
    QueryError::Failed(e)
}

#[async_trait]
impl Backend for LocalBackend {
    async fn chat(&self, cx: &CallContext) -> Result<Chat, QueryError> {
        self.store.chat(&cx.chat_id, &cx.owner_id, &cx.organization_id).map_err(failed)
    }

    async fn workspace(&self, cx: &CallContext, id: &str) -> Result<Workspace, QueryError> {
        self.owned_workspace(cx, id).map(|r| r.workspace)
    }

    async fn latest_build(&self, cx: &CallContext, workspace_id: &str) -> Result<Build, QueryError> {
        self.owned_workspace(cx, workspace_id)?;
        self.store.latest_build(workspace_id).map_err(failed)?.map(|b| b.build).ok_or(QueryError::NotFound)
    }

    async fn build(&self, cx: &CallContext, id: &str) -> Result<Build, QueryError> {
        let record = self.store.build(id).map_err(failed)?.ok_or(QueryError::NotFound)?;
        self.owned_workspace(cx, &record.build.workspace_id)?;
        Ok(record.build)
    }

    async fn job(&self, cx: &CallContext, id: &str) -> Result<Job, QueryError> {
        if self.store.job_owner(id).map_err(failed)?.as_deref() != Some(cx.owner_id.as_str()) {
            return Err(QueryError::NotFound);
        }
        self.store.job(id).map_err(failed)?.ok_or(QueryError::NotFound)
    }

    async fn build_agents(&self, cx: &CallContext, build_id: &str) -> Result<Vec<Agent>, QueryError> {
        self.build(cx, build_id).await?;
        Ok(self.store.build_agents(build_id).map_err(failed)?.into_iter().map(|a| a.agent).collect())
    }

    async fn agent(&self, cx: &CallContext, id: &str) -> Result<Agent, QueryError> {
        if self.store.agent_owner(id).map_err(failed)?.as_deref() != Some(cx.owner_id.as_str()) {
            return Err(QueryError::NotFound);
        }
        self.store.agent(id).map_err(failed)?.map(|a| a.agent).ok_or(QueryError::NotFound)
    }

    async fn templates(&self, _cx: &CallContext) -> Result<Vec<Template>, QueryError> {
        self.store.templates().map_err(failed)
    }

    async fn template(&self, _cx: &CallContext, id: &str) -> Result<Template, QueryError> {
        self.store.template(id).map_err(failed)?.ok_or(QueryError::NotFound)
    }

    async fn template_parameters(&self, _cx: &CallContext, version_id: &str) -> Result<Vec<TemplateParameter>, QueryError> {
        Ok(self.manifest(version_id).map_err(failed)?.template_parameters())
    }

    async fn workspace_ttl(&self, _cx: &CallContext) -> Result<String, QueryError> {
        Ok(self.store.setting("chat_workspace_ttl").map_err(failed)?.unwrap_or_else(|| "0s".into()))
    }

    async fn template_allowlist(&self, _cx: &CallContext) -> Result<Vec<String>, QueryError> {
        let list = self.store.setting("template_allowlist").map_err(failed)?.unwrap_or_default();
        Ok(list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
    }

    async fn bind_chat(&self, cx: &CallContext, binding: ChatBinding) -> Result<(), QueryError> {
        // Bind only what exists and is the owner's: an id from a plugin is
        // never trusted because a guest produced it.
        if let Some(id) = &binding.workspace_id {
            self.owned_workspace(cx, id)?;
        }
        if let Some(id) = &binding.build_id {
            self.build(cx, id).await?;
        }
        if let Some(id) = &binding.agent_id {
            self.agent(cx, id).await?;
        }
        self.store
            .bind(&cx.chat_id, binding.workspace_id.as_deref(), binding.build_id.as_deref(), binding.agent_id.as_deref())
            .map_err(failed)
    }

    async fn create_workspace(&self, cx: &CallContext, request: CreateWorkspaceRequest) -> Result<CreatedWorkspace, ControlError> {
        let template = self.store.template(&request.template_id).map_err(ControlError::Failed)?.ok_or_else(|| api(404, "template not found", vec![]))?;
        if self.store.name_taken(&cx.owner_id, &request.name).map_err(ControlError::Failed)? {
            return Err(api(409, &format!("a workspace named {} already exists", request.name), vec![]));
        }
        let manifest = self.manifest(&template.active_version_id).map_err(ControlError::Failed)?;
        let values = manifest
            .resolve(&BTreeMap::new(), &request.parameters)
            .map_err(|problems| api(400, "Unable to validate parameters", problems))?;
        let workspace = Workspace {
            id: uuid::Uuid::new_v4().to_string(),
            name: request.name.clone(),
            owner_name: LOCAL_OWNER_NAME.into(),
            template_id: template.id.clone(),
            deleted: false,
        };
        let dir = self.data_dir.join("workspaces").join(LOCAL_OWNER_NAME).join(&workspace.name);
        let record = WorkspaceRecord { workspace: workspace.clone(), owner_id: cx.owner_id.clone(), dir: dir.display().to_string() };
        self.store.insert_workspace(&record, request.ttl_ms, now_ms()).map_err(ControlError::Failed)?;
        let build = Build {
            id: uuid::Uuid::new_v4().to_string(),
            workspace_id: workspace.id.clone(),
            job_id: uuid::Uuid::new_v4().to_string(),
            transition: Transition::Start,
            template_version_id: Some(template.active_version_id.clone()),
        };
        self.store.insert_build(&build, &values, now_ms()).map_err(ControlError::Failed)?;
        self.provisioner.start(build.clone(), record, manifest, values);
        Ok(CreatedWorkspace { workspace, build })
    }

    async fn create_build(&self, cx: &CallContext, request: CreateBuildRequest) -> Result<Build, ControlError> {
        let record = self.owned_workspace(cx, &request.workspace_id).map_err(|_| api(404, "workspace not found", vec![]))?;
        let template = self.store.template(&record.workspace.template_id).map_err(ControlError::Failed)?.ok_or_else(|| api(404, "template not found", vec![]))?;
        let latest = self.store.latest_build(&record.workspace.id).map_err(ControlError::Failed)?;
        if latest.as_ref().is_some_and(|b| matches!(b.status, JobStatus::Pending | JobStatus::Running)) {
            return Err(api(409, "a build of this workspace is already running", vec![]));
        }
        let previous_version = latest.as_ref().and_then(|b| b.build.template_version_id.clone());
        let version = match request.transition {
            Transition::Start if self.store.requires_active_version(&template.id).map_err(ControlError::Failed)? => template.active_version_id.clone(),
            _ => previous_version.unwrap_or_else(|| template.active_version_id.clone()),
        };
        let manifest = self.manifest(&version).map_err(ControlError::Failed)?;
        let earlier = self.store.latest_values(&record.workspace.id).map_err(ControlError::Failed)?;
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
        self.store.insert_build(&build, &values, now_ms()).map_err(ControlError::Failed)?;
        self.provisioner.start(build.clone(), record, manifest, values);
        Ok(build)
    }

    fn can_connect_agents(&self) -> bool {
        true
    }

    async fn connect_agent(&self, cx: &CallContext, agent_id: &str, timeout: Duration) -> Result<(), String> {
        if self.store.agent_owner(agent_id)?.as_deref() != Some(cx.owner_id.as_str()) {
            return Err("agent not found".into());
        }
        let agent = self.store.agent(agent_id)?.ok_or("agent not found")?;
        // A refused connection fails at once, as a dial to a closed port does;
        // the tool's pause between attempts spaces the retries.
        let outcome = agent::ping(Path::new(&agent.socket), timeout).await;
        if outcome.is_ok() {
            self.store.agent_connected(agent_id, now_ms())?;
        }
        outcome
    }

    async fn chat_updated(&self, cx: &CallContext) {
        let _ = self.events.send(LocalEvent::ChatUpdated { chat_id: cx.chat_id.clone() });
    }

    async fn start_registry(&self, _cx: &CallContext, request: ProvisionRequest) -> Result<Task, PlatformError> {
        let id = uuid::Uuid::new_v4().to_string();
        self.store.set_registry_task(&id, "running", None, None, now_ms()).map_err(PlatformError::BadResponse)?;
        let dir = registry::registry_dir(&self.data_dir, &request.project_id, &request.registry_name);
        let (store, task_id) = (self.store.clone(), id.clone());
        tokio::spawn(async move {
            let (status, message, url) = match registry::create_layout(&dir) {
                Ok(()) => ("completed", None, Some(format!("oci:{}", dir.display()))),
                Err(e) => ("failed", Some(format!("creating {}: {e}", dir.display())), None),
            };
            let _ = store.set_registry_task(&task_id, status, message.as_deref(), url.as_deref(), now_ms());
        });
        Ok(Task { id, status: TaskStatus::Running, message: None, registry_url: None })
    }

    async fn registry_task(&self, _cx: &CallContext, id: &str) -> Result<Task, PlatformError> {
        let (status, message, url) = self
            .store
            .registry_task(id)
            .map_err(PlatformError::BadResponse)?
            .ok_or_else(|| PlatformError::NotFound(format!("task {id}")))?;
        let status = match status.as_str() {
            "pending" => TaskStatus::Pending,
            "completed" => TaskStatus::Completed,
            "failed" => TaskStatus::Failed,
            "cancelled" => TaskStatus::Cancelled,
            _ => TaskStatus::Running,
        };
        Ok(Task { id: id.to_string(), status, message, registry_url: url })
    }
}
