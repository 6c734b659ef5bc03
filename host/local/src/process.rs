//! The processes the local backend starts: each in a process group of its
//! own, so stopping it stops everything it started, and never signalled by
//! a pid read back from the database unless that pid is still the process
//! we started (its start time, as the kernel counts it, must match).

use std::io;

/// A process we started: its id, which is also its process group's, and
/// when it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    /// Its process id and process group id.
    pub pid: i64,
    /// Its start time in clock ticks since boot (`/proc/PID/stat`, field 22).
    pub start: i64,
}

impl Started {
    /// The process `pid`, if it exists now.
    pub fn of(pid: u32) -> Option<Started> {
        start_time(pid as i64).map(|start| Started { pid: pid as i64, start })
    }
}

/// The start time of process `pid`, if it exists.
pub fn start_time(pid: i64) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; fields resume
    // after its last ')'. State is field 3, so start time (22) is the 20th.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `started` still names the process we started.
pub fn is_ours(started: Started) -> bool {
    start_time(started.pid) == Some(started.start)
}

/// Sends `signal` to the process group `started` leads, if its leader is
/// still the process we started. Returns whether it was sent.
pub fn signal_group(started: Started, signal: i32) -> bool {
    if started.pid <= 1 || !is_ours(started) {
        return false;
    }
    // SAFETY: killpg takes a plain pid and signal number.
    unsafe { libc::killpg(started.pid as libc::pid_t, signal) == 0 }
}

/// Stops the group `started` leads: SIGTERM, then SIGKILL to whatever is
/// left after `grace`. Only if it is still ours.
pub async fn stop_group(started: Started, grace: std::time::Duration) {
    if !signal_group(started, libc::SIGTERM) {
        return;
    }
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        if !is_ours(started) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    signal_group(started, libc::SIGKILL);
}

/// Puts the command in a process group of its own.
pub fn own_group(command: &mut tokio::process::Command) {
    command.process_group(0);
}

/// Also makes the process die with the thread that started it: a build's
/// script must not outlive the host that owns the build.
pub fn die_with_parent(command: &mut tokio::process::Command) {
    // SAFETY: prctl is async-signal-safe, as a pre_exec hook requires.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_is_ours_and_a_wrong_start_time_is_not() {
        let me = Started::of(std::process::id()).unwrap();
        assert!(is_ours(me));
        assert!(!is_ours(Started { start: me.start + 1, ..me }));
        assert!(!signal_group(Started { start: me.start + 1, ..me }, 0), "never signalled");
        assert_eq!(start_time(i64::from(i32::MAX)), None);
    }
}
