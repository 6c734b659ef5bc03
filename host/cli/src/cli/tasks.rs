//! Tasks from the command line: `call --detach`, `tasks`, `tasks resume`
//! and `task ID`.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use toolshed_local::{LocalBackend, local_context};
use toolshed_runtime::tasks::{TaskRecord, TaskSettings, Tasks};

use crate::app::{App, HostOptions};

/// How many tasks `toolshed tasks` lists.
const LISTED: usize = 50;

/// The task settings of this process: the lease builds are held under.
fn settings() -> TaskSettings {
    let lease = crate::app::lease();
    TaskSettings { lease: lease.period, renew_every: lease.renew_every, ..TaskSettings::default() }
}

/// The tasks of `app`'s host, kept in its backend's database.
pub fn runner(app: &App) -> Arc<Tasks> {
    Tasks::new(app.host.clone(), app.backend.journal(), settings())
}

/// Records a task calling `tool`, starts a background `toolshed tasks
/// resume` to run it, and returns the task's id.
pub async fn detach(app: &App, global: &HostOptions, chat: &str, tool: &str, arguments: &str) -> anyhow::Result<String> {
    anyhow::ensure!(toolshed_runtime::chats::is_chat_id(chat), "--chat {chat:?} is not a chat id: use letters, digits, '-', '_', '.' or ':'");
    let arguments: Value = if arguments.trim().is_empty() { json!({}) } else { serde_json::from_str(arguments).map_err(|e| anyhow::anyhow!("the arguments are not JSON: {e}"))? };
    let task = runner(app).enqueue(&local_context(chat), tool, arguments).await.map_err(|refused| anyhow::anyhow!("{}", refused.to_json()))?;

    // The runner outlives this command: a group of its own, so a terminal's
    // ^C does not reach it, and its output in the data directory's logs.
    let data_dir = app.backend.data_dir().to_path_buf();
    let logs = data_dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let log = std::fs::OpenOptions::new().create(true).append(true).open(logs.join("tasks.log"))?;
    let mut command = std::process::Command::new(std::env::current_exe()?);
    command.arg("--data-dir").arg(&data_dir);
    if let Some(plugins) = &global.plugins {
        command.arg("--plugins").arg(plugins);
    }
    if let Some(policy) = &global.policy {
        command.arg("--policy").arg(policy);
    }
    command.args(["tasks", "resume"]).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    command.spawn().map_err(|e| anyhow::anyhow!("starting the task runner: {e}"))?;
    Ok(task.id)
}

/// Runs the tasks no live process runs until none is left; returns how many
/// it ran. It looks for a whole lease period first, so a task whose runner
/// just died is found once that runner's lease lapses.
pub async fn resume(app: &App) -> anyhow::Result<usize> {
    let tasks = runner(app);
    let settings = settings();
    let started = tokio::time::Instant::now();
    let mut ran = 0;
    loop {
        let running_before = tasks.running();
        tasks.tend().await?;
        ran += tasks.running().saturating_sub(running_before);
        if tasks.running() == 0 && started.elapsed() > settings.lease + settings.renew_every {
            return Ok(ran);
        }
        tokio::time::sleep(settings.renew_every.min(Duration::from_millis(500))).await;
    }
}

/// A task as `toolshed task` prints it.
fn shown(task: &TaskRecord) -> Value {
    json!({
        "id": task.id,
        "state": task.state.name(),
        "tool": task.tool,
        "arguments": task.arguments,
        "chat": task.chat_id,
        "plugin": task.plugin,
        "plugin_version": task.plugin_version,
        "status_message": task.status_message,
        "result": task.result,
        "is_error": task.is_error,
        "created_at_ms": task.created_at_ms,
        "updated_at_ms": task.updated_at_ms,
        "attempts": task.attempts,
    })
}

/// Prints the local user's newest tasks.
pub async fn list(backend: &Arc<LocalBackend>, as_json: bool) -> anyhow::Result<()> {
    let tasks = backend.journal().list(toolshed_local::LOCAL_OWNER, LISTED).await?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&tasks.iter().map(shown).collect::<Vec<_>>())?);
        return Ok(());
    }
    for task in &tasks {
        let note = task.status_message.as_deref().unwrap_or("");
        let outcome = match (&task.result, task.is_error) {
            (Some(result), true) => result["code"].as_str().unwrap_or("error").to_string(),
            (Some(_), false) => "ok".to_string(),
            (None, _) => String::new(),
        };
        println!("{}  {:<9} {:<18} {:<6} {}", task.id, task.state.name(), task.tool, outcome, toolshed_runtime::text::clip(note, 100));
    }
    Ok(())
}

/// Prints task `id`, after it ends if `wait`; the exit code says whether
/// its tool answered with a result.
pub async fn show(backend: &Arc<LocalBackend>, id: &str, wait: bool) -> anyhow::Result<i32> {
    let journal = backend.journal();
    let poll = settings().poll_every;
    loop {
        let task = journal.get(toolshed_local::LOCAL_OWNER, id).await?.ok_or_else(|| anyhow::anyhow!("no task {id}"))?;
        if !wait || task.state.is_terminal() {
            println!("{}", serde_json::to_string_pretty(&shown(&task))?);
            let ok = task.state == toolshed_runtime::tasks::TaskState::Completed && !task.is_error;
            return Ok(if wait { i32::from(!ok) } else { 0 });
        }
        tokio::time::sleep(poll).await;
    }
}
