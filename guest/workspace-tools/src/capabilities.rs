//! The host capabilities the tools use, as one trait.

use crate::wit::toolshed::infra::control::{CreateBuildRequest, CreateWorkspaceRequest, CreatedWorkspace};
use crate::wit::toolshed::infra::db::ChatBinding;
use crate::wit::toolshed::infra::types::{
    Agent, Build, Chat, ControlError, Job, QueryError, Template, TemplateParameter, Workspace,
};

/// What came of asking the user.
pub enum Asked {
    /// The user answered the form with these values.
    Answer(serde_json::Map<String, serde_json::Value>),
    /// The user declined or dismissed it.
    Declined,
    /// No answer can come: the client cannot ask, failed, or answered
    /// something that does not fit the form.
    Unavailable,
}

/// What the tools need from their host. Each method mirrors one WIT import.
pub trait Capabilities {
    /// Held while a chat's workspace is being changed; dropping releases it.
    type Guard;

    /// Milliseconds since the Unix epoch on the host clock.
    fn now(&self) -> u64;
    /// Waits `ms` milliseconds of host time.
    fn sleep(&self, ms: u64);
    /// Waits `ms` milliseconds of host time without holding the sandbox:
    /// inside a component this run ends, and the host calls the tool again
    /// afterwards with the same arguments, where [`Capabilities::resumed`]
    /// returns `state`. A host that keeps the tool running (the native
    /// baseline) sleeps and returns, so a caller must handle both: go on
    /// after the call, and resume from `state` on entry.
    fn pause(&self, ms: u64, state: &[u8]);
    /// The state the previous run of this call paused with, if any.
    fn resumed(&self) -> Option<Vec<u8>>;
    /// Takes the chat-scoped lock named `key`, or says why it was refused.
    fn lock(&self, key: &str) -> Result<Self::Guard, String>;
    /// Tells the front end the chat's bindings changed.
    fn chat_updated(&self);
    /// Reports progress on a long wait.
    fn progress(&self, message: &str);
    /// A random number, for generated names.
    fn random(&self) -> u64;
    /// How many ms the caller will still wait for the answer, if it says.
    fn wait_budget(&self) -> Option<u64>;
    /// The last line a build printed, where the host keeps build output.
    fn build_log_line(&self, build_id: &str) -> Option<String>;

    fn chat(&self) -> Result<Chat, QueryError>;
    fn workspace(&self, id: &str) -> Result<Workspace, QueryError>;
    fn latest_build(&self, workspace_id: &str) -> Result<Build, QueryError>;
    fn build(&self, id: &str) -> Result<Build, QueryError>;
    fn job(&self, id: &str) -> Result<Job, QueryError>;
    fn build_agents(&self, build_id: &str) -> Result<Vec<Agent>, QueryError>;
    fn agent(&self, id: &str) -> Result<Agent, QueryError>;
    fn templates(&self) -> Result<Vec<Template>, QueryError>;
    fn template(&self, id: &str) -> Result<Template, QueryError>;
    fn template_parameters(&self, version_id: &str) -> Result<Vec<TemplateParameter>, QueryError>;
    fn workspace_ttl(&self) -> Result<String, QueryError>;
    fn template_allowlist(&self) -> Result<Vec<String>, QueryError>;
    fn bind_chat(&self, binding: &ChatBinding) -> Result<(), QueryError>;

    fn create_workspace(&self, request: &CreateWorkspaceRequest) -> Result<CreatedWorkspace, ControlError>;
    fn create_build(&self, request: &CreateBuildRequest) -> Result<Build, ControlError>;
    /// Whether a start of the workspace builds its template's active version
    /// rather than the version of its last build.
    fn start_uses_active_version(&self, workspace_id: &str) -> bool;

    /// The end of what a build printed, where the host keeps build output
    /// and the build is the caller's.
    fn build_output(&self, build_id: &str) -> Option<String> {
        let _ = build_id;
        None
    }

    /// Whether the caller's user can be asked; when not, the tools read
    /// nothing more to build a question.
    fn can_ask(&self) -> bool {
        false
    }

    /// Asks the user `message` with `form` (a JSON Schema object). A host
    /// without a user to ask answers [`Asked::Unavailable`].
    fn ask(&self, message: &str, form: &str) -> Asked {
        let _ = (message, form);
        Asked::Unavailable
    }

    /// Whether the host can reach agents at all.
    fn can_connect(&self) -> bool;
    /// One attempt to reach an agent within `timeout_ms`.
    fn connect(&self, agent_id: &str, timeout_ms: u64) -> Result<(), String>;
}
