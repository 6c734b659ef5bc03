//! `toolshed demo`: an agent's conversation against a fresh local backend,
//! through the recovery flow of a template that gains a required parameter.

use std::io::Write;
use std::path::PathBuf;

use serde_json::{Value, json};
use toolshed_runtime::ToolOutput;

use crate::app::{App, HostOptions, write_examples};

const CHAT: &str = "demo";

/// Plays the conversation, printing it to `out`. Uses `data_dir`, or a fresh
/// temporary directory.
pub async fn run(data_dir: Option<PathBuf>, out: &mut impl Write) -> anyhow::Result<Vec<ToolOutput>> {
    let temporary = tempfile::tempdir()?;
    let data_dir = data_dir.unwrap_or_else(|| temporary.path().join("data"));
    let (v1, v2, _) = write_examples(&temporary.path().join("templates"))?;
    let mut app = App::open(&HostOptions { data_dir: Some(data_dir.clone()), database: None, plugins: None, policy: None, plugins_toml: None, registry: Default::default() }).await?;
    app.loaded().await;
    let pushed = app.backend.push_template(&v1).await?;
    writeln!(out, "toolshed demo: a local backend in {}", data_dir.display())?;
    writeln!(out, "pushed template python-dev version {}\n", pushed.number)?;

    let mut transcript = Vec::new();
    let say = |out: &mut dyn Write, text: &str| writeln!(out, "\n# {text}");

    say(out, "The agent looks for a template.")?;
    transcript.push(step(&app, out, "list_templates", json!({})).await?);
    say(out, "It creates the chat's workspace from python-dev and waits for the build and the agent.")?;
    transcript.push(step(&app, out, "create_workspace", json!({ "template_id": pushed.template_id, "name": "demo-box" })).await?);
    say(out, "It stops the workspace.")?;
    transcript.push(step(&app, out, "stop_workspace", json!({})).await?);

    let v2 = app.backend.push_template(&v2).await?;
    writeln!(out, "\n# Meanwhile the template gets version {}, which requires a new parameter, region.", v2.number)?;
    say(out, "The agent starts the workspace: the template now needs a value it does not have.")?;
    transcript.push(step(&app, out, "start_workspace", json!({})).await?);
    say(out, "As the error says, it reads the template to see the required parameters.")?;
    transcript.push(step(&app, out, "read_template", json!({ "template_id": pushed.template_id })).await?);
    say(out, "It retries with the missing value.")?;
    transcript.push(step(&app, out, "start_workspace", json!({ "parameters": { "region": "eu" } })).await?);

    app.backend.stop_all_agents().await;
    writeln!(out, "\ndone: the workspace runs on the active template version; its agents were stopped.")?;
    Ok(transcript)
}

async fn step(app: &App, out: &mut impl Write, tool: &str, arguments: Value) -> anyhow::Result<ToolOutput> {
    writeln!(out, "agent -> {tool} {arguments}")?;
    out.flush()?;
    let output = app.call(CHAT, tool, &arguments.to_string(), false).await;
    let label = if output.is_error { "error" } else { "result" };
    let text = serde_json::to_string_pretty(&output.value)?;
    writeln!(out, "{label} <-")?;
    for line in text.lines() {
        writeln!(out, "    {line}")?;
    }
    out.flush()?;
    Ok(output)
}
