//! Deterministic ids and the harness's fixed identities.

use std::sync::atomic::{AtomicU64, Ordering};

static NEXT: AtomicU64 = AtomicU64::new(1);

/// A fresh UUID, unique within the test process and easy to read in failures.
pub fn fresh() -> String {
    uuid(NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The UUID numbered `n`.
pub fn uuid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

/// The default chat's id.
pub const CHAT: &str = "c0000000-0000-4000-8000-000000000001";
/// A second chat of the same owner.
pub const OTHER_CHAT: &str = "c0000000-0000-4000-8000-000000000002";
/// The default owner's id.
pub const OWNER: &str = "a0000000-0000-4000-8000-000000000001";
/// The default owner's user name.
pub const OWNER_NAME: &str = "alice";
/// Another user.
pub const OTHER_OWNER: &str = "a0000000-0000-4000-8000-000000000002";
/// The default organization.
pub const ORG: &str = "b0000000-0000-4000-8000-000000000001";
/// Another organization.
pub const OTHER_ORG: &str = "b0000000-0000-4000-8000-000000000002";
