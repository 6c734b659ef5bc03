//! `toolshed test DIR`: builds a plugin project of any language, packs it,
//! and runs it on the real host against the scripted fake backend on
//! virtual time: the author's cases (`tests/cases.json`), then the checks
//! every plugin must pass. A Python or JavaScript author writes no Rust.

mod build;
pub mod cases;
mod checks;

use std::path::Path;
use std::sync::Arc;

pub use build::Project;
use toolshed_harness::{TestEnv, runtime_under};
use toolshed_runtime::Policy;

/// What `toolshed test` found: each step's name and, when it failed, why.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The steps in order: building, loading, each case, each check.
    pub steps: Vec<(String, Result<(), String>)>,
}

impl Outcome {
    /// Whether every step passed.
    pub fn passed(&self) -> bool {
        self.steps.iter().all(|(_, result)| result.is_ok())
    }

    /// One line per step, then a summary.
    pub fn report(&self) -> String {
        let mut out = String::new();
        for (step, result) in &self.steps {
            match result {
                Ok(()) => out.push_str(&format!("ok    {step}\n")),
                Err(why) => out.push_str(&format!("FAIL  {step}: {why}\n")),
            }
        }
        let failed = self.steps.iter().filter(|(_, r)| r.is_err()).count();
        match failed {
            0 => out.push_str(&format!("all {} steps passed\n", self.steps.len())),
            n => out.push_str(&format!("{n} of {} steps failed\n", self.steps.len())),
        }
        out
    }
}

/// Builds, packs and tests the plugin project in `dir`.
///
/// # Errors
///
/// When the project cannot be read or built, or its cases or policy do not
/// parse: failures of the plugin itself are steps of the [`Outcome`].
pub fn run(dir: &Path) -> anyhow::Result<Outcome> {
    let project = Project::open(dir)?;
    let policy = match dir.join("policy.toml") {
        path if path.exists() => Policy::from_file(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        _ => Policy::default(),
    };
    let cases_file = dir.join("tests/cases.json");
    let cases = match std::fs::read_to_string(&cases_file) {
        Ok(text) => cases::parse(&text)?,
        Err(_) => Vec::new(),
    };
    let (bytes, rebuilt) = project.build()?;
    let mut outcome = Outcome::default();
    let built = if rebuilt { "built" } else { "took from the build cache (sources unchanged)" };
    outcome.steps.push((format!("{built} {}", project.output().display()), Ok(())));

    let smoke = policy.plugin(&project.name).smoke;
    let runtime = match build::cache_dir() {
        // Compiled code kept beside the builds: a language runtime's
        // component takes seconds to compile, and loads from the cache in a
        // fraction of that.
        Some(cache) => Arc::new(toolshed_standard::runtime().policy(policy).concurrent_calls(1_000).cache_dir(cache.join("compiled")).build()?),
        None => runtime_under(policy),
    };
    let plugin = match runtime.compile(&project.name, &bytes) {
        Ok(plugin) => Arc::new(plugin),
        Err(e) => {
            outcome.steps.push(("the plugin loads".into(), Err(e.to_string())));
            return Ok(outcome);
        }
    };
    let names: Vec<&str> = plugin.tools.iter().map(|t| t.name.as_str()).collect();
    outcome.steps.push((format!("the plugin loads: {}", names.join(", ")), Ok(())));
    if cases.is_empty() {
        outcome.steps.push(("tests/cases.json has cases".into(), Err(format!("no cases in {}", cases_file.display()))));
    }

    // Virtual time: a case whose tool waits minutes takes no real time.
    let clock = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build()?;
    clock.block_on(async {
        let mut errors = Vec::new();
        for case in &cases {
            // Each case on a fresh host and backend, so none sees another's state.
            let env = TestEnv::on(runtime.clone(), std::slice::from_ref(&plugin));
            let (answer, result) = cases::run(&env, case).await;
            if answer.is_error {
                errors.push(answer.value);
            }
            outcome.steps.push((format!("case: {}", case.name), result));
        }
        let env = TestEnv::on(runtime.clone(), std::slice::from_ref(&plugin));
        for (check, result) in checks::run(&env, &project.name, smoke.as_ref(), &errors).await {
            outcome.steps.push((format!("check: {check}"), result));
        }
    });
    Ok(outcome)
}
