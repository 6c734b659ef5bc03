//! SPEC 4.3: create_workspace on a chat with no usable workspace.

use serde_json::json;
use toolshed_harness::{AgentSpec, ApiError, BuildPlan, Call, ConnectScript, ControlError, JobScript, JobStatus, LifecycleState, OutputExt, QueryError, ReadKind, Validation, ids};

use crate::support::{env_with_template, keys, set};

#[tokio::test(start_paused = true)]
async fn agent_ready_adds_no_extra_keys() {
    let (env, template) = env_with_template();
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    let out = out.ok();
    assert_eq!(keys(out), set(&["created", "workspace_name", "build_id"]));
    assert_eq!(out["created"], true);
    let name = out["workspace_name"].as_str().unwrap();
    assert!(name.starts_with("alice/docker-"), "{name}");
    let chat = env.backend.chat(&env.context());
    assert_eq!(chat.build_id.as_deref(), out["build_id"].as_str());
    assert!(chat.workspace_id.is_some());
}

#[tokio::test(start_paused = true)]
async fn connect_failure_reports_not_ready_with_the_reason() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::default().agents(vec![
        AgentSpec::ready("main").connect(ConnectScript::Fails("dial tcp: connection refused".into())),
    ]));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    let out = out.ok();
    assert_eq!(out["agent_status"], "not_ready");
    assert!(out["agent_error"].as_str().unwrap().contains("connection refused"), "{out}");
    assert!(out.get("startup_scripts").is_none());
    assert!(env.backend.recorder().connects() > 1, "connection attempts are retried");
}

#[tokio::test(start_paused = true)]
async fn connect_retries_until_the_agent_answers() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::default().agents(vec![AgentSpec::ready("main").connect(ConnectScript::FailsTimes(3))]));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert!(out.ok().get("agent_status").is_none(), "{}", out.value);
    assert_eq!(env.backend.recorder().connects(), 4);
}

#[tokio::test(start_paused = true)]
async fn lifecycle_start_error_reports_failed_startup_scripts() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::default().agents(vec![AgentSpec::ready("main").lifecycle(vec![
        (0, LifecycleState::Starting),
        (4_000, LifecycleState::StartError),
    ])]));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    let out = out.ok();
    assert_eq!(out["startup_scripts"], "startup_scripts_failed");
    assert_eq!(out["lifecycle_state"], "start_error");
}

#[tokio::test(start_paused = true)]
async fn startup_scripts_past_the_limit_report_a_timeout() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::default().agents(vec![AgentSpec::ready("main").lifecycle(vec![(0, LifecycleState::Starting)])]));
    let started = tokio::time::Instant::now();
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert_eq!(out.ok()["startup_scripts"], "startup_scripts_timeout");
    assert!(started.elapsed() >= std::time::Duration::from_secs(600), "waited the full ten virtual minutes");
}

#[tokio::test(start_paused = true)]
async fn no_connect_capability_adds_no_keys_and_makes_no_attempt() {
    let (env, template) = env_with_template();
    env.backend.set_can_connect(false);
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert_eq!(keys(out.ok()), set(&["created", "workspace_name", "build_id"]));
    assert_eq!(env.backend.recorder().connects(), 0);
}

#[tokio::test(start_paused = true)]
async fn no_agents_reports_no_agent() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::default().agents(vec![]));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert_eq!(out.ok()["agent_status"], "no_agent");
}

#[tokio::test(start_paused = true)]
async fn prefers_the_chat_agent() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::default().agents(vec![
        AgentSpec::ready("alpha"),
        AgentSpec::ready("dev-CODERD-CHAT").order(5),
        AgentSpec::ready("sub-coderd-chat").child_of(0),
    ]));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert!(out.ok().get("agent_status").is_none(), "{}", out.value);
    let chat = env.backend.chat(&env.context());
    assert_eq!(env.backend.agent_name(chat.agent_id.as_deref().unwrap()).as_deref(), Some("dev-CODERD-CHAT"));
    let connected: Vec<String> = env
        .backend
        .recorder()
        .calls()
        .into_iter()
        .filter_map(|(_, c)| if let Call::Connect(id) = c { env.backend.agent_name(&id) } else { None })
        .collect();
    assert_eq!(connected, ["dev-CODERD-CHAT"]);
}

#[tokio::test(start_paused = true)]
async fn without_a_chat_agent_the_first_by_order_then_name_is_chosen() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::default().agents(vec![
        AgentSpec::ready("zeta").order(1),
        AgentSpec::ready("Beta").order(0),
        AgentSpec::ready("alpha").order(0),
    ]));
    env.call("create_workspace", json!({ "template_id": template.id })).await.ok();
    let chat = env.backend.chat(&env.context());
    assert_eq!(env.backend.agent_name(chat.agent_id.as_deref().unwrap()).as_deref(), Some("alpha"));
}

#[tokio::test(start_paused = true)]
async fn a_selection_error_is_returned_at_once_without_connecting() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::default().agents(vec![
        AgentSpec::ready("one-coderd-chat"),
        AgentSpec::ready("two-coderd-chat"),
    ]));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    let out = out.ok();
    assert_eq!(out["agent_status"], "selection_error");
    let reason = out["agent_error"].as_str().unwrap();
    assert!(reason.contains("one-coderd-chat") && reason.contains("two-coderd-chat"), "{reason}");
    assert!(reason.contains("only one"), "{reason}");
    assert_eq!(env.backend.recorder().connects(), 0);
}

#[tokio::test(start_paused = true)]
async fn no_root_agents_is_a_selection_error() {
    let (env, template) = env_with_template();
    // An agent whose parent is in the build is not a root; here every agent has one.
    env.backend.push_plan(BuildPlan::default().agents(vec![AgentSpec::ready("a").child_of(1), AgentSpec::ready("b").child_of(0)]));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    let out = out.ok();
    assert_eq!(out["agent_status"], "selection_error");
    assert_eq!(out["agent_error"], "no eligible workspace agents found");
    assert_eq!(env.backend.recorder().connects(), 0);
}

#[tokio::test(start_paused = true)]
async fn sub_agents_are_never_chosen() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::default().agents(vec![AgentSpec::ready("root").order(9), AgentSpec::ready("child-coderd-chat").child_of(0)]));
    env.call("create_workspace", json!({ "template_id": template.id })).await.ok();
    let chat = env.backend.chat(&env.context());
    assert_eq!(env.backend.agent_name(chat.agent_id.as_deref().unwrap()).as_deref(), Some("root"));
}

#[tokio::test(start_paused = true)]
async fn a_failed_build_after_create_is_an_error_with_the_build_id() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::job(JobScript::fails_after(30_000, "terraform apply: quota exceeded")));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    let err = out.err();
    assert_eq!(err["error"], "workspace build failed: terraform apply: quota exceeded");
    let build_id = err["build_id"].as_str().unwrap();
    assert_eq!(env.backend.chat(&env.context()).build_id.as_deref(), Some(build_id));
}

#[tokio::test(start_paused = true)]
async fn a_failed_job_without_text_says_build_failed() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::job(JobScript::ends_after(4_000, JobStatus::Failed)));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert_eq!(out.message(), "workspace build failed: build failed");
}

#[tokio::test(start_paused = true)]
async fn a_canceled_job_says_the_build_was_canceled() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::job(JobScript::ends_after(4_000, JobStatus::Canceled)));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert_eq!(out.message(), "workspace build failed: build was canceled");
    assert!(out.err()["build_id"].is_string());
}

#[tokio::test(start_paused = true)]
async fn an_unknown_job_status_is_reported() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::job(JobScript::ends_after(2_000, JobStatus::Unknown)));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert_eq!(out.message(), "workspace build failed: unexpected job status: unknown");
}

#[tokio::test(start_paused = true)]
async fn a_canceling_job_is_polled_until_it_ends() {
    let (env, template) = env_with_template();
    let mut job = JobScript::ends_after(4_000, JobStatus::Canceling);
    job.steps.push((10_000, JobStatus::Canceled));
    env.backend.push_plan(BuildPlan::job(job));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert_eq!(out.message(), "workspace build failed: build was canceled");
    let polls = env.backend.recorder().read_times(|k| matches!(k, ReadKind::Job(_)));
    assert_eq!(polls.len(), 6, "running at 0 and 2 s, canceling at 4, 6 and 8 s, canceled at 10 s");
}

#[tokio::test(start_paused = true)]
async fn a_build_that_cannot_be_read_is_reported_with_its_build_id() {
    let (env, template) = env_with_template();
    env.backend.fail_next_job_read(QueryError::Failed("database is down".into()));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    let err = out.err();
    assert_eq!(err["error"], "workspace build failed: get job: database is down");
    assert_eq!(err["code"], "BUILD_LOOKUP_FAILED");
    assert!(err["build_id"].is_string());
}

#[tokio::test(start_paused = true)]
async fn startup_scripts_that_cannot_be_read_are_unknown() {
    let (env, template) = env_with_template();
    env.backend.fail_next_agent_read(QueryError::Failed("database is down".into()));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert_eq!(out.ok()["startup_scripts"], "startup_scripts_unknown");
    assert!(out.ok().get("lifecycle_state").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_build_that_never_finishes_times_out_after_ten_virtual_minutes() {
    let (env, template) = env_with_template();
    env.backend.push_plan(BuildPlan::job(JobScript::never_finishes()));
    let started = tokio::time::Instant::now();
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    let waited = started.elapsed();
    let err = out.err();
    assert_eq!(err["category"], "timeout");
    assert_eq!(err["recoverable"], true);
    assert!(err["error"].as_str().unwrap().contains("timed out"), "{err}");
    assert!(err["build_id"].is_string());
    assert!(waited >= std::time::Duration::from_secs(600), "gave up after {waited:?}");
    assert!(waited < std::time::Duration::from_secs(610), "gave up after {waited:?}");
}

#[tokio::test(start_paused = true)]
async fn an_api_error_keeps_its_detail_and_validations() {
    let (env, template) = env_with_template();
    env.backend.fail_next_create(ControlError::Api(ApiError {
        status: 400,
        message: "Invalid workspace request".into(),
        detail: "parameter region is invalid".into(),
        validations: vec![Validation { field: "region".into(), detail: "must be one of eu, us".into() }],
    }));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    let err = out.err();
    assert_eq!(err["error"], "Invalid workspace request");
    assert_eq!(err["detail"], "parameter region is invalid");
    assert_eq!(err["validations"], json!([{ "field": "region", "detail": "must be one of eu, us" }]));
    assert_eq!(err["category"], "validation_failed");
}

#[tokio::test(start_paused = true)]
async fn an_api_error_without_a_message_says_request_failed() {
    let (env, template) = env_with_template();
    env.backend.fail_next_create(ControlError::Api(ApiError { status: 500, message: String::new(), detail: String::new(), validations: vec![] }));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert_eq!(out.message(), "request failed");
    assert!(out.err().get("validations").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_non_api_failure_is_a_plain_error() {
    let (env, template) = env_with_template();
    env.backend.fail_next_create(ControlError::Failed("connection reset".into()));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert_eq!(out.message(), "create workspace: connection reset");
    assert!(out.err().get("detail").is_none());
}

async fn ttl_passed_on(setting: Result<&str, QueryError>) -> Option<u64> {
    let (env, template) = env_with_template();
    env.backend.set_ttl(setting);
    env.call("create_workspace", json!({ "template_id": template.id })).await.ok();
    env.backend.recorder().creates()[0].ttl_ms
}

#[tokio::test(start_paused = true)]
async fn ttl_2h_is_passed_in_milliseconds() {
    assert_eq!(ttl_passed_on(Ok("2h")).await, Some(7_200_000));
}

#[tokio::test(start_paused = true)]
async fn ttl_0s_passes_none() {
    assert_eq!(ttl_passed_on(Ok("0s")).await, None);
}

#[tokio::test(start_paused = true)]
async fn ttl_unreadable_passes_none() {
    assert_eq!(ttl_passed_on(Err(QueryError::Failed("settings table locked".into()))).await, None);
}

#[tokio::test(start_paused = true)]
async fn ttl_invalid_passes_none() {
    assert_eq!(ttl_passed_on(Ok("two hours")).await, None);
}

#[tokio::test(start_paused = true)]
async fn a_cross_organization_template_is_rejected_before_create() {
    let env = crate::support::env();
    let theirs = env.backend.add_template("theirs", ids::OTHER_ORG, 0);
    let out = env.call("create_workspace", json!({ "template_id": theirs.id })).await;
    assert!(out.message().contains(ids::OTHER_ORG), "{}", out.value);
    assert!(out.message().contains("organization"), "{}", out.value);
    assert!(env.backend.recorder().creates().is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_empty_template_id_names_list_templates() {
    let env = crate::support::env();
    let out = env.call("create_workspace", json!({ "template_id": "" })).await;
    assert!(out.message().contains("list_templates"), "{}", out.value);
    assert!(env.backend.recorder().creates().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_template_id_that_is_not_a_uuid_is_invalid() {
    let env = crate::support::env();
    let out = env.call("create_workspace", json!({ "template_id": "docker" })).await;
    assert!(out.message().contains("invalid template_id"), "{}", out.value);
    assert!(env.backend.recorder().creates().is_empty());
}

/// SPEC 4.3.1, in its order: empty, then not a UUID, then not allowed; all
/// before the lock, so none reads the chat, and none creates.
#[tokio::test(start_paused = true)]
async fn the_template_id_checks_come_in_order_before_anything_is_read() {
    let env = crate::support::env();
    let allowed = env.backend.add_template("allowed", ids::ORG, 0);
    env.backend.set_allowlist(&[&allowed.id]);
    let elsewhere = ids::fresh();
    for (id, code) in [("", "TEMPLATE_ID_REQUIRED"), (" ", "TEMPLATE_ID_REQUIRED"), ("docker", "INVALID_TEMPLATE_ID"), (elsewhere.as_str(), "TEMPLATE_NOT_AVAILABLE")] {
        let out = env.call("create_workspace", json!({ "template_id": id })).await;
        assert_eq!(out.err()["code"], code, "{id:?}: {}", out.value);
        assert!(out.message().contains("list_templates"), "{id:?}: {}", out.value);
    }
    let reads = env.backend.recorder().reads();
    assert!(reads.iter().all(|r| r.kind != ReadKind::Chat), "the chat was read before the checks ended: {reads:?}");
    assert!(env.backend.recorder().creates().is_empty());
}

#[tokio::test(start_paused = true)]
async fn chat_updated_fires_exactly_twice() {
    let (env, template) = env_with_template();
    env.call("create_workspace", json!({ "template_id": template.id })).await.ok();
    assert_eq!(env.backend.recorder().chat_updates(), 2);
}

#[tokio::test(start_paused = true)]
async fn parameters_are_forwarded_as_name_value_pairs() {
    let (env, template) = env_with_template();
    env.call("create_workspace", json!({ "template_id": template.id, "parameters": { "region": "eu", "cpu": "4" } })).await.ok();
    let mut parameters = env.backend.recorder().creates()[0].parameters.clone();
    parameters.sort();
    assert_eq!(parameters, [("cpu".to_string(), "4".to_string()), ("region".to_string(), "eu".to_string())]);
}

#[tokio::test(start_paused = true)]
async fn a_valid_name_is_used_as_given() {
    let (env, template) = env_with_template();
    let out = env.call("create_workspace", json!({ "template_id": template.id, "name": "My-Box-2" })).await;
    assert_eq!(out.ok()["workspace_name"], "alice/My-Box-2");
}

#[tokio::test(start_paused = true)]
async fn an_invalid_name_seeds_a_generated_one() {
    let (env, template) = env_with_template();
    let out = env.call("create_workspace", json!({ "template_id": template.id, "name": "My Box_2!" })).await;
    let name = out.ok()["workspace_name"].as_str().unwrap().trim_start_matches("alice/").to_string();
    assert!(name.starts_with("mybox2-"), "{name}");
    assert_eq!(name.len(), "mybox2-".len() + 4);
}

#[tokio::test(start_paused = true)]
async fn a_name_conflict_on_a_generated_name_retries_once_with_a_fresh_name() {
    let (env, template) = env_with_template();
    env.backend.fail_next_create(ControlError::Api(ApiError {
        status: 409,
        message: "workspace name already in use".into(),
        detail: String::new(),
        validations: vec![],
    }));
    let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert_eq!(out.ok()["created"], true);
    let creates = env.backend.recorder().creates();
    assert_eq!(creates.len(), 2);
    assert_ne!(creates[0].name, creates[1].name);
}

#[tokio::test(start_paused = true)]
async fn a_name_conflict_on_a_given_name_is_not_retried() {
    let (env, template) = env_with_template();
    env.backend.fail_next_create(ControlError::Api(ApiError {
        status: 409,
        message: "workspace name already in use".into(),
        detail: String::new(),
        validations: vec![],
    }));
    let out = env.call("create_workspace", json!({ "template_id": template.id, "name": "taken" })).await;
    assert_eq!(out.message(), "workspace name already in use");
    assert_eq!(env.backend.recorder().creates().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn progress_is_reported_while_the_build_runs() {
    let (env, template) = env_with_template();
    env.call("create_workspace", json!({ "template_id": template.id })).await.ok();
    let progress = env.backend.recorder().count(|c| matches!(c, Call::Progress(text) if text.contains("running")));
    assert!(progress >= 1);
}
