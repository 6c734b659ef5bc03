//! SPEC 4.8: provision_registry.

use crate::wit::exports::toolshed::tools::registry_tools::{ProvisionRegistryArgs, ProvisionRegistryResult, ToolError};
use crate::wit::toolshed::platform::registry::{PlatformError, ProvisionRequest, Task, TaskStatus};
use toolshed_guest::types::ErrorCategory;

/// How often a provisioning task is polled.
pub const POLL_INTERVAL_MS: u64 = 3_000;
/// How long provisioning may take before the wait gives up.
pub const WAIT_LIMIT_MS: u64 = 300_000;

const PROVIDERS: [&str; 2] = ["gcp", "hetzner"];

/// What the tool needs from its host.
pub trait Platform {
    /// Milliseconds since the Unix epoch on the host clock.
    fn now(&self) -> u64;
    /// Waits `ms` milliseconds of host time.
    fn sleep(&self, ms: u64);
    /// Reports progress on the wait.
    fn progress(&self, message: &str);
    /// How many ms the caller will still wait for the answer; `None`: as
    /// long as the call takes.
    fn wait_budget(&self) -> Option<u64>;
    /// Starts provisioning.
    fn start(&self, request: &ProvisionRequest) -> Result<Task, PlatformError>;
    /// Reads a task.
    fn task(&self, id: &str) -> Result<Task, PlatformError>;
}

fn error(category: ErrorCategory, code: &str, message: impl Into<String>, suggestions: &[&str]) -> ToolError {
    toolshed_guest::suggest(toolshed_guest::error(category, code, message), suggestions)
}

/// The registry name to use: "main" by default; otherwise lower-cased, with
/// anything but letters, digits and dashes turned into dashes, and no
/// leading or trailing dashes. A letter here is an ASCII letter: the name
/// becomes part of the registry's URL and image references, which allow
/// only `a-z`, `0-9` and `-`, so "café" becomes "caf".
pub fn sanitize_name(name: Option<&str>) -> String {
    let cleaned: String = name
        .unwrap_or_default()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' { c } else { '-' })
        .collect();
    let cleaned = cleaned.trim_matches('-');
    if cleaned.is_empty() { "main".to_string() } else { cleaned.to_string() }
}

fn validate(args: &ProvisionRegistryArgs) -> Result<(), ToolError> {
    if args.project_id.trim().is_empty() {
        return Err(error(ErrorCategory::ValidationFailed, "PROJECT_ID_REQUIRED", "project_id is required", &[
            "Pass the id of the project the registry belongs to as project_id.",
        ]));
    }
    if args.cluster_id.trim().is_empty() {
        return Err(error(ErrorCategory::ValidationFailed, "CLUSTER_ID_REQUIRED", "cluster_id is required", &[
            "Pass the id of the cluster that will pull from the registry as cluster_id.",
        ]));
    }
    if !PROVIDERS.contains(&args.provider.as_str()) {
        return Err(error(
            ErrorCategory::ValidationFailed,
            "UNKNOWN_PROVIDER",
            format!("unknown provider {:?}: use \"gcp\" or \"hetzner\"", args.provider),
            &["Set provider to \"gcp\" or \"hetzner\"."],
        ));
    }
    if args.provider == "gcp" && args.gcp_project_id.as_deref().is_none_or(|p| p.trim().is_empty()) {
        return Err(error(
            ErrorCategory::ValidationFailed,
            "GCP_PROJECT_ID_REQUIRED",
            "gcp_project_id is required when provider is \"gcp\"",
            &["Pass the GCP project to create the registry in as gcp_project_id, or use provider \"hetzner\"."],
        ));
    }
    Ok(())
}

/// A platform error as the model sees it.
fn platform_error(err: PlatformError, doing: &str) -> ToolError {
    match err {
        PlatformError::Unauthorized(m) => error(ErrorCategory::PermissionDenied, "UNAUTHORIZED", format!("{doing}: not authorized: {m}"), &[
            "Check the platform credentials this host uses.",
        ]),
        PlatformError::Forbidden(m) => error(ErrorCategory::PermissionDenied, "FORBIDDEN", format!("{doing}: forbidden: {m}"), &[
            "Ask an owner of the project for permission to create registries.",
        ]),
        PlatformError::NotFound(m) => error(ErrorCategory::ResourceUnavailable, "NOT_FOUND", format!("{doing}: not found: {m}"), &[
            "Check project_id and cluster_id.",
        ]),
        PlatformError::RateLimited(m) => error(ErrorCategory::ResourceUnavailable, "RATE_LIMITED", format!("{doing}: rate limited: {m}"), &[
            "Wait a minute, then call provision_registry again.",
        ]),
        PlatformError::Connection(m) => error(ErrorCategory::NetworkError, "CONNECTION_FAILED", format!("{doing}: cannot reach the platform: {m}"), &[
            "Call provision_registry again; the platform may be briefly unreachable.",
        ]),
        PlatformError::BadResponse(m) => error(ErrorCategory::InternalError, "BAD_RESPONSE", format!("{doing}: the platform answered something unreadable: {m}"), &[]),
        PlatformError::Api(api) => error(
            ErrorCategory::ExternalCommandFailed,
            "PLATFORM_ERROR",
            format!("{doing}: the platform failed (status {}): {}", api.status, api.message),
            &[],
        ),
    }
}

/// The exact call that keeps waiting on `task_id`: the same arguments, with
/// the task named.
fn wait_again(args: &ProvisionRegistryArgs, task_id: &str) -> String {
    let mut call = serde_json::json!({
        "project_id": args.project_id,
        "cluster_id": args.cluster_id,
        "cluster_name": args.cluster_name,
        "provider": args.provider,
        "region": args.region,
        "task_id": task_id,
    });
    if let Some(name) = &args.registry_name {
        call["registry_name"] = name.as_str().into();
    }
    if let Some(project) = &args.gcp_project_id {
        call["gcp_project_id"] = project.as_str().into();
    }
    format!("provision_registry {call}")
}

/// Provisions a registry and waits for it, polling every three seconds for
/// at most five minutes. With `task_id`, waits on that task and starts
/// nothing. When the caller's wait budget would run out before the next
/// poll, answers STILL_IN_PROGRESS with the call that waits on.
pub fn provision_registry<P: Platform>(host: &P, args: ProvisionRegistryArgs) -> Result<ProvisionRegistryResult, ToolError> {
    validate(&args)?;
    if args.task_id.as_deref().is_some_and(|id| id.trim().is_empty()) {
        return Err(error(ErrorCategory::ValidationFailed, "TASK_ID_EMPTY", "task_id is empty", &[
            "Leave task_id out to start provisioning, or pass the task_id an earlier call answered with.",
        ]));
    }
    let registry_name = sanitize_name(args.registry_name.as_deref());
    let request = ProvisionRequest {
        project_id: args.project_id.clone(),
        cluster_id: args.cluster_id.clone(),
        cluster_name: args.cluster_name.clone(),
        provider: args.provider.clone(),
        region: args.region.clone(),
        registry_name: registry_name.clone(),
        gcp_project_id: args.gcp_project_id.clone().filter(|p| !p.is_empty()),
    };
    let task_id = match &args.task_id {
        Some(id) => id.clone(),
        None => host.start(&request).map_err(|e| platform_error(e, "start provisioning"))?.id,
    };
    let started = host.now();
    let deadline = started.saturating_add(WAIT_LIMIT_MS);
    loop {
        let task = host.task(&task_id).map_err(|e| {
            if let (Some(_), PlatformError::NotFound(m)) = (&args.task_id, &e) {
                let mut err = error(ErrorCategory::ValidationFailed, "TASK_NOT_FOUND", format!("no provisioning task {task_id}: {m}"), &[
                    "Leave task_id out to start provisioning; pass only a task_id an earlier provision_registry call answered with.",
                ]);
                err.task_id = Some(task_id.clone());
                return err;
            }
            // The task was started and may still finish: whatever the
            // platform said, this is a failed look, so the error is a
            // network error whose suggestion is the call that looks again
            // without starting a second registry.
            let reason = platform_error(e, "check provisioning").error;
            let mut err = error(
                ErrorCategory::NetworkError,
                "TASK_POLL_FAILED",
                format!("{reason}; provisioning task {task_id} was started and may still finish"),
                &[],
            );
            err.suggestions = Some(vec![wait_again(&args, &task_id)]);
            err.task_id = Some(task_id.clone());
            err
        })?;
        match task.status {
            TaskStatus::Completed => {
                let registry_url = task.registry_url.unwrap_or_default();
                return Ok(ProvisionRegistryResult {
                    success: true,
                    task_id,
                    message: format!("Registry {registry_name} is ready at {registry_url}."),
                    next_steps: vec![
                        format!("Tag images as {registry_url}/<image>:<tag> and push them."),
                        format!("Cluster {} can now pull from {registry_url}.", args.cluster_name),
                    ],
                    registry_name,
                    region: args.region,
                    provider: args.provider,
                    registry_url,
                    status: "completed".into(),
                });
            }
            TaskStatus::Failed => {
                let reason = task.message.filter(|m| !m.is_empty()).unwrap_or_else(|| "Unknown error".into());
                let mut err = error(ErrorCategory::ExternalCommandFailed, "PROVISIONING_FAILED", format!("provisioning failed: {reason}"), &[]);
                err.task_id = Some(task_id);
                return Err(err);
            }
            TaskStatus::Cancelled => {
                let mut err = error(ErrorCategory::UserCancelled, "PROVISIONING_CANCELLED", "provisioning was cancelled", &[
                    "Call provision_registry again if the registry is still wanted.",
                ]);
                err.task_id = Some(task_id);
                return Err(err);
            }
            TaskStatus::Pending | TaskStatus::Running => {}
        }
        if host.now() >= deadline {
            let mut err = error(
                ErrorCategory::Timeout,
                "PROVISIONING_TIMEOUT",
                format!(
                    "provisioning task {task_id} did not finish within {} seconds; it may still finish",
                    WAIT_LIMIT_MS / 1_000
                ),
                &["Check again later: the registry may still become ready."],
            );
            err.suggestions = Some(vec![
                "Check again later: the registry may still become ready.".into(),
                wait_again(&args, &task_id),
            ]);
            err.task_id = Some(task_id);
            return Err(err);
        }
        let waited = host.now().saturating_sub(started);
        let status = if matches!(task.status, TaskStatus::Pending) { "pending" } else { "running" };
        host.progress(&format!("registry {registry_name}: provisioning {status} for {} s of {} s", waited / 1_000, WAIT_LIMIT_MS / 1_000));
        if toolshed_guest::wait_budget::runs_out(host.wait_budget(), POLL_INTERVAL_MS) {
            let what = format!("provisioning task {task_id} is still {status} after {} s", waited / 1_000);
            let mut err = toolshed_guest::wait_budget::still_in_progress(&what, wait_again(&args, &task_id));
            err.task_id = Some(task_id);
            return Err(err);
        }
        host.sleep(POLL_INTERVAL_MS);
    }
}

#[cfg(test)]
mod tests {
    use super::sanitize_name;

    #[test]
    fn names_are_sanitised() {
        assert_eq!(sanitize_name(Some("My Registry")), "my-registry");
        assert_eq!(sanitize_name(Some("test_name")), "test-name");
        assert_eq!(sanitize_name(Some("--test--")), "test");
        assert_eq!(sanitize_name(Some("MAIN")), "main");
        assert_eq!(sanitize_name(None), "main");
        assert_eq!(sanitize_name(Some("")), "main");
    }

    #[test]
    fn letters_outside_ascii_become_dashes() {
        assert_eq!(sanitize_name(Some("Café")), "caf");
        assert_eq!(sanitize_name(Some("Ñandú")), "and");
        assert_eq!(sanitize_name(Some("日本")), "main", "nothing left falls back to the default");
        assert_eq!(sanitize_name(Some("a1-b2")), "a1-b2");
    }
}
