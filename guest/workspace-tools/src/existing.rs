//! The existing-workspace check create_workspace makes first (SPEC 4.5).

use crate::agents::{self, ConnectPhase, Connection};
use crate::builds::{Again, wait_for_build};
use crate::capabilities::Capabilities;
use crate::wit::exports::toolshed::tools::workspace_tools::{
    CreateWorkspaceResult, ToolError, WorkspaceStatus,
};
use crate::wit::toolshed::infra::db::ChatBinding;
use crate::wit::toolshed::infra::types::{JobStatus, Transition, Workspace};

/// What to do about the chat's current workspace.
pub enum Existing {
    /// Nothing usable is bound: create a new workspace.
    Create,
    /// Answer with this instead of creating.
    Answer(Result<CreateWorkspaceResult, ToolError>),
}

/// The full name of a workspace, `owner/name`.
pub fn full_name(workspace: &Workspace) -> String {
    format!("{}/{}", workspace.owner_name, workspace.name)
}

fn already_exists(workspace: &Workspace, build_id: &str) -> CreateWorkspaceResult {
    CreateWorkspaceResult {
        created: false,
        workspace_name: full_name(workspace),
        build_id: Some(build_id.to_string()),
        status: Some(WorkspaceStatus::AlreadyExists),
        message: Some(format!(
            "This chat already has workspace {}; it is running, so no new one was created.",
            full_name(workspace)
        )),
        agent_status: None,
        agent_error: None,
        startup_scripts: None,
        lifecycle_state: None,
    }
}

/// Decides whether the chat's bound workspace can be used as it is; `again`
/// is the call that continues a wait the caller's budget cuts short.
pub fn check<C: Capabilities>(host: &C, workspace_id: Option<&str>, again: Again<'_>) -> Existing {
    let Some(workspace_id) = workspace_id else { return Existing::Create };
    let Ok(workspace) = host.workspace(workspace_id) else { return Existing::Create };
    if workspace.deleted {
        return Existing::Create;
    }
    let Ok(build) = host.latest_build(&workspace.id) else { return Existing::Create };
    let Ok(job) = host.job(&build.job_id) else { return Existing::Create };

    match job.status {
        JobStatus::Pending | JobStatus::Running => {
            let _ = host.bind_chat(&ChatBinding { workspace_id: None, build_id: Some(build.id.clone()), agent_id: None });
            host.chat_updated();
            if let Err(failure) = wait_for_build(host, &build.id) {
                return Existing::Answer(Err(failure.into_tool_error("existing workspace build failed", &build.id, again)));
            }
            let mut result = already_exists(&workspace, &build.id);
            match agents::wait_until_ready(host, &build.id, ConnectPhase::Full).settled(&build.id, again) {
                Ok(report) => report.apply_to_create(&mut result),
                Err(waiting) => return Existing::Answer(Err(waiting)),
            }
            Existing::Answer(Ok(result))
        }
        JobStatus::Succeeded if build.transition == Transition::Stop => {
            Existing::Answer(Ok(CreateWorkspaceResult {
                created: false,
                workspace_name: full_name(&workspace),
                build_id: None,
                status: Some(WorkspaceStatus::Stopped),
                message: Some(format!(
                    "This chat's workspace {} is stopped. Use start_workspace to start it instead of creating a new one.",
                    full_name(&workspace)
                )),
                agent_status: None,
                agent_error: None,
                startup_scripts: None,
                lifecycle_state: None,
            }))
        }
        JobStatus::Succeeded if build.transition == Transition::Start => {
            let Ok(build_agents) = host.build_agents(&build.id) else { return Existing::Create };
            if build_agents.is_empty() {
                return Existing::Create;
            }
            let agent = match agents::choose(&build_agents) {
                Ok(agent) => agent,
                Err(_) => {
                    // The workspace runs; the selection problem is reported as agent keys.
                    let mut result = already_exists(&workspace, &build.id);
                    match agents::wait_until_ready(host, &build.id, ConnectPhase::Skip).settled(&build.id, again) {
                        Ok(report) => report.apply_to_create(&mut result),
                        Err(waiting) => return Existing::Answer(Err(waiting)),
                    }
                    return Existing::Answer(Ok(result));
                }
            };
            let phase = match agents::connection(&agent, host.now()) {
                Connection::Connected => ConnectPhase::Skip,
                Connection::Connecting => ConnectPhase::Once,
                Connection::Disconnected | Connection::Timeout => return Existing::Create,
            };
            let mut result = already_exists(&workspace, &build.id);
            match agents::wait_for_agent(host, &agent, phase).settled(&build.id, again) {
                Ok(report) => report.apply_to_create(&mut result),
                Err(waiting) => return Existing::Answer(Err(waiting)),
            }
            Existing::Answer(Ok(result))
        }
        _ => Existing::Create,
    }
}
