//! The `toolshed` command.

use clap::{Parser, Subcommand};
use toolshed::Runtime;

/// A sandboxed WebAssembly host for agent tools.
#[derive(Parser)]
#[command(name = "toolshed", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lists the tools of the built-in plugins with their JSON schemas.
    Tools {
        /// Print one JSON document instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Measures the runtime against the native baseline and prints the figures.
    Bench {
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Small counts and short waits: checks the benchmarks run, measures little.
        #[arg(long)]
        quick: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Tools { json } => list_tools(json),
        Command::Bench { json, quick } => {
            let report = toolshed::bench::run(toolshed::bench::BenchOptions { quick })?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", report.table());
            }
            Ok(())
        }
    }
}

fn list_tools(json: bool) -> anyhow::Result<()> {
    let runtime = Runtime::new()?;
    let mut tools = Vec::new();
    for (name, bytes) in toolshed::builtin::all() {
        let plugin = runtime.compile(name, bytes)?;
        tools.extend(plugin.tools.iter().cloned());
    }
    tools.sort_by(|a, b| a.name.cmp(&b.name));
    if json {
        let listing: Vec<_> = tools
            .iter()
            .map(|t| {
                serde_json::json!({
                    "name": t.name,
                    "plugin": t.plugin,
                    "description": t.description,
                    "inputSchema": t.input_schema,
                    "outputSchema": t.output_schema,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&listing)?);
        return Ok(());
    }
    for tool in &tools {
        println!("{:<18} {:<16} {}", tool.name, tool.plugin, summary(&tool.description));
        if let Some(properties) = tool.input_schema["properties"].as_object() {
            for (field, schema) in properties {
                let required = tool.input_schema["required"].as_array().is_some_and(|r| r.iter().any(|f| f == field));
                let description = schema["description"].as_str().unwrap_or_default();
                println!("    {field}{} - {}", if required { "" } else { "?" }, summary(description));
            }
        }
    }
    Ok(())
}

/// The first sentence of a description.
fn summary(text: &str) -> &str {
    match text.find(". ") {
        Some(end) => &text[..=end],
        None => text.trim_end(),
    }
}
