//! Running builds: each job is a real `sh -c` process, in the sandbox, in a
//! process group of its own that dies with its owner, with the allow-listed
//! environment (the parameter values among it) and its output captured to
//! the build's log.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::environment::ScriptEnvironment;
use super::lease::{self, Lease, MAX_JOB_ATTEMPTS, Orphans};
use super::manifest::Manifest;
use super::process::{self, ProcessRecord, Started};
use super::sandbox::{SHELL, Sandbox};
use super::store::{JobLease, NewAgent, Store, WorkspaceRecord};
use super::{INACTIVE_DISCONNECT_MS, LocalEvent, agent, now_ms, private};
use toolshed_infra::{Build, JobStatus, Transition};

/// The longest line of build output kept; the rest of a longer line is
/// dropped, so a script that never prints a newline cannot fill memory.
pub const MAX_LINE_BYTES: usize = 4 << 10;

/// How long a stopped process group gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Runs build jobs and starts and stops agents.
pub struct Provisioner {
    pub(crate) store: Arc<Store>,
    pub(crate) data_dir: PathBuf,
    pub(crate) agent_program: PathBuf,
    /// The shared database, if not the data directory's SQLite file.
    pub(crate) database: Option<String>,
    pub(crate) events: tokio::sync::broadcast::Sender<LocalEvent>,
    /// This process, as the owner of the jobs it runs.
    pub(crate) owner: String,
    pub(crate) lease: Lease,
    /// Where workspace processes run.
    pub(crate) sandbox: Sandbox,
    /// How often agents heartbeat.
    pub(crate) heartbeat: Duration,
}

impl Provisioner {
    /// Where a build's log is written.
    pub fn log_path(&self, build_id: &str) -> PathBuf {
        self.data_dir.join("logs").join(format!("{build_id}.log"))
    }

    /// Until when a claim this process makes or renews at `now` holds.
    fn held_until(&self, now: u64) -> u64 {
        now + self.lease.period.as_millis() as u64
    }

    /// The lease of a job queued at `now`.
    pub fn queued(&self, now: u64) -> JobLease {
        self.lease.queued(now)
    }

    /// Claims queued job `job_id` for this process; false when another
    /// process claimed it first (it then runs it) or the store failed (the
    /// job then stays queued for a runner, or lapses).
    pub async fn claim(&self, job_id: &str) -> bool {
        let now = now_ms();
        match self.store.claim_queued_jobs(&self.owner, now, self.held_until(now), Some(job_id), 1).await {
            Ok(claimed) => !claimed.is_empty(),
            Err(e) => {
                tracing::warn!(job = %job_id, "claiming a queued build: {e}");
                false
            }
        }
    }

    /// Claims and runs queued jobs any process created: what a runner does
    /// each renewal, so a job whose creator died before claiming it runs.
    async fn run_queued(self: &Arc<Self>) -> super::store::StoreResult<()> {
        let now = now_ms();
        let claimed = self.store.claim_queued_jobs(&self.owner, now, self.held_until(now), None, 8).await?;
        for job in claimed {
            if let Err(reason) = self.run_stored(&job).await {
                tracing::warn!(job = %job, "a queued build could not run: {reason}");
                let _ = self.store.finish_job(&job, &self.owner, JobStatus::Failed, Some(&reason), now_ms()).await;
            }
        }
        Ok(())
    }

    /// The manifest of template version `version_id`.
    pub async fn manifest(&self, version_id: &str) -> Result<Manifest, String> {
        let version = self
            .store
            .version(version_id)
            .await
            .map_err(|e| {
                tracing::warn!("the store failed: {e}");
                "the backend's store failed; the detail is in the host's log".to_string()
            })?
            .ok_or_else(|| format!("template version {version_id} not found"))?;
        serde_json::from_str(&version.manifest).map_err(|e| format!("template version {version_id}: {e}"))
    }

    /// Renews this process's leases and deals with orphaned jobs as
    /// `orphans` says, every renewal, until the keeper is dropped.
    pub fn keep(self: &Arc<Self>, orphans: Orphans) -> Keeper {
        let this = self.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(this.lease.renew_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let until = this.held_until(now_ms());
                if let Err(e) = this.store.renew_leases(&this.owner, until).await {
                    tracing::warn!("renewing build leases: {e}");
                }
                if let Err(e) = this.look_after_orphans(orphans).await {
                    tracing::warn!("looking after orphaned builds: {e}");
                }
                if orphans == Orphans::Adopt {
                    if let Err(e) = this.run_queued().await {
                        tracing::warn!("claiming queued builds: {e}");
                    }
                }
            }
        });
        Keeper { task }
    }

    /// Adopts or fails the jobs whose owner stopped renewing its lease.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn look_after_orphans(self: &Arc<Self>, orphans: Orphans) -> super::store::StoreResult<()> {
        let now = now_ms();
        if orphans == Orphans::Fail {
            lease::fail_orphans(&self.store, now.saturating_sub(self.lease.period.as_millis() as u64)).await?;
            return Ok(());
        }
        let until = self.held_until(now);
        let (adopted, failed) = self.store.adopt_expired_jobs(&self.owner, now, until, MAX_JOB_ATTEMPTS).await?;
        for job in &failed {
            tracing::warn!(job = %job.id, "a build orphaned twice is marked failed");
            lease::stop(job).await;
        }
        for job in adopted {
            lease::stop(&job).await;
            if let Err(reason) = self.run_stored(&job.id).await {
                tracing::warn!(job = %job.id, "a build taken over could not run again: {reason}");
                let _ = self.store.finish_job(&job.id, &self.owner, JobStatus::Failed, Some(&reason), now_ms()).await;
            }
        }
        Ok(())
    }

    /// Runs the build of job `job_id`, which this process claimed from the
    /// queue or took over from a process that stopped.
    async fn run_stored(self: &Arc<Self>, job_id: &str) -> Result<(), String> {
        let record = self.store.build_of_job(job_id).await.map_err(|e| e.to_string())?.ok_or("its build is gone")?;
        let workspace = self.store.workspace(&record.build.workspace_id).await.map_err(|e| e.to_string())?.ok_or("its workspace is gone")?;
        let version = record.build.template_version_id.clone().unwrap_or_default();
        let manifest = self.manifest(&version).await?;
        tracing::info!(build = %record.build.id, "running a build this process claimed");
        self.start(record.build, workspace, manifest, record.parameters);
        Ok(())
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
            match this.store.finish_job(&build.job_id, &this.owner, status, error.as_deref(), now_ms()).await {
                Ok(true) => {}
                Ok(false) => tracing::warn!(build = %build.id, "the build was no longer ours to finish; its lease had lapsed"),
                Err(e) => tracing::warn!(build = %build.id, "could not record the end of the build: {e}"),
            }
            let _ = this.events.send(LocalEvent::Build { build_id: build.id.clone(), line: format!("build {}", super::store::status_name(status)) });
        });
    }

    async fn run(&self, build: &Build, workspace: &WorkspaceRecord, manifest: &Manifest, values: &BTreeMap<String, String>) -> Result<(), String> {
        std::fs::create_dir_all(&workspace.dir).map_err(|e| format!("create {}: {e}", workspace.dir))?;
        // Absolute and free of symlinks: the path the sandbox binds, and the
        // one scripts see as their home.
        let dir = Path::new(&workspace.dir).canonicalize().map_err(|e| format!("find {}: {e}", workspace.dir))?;
        if build.transition != Transition::Start {
            self.stop_agents(&workspace.workspace.id).await;
        }
        let script = match build.transition {
            Transition::Start => &manifest.scripts.start,
            Transition::Stop | Transition::Delete => &manifest.scripts.stop,
        };
        let environment = ScriptEnvironment::new(&dir, |name| std::env::var(name).ok())
            .workspace("TOOLSHED_WORKSPACE_NAME", &workspace.workspace.name)
            .parameters(values);
        self.run_script(build, &dir, script, environment.clone()).await?;
        if build.transition == Transition::Start {
            self.start_agent(build, &dir, manifest, &environment).await?;
        }
        Ok(())
    }

    async fn run_script(&self, build: &Build, dir: &Path, script: &str, environment: ScriptEnvironment) -> Result<(), String> {
        let log_path = self.log_path(&build.id);
        private::dir(log_path.parent().expect("logs live in a directory")).map_err(|e| e.to_string())?;
        let mut log = tokio::fs::File::from_std(private::create(&log_path).map_err(|e| format!("create log: {e}"))?);
        let script = if script.trim().is_empty() { "true" } else { script };
        let mut command = self.sandbox.command(dir, SHELL, &[OsStr::new("-c"), OsStr::new(script)]);
        environment
            .workspace("TOOLSHED_TRANSITION", super::store::transition_name(build.transition))
            .workspace("TOOLSHED_BUILD_ID", &build.id)
            .apply(&mut command);
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        process::own_group(&mut command);
        process::die_with_parent(&mut command);
        let mut child = command.spawn().map_err(|e| format!("start the build script: {e}"))?;
        let started = child.id().and_then(Started::of);
        let recorded = started.map(ProcessRecord::here);
        let ours = self.store.job_running(&build.job_id, &self.owner, recorded.as_ref(), now_ms()).await.map_err(|e| e.to_string())?;
        if !ours {
            if let Some(started) = started {
                process::stop_group(started, STOP_GRACE).await;
            }
            return Err("the build was given up before it started: this process lost its lease".into());
        }
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        // Lines of both streams, tagged with whether they came from stderr.
        let (lines_tx, mut lines) = tokio::sync::mpsc::channel::<(bool, String)>(256);
        let streams = [
            (false, stdout.map(|s| Box::new(BufReader::new(s)) as Box<dyn AsyncBufRead + Unpin + Send>)),
            (true, stderr.map(|s| Box::new(BufReader::new(s)) as _)),
        ];
        for (is_stderr, stream) in streams {
            let Some(mut stream) = stream else { continue };
            let tx = lines_tx.clone();
            tokio::spawn(async move {
                while let Some(line) = read_capped_line(&mut stream, MAX_LINE_BYTES).await {
                    if tx.send((is_stderr, line)).await.is_err() {
                        break;
                    }
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

    async fn start_agent(&self, build: &Build, dir: &Path, manifest: &Manifest, environment: &ScriptEnvironment) -> Result<(), String> {
        let id = uuid::Uuid::new_v4();
        let agent_id = id.to_string();
        let socket = agent::socket_path(&self.data_dir, &id).map_err(|e| format!("the agent's socket directory: {e}"))?;
        let socket_text = socket.display().to_string();
        let new = NewAgent { id: &agent_id, build_id: &build.id, name: &manifest.agent, socket: &socket_text };
        self.store.insert_agent(&new, now_ms()).await.map_err(|e| e.to_string())?;
        let log = private::create(&self.data_dir.join("logs").join(format!("agent-{agent_id}.log"))).map_err(|e| e.to_string())?;
        let mut command = tokio::process::Command::new(&self.agent_program);
        command
            .arg("agent")
            .arg("--db")
            .arg(self.data_dir.join("toolshed.db"))
            .args(["--agent-id", &agent_id, "--socket"])
            .arg(&socket)
            .arg("--dir")
            .arg(dir)
            .args(["--script", if manifest.scripts.startup.trim().is_empty() { "true" } else { &manifest.scripts.startup }])
            .arg("--heartbeat-ms")
            .arg(self.heartbeat.as_millis().to_string());
        if let Sandbox::Bubblewrap(program) = &self.sandbox {
            command.arg("--bubblewrap").arg(program);
        }
        // The agent's environment is its startup script's: the allow-list,
        // nothing of this process's. The database URL, which may carry a
        // password, goes through a pipe: arguments are visible to every
        // user, and an environment to the processes it is passed on to.
        environment.apply(&mut command);
        if let Some(url) = &self.database {
            let pipe = process::secret_pipe(url).map_err(|e| format!("pass the database to the agent: {e}"))?;
            process::pass_fd(&mut command, pipe, agent::DATABASE_FD);
            command.arg("--database-fd").arg(agent::DATABASE_FD.to_string());
        }
        command.stdin(Stdio::null()).stdout(log.try_clone().map_err(|e| e.to_string())?).stderr(log);
        // The agent serves the workspace after this process ends (a CLI call
        // returns once the workspace is up), so it does not die with us; it
        // leads a group of its own, which stopping the workspace ends.
        process::own_group(&mut command);
        let mut child = command.spawn().map_err(|e| format!("start the agent: {e}"))?;
        drop(command);
        let recorded = child.id().and_then(Started::of).map(ProcessRecord::here);
        self.store.set_agent_process(&agent_id, recorded.as_ref()).await.map_err(|e| e.to_string())?;
        // Reap the agent if it exits while this process lives.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        Ok(())
    }

    /// Stops a workspace's agents: marks each off, then stops its process
    /// group if this host started it and it is still the one started. An
    /// agent another host started sees its row off and exits by itself.
    pub async fn stop_agents(&self, workspace_id: &str) {
        for agent in self.store.running_agents(workspace_id, INACTIVE_DISCONNECT_MS).await.unwrap_or_default() {
            // Marked off first: an agent that sees it exits by itself.
            let _ = self.store.agent_disconnected(&agent.agent.id, now_ms()).await;
            match agent.process.as_ref().map(|p| (p, p.local())) {
                Some((_, Some(started))) => process::stop_group(started, STOP_GRACE).await,
                Some((recorded, None)) => tracing::info!(agent = %agent.agent.id, host = %recorded.host, "the agent runs on another host; it stops by itself"),
                None => {}
            }
        }
    }
}

/// Renews a process's leases and looks after orphaned jobs, until dropped.
pub struct Keeper {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The next line of `reader`, at most `max` bytes of it (the rest of a
/// longer line is skipped), or `None` at the end.
async fn read_capped_line(reader: &mut (impl AsyncBufRead + Unpin), max: usize) -> Option<String> {
    let mut line = Vec::new();
    let mut read_any = false;
    loop {
        let available = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(bytes) => bytes,
        };
        read_any = true;
        let (chunk, done) = match available.iter().position(|b| *b == b'\n') {
            Some(end) => (&available[..end], Some(end + 1)),
            None => (available, None),
        };
        let room = max.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let consumed = done.unwrap_or(available.len());
        reader.consume(consumed);
        if done.is_some() {
            break;
        }
    }
    read_any.then(|| String::from_utf8_lossy(&line).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_cut_at_the_cap_and_reading_goes_on() {
        let text = format!("short\n{}\nlast", "x".repeat(10_000));
        let mut reader = BufReader::new(text.as_bytes());
        assert_eq!(read_capped_line(&mut reader, 100).await.as_deref(), Some("short"));
        assert_eq!(read_capped_line(&mut reader, 100).await.map(|l| l.len()), Some(100));
        assert_eq!(read_capped_line(&mut reader, 100).await.as_deref(), Some("last"));
        assert_eq!(read_capped_line(&mut reader, 100).await, None);
    }
}
