//! toolshed-infra: the infrastructure interfaces a plugin may be granted:
//! `toolshed:infra/db` (reads and chat bindings), `toolshed:infra/control`
//! (create workspaces and builds) and `toolshed:infra/agent-connect`.
//!
//! Register [`Infra`] on the runtime, and give each host a backend as
//! [`InfraProviders`]:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # fn build(backend: Arc<impl toolshed_infra::Db + toolshed_infra::Control + toolshed_infra::AgentConnect + toolshed_infra::BuildLogs + toolshed_infra::BuildVersions>) -> anyhow::Result<()> {
//! let runtime = Arc::new(toolshed_runtime::Runtime::builder().capability(toolshed_infra::Infra).build()?);
//! let host = toolshed_runtime::Toolshed::builder(runtime).provide(toolshed_infra::InfraProviders::new(backend)).build()?;
//! # Ok(()) }
//! ```
//!
//! A provider scopes every read to the calling context: rows of another
//! owner read as [`QueryError::NotFound`]. The host checks what a plugin
//! passes before a provider sees it, and the provider checks again.

#![deny(missing_docs)]

mod empty;
mod host;
pub mod names;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use toolshed_runtime::wasmtime::component::{HasData, Linker};
use toolshed_runtime::{CallContext, Capability, Providers};
use toolshed_runtime::state::CallState;

pub use empty::EmptyInfra;
pub use host::{MAX_ID_BYTES, is_id};
pub use toolshed_runtime::quota::Refused;

/// Bindings generated from `toolshed:infra@0.1.0`.
#[allow(missing_docs)]
pub mod bindings {
    toolshed_runtime::wasmtime::component::bindgen!({
        path: ["../../wit/infra", "../../wit/builds"],
        inline: "
            package toolshed:infra-host;
            world host {
                import toolshed:infra/db@0.1.0;
                import toolshed:infra/control@0.1.0;
                import toolshed:infra/agent-connect@0.1.0;
                import toolshed:builds/logs@0.1.0;
                import toolshed:builds/versions@0.1.0;
            }
        ",
        world: "toolshed:infra-host/host",
        imports: { default: async | trappable },
        require_store_data_send: true,
        wasmtime_crate: toolshed_runtime::wasmtime,
    });

    pub use self::toolshed::infra::control::{CreateBuildRequest, CreateWorkspaceRequest, CreatedWorkspace};
    pub use self::toolshed::infra::db::ChatBinding;
    pub use self::toolshed::infra::types::{
        Agent, ApiError, Build, Chat, ControlError, Job, JobStatus, LifecycleState, ParameterOption, QueryError, Template,
        TemplateParameter, Transition, Validation, Workspace,
    };
}

pub use bindings::{
    Agent, ApiError, Build, Chat, ChatBinding, ControlError, CreateBuildRequest, CreateWorkspaceRequest, CreatedWorkspace, Job,
    JobStatus, LifecycleState, ParameterOption, QueryError, Template, TemplateParameter, Transition, Validation, Workspace,
};

/// The calling chat with nothing bound to it yet: what a backend answers
/// for a chat it has no row of.
pub fn unbound_chat(cx: &CallContext) -> Chat {
    Chat {
        id: cx.chat_id.clone(),
        owner_id: cx.owner_id.clone(),
        organization_id: cx.organization_id.clone(),
        workspace_id: None,
        build_id: None,
        agent_id: None,
    }
}

/// Reads and chat bindings (`toolshed:infra/db`), scoped to the caller.
#[async_trait]
pub trait Db: Send + Sync + 'static {
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
    /// Templates the caller can see, of every organization the caller is in.
    async fn templates(&self, cx: &CallContext) -> Result<Vec<Template>, QueryError>;
    /// A template the caller can see.
    async fn template(&self, cx: &CallContext, id: &str) -> Result<Template, QueryError>;
    /// The parameters of a template version the caller can see.
    async fn template_parameters(&self, cx: &CallContext, version_id: &str) -> Result<Vec<TemplateParameter>, QueryError>;
    /// The chat workspace TTL setting, such as "2h".
    async fn workspace_ttl(&self, cx: &CallContext) -> Result<String, QueryError>;
    /// Template ids chat tools may use; empty allows all.
    async fn template_allowlist(&self, cx: &CallContext) -> Result<Vec<String>, QueryError>;
    /// Binds a workspace, build or agent of the caller to the chat (the
    /// caller's chat of that id: chats are keyed by owner and id). Check
    /// the ids with [`check_binding_owned`]. Refused with a quota when the
    /// chat is new and the caller has as many chats as it may.
    async fn bind_chat(&self, cx: &CallContext, binding: ChatBinding) -> Result<(), Refused<QueryError>>;
}

/// Requests that change infrastructure (`toolshed:infra/control`), on
/// behalf of the chat's owner.
#[async_trait]
pub trait Control: Send + Sync + 'static {
    /// Creates a workspace for the chat's owner and starts its first build.
    /// The backend enforces what the tools check: the template must be one
    /// the caller can see and on the allow-list ([`check_template_allowed`]).
    /// Refused with a quota when the caller already runs as many
    /// workspaces as it may.
    async fn create_workspace(&self, cx: &CallContext, request: CreateWorkspaceRequest) -> Result<CreatedWorkspace, Refused<ControlError>>;
    /// Starts a build of a workspace; a start is refused with a quota as a
    /// create is.
    async fn create_build(&self, cx: &CallContext, request: CreateBuildRequest) -> Result<Build, Refused<ControlError>>;
}

/// The rule of `bind-chat`, the same for every backend: each id a binding
/// names must be a row the caller reads as its own through the backend's
/// own scoped reads ([`Db::workspace`], [`Db::build`], [`Db::agent`]), so
/// an id a plugin passes is never bound because a guest produced it. A
/// backend's `bind_chat` calls this before it stores anything.
///
/// # Errors
///
/// [`QueryError::NotFound`] for an id that is not the caller's (or not a
/// row at all); a failed read as it failed.
pub async fn check_binding_owned<D: Db + ?Sized>(db: &D, cx: &CallContext, binding: &ChatBinding) -> Result<(), QueryError> {
    if let Some(id) = &binding.workspace_id {
        db.workspace(cx, id).await?;
    }
    if let Some(id) = &binding.build_id {
        db.build(cx, id).await?;
    }
    if let Some(id) = &binding.agent_id {
        db.agent(cx, id).await?;
    }
    Ok(())
}

/// The template allow-list rule the tools apply (SPEC 4.3.1), for a
/// backend to enforce again where workspaces are made: a plugin granted
/// `control` could otherwise create from any template. An empty list
/// allows every template.
///
/// # Errors
///
/// A 403 API error naming the template when the list does not hold it;
/// a plain failure when the list cannot be read.
pub async fn check_template_allowed<D: Db + ?Sized>(db: &D, cx: &CallContext, template_id: &str) -> Result<(), ControlError> {
    let allowlist = db.template_allowlist(cx).await.map_err(|e| {
        tracing::warn!("reading the template allow-list failed: {e:?}");
        ControlError::Failed("the template allow-list could not be read".into())
    })?;
    if allowlist.is_empty() || allowlist.iter().any(|id| id == template_id) {
        return Ok(());
    }
    Err(ControlError::Api(ApiError {
        status: 403,
        message: format!("template {} is not available to chat tools", toolshed_runtime::text::clip(template_id, 80)),
        detail: "it is not on the template allow-list; use list_templates to find one that is".into(),
        validations: vec![Validation { field: "template_id".into(), detail: "not on the template allow-list".into() }],
    }))
}

/// Reaching workspace agents (`toolshed:infra/agent-connect`).
#[async_trait]
pub trait AgentConnect: Send + Sync + 'static {
    /// Whether this backend can reach agents at all.
    fn available(&self) -> bool;
    /// One attempt to reach an agent within `timeout`.
    async fn connect(&self, cx: &CallContext, agent_id: &str, timeout: Duration) -> Result<(), String>;
}

/// What builds printed (`toolshed:builds/logs`), scoped to the caller.
#[async_trait]
pub trait BuildLogs: Send + Sync + 'static {
    /// The last line build `build_id` printed, if the backend keeps its
    /// output and the build is the caller's.
    async fn last_line(&self, cx: &CallContext, build_id: &str) -> Option<String>;

    /// At most the last `max_bytes` bytes build `build_id` printed, if the
    /// backend keeps its output and the build is the caller's. A backend
    /// that keeps no output answers `None`.
    async fn output(&self, cx: &CallContext, build_id: &str, max_bytes: usize) -> Option<String> {
        let _ = (cx, build_id, max_bytes);
        None
    }
}

/// Which template version builds use (`toolshed:builds/versions`), scoped
/// to the caller.
#[async_trait]
pub trait BuildVersions: Send + Sync + 'static {
    /// Whether a start of workspace `workspace_id` builds its template's
    /// active version rather than the version of its last build: the tools
    /// tell a start that must move to a new version (and may need new
    /// parameters) from one that stays where it is. False when the
    /// workspace is not the caller's or cannot be read.
    async fn start_uses_active_version(&self, cx: &CallContext, workspace_id: &str) -> bool;
}

/// The providers of the infra interfaces on one host.
#[derive(Clone)]
pub struct InfraProviders {
    /// Answers `db`.
    pub db: Arc<dyn Db>,
    /// Answers `control`.
    pub control: Arc<dyn Control>,
    /// Answers `agent-connect`.
    pub agents: Arc<dyn AgentConnect>,
    /// Answers `toolshed:builds/logs`.
    pub logs: Arc<dyn BuildLogs>,
    /// Answers `toolshed:builds/versions`.
    pub versions: Arc<dyn BuildVersions>,
}

impl InfraProviders {
    /// One backend answering every infra interface.
    pub fn new<B: Db + Control + AgentConnect + BuildLogs + BuildVersions>(backend: Arc<B>) -> Self {
        Self { db: backend.clone(), control: backend.clone(), agents: backend.clone(), logs: backend.clone(), versions: backend }
    }
}

/// The infra capability, to register on a runtime.
#[derive(Debug, Default, Clone, Copy)]
pub struct Infra;

/// The unversioned names of the infra interfaces.
pub const INTERFACES: [&str; 5] =
    ["toolshed:infra/db", "toolshed:infra/control", "toolshed:infra/agent-connect", "toolshed:builds/logs", "toolshed:builds/versions"];

/// What the infra host functions work with in one call.
pub struct InfraView<'a> {
    call: &'a mut toolshed_runtime::state::Call,
    providers: Option<&'a InfraProviders>,
}

struct InfraData;

impl HasData for InfraData {
    type Data<'a> = InfraView<'a>;
}

impl Capability for Infra {
    fn name(&self) -> &str {
        "infra"
    }

    fn interfaces(&self) -> &[&'static str] {
        &INTERFACES
    }

    fn add_to_linker(&self, linker: &mut Linker<CallState>) -> toolshed_runtime::wasmtime::Result<()> {
        bindings::Host_::add_to_linker::<CallState, InfraData>(linker, |state| {
            let (call, providers) = state.split();
            InfraView { call, providers: providers.get::<InfraProviders>() }
        })
    }

    fn empty_providers(&self, providers: &mut Providers) {
        providers.insert(InfraProviders::new(Arc::new(EmptyInfra)));
    }

    fn provided(&self, providers: &Providers) -> bool {
        providers.get::<InfraProviders>().is_some()
    }
}
