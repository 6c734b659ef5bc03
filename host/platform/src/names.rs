//! The wire names of the registry task statuses, from the contract's table
//! (`toolshed_contract::TASK_STATUS`): what a store writes and reads back.

use toolshed_contract::{TASK_STATUS, index, name};

use crate::TaskStatus;

/// The cases in WIT order; a test holds the order.
const STATUSES: [TaskStatus; 5] = [TaskStatus::Pending, TaskStatus::Running, TaskStatus::Completed, TaskStatus::Failed, TaskStatus::Cancelled];

/// The name of a task status, such as `completed`.
pub fn status_name(s: TaskStatus) -> &'static str {
    name(&TASK_STATUS, STATUSES.iter().position(|x| *x == s).unwrap_or(usize::MAX))
}

/// The task status named `text`, if the contract knows it.
pub fn status(text: &str) -> Option<TaskStatus> {
    index(&TASK_STATUS, text).map(|i| STATUSES[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cases_are_in_wit_order_and_read_back() {
        for (i, s) in STATUSES.iter().enumerate() {
            assert_eq!(*s as usize, i, "{s:?}");
            assert_eq!(status(status_name(*s)), Some(*s));
        }
        assert_eq!(status("canceled"), None, "the registry's word is cancelled");
    }
}
