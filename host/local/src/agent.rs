//! Workspace agents: the `toolshed agent` process that serves a workspace,
//! and the host's side of reaching it over its Unix socket.
//!
//! The agent itself runs outside the sandbox (it writes its row in the
//! store), with an environment the provisioner built from the allow-list,
//! and the database URL, when there is one, read from an inherited pipe:
//! never in its arguments or environment, which its startup script or any
//! process of the user could read. Its startup script runs in the sandbox.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::environment::ScriptEnvironment;
use super::sandbox::{SHELL, Sandbox};
use super::store::{Dialect, Store};
use super::{now_ms, private, process};
use toolshed_infra::LifecycleState;

/// How often a running agent records that it is alive and checks that its
/// workspace still exists; well inside the 30-second inactivity limit.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// How many heartbeats an agent goes without reaching its database before
/// it counts the database as gone and exits.
pub const UNREACHABLE_HEARTBEATS: u32 = 3;

/// The file descriptor the provisioner passes the database URL on.
pub const DATABASE_FD: i32 = 3;

/// The file descriptor the startup holder reports the script's status on.
const STATUS_FD: i32 = 3;

/// The longest socket path a Unix socket address holds (108 bytes with the
/// terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// What an agent process is started with.
#[derive(Debug, Clone)]
pub struct AgentArgs {
    /// The backend's SQLite database.
    pub db: PathBuf,
    /// The shared database instead (`postgres://...`), when there is one.
    pub database: Option<String>,
    /// The agent's id.
    pub agent_id: String,
    /// The socket to listen on.
    pub socket: PathBuf,
    /// The workspace directory.
    pub dir: PathBuf,
    /// The startup script.
    pub script: String,
    /// Where the startup script runs.
    pub sandbox: Sandbox,
    /// How often to heartbeat and check the workspace is still there.
    pub heartbeat: Duration,
}

/// Where agent `id`'s socket is, its directory created private: the data
/// directory's `agents/`, or, when that path would not fit a socket
/// address, `/tmp/toolshed-UID/`. Named by the whole id, so no two agents
/// share one.
///
/// # Errors
///
/// When the directory cannot be made private to this user.
pub fn socket_path(data_dir: &Path, id: &uuid::Uuid) -> io::Result<PathBuf> {
    let name = format!("{}.sock", id.simple());
    let in_data = data_dir.join("agents");
    if in_data.join(&name).as_os_str().len() <= MAX_SOCKET_PATH {
        private::dir(&in_data)?;
        return Ok(in_data.join(name));
    }
    Ok(short_socket_dir()?.join(name))
}

/// `/tmp/toolshed-UID`, made 0700, or refused if someone else made it or
/// left it open: a shared `/tmp` is where a socket could be hijacked.
fn short_socket_dir() -> io::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let dir = PathBuf::from(format!("/tmp/toolshed-{uid}"));
    match std::fs::DirBuilder::new().mode(private::DIR_MODE).create(&dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let meta = std::fs::symlink_metadata(&dir)?;
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        return Err(io::Error::other(format!("{} is not a directory only this user can use", dir.display())));
    }
    Ok(dir)
}

/// Reads the database URL the provisioner passed on [`DATABASE_FD`].
///
/// # Errors
///
/// When the descriptor is not an open pipe.
pub fn read_database_fd(fd: i32) -> io::Result<String> {
    process::read_secret_fd(fd)
}

/// Runs an agent until it is told to stop: answers pings on its socket,
/// runs the startup script, reports its lifecycle and heartbeats. It also
/// stops by itself once its row says it is off or is gone (its workspace was
/// stopped), once its workspace directory or SQLite file is removed or
/// replaced, or once its database stays unreachable for
/// [`UNREACHABLE_HEARTBEATS`] heartbeats: an agent never outlives its
/// workspace's data for long, even if no signal reaches it.
///
/// # Errors
///
/// When the database or the socket cannot be opened.
pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    // Before anything can take long: a stop signal is handled from here on.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let store = Arc::new(match &args.database {
        Some(url) => Store::open(url).await?,
        None => Store::open_file(&args.db).await?,
    });
    let footing = Footing::of(&args, store.dialect())?;
    let _ = std::fs::remove_file(&args.socket);
    let listener = UnixListener::bind(&args.socket)?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer(stream));
        }
    });
    let mut watch = tokio::spawn(watch(store.clone(), args.agent_id.clone(), footing, args.heartbeat));
    store.set_lifecycle(&args.agent_id, LifecycleState::Starting).await?;
    let mut startup = Startup::spawn(&args);

    let mut reported = false;
    let why = loop {
        tokio::select! {
            status = startup.status(), if !reported => {
                reported = true;
                let state = if status == Some(0) { LifecycleState::Ready } else { LifecycleState::StartError };
                if let Err(e) = store.set_lifecycle(&args.agent_id, state).await {
                    tracing::warn!(agent = %args.agent_id, "could not record the startup script's end: {e}");
                }
            }
            _ = terminate.recv() => break "it was told to stop".to_string(),
            _ = tokio::signal::ctrl_c() => break "it was interrupted".to_string(),
            why = &mut watch => break why.unwrap_or_else(|e| format!("its watch failed: {e}")),
        }
    };
    tracing::info!(agent = %args.agent_id, "the agent stops: {why}");
    watch.abort();
    startup.end().await;
    end_own_group();
    // The database may be what is gone: do not wait on it for long.
    let _ = tokio::time::timeout(args.heartbeat, store.agent_disconnected(&args.agent_id, now_ms())).await;
    let _ = std::fs::remove_file(&args.socket);
    Ok(())
}

/// What an agent stands on: its workspace directory and, on SQLite, the
/// database file, each known by device and inode. An open SQLite file
/// keeps answering after it was unlinked, so only comparing the path with
/// what was opened shows that the data is gone.
struct Footing {
    dir: (PathBuf, FileId),
    store_file: Option<(PathBuf, FileId)>,
}

type FileId = (u64, u64);

fn file_id(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl Footing {
    fn of(args: &AgentArgs, dialect: Dialect) -> anyhow::Result<Footing> {
        let found = |path: &Path| file_id(path).map(|id| (path.to_path_buf(), id)).ok_or_else(|| anyhow::anyhow!("{} does not exist", path.display()));
        let store_file = match (dialect, &args.database) {
            (Dialect::Postgres, _) => None,
            (Dialect::Sqlite, Some(url)) => Some(found(&super::store::sqlite_file(url).ok_or_else(|| anyhow::anyhow!("{url:?} names no file"))?)?),
            (Dialect::Sqlite, None) => Some(found(&args.db)?),
        };
        Ok(Footing { dir: found(&args.dir)?, store_file })
    }

    /// Why the agent has nothing left to serve, if so.
    fn lost(&self) -> Option<String> {
        let (dir, id) = &self.dir;
        if file_id(dir) != Some(*id) {
            return Some(format!("its workspace directory {} was removed or replaced", dir.display()));
        }
        let (file, id) = self.store_file.as_ref()?;
        (file_id(file) != Some(*id)).then(|| format!("its database file {} was removed or replaced", file.display()))
    }
}

/// Heartbeats until the agent should stop, and says why: its row is off
/// or gone, its footing is lost, or its database stayed unreachable.
async fn watch(store: Arc<Store>, id: String, footing: Footing, heartbeat: Duration) -> String {
    let mut reached = Instant::now();
    loop {
        if let Ok(Ok(())) = tokio::time::timeout(heartbeat, store.agent_connected(&id, now_ms())).await {
            reached = Instant::now();
        }
        tokio::time::sleep(heartbeat).await;
        if let Some(why) = footing.lost() {
            return why;
        }
        match tokio::time::timeout(heartbeat, store.agent(&id, 0)).await {
            Ok(Ok(Some(agent))) if agent.agent.lifecycle_state != LifecycleState::Off => reached = Instant::now(),
            Ok(Ok(_)) => return "its row is off or gone".into(),
            // A busy or briefly unreachable database is no reason to stop...
            _ => {}
        }
        // ...but one gone for several heartbeats is.
        if reached.elapsed() > heartbeat * UNREACHABLE_HEARTBEATS {
            return format!("its database was unreachable for {UNREACHABLE_HEARTBEATS} heartbeats");
        }
    }
}

/// The agent's startup script, run in the sandbox under a holder: a shell
/// that runs the script, reports its exit status on a pipe, then waits for
/// the agent to go. The holder keeps the sandbox (and so whatever the
/// script started in the background: a development server) alive as long
/// as the agent, and no longer: a sandbox's processes all end with its
/// first one.
struct Startup {
    child: Option<tokio::process::Child>,
    status: Option<BufReader<UnixStream>>,
}

/// The holder: `$1` is the script. The script gets no status pipe and no
/// standard input; the holder then reads the agent's end of its standard
/// input until the agent closes it or dies.
const HOLDER: &str = "sh -c \"$1\" startup </dev/null 3>&-; echo $? >&3; exec 3>&-; exec cat >/dev/null";

impl Startup {
    fn spawn(args: &AgentArgs) -> Startup {
        match Self::try_spawn(args) {
            Ok(startup) => startup,
            Err(e) => {
                tracing::warn!(agent = %args.agent_id, "the startup script could not start: {e}");
                Startup { child: None, status: None }
            }
        }
    }

    fn try_spawn(args: &AgentArgs) -> io::Result<Startup> {
        let dir = args.dir.canonicalize()?;
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        let script = if args.script.trim().is_empty() { "true" } else { &args.script };
        let mut command = args.sandbox.command(&dir, SHELL, &[OsStr::new("-c"), OsStr::new(HOLDER), OsStr::new("holder"), OsStr::new(script)]);
        let inherited = std::env::vars_os().filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)));
        ScriptEnvironment::passed_on(&dir, inherited).apply(&mut command);
        // Standard output and error go where the agent's go: its log.
        command.stdin(Stdio::piped()).kill_on_drop(true);
        process::pass_fd(&mut command, theirs.into(), STATUS_FD);
        let child = command.spawn()?;
        // The command held the holder's end of the status pipe: without it,
        // the pipe ends when the holder reports or dies.
        drop(command);
        ours.set_nonblocking(true)?;
        Ok(Startup { child: Some(child), status: Some(BufReader::new(UnixStream::from_std(ours)?)) })
    }

    /// The script's exit status once it ends; `None` if it could not run
    /// or the holder died first.
    async fn status(&mut self) -> Option<i32> {
        let reader = self.status.as_mut()?;
        let mut line = String::new();
        let read = reader.read_line(&mut line).await;
        self.status = None;
        read.ok().and_then(|_| line.trim().parse().ok())
    }

    /// Ends the holder and, with it, the sandbox and all in it.
    async fn end(&mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.stdin.take());
            let _ = child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
        }
    }
}

/// Ends what the startup script left in the agent's process group (without
/// a sandbox, its background processes live there), if the agent leads the
/// group, as the provisioner starts it. The agent's own SIGTERM is handled,
/// so it only hurries its exit.
fn end_own_group() {
    // SAFETY: getpgrp and getpid cannot fail; killpg takes plain numbers.
    unsafe {
        if libc::getpgrp() == libc::getpid() {
            libc::killpg(libc::getpgrp(), libc::SIGTERM);
        }
    }
}

async fn answer(stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let reply = if line.trim() == "ping" { "pong\n" } else { "unknown\n" };
        if write.write_all(reply.as_bytes()).await.is_err() {
            break;
        }
    }
}

/// Connects to the agent listening on `socket` and pings it, within `timeout`.
///
/// # Errors
///
/// Why the agent could not be reached, as text for the model.
pub async fn ping(socket: &Path, timeout: Duration) -> Result<(), String> {
    let exchange = async {
        let stream = UnixStream::connect(socket).await.map_err(|e| format!("connect {}: {e}", socket.display()))?;
        let (read, mut write) = stream.into_split();
        write.write_all(b"ping\n").await.map_err(|e| format!("send ping: {e}"))?;
        let mut lines = BufReader::new(read).lines();
        match lines.next_line().await {
            Ok(Some(line)) if line.trim() == "pong" => Ok(()),
            Ok(other) => Err(format!("unexpected answer {other:?}")),
            Err(e) => Err(format!("read pong: {e}")),
        }
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| format!("no answer within {} ms", timeout.as_millis()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_whose_ids_share_a_prefix_get_distinct_sockets_that_fit_an_address() {
        let data = tempfile::tempdir().unwrap();
        let one = uuid::Uuid::parse_str("0f8c6e4a-5b1d-4c2a-9e3f-1a2b3c4d5e6f").unwrap();
        let two = uuid::Uuid::parse_str("0f8c6e4a-5b1d-4c2a-9e3f-1a2b3c4d5e70").unwrap();
        let (a, b) = (socket_path(data.path(), &one).unwrap(), socket_path(data.path(), &two).unwrap());
        assert_ne!(a, b, "ids that share 31 of 32 digits");
        assert!(a.starts_with(data.path().join("agents")), "{}", a.display());

        let deep = data.path().join("d".repeat(90));
        let long = socket_path(&deep, &one).unwrap();
        assert!(long.as_os_str().len() <= MAX_SOCKET_PATH, "{}", long.display());
        assert_ne!(long, socket_path(&deep, &two).unwrap());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(long.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        // A real socket binds at that path.
        let listener = std::os::unix::net::UnixListener::bind(&long).unwrap();
        drop(listener);
        std::fs::remove_file(&long).unwrap();
    }

    #[test]
    fn a_sqlite_url_names_its_file() {
        use crate::store::sqlite_file;
        assert_eq!(sqlite_file("sqlite:///data/toolshed.db?mode=rwc").as_deref(), Some(Path::new("/data/toolshed.db")));
        assert_eq!(sqlite_file("sqlite:rel.db").as_deref(), Some(Path::new("rel.db")));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://h/db"), None);
    }
}
