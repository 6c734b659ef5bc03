//! Parking: a call that waits without an instance.
//!
//! A run of a tool that calls `park.park` ends there. The host keeps what
//! the call needs to go on ([`Carried`]: the tool's state, its locks, its
//! progress numbering and its budgets), drops the instance and frees its
//! slot, waits on the host clock, and then runs the same tool again in a
//! fresh instance. A parked call costs the host its task and its state, a
//! few hundred bytes, instead of an instance, a stack and a pool slot.
//!
//! Parking is bounded like everything else a plugin does: the state is at
//! most [`MAX_STATE_BYTES`], a call parks at most [`MAX_PARKS_PER_CALL`]
//! times, and the call's deadline covers its parked time.

use crate::call_log::CallLog;
use crate::locks::CallLocks;
use crate::progress::Reporter;

/// The largest state a run may park with.
pub const MAX_STATE_BYTES: usize = 16 * 1024;
/// The most times one call may park; a poll every two seconds for ten
/// minutes parks 300 times.
pub const MAX_PARKS_PER_CALL: u32 = 4_096;

/// A run's request to park its call.
#[derive(Debug)]
pub(crate) struct ParkRequest {
    /// How long to wait, in ms of host time.
    pub(crate) ms: u64,
    /// What the next run's `resumed` returns.
    pub(crate) state: Vec<u8>,
}

/// The error that ends a run which parked. It is not a failure: the host
/// finds the request in the call's state and goes on.
#[derive(Debug, thiserror::Error)]
#[error("the call parked")]
pub(crate) struct Parked;

/// Why a park was refused. Each ends the call: the plugin is misusing the
/// interface, and parking again would not help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParkMisuse {
    /// The state is larger than [`MAX_STATE_BYTES`].
    #[error("a park state of {0} bytes is larger than the limit of {MAX_STATE_BYTES} bytes")]
    StateTooLarge(usize),
    /// The call already parked [`MAX_PARKS_PER_CALL`] times.
    #[error("the call parked {MAX_PARKS_PER_CALL} times, the most one call may")]
    TooMany,
}

impl ParkMisuse {
    /// A stable UPPER_SNAKE code for error objects.
    pub fn code(&self) -> &'static str {
        match self {
            ParkMisuse::StateTooLarge(_) => "PARK_STATE_TOO_LARGE",
            ParkMisuse::TooMany => "TOO_MANY_PARKS",
        }
    }
}

/// What a parked call keeps for its next run.
pub(crate) struct Carried {
    pub(crate) state: Vec<u8>,
    pub(crate) parks: u32,
    pub(crate) locks: CallLocks,
    pub(crate) progress: Reporter,
    pub(crate) log: CallLog,
    pub(crate) content: crate::content::CallContent,
    pub(crate) import_calls: u64,
}
