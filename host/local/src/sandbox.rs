//! The sandbox workspace processes run in: build scripts, the agent's
//! startup script, and everything they start.
//!
//! A workspace's scripts come from a template, which is code from whoever
//! pushed it. They run as the host's user, so without a sandbox they could
//! read the host's `/proc/PID/environ` (the database URL and its password),
//! rewrite the SQLite store, plant code in the compiled-code cache, and
//! read other workspaces. Under bubblewrap (`bwrap`) each runs with this
//! view of the machine, flag by flag:
//!
//! - `--unshare-pid` with a fresh `--proc /proc`: a PID namespace of its
//!   own, so no host process is visible (no `/proc/PID/environ` or
//!   `cmdline` of the host, the agent or another workspace) and none can be
//!   signalled or traced.
//! - `--ro-bind /usr /usr`, and `/bin`, `/sbin`, `/lib`, `/lib32`,
//!   `/lib64`, `/libx32` as they are on the host (a symlink into `/usr` on
//!   merged systems, else bound read-only): programs and libraries, which a
//!   script may run but not change.
//! - `--ro-bind-try` of the `/etc` entries in [`ETC`]: users, name
//!   resolution, certificates, the dynamic linker, the time zone, Debian's
//!   alternatives. Not all of `/etc`, which holds the operator's secrets as
//!   often as not: a token file, `pip.conf` and `npmrc` credentials, SSH
//!   host keys, TLS private keys, PostgreSQL's configuration.
//! - `--dev /dev`: null, zero, random, a tty, shm; no disks.
//! - `--tmpfs /tmp`: an empty `/tmp` of its own, not the host's (where
//!   agent sockets may live).
//! - `--bind DIR DIR`, `--chdir DIR`: the workspace directory, read-write,
//!   at its own path, and nothing else of the data directory: the store,
//!   logs, agent sockets, the compiled-code cache and other workspaces do
//!   not exist inside.
//! - `--unshare-ipc`: no System V IPC or POSIX message queue shared with
//!   the host.
//! - `--new-session`: a session of its own, so a script cannot push
//!   keystrokes into a terminal the host runs in (`TIOCSTI`).
//! - `--die-with-parent`: everything in the sandbox is killed when the
//!   process that started it dies (the host for a build, the agent for a
//!   startup script), also where `bwrap` is setuid and a parent-death
//!   signal set before exec would be dropped.
//! - `--cap-drop ALL`: when the host runs as root, no capability reaches
//!   the sandbox (root with capabilities could mount, make device nodes,
//!   and leave it).
//!
//! The network is shared on purpose: a development workspace fetches
//! packages and serves ports. So services on the host's loopback stay
//! reachable; a database on it must require a password.
//!
//! The environment is built before `bwrap` starts, from an allow-list
//! ([`super::environment`]), and `bwrap` passes it on unchanged.
//!
//! When `bwrap` is missing or cannot make namespaces (no unprivileged user
//! namespaces, a container that forbids them), [`SandboxMode::Auto`] runs
//! scripts with the allow-listed environment only and says so once, at
//! start; [`SandboxMode::Required`] refuses to start.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::time::Duration;

/// What the operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SandboxMode {
    /// Bubblewrap when it works here; else the allow-listed environment
    /// only, with a warning at start.
    #[default]
    Auto,
    /// Bubblewrap, or the backend refuses to open.
    Required,
    /// The allow-listed environment only, with a warning at start.
    Off,
}

impl FromStr for SandboxMode {
    type Err = String;

    fn from_str(text: &str) -> Result<SandboxMode, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(SandboxMode::Auto),
            "required" => Ok(SandboxMode::Required),
            "off" => Ok(SandboxMode::Off),
            other => Err(format!("{other:?} is not a sandbox mode: use auto, required or off")),
        }
    }
}

impl std::fmt::Display for SandboxMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SandboxMode::Auto => "auto",
            SandboxMode::Required => "required",
            SandboxMode::Off => "off",
        })
    }
}

/// How workspace processes run here, as decided when the backend opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sandbox {
    /// Under bubblewrap, the program at this path.
    Bubblewrap(PathBuf),
    /// As the host's user, with the allow-listed environment only.
    EnvironmentOnly,
}

/// The entries of `/etc` a sandbox sees: enough to look up users, resolve
/// names, check certificates, link programs and tell the time, and no
/// credential. The directories that hold private keys (`ssl/private`,
/// `pki/tls/private`) stay out, which is why `ssl` is not bound whole.
pub const ETC: &[&str] = &[
    "passwd",
    "group",
    "hostname",
    "hosts",
    "resolv.conf",
    "nsswitch.conf",
    "host.conf",
    "gai.conf",
    "services",
    "protocols",
    "networks",
    "ssl/certs",
    "ssl/openssl.cnf",
    "ca-certificates",
    "ca-certificates.conf",
    "pki/tls/certs",
    "pki/ca-trust",
    "alternatives",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "timezone",
    "locale.alias",
    "os-release",
    "debian_version",
    "mime.types",
];

/// The top-level system directories, bound as the host has them.
const SYSTEM: [&str; 7] = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/// How long the probe may take before bubblewrap counts as unusable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The shell every workspace script runs in.
pub const SHELL: &str = "/bin/sh";

impl Sandbox {
    /// Decides how workspace processes run, as `mode` asks: probes
    /// bubblewrap once (found on the host's `PATH`) by running a shell in a
    /// sandbox over `probe_dir`, and warns once when it cannot be used.
    ///
    /// # Errors
    ///
    /// When `mode` is [`SandboxMode::Required`] and bubblewrap cannot run.
    pub async fn choose(mode: SandboxMode, probe_dir: &Path) -> anyhow::Result<Sandbox> {
        Self::choose_with(mode, find_bubblewrap(), probe_dir).await
    }

    /// [`Sandbox::choose`] with the bubblewrap program given (none: not
    /// installed).
    ///
    /// # Errors
    ///
    /// When `mode` is [`SandboxMode::Required`] and `program` cannot run.
    pub async fn choose_with(mode: SandboxMode, program: Option<PathBuf>, probe_dir: &Path) -> anyhow::Result<Sandbox> {
        if mode == SandboxMode::Off {
            tracing::warn!("{}", unconfined("the sandbox is off (TOOLSHED_SANDBOX=off)"));
            return Ok(Sandbox::EnvironmentOnly);
        }
        let outcome = match program {
            Some(program) => probe(&program, probe_dir).await.map(|()| program),
            None => Err("bubblewrap (bwrap) is not installed".to_string()),
        };
        match outcome {
            Ok(program) => Ok(Sandbox::Bubblewrap(program)),
            Err(reason) if mode == SandboxMode::Required => anyhow::bail!(
                "the workspace sandbox is required but cannot run: {reason}. Install bubblewrap (Debian and Ubuntu: apt install bubblewrap) \
                 and allow unprivileged user namespaces, or set the sandbox to auto"
            ),
            Err(reason) => {
                tracing::warn!("{}", unconfined(&reason));
                Ok(Sandbox::EnvironmentOnly)
            }
        }
    }

    /// Whether processes run under bubblewrap.
    pub fn isolates(&self) -> bool {
        matches!(self, Sandbox::Bubblewrap(_))
    }

    /// A command running `program` with `args` in workspace directory
    /// `dir` (absolute), in the sandbox if there is one. Its environment is
    /// the caller's to set, from the allow-list.
    pub fn command(&self, dir: &Path, program: &str, args: &[&OsStr]) -> tokio::process::Command {
        match self {
            Sandbox::Bubblewrap(bwrap) => {
                let mut command = tokio::process::Command::new(bwrap);
                command.args(arguments(dir)).arg("--").arg(program).args(args).current_dir(dir);
                command
            }
            Sandbox::EnvironmentOnly => {
                let mut command = tokio::process::Command::new(program);
                command.args(args).current_dir(dir);
                command
            }
        }
    }
}

/// The warning of a host whose workspace processes are not isolated, and
/// why: what they can reach, and how to fix it.
fn unconfined(why: &str) -> String {
    format!(
        "workspace scripts are NOT sandboxed: {why}. Build and startup scripts run as this user with a scrubbed environment only, \
         and can read and write the data directory (the SQLite store, logs, the compiled-code cache, other workspaces) and read \
         the environment of this user's processes. Install bubblewrap (Debian and Ubuntu: apt install bubblewrap) and allow \
         unprivileged user namespaces to isolate them, or set TOOLSHED_SANDBOX=required to refuse to start without it."
    )
}

/// `bwrap` on the host's `PATH`, else where distributions put it.
fn find_bubblewrap() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin", "/usr/local/bin"].map(PathBuf::from))
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join("bwrap"))
        .find(|candidate| candidate.is_file())
}

/// Runs a shell under `program` with every flag a workspace gets, over
/// `dir`: it must start, see its own PID namespace, and exit cleanly.
async fn probe(program: &Path, dir: &Path) -> Result<(), String> {
    let dir = dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut command = Sandbox::Bubblewrap(program.to_path_buf()).command(&dir, SHELL, &[OsStr::new("-c"), OsStr::new("echo $$")]);
    command.env_clear().env("PATH", super::environment::SAFE_PATH).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let output = tokio::time::timeout(PROBE_TIMEOUT, command.output())
        .await
        .map_err(|_| format!("{} did not finish a trial run within {} s", program.display(), PROBE_TIMEOUT.as_secs()))?
        .map_err(|e| format!("{} cannot be started: {e}", program.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let said = stderr.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("no message");
        return Err(format!("{} cannot create its namespaces here ({}: {})", program.display(), output.status, toolshed_runtime::text::clip(said, 200)));
    }
    // In a PID namespace of its own the shell is one of the first
    // processes (bwrap's init is the first): proof the namespace is real.
    match String::from_utf8_lossy(&output.stdout).trim().parse::<u32>() {
        Ok(pid) if pid <= 3 => Ok(()),
        _ => Err(format!("{} ran, but not in a PID namespace of its own", program.display())),
    }
}

/// Every `bwrap` flag of a workspace over `dir`, as the module describes
/// them, up to the command.
fn arguments(dir: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--die-with-parent",
        "--new-session",
        "--unshare-pid",
        "--unshare-ipc",
        "--cap-drop",
        "ALL",
    ]
    .map(OsString::from)
    .into();
    for path in SYSTEM {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                if let Ok(target) = std::fs::read_link(path) {
                    args.extend(["--symlink".into(), target.into_os_string(), path.into()]);
                }
            }
            Ok(meta) if meta.is_dir() => args.extend(["--ro-bind".into(), path.into(), path.into()]),
            _ => {}
        }
    }
    for entry in ETC {
        let path: OsString = format!("/etc/{entry}").into();
        args.extend(["--ro-bind-try".into(), path.clone(), path]);
    }
    args.extend(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"].map(OsString::from));
    // After the tmpfs: a workspace under /tmp is bound over it.
    args.extend(["--bind".into(), dir.into(), dir.into(), "--chdir".into(), dir.into()]);
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_as_the_operator_writes_them() {
        assert_eq!("Required".parse::<SandboxMode>(), Ok(SandboxMode::Required));
        assert_eq!(" off ".parse::<SandboxMode>(), Ok(SandboxMode::Off));
        assert!("sometimes".parse::<SandboxMode>().unwrap_err().contains("auto, required or off"));
        assert_eq!(SandboxMode::default().to_string(), "auto");
    }

    #[test]
    fn the_workspace_is_bound_after_the_tmpfs_and_no_secret_directory_is_bound() {
        let args: Vec<String> = arguments(Path::new("/tmp/data/workspaces/o/app")).into_iter().map(|a| a.to_string_lossy().into_owned()).collect();
        let at = |flag: &str| args.iter().position(|a| a == flag).unwrap_or_else(|| panic!("no {flag}"));
        assert!(at("--tmpfs") < at("--bind"), "the workspace survives the tmpfs over /tmp");
        for flag in ["--unshare-pid", "--unshare-ipc", "--die-with-parent", "--new-session", "--proc", "--dev"] {
            at(flag);
        }
        assert!(!args.iter().any(|a| a == "--unshare-net"), "the network stays");
        assert!(!args.iter().any(|a| a == "/etc" || a.starts_with("/etc/ssl/private") || a == "/etc/ssl"), "{args:?}");
    }

    #[tokio::test]
    async fn without_bubblewrap_auto_falls_back_and_required_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Some(PathBuf::from("/nonexistent/bwrap"));
        assert_eq!(Sandbox::choose_with(SandboxMode::Auto, missing.clone(), dir.path()).await.unwrap(), Sandbox::EnvironmentOnly);
        assert_eq!(Sandbox::choose_with(SandboxMode::Auto, None, dir.path()).await.unwrap(), Sandbox::EnvironmentOnly);
        let refused = Sandbox::choose_with(SandboxMode::Required, missing, dir.path()).await.unwrap_err().to_string();
        assert!(refused.contains("required") && refused.contains("apt install bubblewrap"), "{refused}");
        // A program that runs but is not bubblewrap fails the trial run too.
        for impostor in ["/bin/false", "/bin/true", "/usr/bin/env"] {
            assert!(Sandbox::choose_with(SandboxMode::Required, Some(PathBuf::from(impostor)), dir.path()).await.is_err(), "{impostor}");
        }
        assert_eq!(Sandbox::choose_with(SandboxMode::Off, None, dir.path()).await.unwrap(), Sandbox::EnvironmentOnly);
    }
}
