//! The wait budget, as every tool that waits answers it: a caller that
//! stops waiting after some time (MCP clients commonly give up after 60 s)
//! gets, in time, the recoverable `STILL_IN_PROGRESS` answer with the exact
//! call that keeps waiting, instead of no answer at all.

use crate::error;
use crate::types::{ErrorCategory, ToolError};

/// How long to leave, beyond the next wait, for an answer to reach a caller
/// before its wait budget runs out.
pub const MARGIN_MS: u64 = 3_000;

/// Whether waiting `next_ms` more would outlast a budget with `left_ms`
/// left (`None`: the caller waits as long as the call takes).
pub fn runs_out(left_ms: Option<u64>, next_ms: u64) -> bool {
    left_ms.is_some_and(|left| left < next_ms.saturating_add(MARGIN_MS))
}

/// The answer for work still under way when the caller's budget runs out:
/// `what` is still under way, nothing failed, and `again` is the exact call
/// that keeps waiting (also `suggestions[0]`). The caller sets the id of
/// the work (`build_id`, `task_id`) and any detail.
pub fn still_in_progress(what: &str, again: String) -> ToolError {
    let mut err = error(ErrorCategory::Timeout, "STILL_IN_PROGRESS", format!("{what}; nothing failed. To keep waiting, make this exact call again: {again}"));
    err.suggestions = Some(vec![again]);
    err
}

/// `ms` as minutes and seconds, such as "1 min 20 s" or "45 s".
pub fn duration(ms: u64) -> String {
    let seconds = ms / 1_000;
    match (seconds / 60, seconds % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_runs_out_when_the_next_wait_and_the_margin_do_not_fit() {
        assert!(!runs_out(None, u64::MAX), "no budget never runs out");
        assert!(!runs_out(Some(5_000), 2_000));
        assert!(runs_out(Some(4_999), 2_000));
    }

    #[test]
    fn the_answer_names_the_call_that_keeps_waiting_first() {
        let err = still_in_progress("the build b is still running", "start_workspace {}".into());
        assert_eq!(err.code, "STILL_IN_PROGRESS");
        assert!(err.recoverable);
        assert_eq!(err.suggestions.as_deref(), Some(&["start_workspace {}".to_string()][..]));
        assert!(err.error.contains("make this exact call again: start_workspace {}"), "{}", err.error);
        assert_eq!((duration(45_000), duration(120_000), duration(84_000)), ("45 s".into(), "2 min".into(), "1 min 24 s".into()));
    }
}
