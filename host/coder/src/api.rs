//! The JSON shapes of Coder's REST API (`/api/v2`) this backend reads and
//! writes, and how they become the rows the tools see.
//!
//! Only the fields the tools need are named; every other field is ignored,
//! and a missing one takes its default, so a newer Coder that adds fields
//! still reads. Nothing here is trusted further than its shape: the backend
//! checks ownership on every row before a plugin sees it.

use serde::{Deserialize, Serialize};
use toolshed_infra::{Agent, Build, Job, LifecycleState, ParameterOption, Template, TemplateParameter, Transition, Workspace, names};

/// `codersdk.User`, as `GET /api/v2/users/me` answers.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct User {
    /// The user's id.
    pub id: String,
    /// The user's name, as in `owner/workspace`.
    pub username: String,
    /// The organizations the user is in.
    pub organization_ids: Vec<String>,
}

/// `codersdk.Template`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct CoderTemplate {
    /// The template's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its name as people read it.
    pub display_name: String,
    /// What it is for.
    pub description: String,
    /// Its organization.
    pub organization_id: String,
    /// The version new workspaces use.
    pub active_version_id: String,
    /// Whether new workspaces should not use it.
    pub deprecated: bool,
    /// How many people used it lately; Coder answers -1 while it has not
    /// counted yet.
    pub active_user_count: i64,
    /// Whether starting a workspace moves it to the active version.
    pub require_active_version: bool,
}

impl CoderTemplate {
    /// The row the tools see.
    pub fn to_template(&self) -> Template {
        Template {
            id: self.id.clone(),
            name: self.name.clone(),
            display_name: self.display_name.clone(),
            description: self.description.clone(),
            organization_id: self.organization_id.clone(),
            active_version_id: self.active_version_id.clone(),
            deprecated: self.deprecated,
            // Coder does not list deleted templates.
            deleted: false,
            active_developers: u32::try_from(self.active_user_count.max(0)).unwrap_or(u32::MAX),
        }
    }
}

/// `codersdk.TemplateVersionParameterOption`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ParameterChoice {
    /// The option's label.
    pub name: String,
    /// What it says.
    pub description: String,
    /// The value it sets.
    pub value: String,
}

/// `codersdk.TemplateVersionParameter`, from `GET
/// /api/v2/templateversions/{id}/rich-parameters`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RichParameter {
    /// The parameter's name.
    pub name: String,
    /// Its name as people read it.
    pub display_name: String,
    /// What it means.
    pub description: String,
    /// `string`, `number`, `bool` or `list(string)`.
    #[serde(rename = "type")]
    pub kind: String,
    /// How a form shows it.
    pub form_type: String,
    /// Whether it can change after the first build.
    pub mutable: bool,
    /// Its default; empty for none.
    pub default_value: String,
    /// Whether it must be given.
    pub required: bool,
    /// Whether it applies to one build only.
    pub ephemeral: bool,
    /// The choices, if it has any.
    pub options: Vec<ParameterChoice>,
    /// A pattern the value must match.
    pub validation_regex: Option<String>,
    /// The smallest number allowed.
    pub validation_min: Option<i64>,
    /// The largest number allowed.
    pub validation_max: Option<i64>,
}

impl RichParameter {
    /// The row the tools see.
    pub fn to_parameter(&self) -> TemplateParameter {
        TemplateParameter {
            name: self.name.clone(),
            type_: self.kind.clone(),
            required: self.required,
            display_name: self.display_name.clone(),
            description: self.description.clone(),
            default_value: Some(self.default_value.clone()).filter(|v| !v.is_empty()),
            mutable: self.mutable,
            ephemeral: self.ephemeral,
            form_type: self.form_type.clone(),
            options: self
                .options
                .iter()
                .map(|o| ParameterOption { name: o.name.clone(), value: o.value.clone(), description: o.description.clone() })
                .collect(),
            validation_regex: self.validation_regex.clone().filter(|r| !r.is_empty()),
            validation_min: self.validation_min,
            validation_max: self.validation_max,
        }
    }
}

/// `codersdk.WorkspaceBuildParameter`: one name and value.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct ParameterValue {
    /// The parameter.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// `codersdk.CreateWorkspaceRequest`, the body of `POST
/// /api/v2/users/{user}/workspaces`.
#[derive(Debug, Clone, Serialize)]
pub struct CreateWorkspace {
    /// The template.
    pub template_id: String,
    /// The workspace's name.
    pub name: String,
    /// Values of the template's parameters.
    pub rich_parameter_values: Vec<ParameterValue>,
    /// How long the workspace runs before it stops; absent for the
    /// template's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
}

/// `codersdk.CreateWorkspaceBuildRequest`, the body of `POST
/// /api/v2/workspaces/{id}/builds`.
#[derive(Debug, Clone, Serialize)]
pub struct CreateBuild {
    /// `start`, `stop` or `delete`.
    pub transition: String,
    /// Values of parameters to change.
    pub rich_parameter_values: Vec<ParameterValue>,
    /// The template version to build; absent to keep the workspace's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_version_id: Option<String>,
}

/// `codersdk.ProvisionerJob`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ProvisionerJob {
    /// The job's id.
    pub id: String,
    /// Where it is.
    pub status: String,
    /// Why it failed; empty when it did not.
    pub error: String,
}

/// `codersdk.WorkspaceAgent`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct WorkspaceAgent {
    /// The agent's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The agent it runs under, for sub-agents.
    pub parent_id: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it first connected.
    pub first_connected_at: Option<String>,
    /// When it last connected.
    pub last_connected_at: Option<String>,
    /// When it disconnected.
    pub disconnected_at: Option<String>,
    /// `connecting`, `connected`, `disconnected` or `timeout`, as Coder
    /// computes it.
    pub status: String,
    /// Where its startup scripts are.
    pub lifecycle_state: String,
    /// How long it may take to connect before it counts as timed out.
    pub connection_timeout_seconds: u32,
}

/// `codersdk.WorkspaceResource`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct WorkspaceResource {
    /// The resource's agents.
    pub agents: Vec<WorkspaceAgent>,
}

/// `codersdk.WorkspaceBuild`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct WorkspaceBuild {
    /// The build's id.
    pub id: String,
    /// Its workspace.
    pub workspace_id: String,
    /// The workspace's owner.
    pub workspace_owner_id: String,
    /// The template version it builds.
    pub template_version_id: String,
    /// `start`, `stop` or `delete`.
    pub transition: String,
    /// The job that runs it.
    pub job: ProvisionerJob,
    /// What it made, with their agents.
    pub resources: Vec<WorkspaceResource>,
}

impl WorkspaceBuild {
    /// The row the tools see, or why the build cannot be read.
    pub fn to_build(&self) -> Result<Build, String> {
        let transition = names::transition(&self.transition).ok_or_else(|| format!("build {} has an unknown transition {:?}", self.id, self.transition))?;
        Ok(Build {
            id: self.id.clone(),
            workspace_id: self.workspace_id.clone(),
            job_id: self.job.id.clone(),
            transition,
            template_version_id: Some(self.template_version_id.clone()).filter(|v| !v.is_empty()),
        })
    }

    /// The build's job as the tools see it.
    pub fn to_job(&self) -> Job {
        Job { id: self.job.id.clone(), status: names::status(&self.job.status), error: Some(self.job.error.clone()).filter(|e| !e.is_empty()) }
    }

    /// Every agent of every resource.
    pub fn agents(&self) -> impl Iterator<Item = &WorkspaceAgent> {
        self.resources.iter().flat_map(|r| r.agents.iter())
    }
}

/// `codersdk.Workspace`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct CoderWorkspace {
    /// The workspace's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its owner.
    pub owner_id: String,
    /// The owner's name.
    pub owner_name: String,
    /// Its template.
    pub template_id: String,
    /// Its newest build.
    pub latest_build: WorkspaceBuild,
}

impl CoderWorkspace {
    /// The row the tools see. A workspace whose newest build deleted it
    /// successfully reads as deleted.
    pub fn to_workspace(&self) -> Workspace {
        let deleted = names::transition(&self.latest_build.transition) == Some(Transition::Delete)
            && names::status(&self.latest_build.job.status) == toolshed_infra::JobStatus::Succeeded;
        Workspace {
            id: self.id.clone(),
            name: self.name.clone(),
            owner_name: self.owner_name.clone(),
            template_id: self.template_id.clone(),
            deleted,
        }
    }
}

/// `codersdk.ValidationError`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct FieldError {
    /// The field.
    pub field: String,
    /// What is wrong with it.
    pub detail: String,
}

/// `codersdk.Response`: what Coder answers with an error status.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ErrorResponse {
    /// What went wrong, for people.
    pub message: String,
    /// More about it.
    pub detail: String,
    /// The fields that failed validation.
    pub validations: Vec<FieldError>,
}

/// Milliseconds since the Unix epoch of an RFC 3339 time, if it is one.
pub fn epoch_ms(text: &str) -> Option<u64> {
    let time = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    u64::try_from(time.timestamp_millis()).ok()
}

impl WorkspaceAgent {
    /// The agent as the tools see it at `now_ms` on the host's clock.
    ///
    /// Coder computes an agent's status itself, from heartbeats the tools
    /// cannot see, and its clock is not the host's. So the times are
    /// presented such that the tools' own rule (SPEC 3.2) gives the status
    /// Coder reported, whatever the two clocks read: a connected agent was
    /// last heard from now, a connecting one was created now, a timed-out
    /// one was created one second past its timeout.
    pub fn to_agent(&self, now_ms: u64, inactive_disconnect_ms: u64) -> Agent {
        let created = epoch_ms(&self.created_at).unwrap_or(now_ms);
        let first = self.first_connected_at.as_deref().and_then(epoch_ms);
        let last = self.last_connected_at.as_deref().and_then(epoch_ms);
        let disconnected = self.disconnected_at.as_deref().and_then(epoch_ms);
        let timeout = self.connection_timeout_seconds.max(1);
        let (created_at, first_connected_at, last_connected_at, disconnected_at) = match self.status.as_str() {
            "connected" => (created.min(now_ms), Some(first.unwrap_or(now_ms).min(now_ms)), Some(now_ms), None),
            "disconnected" => {
                let last = last.or(first).unwrap_or(created).min(now_ms);
                (created.min(last), Some(first.unwrap_or(last).min(last)), Some(last), Some(disconnected.unwrap_or(last).max(last)))
            }
            "timeout" => (now_ms.saturating_sub(u64::from(timeout) * 1000 + 1000), None, None, None),
            // "connecting", and any status Coder may add: not yet reachable.
            _ => (now_ms, None, None, None),
        };
        Agent {
            id: self.id.clone(),
            name: self.name.clone(),
            parent_id: self.parent_id.clone().filter(|p| !p.is_empty()),
            display_order: 0,
            created_at,
            first_connected_at,
            last_connected_at,
            disconnected_at,
            connection_timeout_seconds: timeout,
            lifecycle_state: names::lifecycle(&self.lifecycle_state).unwrap_or(LifecycleState::Created),
            inactive_disconnect_ms,
        }
    }
}
