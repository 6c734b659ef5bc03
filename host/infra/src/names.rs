//! The wire names of the infra enums, from the contract's name tables
//! (`toolshed_contract`): what a store writes and what an API answers.
//!
//! The tables are indexed in case order; the arrays here only turn an index
//! back into a case, so a name is written down once, in the contract.

use toolshed_contract::{JOB_STATUS, LIFECYCLE_STATE, TRANSITION, index, name};

use crate::{JobStatus, LifecycleState, Transition};

const TRANSITIONS: [Transition; 3] = [Transition::Start, Transition::Stop, Transition::Delete];
const STATUSES: [JobStatus; 7] = [
    JobStatus::Pending,
    JobStatus::Running,
    JobStatus::Succeeded,
    JobStatus::Canceling,
    JobStatus::Canceled,
    JobStatus::Failed,
    JobStatus::Unknown,
];
const LIFECYCLES: [LifecycleState; 9] = [
    LifecycleState::Created,
    LifecycleState::Starting,
    LifecycleState::StartTimeout,
    LifecycleState::StartError,
    LifecycleState::Ready,
    LifecycleState::ShuttingDown,
    LifecycleState::ShutdownTimeout,
    LifecycleState::ShutdownError,
    LifecycleState::Off,
];

/// The name of a transition, such as `start`.
pub fn transition_name(t: Transition) -> &'static str {
    name(&TRANSITION, TRANSITIONS.iter().position(|x| *x == t).unwrap_or(usize::MAX))
}

/// The transition named `text`, if any.
pub fn transition(text: &str) -> Option<Transition> {
    index(&TRANSITION, text).map(|i| TRANSITIONS[i])
}

/// The name of a job status, such as `succeeded`.
pub fn status_name(s: JobStatus) -> &'static str {
    name(&JOB_STATUS, STATUSES.iter().position(|x| *x == s).unwrap_or(usize::MAX))
}

/// The job status named `text`; a name the contract does not know is
/// [`JobStatus::Unknown`], which the tools report as unexpected.
pub fn status(text: &str) -> JobStatus {
    index(&JOB_STATUS, text).map_or(JobStatus::Unknown, |i| STATUSES[i])
}

/// The name of a lifecycle state, such as `start_error`.
pub fn lifecycle_name(s: LifecycleState) -> &'static str {
    name(&LIFECYCLE_STATE, LIFECYCLES.iter().position(|x| *x == s).unwrap_or(usize::MAX))
}

/// The lifecycle state named `text`, if any.
pub fn lifecycle(text: &str) -> Option<LifecycleState> {
    index(&LIFECYCLE_STATE, text).map(|i| LIFECYCLES[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_back_as_its_case() {
        for t in TRANSITIONS {
            assert_eq!(transition(transition_name(t)), Some(t));
        }
        for s in STATUSES {
            assert_eq!(status(status_name(s)), s);
        }
        for l in LIFECYCLES {
            assert_eq!(lifecycle(lifecycle_name(l)), Some(l));
        }
        assert_eq!(status("exploded"), JobStatus::Unknown);
        assert_eq!(lifecycle("Ready"), None);
    }

    /// The generated enums number their cases in WIT order, as the
    /// contract's tables do: each array here must list the cases in that
    /// order, or a name would read back as another case. A round trip alone
    /// passes for any order.
    #[test]
    fn each_array_lists_its_cases_in_wit_order() {
        for (i, t) in TRANSITIONS.iter().enumerate() {
            assert_eq!(*t as usize, i, "{t:?}");
        }
        for (i, s) in STATUSES.iter().enumerate() {
            assert_eq!(*s as usize, i, "{s:?}");
        }
        for (i, l) in LIFECYCLES.iter().enumerate() {
            assert_eq!(*l as usize, i, "{l:?}");
        }
        assert_eq!((TRANSITIONS.len(), STATUSES.len(), LIFECYCLES.len()), (TRANSITION.len(), JOB_STATUS.len(), LIFECYCLE_STATE.len()));
    }
}
