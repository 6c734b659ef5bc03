//! The processes the local backend starts: each in a process group of its
//! own, so stopping it stops everything it started, and never signalled by
//! a pid read back from the database unless that pid is still the process
//! we started: recorded by this host (a pid means nothing on another
//! machine, or in another PID namespace), and with the same start time, as
//! the kernel counts it.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;

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

/// A process as the store records it: its pid and start time, and the
/// identity of the host that started it, the only host that may signal it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessRecord {
    /// Its process id and process group id, on `host`.
    pub pid: i64,
    /// Its start time in clock ticks since `host` booted.
    pub start: i64,
    /// The [`host_identity`] of the host that started it.
    pub host: String,
}

impl ProcessRecord {
    /// `started`, started by this host.
    pub fn here(started: Started) -> ProcessRecord {
        ProcessRecord { pid: started.pid, start: started.start, host: host_identity().to_string() }
    }

    /// The process, if this host started it: the only case in which its pid
    /// names a process here at all. A process another host started is left
    /// to that host, and its work to the lease rules.
    pub fn local(&self) -> Option<Started> {
        (self.host == host_identity()).then_some(Started { pid: self.pid, start: self.start })
    }
}

/// Who this host is, as far as pids go: the kernel's boot id (a pid and a
/// start time mean nothing after a reboot), the host name (hosts sharing a
/// data directory over a network volume), and the PID namespace (containers
/// on one kernel share its boot id but not their pids).
pub fn host_identity() -> &'static str {
    static IDENTITY: OnceLock<String> = OnceLock::new();
    IDENTITY.get_or_init(|| {
        let read = |path: &str| std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default();
        let namespace = std::fs::metadata("/proc/self/ns/pid").map(|m| {
            use std::os::unix::fs::MetadataExt;
            format!("{}:{}", m.dev(), m.ino())
        });
        format!(
            "boot:{} host:{} pidns:{}",
            read("/proc/sys/kernel/random/boot_id"),
            read("/proc/sys/kernel/hostname"),
            namespace.unwrap_or_default()
        )
    })
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

/// Makes `fd` the child's file descriptor `target`, open across exec; the
/// command keeps `fd` until it is dropped, so drop it once spawned.
pub fn pass_fd(command: &mut tokio::process::Command, fd: OwnedFd, target: RawFd) {
    // SAFETY: dup2 and fcntl are async-signal-safe, as a pre_exec hook
    // requires, and `fd` stays open for as long as the command holds it.
    unsafe {
        command.pre_exec(move || {
            let source = fd.as_raw_fd();
            if source == target {
                // dup2 onto itself keeps close-on-exec: clear it instead.
                if libc::fcntl(source, libc::F_SETFD, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(source, target) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A pipe already holding `secret`, its writing end closed: the reading end
/// to pass a child, which reads the secret from it and sees the end. What
/// passes through a pipe is in neither the child's command line (which
/// every user can read) nor its environment (which its descendants can).
///
/// # Errors
///
/// When the pipe cannot be made, or the secret does not fit its buffer.
pub fn secret_pipe(secret: &str) -> io::Result<OwnedFd> {
    use std::io::Write;
    let (reader, writer) = std::io::pipe()?;
    // A pipe buffers 64 KiB; a URL fits, so the write never blocks.
    if secret.len() >= 16 << 10 {
        return Err(io::Error::other("the secret is too long to pass through a pipe"));
    }
    let mut writer = writer;
    writer.write_all(secret.as_bytes())?;
    drop(writer);
    Ok(reader.into())
}

/// Reads what [`secret_pipe`] passed as file descriptor `fd`, to its end,
/// and closes it.
///
/// # Errors
///
/// When `fd` is not open or cannot be read.
pub fn read_secret_fd(fd: RawFd) -> io::Result<String> {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    // SAFETY: fcntl only asks whether the descriptor is open.
    if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(io::Error::other(format!("file descriptor {fd} is not an open pipe")));
    }
    // SAFETY: the descriptor is open, and was passed to this process to be
    // read once and closed; nothing else in it uses it.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut secret = String::new();
    file.read_to_string(&mut secret)?;
    Ok(secret)
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

    #[test]
    fn a_process_recorded_by_another_host_is_never_ours_to_signal() {
        let me = Started::of(std::process::id()).unwrap();
        assert_eq!(ProcessRecord::here(me).local(), Some(me));
        let elsewhere = ProcessRecord { host: "boot:other host:other pidns:0:0".into(), ..ProcessRecord::here(me) };
        assert_eq!(elsewhere.local(), None);
        let identity = host_identity();
        assert!(identity.contains("boot:") && !identity.contains("boot: "), "the boot id is read: {identity}");
    }

    #[test]
    fn a_secret_passes_through_a_pipe_and_the_pipe_ends() {
        use std::os::fd::IntoRawFd;
        let fd = secret_pipe("postgres://u:p@h/db").unwrap().into_raw_fd();
        assert_eq!(read_secret_fd(fd).unwrap(), "postgres://u:p@h/db");
        assert!(read_secret_fd(1).is_err(), "standard streams are never taken for a pipe");
    }
}
