//! Waiting for a build's provisioner job (SPEC 3.1).

use crate::capabilities::Capabilities;
use crate::errors::error;
use crate::wit::toolshed::infra::types::{JobStatus, QueryError};
use toolshed_guest::types::ErrorCategory;
use crate::wit::exports::toolshed::tools::workspace_tools::ToolError;

/// How often a build is polled; the first poll is immediate.
pub const POLL_INTERVAL_MS: u64 = 2_000;
/// How long a build may take before the wait gives up.
pub const WAIT_LIMIT_MS: u64 = 10 * 60 * 1_000;

/// Why a build wait did not end in success.
#[derive(Debug, Clone, PartialEq)]
pub enum BuildFailure {
    /// The job failed; the text is its error, or "build failed".
    Failed(String),
    /// The job was canceled.
    Canceled,
    /// The job reported a status no build should have.
    Unexpected(String),
    /// The build or job could not be read.
    Lookup(String),
    /// The build did not finish within the wait limit.
    TimedOut,
}

impl BuildFailure {
    /// The failure as the text after a tool's own prefix.
    pub fn text(&self) -> String {
        match self {
            BuildFailure::Failed(text) => text.clone(),
            BuildFailure::Canceled => "build was canceled".to_string(),
            BuildFailure::Unexpected(status) => format!("unexpected job status: {status}"),
            BuildFailure::Lookup(text) => text.clone(),
            BuildFailure::TimedOut => format!(
                "timed out after {} minutes waiting for the build to finish",
                WAIT_LIMIT_MS / 60_000
            ),
        }
    }

    /// A tool error saying `prefix: <failure>`, carrying the build id.
    pub fn into_tool_error(self, prefix: &str, build_id: &str) -> ToolError {
        let (category, code) = match &self {
            BuildFailure::Failed(_) => (ErrorCategory::ExternalCommandFailed, "BUILD_FAILED"),
            BuildFailure::Canceled => (ErrorCategory::UserCancelled, "BUILD_CANCELED"),
            BuildFailure::Unexpected(_) => (ErrorCategory::InternalError, "BUILD_STATUS_UNEXPECTED"),
            BuildFailure::Lookup(_) => (ErrorCategory::InternalError, "BUILD_LOOKUP_FAILED"),
            BuildFailure::TimedOut => (ErrorCategory::Timeout, "BUILD_TIMEOUT"),
        };
        let mut err = error(category, code, format!("{prefix}: {}", self.text()));
        err.build_id = Some(build_id.to_string());
        if matches!(self, BuildFailure::TimedOut) {
            err.suggestions = Some(vec![
                "The build may still finish: call start_workspace later to wait for it again.".into(),
            ]);
        }
        err
    }
}

fn status_name(status: JobStatus) -> &'static str {
    toolshed_contract::name(&toolshed_contract::JOB_STATUS, status as usize)
}

fn lookup_text(what: &str, err: QueryError) -> String {
    match err {
        QueryError::NotFound => format!("{what} not found"),
        QueryError::Failed(text) => format!("{what}: {text}"),
    }
}

/// Polls the build's job until it ends, every two seconds for at most ten minutes.
pub fn wait_for_build<C: Capabilities>(host: &C, build_id: &str) -> Result<(), BuildFailure> {
    let deadline = host.now().saturating_add(WAIT_LIMIT_MS);
    let mut last_status = None;
    loop {
        let build = host.build(build_id).map_err(|e| BuildFailure::Lookup(lookup_text("get build", e)))?;
        let job = host.job(&build.job_id).map_err(|e| BuildFailure::Lookup(lookup_text("get job", e)))?;
        match job.status {
            JobStatus::Succeeded => return Ok(()),
            JobStatus::Failed => {
                let text = job.error.filter(|e| !e.is_empty()).unwrap_or_else(|| "build failed".into());
                return Err(BuildFailure::Failed(text));
            }
            JobStatus::Canceled => return Err(BuildFailure::Canceled),
            JobStatus::Pending | JobStatus::Running | JobStatus::Canceling => {}
            JobStatus::Unknown => return Err(BuildFailure::Unexpected(status_name(job.status).into())),
        }
        if last_status != Some(job.status) {
            host.progress(&format!("build {build_id}: {}", status_name(job.status)));
            last_status = Some(job.status);
        }
        if host.now() >= deadline {
            return Err(BuildFailure::TimedOut);
        }
        host.sleep(POLL_INTERVAL_MS);
    }
}
