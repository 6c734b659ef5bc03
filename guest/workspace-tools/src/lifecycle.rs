//! `create_workspace`, `start_workspace` and `stop_workspace` (SPEC 4.3-4.7).

use crate::agents::{self, ConnectPhase};
use crate::asking;
use crate::builds::{Again, wait_for_build};
use crate::parked::BuildWait;
use crate::capabilities::Capabilities;
use crate::errors::{api_error, api_error_text, error, query_failed, validations};
use crate::existing::{self, Existing, full_name};
use crate::naming;
use crate::templates::{allowed, check_template_id};
use crate::ttl;
use crate::wit::exports::toolshed::tools::workspace_tools::{
    CreateWorkspaceArgs, CreateWorkspaceResult, StartWorkspaceArgs, StartWorkspaceResult,
    StopWorkspaceResult, ToolError,
};
use crate::wit::toolshed::infra::control::{CreateBuildRequest, CreateWorkspaceRequest};
use crate::wit::toolshed::infra::db::ChatBinding;
use crate::wit::toolshed::infra::types::{
    ApiError, Build, ControlError, JobStatus, QueryError, TemplateParameter, Transition, Workspace,
};
use toolshed_guest::types::ErrorCategory;

/// The lock every workspace-changing tool of a chat holds for its whole run.
const WORKSPACE_LOCK: &str = "chat-workspace";

/// The chat's workspace lock was refused: a fault of the host, not of the
/// model's request.
fn lock_refused(reason: String) -> ToolError {
    error(ErrorCategory::InternalError, "LOCK_REFUSED", format!("the chat's workspace lock was refused: {reason}"))
}

fn bind<C: Capabilities>(host: &C, workspace_id: Option<&str>, build_id: &str) {
    // A failed binding only affects what the front end shows; the tool goes on.
    let _ = host.bind_chat(&ChatBinding {
        workspace_id: workspace_id.map(str::to_string),
        build_id: Some(build_id.to_string()),
        agent_id: None,
    });
}

/// The calls that continue a wait cut short by the caller's wait budget:
/// each tool is idempotent (SPEC 4.4, 4.5), so calling it again waits on.
fn start_again() -> String {
    "start_workspace {}".into()
}

/// See [`start_again`].
fn stop_again() -> String {
    "stop_workspace {}".into()
}

/// The exact create_workspace call `args` make, as JSON.
fn create_again(args: &CreateWorkspaceArgs) -> String {
    let mut call = serde_json::json!({ "template_id": args.template_id });
    if let Some(name) = &args.name {
        call["name"] = serde_json::json!(name);
    }
    if let Some(parameters) = &args.parameters {
        call["parameters"] = parameters.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>().into();
    }
    format!("create_workspace {call}")
}

/// The end of a create: the build, then the agent.
fn finish_create<C: Capabilities>(host: &C, wait: BuildWait, again: Again<'_>) -> Result<CreateWorkspaceResult, ToolError> {
    wait.wait(host, "workspace build failed", again)?;
    let mut result = CreateWorkspaceResult {
        created: true,
        workspace_name: wait.workspace_name,
        build_id: Some(wait.build_id.clone()),
        status: None,
        message: None,
        agent_status: None,
        agent_error: None,
        startup_scripts: None,
        lifecycle_state: None,
    };
    agents::wait_until_ready(host, &wait.build_id, ConnectPhase::Full).settled(&wait.build_id, again)?.apply_to_create(&mut result);
    host.chat_updated();
    Ok(result)
}

/// Creates the chat's workspace, or returns the one it already has. While
/// the build runs the call parks between polls, holding no sandbox; each
/// later run takes the chat's lock back and goes on waiting.
pub fn create_workspace<C: Capabilities>(host: &C, args: CreateWorkspaceArgs) -> Result<CreateWorkspaceResult, ToolError> {
    check_template_id(&args.template_id, ": call list_templates to find a template")?;
    let again = || create_again(&args);
    if let Some(wait) = BuildWait::resumed(host, "create_workspace")? {
        let _guard = host.lock(WORKSPACE_LOCK).map_err(lock_refused)?;
        return finish_create(host, wait, &again);
    }
    let allowlist = host.template_allowlist().map_err(|e| query_failed("read template allowlist", e))?;
    if !allowed(&allowlist, &args.template_id) {
        let mut err = error(
            ErrorCategory::ValidationFailed,
            "TEMPLATE_NOT_AVAILABLE",
            format!("template {} is not available in this chat; use list_templates to see the templates you can use", args.template_id),
        );
        err.suggestions = Some(vec!["Call list_templates and pick one of the templates it lists.".into()]);
        return Err(err);
    }

    let _guard = host.lock(WORKSPACE_LOCK).map_err(lock_refused)?;
    let chat = host.chat().map_err(|e| query_failed("read chat", e))?;
    if let Existing::Answer(answer) = existing::check(host, chat.workspace_id.as_deref(), &again) {
        return answer;
    }

    let template = match host.template(&args.template_id) {
        Ok(t) if !t.deleted => t,
        Ok(_) | Err(QueryError::NotFound) => {
            let mut err = error(ErrorCategory::ResourceUnavailable, "TEMPLATE_NOT_FOUND", "template not found; use list_templates to find a template");
            err.template_id = Some(args.template_id.clone());
            return Err(err);
        }
        Err(e) => return Err(query_failed("read template", e)),
    };
    if template.organization_id != chat.organization_id {
        return Err(error(
            ErrorCategory::PermissionDenied,
            "TEMPLATE_WRONG_ORGANIZATION",
            format!(
                "template {} belongs to organization {}, not to this chat's organization {}; use list_templates to find a template of this organization",
                template.id, template.organization_id, chat.organization_id
            ),
        ));
    }

    let ttl_ms = host.workspace_ttl().ok().and_then(|setting| ttl::ttl_ms(&setting));
    let mut parameters = args.parameters.clone().unwrap_or_default();
    // A required parameter without a default that the call does not give
    // has no obvious value: ask the user, when the client can (SPEC 3.6).
    // A client that cannot costs no read of the parameters.
    if host.can_ask()
        && let Ok(all) = host.template_parameters(&template.active_version_id)
    {
        let missing: Vec<&TemplateParameter> =
            all.iter().filter(|p| p.required && p.default_value.is_none() && !parameters.iter().any(|(k, _)| *k == p.name)).collect();
        let message = format!("The template {} needs values for these parameters to create your workspace.", template.name);
        if let Some(answered) = asking::ask_for(host, &message, &missing)? {
            parameters = asking::merged(&parameters, answered);
        }
    }
    let user_name = args.name.clone().filter(|n| !n.is_empty());
    let (mut name, generated) = match &user_name {
        Some(n) if naming::is_valid(n) => (n.clone(), false),
        Some(n) => (naming::generate(n, host.random()), true),
        None => (naming::generate(&template.name, host.random()), true),
    };
    let seed = user_name.unwrap_or_else(|| template.name.clone());

    let mut retried = false;
    let created = loop {
        let request = CreateWorkspaceRequest {
            template_id: template.id.clone(),
            name: name.clone(),
            ttl_ms,
            parameters: parameters.clone(),
        };
        match host.create_workspace(&request) {
            Ok(created) => break created,
            Err(ControlError::Api(api)) if api.status == 409 && generated && !retried => {
                retried = true;
                name = naming::generate(&seed, host.random());
            }
            Err(ControlError::Api(api)) => return Err(api_error(&api)),
            Err(ControlError::Failed(text)) => {
                return Err(error(ErrorCategory::ExternalCommandFailed, "CREATE_FAILED", format!("create workspace: {text}")));
            }
        }
    };

    let build_id = created.build.id.clone();
    bind(host, Some(&created.workspace.id), &build_id);
    host.chat_updated();
    let wait = BuildWait { build_id, workspace_name: full_name(&created.workspace), started: host.now(), new_version: None };
    finish_create(host, wait, &again)
}

/// The chat's bound workspace, or an error telling the model to create one.
fn chat_workspace<C: Capabilities>(host: &C) -> Result<Workspace, ToolError> {
    let chat = host.chat().map_err(|e| query_failed("read chat", e))?;
    let no_workspace = || {
        let mut err = error(
            ErrorCategory::ResourceUnavailable,
            "NO_WORKSPACE",
            "this chat has no workspace yet; use create_workspace to create one",
        );
        err.suggestions = Some(vec!["Call list_templates, then create_workspace with a template_id.".into()]);
        err
    };
    let Some(workspace_id) = chat.workspace_id else { return Err(no_workspace()) };
    let workspace = match host.workspace(&workspace_id) {
        Ok(w) => w,
        Err(QueryError::NotFound) => return Err(no_workspace()),
        Err(e) => return Err(query_failed("read workspace", e)),
    };
    if workspace.deleted {
        let mut err = error(
            ErrorCategory::ResourceUnavailable,
            "WORKSPACE_DELETED",
            format!("workspace {} was deleted; use create_workspace to create a new one", full_name(&workspace)),
        );
        err.suggestions = Some(vec!["Call create_workspace to create a new workspace for this chat.".into()]);
        return Err(err);
    }
    Ok(workspace)
}

/// The latest build and its job status, if it can be read.
fn latest<C: Capabilities>(host: &C, workspace_id: &str) -> Result<Option<(Build, JobStatus)>, ToolError> {
    let build = match host.latest_build(workspace_id) {
        Ok(b) => b,
        Err(QueryError::NotFound) => return Ok(None),
        Err(e) => return Err(query_failed("read latest build", e)),
    };
    let job = host.job(&build.job_id).map_err(|e| query_failed("read build job", e))?;
    Ok(Some((build, job.status)))
}

fn started(workspace_name: String, build_id: Option<String>) -> StartWorkspaceResult {
    StartWorkspaceResult {
        started: true,
        workspace_name,
        no_build: build_id.is_none().then_some(true),
        build_id,
        updated_to_active_version: None,
        update_reason: None,
        message: None,
        agent_status: None,
        agent_error: None,
        startup_scripts: None,
        lifecycle_state: None,
    }
}

/// The error shown when a start must move to the template's active version
/// and that version's parameters do not validate (SPEC 3.6).
pub fn manual_update_error(api: &ApiError, template_id: &str) -> ToolError {
    let detail = if api.validations.is_empty() && !api.message.is_empty() {
        if api.detail.is_empty() { api.message.clone() } else { format!("{}: {}", api.message, api.detail) }
    } else if api.detail.is_empty() {
        api_error_text(api)
    } else {
        api.detail.clone()
    };
    let mut err = error(
        ErrorCategory::ValidationFailed,
        "TEMPLATE_PARAMETERS_REQUIRED",
        format!(
            "Starting this workspace requires updating it to its template's active version, whose parameters need values this workspace does not have. \
             Call read_template with template_id {template_id} to see the active version's parameters and which are required, \
             then call start_workspace again with a `parameters` object that supplies the missing or changed values. \
             If a value is not obvious, ask the user instead of guessing."
        ),
    );
    err.detail = Some(detail);
    err.validations = validations(api);
    err.template_id = Some(template_id.to_string());
    err.suggestions = Some(vec![
        format!("read_template {{\"template_id\": \"{template_id}\"}}"),
        "start_workspace {\"parameters\": {\"<name>\": \"<value>\"}}".into(),
    ]);
    err
}

/// The end of a start that made a build: the build, then the agent.
fn finish_start<C: Capabilities>(host: &C, wait: BuildWait) -> Result<StartWorkspaceResult, ToolError> {
    wait.wait(host, "workspace start build failed", &start_again)?;
    let mut result = started(wait.workspace_name, Some(wait.build_id.clone()));
    if let Some(after) = wait.new_version {
        result.updated_to_active_version = Some(true);
        result.update_reason = Some("the template has a newer active version, and starts use it".into());
        result.message = Some(format!("The workspace was updated to the active template version ({after}) while starting."));
    }
    agents::wait_until_ready(host, &wait.build_id, ConnectPhase::Full).settled(&wait.build_id, &start_again)?.apply_to_start(&mut result);
    host.chat_updated();
    Ok(result)
}

/// Starts the chat's workspace, or waits for the start already under way.
/// While a build it made runs, the call parks between polls.
pub fn start_workspace<C: Capabilities>(host: &C, args: StartWorkspaceArgs) -> Result<StartWorkspaceResult, ToolError> {
    let resumed = BuildWait::resumed(host, "start_workspace")?;
    let _guard = host.lock(WORKSPACE_LOCK).map_err(lock_refused)?;
    if let Some(wait) = resumed {
        return finish_start(host, wait);
    }
    let workspace = chat_workspace(host)?;
    let previous = latest(host, &workspace.id)?;

    if let Some((build, status)) = &previous {
        match status {
            JobStatus::Pending | JobStatus::Running => {
                bind(host, None, &build.id);
                host.chat_updated();
                if let Err(failure) = wait_for_build(host, &build.id) {
                    return Err(failure.into_tool_error("waiting for in-progress build", &build.id, &start_again));
                }
                if build.transition == Transition::Start {
                    let mut result = started(full_name(&workspace), Some(build.id.clone()));
                    agents::wait_until_ready(host, &build.id, ConnectPhase::Full).settled(&build.id, &start_again)?.apply_to_start(&mut result);
                    host.chat_updated();
                    return Ok(result);
                }
            }
            JobStatus::Succeeded if build.transition == Transition::Start => {
                let mut result = started(full_name(&workspace), None);
                agents::wait_until_ready(host, &build.id, ConnectPhase::Full).settled(&build.id, &start_again)?.apply_to_start(&mut result);
                return Ok(result);
            }
            _ => {}
        }
    }

    let previous_version = previous.as_ref().and_then(|(b, _)| b.template_version_id.clone());
    let request = CreateBuildRequest {
        workspace_id: workspace.id.clone(),
        transition: Transition::Start,
        parameters: args.parameters.unwrap_or_default(),
    };
    let build = match host.create_build(&request) {
        Ok(build) => build,
        Err(ControlError::Api(api)) => 'refused: {
            // The rewrite is for a start that moves to a new version: the
            // workspace's last build is on another one, and the backend says
            // starts use the active version (asked last, since over a remote
            // backend it costs the most). A 400 against the version the
            // workspace already has is an ordinary error.
            let moving_to_active = api.status == 400
                && match (&previous_version, host.template(&workspace.template_id).ok()) {
                    (Some(v), Some(t)) => &t.active_version_id != v,
                    _ => false,
                }
                && host.start_uses_active_version(&workspace.id);
            if moving_to_active {
                // The values the new version needs are not obvious: ask the
                // user for them when the client can, and start with them.
                if let Some(build) = start_with_answers(host, &workspace, &api, &request)? {
                    break 'refused build;
                }
                return Err(manual_update_error(&api, &workspace.template_id));
            }
            let mut err = api_error(&api);
            if !api.validations.is_empty() {
                err.template_id = Some(workspace.template_id.clone());
            }
            return Err(err);
        }
        Err(ControlError::Failed(text)) => {
            return Err(error(ErrorCategory::ExternalCommandFailed, "START_FAILED", format!("start workspace: {text}")));
        }
    };

    bind(host, None, &build.id);
    host.chat_updated();
    let new_version = match (&previous_version, &build.template_version_id) {
        (Some(before), Some(after)) if before != after => Some(after.clone()),
        _ => None,
    };
    finish_start(host, BuildWait { build_id: build.id, workspace_name: full_name(&workspace), started: host.now(), new_version })
}

/// Asks the user for the parameters a start onto the active version was
/// refused for (those the refusal names, else every required one without
/// a default), and starts again with their answers: the build, or `None`
/// when the client cannot ask.
fn start_with_answers<C: Capabilities>(host: &C, workspace: &Workspace, refusal: &ApiError, request: &CreateBuildRequest) -> Result<Option<Build>, ToolError> {
    if !host.can_ask() {
        return Ok(None);
    }
    let Ok(template) = host.template(&workspace.template_id) else { return Ok(None) };
    let Ok(all) = host.template_parameters(&template.active_version_id) else { return Ok(None) };
    let named: Vec<&TemplateParameter> = all.iter().filter(|p| refusal.validations.iter().any(|v| v.field == p.name)).collect();
    let needed = if named.is_empty() {
        all.iter().filter(|p| p.required && p.default_value.is_none() && !request.parameters.iter().any(|(k, _)| *k == p.name)).collect()
    } else {
        named
    };
    let message = format!("The template {} has a new version, which needs values for these parameters to start {}.", template.name, full_name(workspace));
    let Some(answered) = asking::ask_for(host, &message, &needed)? else { return Ok(None) };
    let retry = CreateBuildRequest { parameters: asking::merged(&request.parameters, answered), ..request.clone() };
    match host.create_build(&retry) {
        Ok(build) => Ok(Some(build)),
        Err(ControlError::Api(api)) => Err(manual_update_error(&api, &workspace.template_id)),
        Err(ControlError::Failed(text)) => Err(error(ErrorCategory::ExternalCommandFailed, "START_FAILED", format!("start workspace: {text}"))),
    }
}

/// The end of a stop that made a build: the build.
fn finish_stop<C: Capabilities>(host: &C, wait: BuildWait) -> Result<StopWorkspaceResult, ToolError> {
    wait.wait(host, "workspace stop build failed", &stop_again)?;
    host.chat_updated();
    Ok(StopWorkspaceResult { stopped: true, workspace_name: wait.workspace_name, no_build: None, build_id: Some(wait.build_id) })
}

/// Stops the chat's workspace; stopping a stopped workspace does nothing.
/// While a build it made runs, the call parks between polls.
pub fn stop_workspace<C: Capabilities>(host: &C) -> Result<StopWorkspaceResult, ToolError> {
    let resumed = BuildWait::resumed(host, "stop_workspace")?;
    let _guard = host.lock(WORKSPACE_LOCK).map_err(lock_refused)?;
    if let Some(wait) = resumed {
        return finish_stop(host, wait);
    }
    let workspace = chat_workspace(host)?;
    let stopped = |build_id: Option<String>| StopWorkspaceResult {
        stopped: true,
        workspace_name: full_name(&workspace),
        no_build: build_id.is_none().then_some(true),
        build_id,
    };

    if let Some((build, status)) = latest(host, &workspace.id)? {
        match status {
            JobStatus::Pending | JobStatus::Running => {
                if let Err(failure) = wait_for_build(host, &build.id) {
                    return Err(failure.into_tool_error("waiting for in-progress build", &build.id, &stop_again));
                }
                if build.transition == Transition::Stop {
                    return Ok(stopped(Some(build.id)));
                }
            }
            JobStatus::Succeeded if build.transition == Transition::Stop => return Ok(stopped(None)),
            _ => {}
        }
    }

    let request = CreateBuildRequest { workspace_id: workspace.id.clone(), transition: Transition::Stop, parameters: Vec::new() };
    let build = match host.create_build(&request) {
        Ok(build) => build,
        Err(ControlError::Api(api)) => return Err(api_error(&api)),
        Err(ControlError::Failed(text)) => {
            return Err(error(ErrorCategory::ExternalCommandFailed, "STOP_FAILED", format!("stop workspace: {text}")));
        }
    };
    bind(host, None, &build.id);
    host.chat_updated();
    finish_stop(host, BuildWait { build_id: build.id, workspace_name: full_name(&workspace), started: host.now(), new_version: None })
}
