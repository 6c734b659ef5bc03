//! Running builds: each job is a real `sh -c` process with the parameter
//! values in its environment, its output captured to the build's log.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::manifest::Manifest;
use super::store::{Store, WorkspaceRecord};
use super::{LocalEvent, now_ms};
use crate::bindings::{Build, JobStatus, Transition};

/// Runs build jobs and starts and stops agents.
pub struct Provisioner {
    pub(crate) store: Arc<Store>,
    pub(crate) data_dir: PathBuf,
    pub(crate) agent_program: PathBuf,
    pub(crate) events: tokio::sync::broadcast::Sender<LocalEvent>,
}

impl Provisioner {
    /// Where a build's log is written.
    pub fn log_path(&self, build_id: &str) -> PathBuf {
        self.data_dir.join("logs").join(format!("{build_id}.log"))
    }

    /// Runs `build` in the background.
    pub fn start(self: &Arc<Self>, build: Build, workspace: WorkspaceRecord, manifest: Manifest, values: BTreeMap<String, String>) {
        let this = self.clone();
        tokio::spawn(async move {
            let outcome = this.run(&build, &workspace, &manifest, &values).await;
            let (status, error) = match outcome {
                Ok(()) => (JobStatus::Succeeded, None),
                Err(reason) => (JobStatus::Failed, Some(reason)),
            };
            let _ = this.store.set_job(&build.job_id, status, error.as_deref(), now_ms());
            let _ = this.events.send(LocalEvent::Build { build_id: build.id.clone(), line: format!("build {}", super::store::status_name(status)) });
        });
    }

    async fn run(&self, build: &Build, workspace: &WorkspaceRecord, manifest: &Manifest, values: &BTreeMap<String, String>) -> Result<(), String> {
        self.store.set_job(&build.job_id, JobStatus::Running, None, now_ms())?;
        std::fs::create_dir_all(&workspace.dir).map_err(|e| format!("create {}: {e}", workspace.dir))?;
        if build.transition != Transition::Start {
            self.stop_agents(&workspace.workspace.id);
        }
        let script = match build.transition {
            Transition::Start => &manifest.scripts.start,
            Transition::Stop | Transition::Delete => &manifest.scripts.stop,
        };
        self.run_script(build, workspace, script, values).await?;
        if build.transition == Transition::Start {
            self.start_agent(build, workspace, manifest)?;
        }
        Ok(())
    }

    async fn run_script(&self, build: &Build, workspace: &WorkspaceRecord, script: &str, values: &BTreeMap<String, String>) -> Result<(), String> {
        let log_path = self.log_path(&build.id);
        std::fs::create_dir_all(log_path.parent().expect("logs live in a directory")).map_err(|e| e.to_string())?;
        let mut log = tokio::fs::File::create(&log_path).await.map_err(|e| format!("create log: {e}"))?;
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(if script.trim().is_empty() { "true" } else { script })
            .current_dir(&workspace.dir)
            .env("TOOLSHED_WORKSPACE_DIR", &workspace.dir)
            .env("TOOLSHED_WORKSPACE_NAME", &workspace.workspace.name)
            .env("TOOLSHED_TRANSITION", super::store::transition_name(build.transition))
            .env("TOOLSHED_BUILD_ID", &build.id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in values {
            command.env(format!("TOOLSHED_PARAM_{}", name.to_uppercase().replace('-', "_")), value);
        }
        let mut child = command.spawn().map_err(|e| format!("start the build script: {e}"))?;
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        // Lines of both streams, tagged with whether they came from stderr.
        let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<(bool, String)>();
        let streams = [
            (false, stdout.map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>)),
            (true, stderr.map(|s| Box::new(s) as _)),
        ];
        for (is_stderr, stream) in streams {
            let Some(stream) = stream else { continue };
            let tx = lines_tx.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    let _ = tx.send((is_stderr, line));
                }
            });
        }
        drop(lines_tx);
        // The reason a script failed is its last error line, else its last line.
        let (mut last_error, mut last) = (String::new(), String::new());
        while let Some((is_stderr, line)) = lines.recv().await {
            let _ = log.write_all(format!("{line}\n").as_bytes()).await;
            let _ = self.events.send(LocalEvent::Build { build_id: build.id.clone(), line: line.clone() });
            if !line.trim().is_empty() {
                if is_stderr {
                    last_error = line.clone();
                }
                last = line;
            }
        }
        if !last_error.is_empty() {
            last = last_error;
        }
        let _ = log.flush().await;
        let status = child.wait().await.map_err(|e| format!("wait for the build script: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            let code = status.code().map_or("a signal".to_string(), |c| format!("status {c}"));
            Err(if last.is_empty() { format!("build script exited with {code}") } else { format!("build script exited with {code}: {last}") })
        }
    }

    fn start_agent(&self, build: &Build, workspace: &WorkspaceRecord, manifest: &Manifest) -> Result<(), String> {
        let agent_id = uuid::Uuid::new_v4().to_string();
        let sockets = self.data_dir.join("agents");
        std::fs::create_dir_all(&sockets).map_err(|e| e.to_string())?;
        // Socket paths are limited to about 100 bytes: keep them short.
        let socket = sockets.join(format!("{}.sock", &agent_id[..8]));
        self.store.insert_agent(&agent_id, &build.id, &manifest.agent, &socket.display().to_string(), now_ms())?;
        let log = std::fs::File::create(self.data_dir.join("logs").join(format!("agent-{agent_id}.log"))).map_err(|e| e.to_string())?;
        let mut child = tokio::process::Command::new(&self.agent_program)
            .arg("agent")
            .arg("--db")
            .arg(self.data_dir.join("toolshed.db"))
            .args(["--agent-id", &agent_id, "--socket"])
            .arg(&socket)
            .arg("--dir")
            .arg(&workspace.dir)
            .args(["--script", if manifest.scripts.startup.trim().is_empty() { "true" } else { &manifest.scripts.startup }])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("start the agent: {e}"))?;
        self.store.set_agent_pid(&agent_id, child.id().map(i64::from))?;
        // Reap the agent when it exits; it is not killed when the host stops.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        Ok(())
    }

    /// Stops a workspace's agents.
    pub fn stop_agents(&self, workspace_id: &str) {
        for agent in self.store.running_agents(workspace_id).unwrap_or_default() {
            if let Some(pid) = agent.pid {
                let _ = std::process::Command::new("kill").arg(pid.to_string()).status();
            }
            let _ = self.store.agent_disconnected(&agent.agent.id, now_ms());
        }
    }
}
