//! Workspace agents: the `toolshed agent` process that serves a workspace,
//! and the host's side of reaching it over its Unix socket.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::store::Store;
use super::now_ms;
use toolshed_infra::LifecycleState;

/// How often a running agent records that it is alive; well inside the
/// 30-second inactivity limit.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

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
}

/// Runs an agent until it is told to stop: answers pings on its socket,
/// runs the startup script, reports its lifecycle and heartbeats. It also
/// stops by itself once its row says it is off or is gone (its workspace was
/// stopped, or the data directory was replaced), so an agent never outlives
/// its workspace for long even if no signal reaches it.
///
/// # Errors
///
/// When the database or the socket cannot be opened.
pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let store = Arc::new(match &args.database {
        Some(url) => Store::open(url).await?,
        None => Store::open_file(&args.db).await?,
    });
    let _ = std::fs::remove_file(&args.socket);
    let listener = UnixListener::bind(&args.socket)?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer(stream));
        }
    });
    let (stopped_tx, mut stopped) = tokio::sync::watch::channel(false);
    let heartbeat = {
        let (store, id) = (store.clone(), args.agent_id.clone());
        tokio::spawn(async move {
            loop {
                let _ = store.agent_connected(&id, now_ms()).await;
                tokio::time::sleep(HEARTBEAT).await;
                match store.agent(&id, 0).await {
                    Ok(Some(agent)) if agent.agent.lifecycle_state != LifecycleState::Off => {}
                    Ok(_) => {
                        let _ = stopped_tx.send(true);
                        return;
                    }
                    // A busy or briefly unreachable database is no reason to stop.
                    Err(_) => {}
                }
            }
        })
    };
    store.set_lifecycle(&args.agent_id, LifecycleState::Starting).await?;
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&args.script)
        .current_dir(&args.dir)
        .env("TOOLSHED_WORKSPACE_DIR", &args.dir)
        .status()
        .await;
    let state = match status {
        Ok(status) if status.success() => LifecycleState::Ready,
        _ => LifecycleState::StartError,
    };
    store.set_lifecycle(&args.agent_id, state).await?;

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = stopped.wait_for(|s| *s) => {}
    }
    heartbeat.abort();
    let _ = store.agent_disconnected(&args.agent_id, now_ms()).await;
    let _ = std::fs::remove_file(&args.socket);
    Ok(())
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
