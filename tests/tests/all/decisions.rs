//! Rules the SPEC leaves open or states loosely, as docs/behaviour.md
//! settles them ("Settled readings of the SPEC"), each tested on both sides.

use serde_json::{Value, json};
use toolshed_harness::{
    AgentSpec, ApiError, BuildPlan, ControlError, Heartbeat, JobScript, OutputExt, PlatformError, TestEnv, Transition, Validation,
};
use toolshed_infra::Template;

use crate::support::{env_with_template, parameter};

/// SPEC 4.4.2 names only a start in progress. A stop in progress is waited
/// out, then the workspace is started with a new build.
#[tokio::test(start_paused = true)]
async fn start_waits_out_a_stop_in_progress_then_starts_a_new_build() {
    let (env, template) = env_with_template();
    let (workspace, _) = env.backend.add_workspace(&template, Transition::Start, BuildPlan::job(JobScript::succeeded()));
    let stopping = env.backend.add_build(&workspace.id, Transition::Stop, None, BuildPlan::job(JobScript::succeeds_after(30_000)));
    let out = env.call("start_workspace", json!({})).await;
    let out = out.ok();
    assert_eq!(out["started"], true);
    let builds = env.backend.recorder().builds();
    assert_eq!(builds.len(), 1, "one new build");
    assert_eq!(builds[0].transition, Transition::Start);
    assert_ne!(out["build_id"], stopping.id.as_str(), "the answer names the start, not the stop");
    let started_at = env.backend.build_created_at(out["build_id"].as_str().unwrap()).unwrap();
    assert!(started_at >= env.backend.build_created_at(&stopping.id).unwrap() + 30_000, "the start comes after the stop ended");
    assert_eq!(env.backend.recorder().chat_updates(), 3);
}

/// A stopped workspace whose template has a new active version needing a
/// `region` the workspace lacks.
fn outdated(required: bool) -> (TestEnv, Template) {
    let (env, template) = env_with_template();
    env.backend.add_workspace(&template, Transition::Stop, BuildPlan::job(JobScript::succeeded()));
    env.backend.require_active_version(&template.id, required);
    env.backend.new_template_version(&template.id, vec![parameter("region", true)]);
    (env, template)
}

/// The error of a start of an outdated workspace that the backend refuses
/// with a 400 on `cpu`, where starts do (`required`) or do not move to the
/// active version; and the template.
async fn refused_start(required: bool) -> (Value, Template) {
    let (env, template) = outdated(required);
    env.backend.fail_next_build(ControlError::Api(ApiError {
        status: 400,
        message: "Unable to validate parameters".into(),
        detail: String::new(),
        validations: vec![Validation { field: "cpu".into(), detail: "at most 8".into() }],
    }));
    let err = env.call("start_workspace", json!({ "parameters": { "cpu": "99" } })).await.err().clone();
    (err, template)
}

/// SPEC 3.6: the rewrite is for a start that must move to the active
/// version. Where the template requires it, a 400 gets the retry
/// instructions.
#[tokio::test(start_paused = true)]
async fn a_400_on_a_start_that_moves_to_the_active_version_is_the_manual_update_error() {
    let (err, template) = refused_start(true).await;
    assert_eq!(err["code"], "TEMPLATE_PARAMETERS_REQUIRED", "{err}");
    assert!(err["error"].as_str().unwrap().contains("read_template"), "{err}");
    assert_eq!(err["template_id"], template.id.as_str());
}

/// SPEC 3.6, the other side: where starts keep the workspace's version, a
/// 400 is about that version, and saying "update to the active version"
/// would send the model to the wrong parameters.
#[tokio::test(start_paused = true)]
async fn a_400_on_a_start_that_keeps_the_version_is_an_ordinary_api_error() {
    let (err, template) = refused_start(false).await;
    assert_ne!(err["code"], "TEMPLATE_PARAMETERS_REQUIRED", "{err}");
    assert_eq!(err["error"], "Unable to validate parameters");
    assert!(!err["error"].as_str().unwrap().contains("read_template"), "{err}");
    assert_eq!(err["validations"], json!([{ "field": "cpu", "detail": "at most 8" }]));
    assert_eq!(err["template_id"], template.id.as_str(), "validations carry the template (SPEC 4.4.4)");
}

/// Where starts keep the version, a start of an outdated workspace builds
/// its own version and says nothing of an update.
#[tokio::test(start_paused = true)]
async fn a_start_that_keeps_the_version_reports_no_update() {
    let (env, template) = outdated(false);
    let out = env.call("start_workspace", json!({})).await;
    let out = out.ok();
    assert!(out.get("updated_to_active_version").is_none(), "{out}");
    let build = env.backend.build_by_id(out["build_id"].as_str().unwrap()).unwrap();
    assert_eq!(build.template_version_id.as_deref(), Some(template.active_version_id.as_str()), "the version the workspace had");
}

/// SPEC 3.5: "new" and "create" are reserved in any case.
#[tokio::test(start_paused = true)]
async fn a_reserved_name_in_capitals_is_replaced_by_a_generated_one() {
    for given in ["NEW", "Create"] {
        let (env, template) = env_with_template();
        let out = env.call("create_workspace", json!({ "template_id": template.id, "name": given })).await;
        let name = out.ok()["workspace_name"].as_str().unwrap().trim_start_matches("alice/").to_string();
        let seed = given.to_lowercase();
        assert!(name.starts_with(&format!("{seed}-")) && name.len() == seed.len() + 5, "{given} -> {name}");
    }
}

/// An existing workspace whose one agent has the given heartbeat.
async fn existing_with(heartbeat: Heartbeat) -> (TestEnv, Value) {
    let (env, template) = env_with_template();
    env.backend.add_workspace(&template, Transition::Start, BuildPlan::job(JobScript::succeeded()).agents(vec![AgentSpec::ready("main").heartbeat(heartbeat)]));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await.ok().clone();
    (env, out)
}

/// SPEC 3.2: a never-connected agent has timed out once its connection
/// timeout (600 s here) has passed: at exactly 600 s, not only after.
#[tokio::test(start_paused = true)]
async fn an_agent_never_connected_for_exactly_its_timeout_has_timed_out() {
    let (env, out) = existing_with(Heartbeat::NeverConnectedFor(600_000)).await;
    assert_eq!(out["created"], true, "timed out: a new workspace");
    assert_eq!(env.backend.recorder().creates().len(), 1);

    let (env, out) = existing_with(Heartbeat::NeverConnectedFor(599_999)).await;
    assert_eq!(out["status"], "already_exists", "still connecting");
    assert_eq!(env.backend.recorder().connects(), 1, "exactly one connection wait");
}

/// SPEC 3.2: disconnected when the last connection is *older* than the
/// inactivity limit (30 s): at exactly 30 s it still counts.
#[tokio::test(start_paused = true)]
async fn an_agent_heard_from_exactly_at_the_inactivity_limit_is_connected() {
    let (env, out) = existing_with(Heartbeat::LastHeardAgo(30_000)).await;
    assert_eq!(out["status"], "already_exists");
    assert_eq!(env.backend.recorder().connects(), 0, "connected: no attempt");

    let (env, out) = existing_with(Heartbeat::LastHeardAgo(30_001)).await;
    assert_eq!(out["created"], true, "disconnected: a new workspace");
    assert_eq!(env.backend.recorder().creates().len(), 1);
}

fn registry_env() -> TestEnv {
    crate::support::env_with(&[("registry-tools", toolshed_builtin::REGISTRY_TOOLS)])
}

fn registry_args(name: &str) -> Value {
    json!({ "project_id": "p", "cluster_id": "c", "cluster_name": "prod", "provider": "hetzner", "region": "fsn1", "registry_name": name })
}

/// SPEC 4.8: a letter is an ASCII letter, since the name goes into the
/// registry's URL and image references.
#[tokio::test(start_paused = true)]
async fn registry_names_keep_only_ascii_letters_digits_and_dashes() {
    for (given, sent) in [("Café Prod", "caf--prod"), ("Ñandú", "and"), ("日本", "main"), ("team-7", "team-7")] {
        let env = registry_env();
        let out = env.call("provision_registry", registry_args(given)).await;
        assert_eq!(out.ok()["registry_name"], sent, "{given}");
        assert_eq!(env.backend.recorder().provisions()[0].registry_name, sent, "{given}");
    }
}

/// SPEC 4.8: a poll error is a network error, whatever the platform said,
/// with a code and suggestion of its own: the call that looks again.
#[tokio::test(start_paused = true)]
async fn a_poll_error_of_any_kind_is_a_network_error_whose_suggestion_waits_on_the_task() {
    for failure in [
        PlatformError::Unauthorized("token expired".into()),
        PlatformError::BadResponse("truncated JSON".into()),
        PlatformError::Connection("connection reset".into()),
    ] {
        let env = registry_env();
        env.backend.fail_next_poll(failure.clone());
        let err = env.call("provision_registry", registry_args("main")).await.err().clone();
        assert_eq!(err["category"], "network_error", "{failure:?}: {err}");
        assert_eq!(err["code"], "TASK_POLL_FAILED", "{failure:?}: {err}");
        assert_eq!(err["recoverable"], true);
        let task_id = err["task_id"].as_str().unwrap().to_string();
        let suggestions = err["suggestions"].as_array().unwrap();
        assert_eq!(suggestions.len(), 1, "{err}");
        let again = suggestions[0].as_str().unwrap();
        let arguments: Value = serde_json::from_str(again.strip_prefix("provision_registry ").unwrap()).unwrap();
        assert_eq!(arguments["task_id"], task_id.as_str());

        // The suggested call waits on the same task and starts nothing.
        let out = env.call("provision_registry", arguments).await;
        assert_eq!(out.ok()["task_id"], task_id.as_str());
        assert_eq!(env.backend.recorder().provisions().len(), 1, "{failure:?}");
    }
}
