//! The limits a plugin's calls run under.

use std::time::Duration;

use serde::Deserialize;

/// Limits of one call.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Linear memory a call may grow to.
    pub memory_bytes: usize,
    /// Continuous guest computation between host imports. Waiting in an
    /// import (a sleep, a build poll) never counts.
    pub compute: Duration,
    /// Time a whole call may take, waits included.
    pub deadline: Duration,
    /// Size of the JSON arguments.
    pub max_argument_bytes: usize,
    /// Size of the JSON result.
    pub max_result_bytes: usize,
    /// Host imports one call may make.
    pub max_import_calls: u64,
}

impl Default for Limits {
    /// 64 MiB, one second of compute, 30 minutes per call (above the longest
    /// wait the workspace tools make: 10 + 2 + 10 minutes), 64 KiB of
    /// arguments, 1 MiB of result, 100,000 imports.
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            compute: Duration::from_secs(1),
            deadline: Duration::from_secs(30 * 60),
            max_argument_bytes: 64 << 10,
            max_result_bytes: 1 << 20,
            max_import_calls: 100_000,
        }
    }
}

impl std::fmt::Display for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "memory {} MiB, compute {} ms, deadline {} s, arguments {} KiB, result {} KiB, {} host calls",
            self.memory_bytes >> 20,
            self.compute.as_millis(),
            self.deadline.as_secs(),
            self.max_argument_bytes >> 10,
            self.max_result_bytes >> 10,
            self.max_import_calls
        )
    }
}

/// Limits as a policy file writes them; absent keys inherit.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    memory_mib: Option<usize>,
    compute_ms: Option<u64>,
    deadline_s: Option<u64>,
    max_argument_kib: Option<usize>,
    max_result_kib: Option<usize>,
    max_import_calls: Option<u64>,
}

impl LimitsFile {
    /// These limits, with absent ones taken from `base`.
    pub fn over(&self, base: &Limits) -> Limits {
        Limits {
            memory_bytes: self.memory_mib.map_or(base.memory_bytes, |m| m << 20),
            compute: self.compute_ms.map_or(base.compute, Duration::from_millis),
            deadline: self.deadline_s.map_or(base.deadline, Duration::from_secs),
            max_argument_bytes: self.max_argument_kib.map_or(base.max_argument_bytes, |k| k << 10),
            max_result_bytes: self.max_result_kib.map_or(base.max_result_bytes, |k| k << 10),
            max_import_calls: self.max_import_calls.unwrap_or(base.max_import_calls),
        }
    }
}
