//! Waiting for a build's provisioner job (SPEC 3.1).

use crate::capabilities::Capabilities;
pub use toolshed_guest::wait_budget::{self, duration};
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
    /// The build is still running, but the caller will not wait longer (its
    /// wait budget runs out); nothing failed.
    StillRunning {
        /// How long this call waited, in ms.
        waited_ms: u64,
    },
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
            BuildFailure::StillRunning { waited_ms } => format!("the build is still running after {}; nothing failed", duration(*waited_ms)),
        }
    }

    /// A tool error saying `prefix: <failure>`, carrying the build id;
    /// `again` is the exact call that waits on (for a build still running).
    pub fn into_tool_error(self, prefix: &str, build_id: &str, again: Again<'_>) -> ToolError {
        if let BuildFailure::StillRunning { waited_ms } = self {
            return still_in_progress(&format!("the build {build_id} is still running after {}", duration(waited_ms)), build_id, again);
        }
        let (category, code) = match &self {
            BuildFailure::Failed(_) => (ErrorCategory::ExternalCommandFailed, "BUILD_FAILED"),
            BuildFailure::Canceled => (ErrorCategory::UserCancelled, "BUILD_CANCELED"),
            BuildFailure::Unexpected(_) => (ErrorCategory::InternalError, "BUILD_STATUS_UNEXPECTED"),
            BuildFailure::Lookup(_) => (ErrorCategory::InternalError, "BUILD_LOOKUP_FAILED"),
            BuildFailure::TimedOut | BuildFailure::StillRunning { .. } => (ErrorCategory::Timeout, "BUILD_TIMEOUT"),
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

/// The exact call that continues a wait, as text. Only an answer that says
/// to make the call again needs it, so it is written out only then: most
/// calls never reach that answer.
pub type Again<'a> = &'a dyn Fn() -> String;

/// The answer for work still under way when the caller's wait budget runs
/// out: recoverable, with the build and the exact call that waits on.
pub fn still_in_progress(what: &str, build_id: &str, again: Again<'_>) -> ToolError {
    let mut err = wait_budget::still_in_progress(what, again());
    err.build_id = Some(build_id.to_string());
    err.detail = Some(format!("this call answered before its caller stopped waiting; the build may take up to {}", duration(WAIT_LIMIT_MS)));
    err
}

/// Whether waiting `next_ms` more would outlast the caller's wait budget.
pub fn out_of_budget<C: Capabilities>(host: &C, next_ms: u64) -> bool {
    wait_budget::runs_out(host.wait_budget(), next_ms)
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

/// Polls the build's job until it ends, every two seconds for at most ten
/// minutes, reporting each poll as progress (status, time waited, the limit,
/// and the build's last line of output where the host keeps it). Answers
/// early, with the build still running, when the caller's wait budget would
/// run out before the next poll.
pub fn wait_for_build<C: Capabilities>(host: &C, build_id: &str) -> Result<(), BuildFailure> {
    wait_for_build_from(host, build_id, host.now(), None)
}

/// [`wait_for_build`] for a wait that began at `started`. With
/// `park_state`, it pauses between polls instead of sleeping, so the host
/// may end the run and hold nothing but that state while the build runs;
/// the run that resumes from it calls this again with the same start. The
/// state is encoded only when the call parks.
pub fn wait_for_build_from<C: Capabilities>(
    host: &C,
    build_id: &str,
    started: u64,
    park_state: Option<&dyn Fn() -> Vec<u8>>,
) -> Result<(), BuildFailure> {
    let deadline = started.saturating_add(WAIT_LIMIT_MS);
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
        // A heartbeat every poll; the host passes on the latest.
        let waited = host.now().saturating_sub(started);
        let mut note = format!("build {build_id}: {} for {} of {}", status_name(job.status), duration(waited), duration(WAIT_LIMIT_MS));
        if let Some(line) = host.build_log_line(build_id) {
            note.push_str(&format!("; last line: {}", line.chars().take(200).collect::<String>()));
        }
        host.progress(&note);
        if host.now() >= deadline {
            return Err(BuildFailure::TimedOut);
        }
        if out_of_budget(host, POLL_INTERVAL_MS) {
            return Err(BuildFailure::StillRunning { waited_ms: waited });
        }
        match park_state {
            Some(state) => host.pause(POLL_INTERVAL_MS, &state()),
            None => host.sleep(POLL_INTERVAL_MS),
        }
    }
}
