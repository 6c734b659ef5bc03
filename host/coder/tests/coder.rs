//! The Coder backend against a contract fake of Coder's API: the workspace
//! tools' scenarios that make sense over HTTP, the exact requests they send,
//! and a deployment that misbehaves.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use toolshed_coder::{ClientConfig, CoderBackend, CoderConfig, MemoryChats, RetryPolicy, SessionToken};
use toolshed_coder_fake::{AgentPlan, BuildPlan, EPOCH_MS, FakeCoder, Fault, Method, ORG, OTHER_ORG, SteppingClock, TOKEN, TemplateIds, USER, context, parameter};
use toolshed_harness::{OutputExt, plugin_on, runtime_under};
use toolshed_infra::{ChatBinding, ControlError, CreateWorkspaceRequest, Db, QueryError, Control, Refused};
use toolshed_runtime::{Arguments, CallContext, CallOptions, ChatEvents, ToolOutput, Toolshed};

#[derive(Default)]
struct CountedUpdates(AtomicUsize);

#[toolshed_runtime::async_trait]
impl ChatEvents for CountedUpdates {
    async fn chat_updated(&self, _cx: &CallContext) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The test's front end: it only counts chat updates.
impl toolshed_runtime::Backend for CountedUpdates {
    fn provide(self: &Arc<Self>, _: &mut toolshed_runtime::Providers) {}

    fn chat_events(self: &Arc<Self>) -> Option<Arc<dyn ChatEvents>> {
        Some(self.clone())
    }
}

struct Env {
    fake: FakeCoder,
    clock: Arc<SteppingClock>,
    backend: Arc<CoderBackend>,
    host: Arc<Toolshed>,
    template: TemplateIds,
    updates: Arc<CountedUpdates>,
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy { attempts: 3, first_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(1), max_retry_after: Duration::from_secs(30) }
}

fn config(fake: &FakeCoder, token: &str) -> CoderConfig {
    let mut client = ClientConfig::new(fake.url(), SessionToken::new(token).unwrap());
    client.retry = fast_retries();
    CoderConfig::new(client)
}

async fn env_with(configure: impl FnOnce(&mut CoderConfig)) -> Env {
    let clock = Arc::new(SteppingClock::starting_at(EPOCH_MS));
    let fake = FakeCoder::start(clock.clone()).await;
    let template = fake.add_template("docker", ORG, vec![parameter("size", false)]);
    let mut config = config(&fake, TOKEN);
    configure(&mut config);
    let backend = Arc::new(CoderBackend::with_clock(config, Arc::new(MemoryChats::default()), clock.clone()).unwrap());
    // One runtime for the suite: engines are costly, and plugins compiled
    // once serve every test.
    static RUNTIME: std::sync::OnceLock<Arc<toolshed_runtime::Runtime>> = std::sync::OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| runtime_under(toolshed_builtin::policy())).clone();
    let plugin = plugin_on(&runtime, "workspace-tools", toolshed_builtin::WORKSPACE_TOOLS);
    let updates = Arc::new(CountedUpdates::default());
    // Coder has no registries; the built-in policy grants them to
    // registry-tools, which these tests do not serve.
    let host = Arc::new(
        Toolshed::builder(runtime)
            .clock(clock.clone())
            .backend(&backend)
            .backend(&updates)
            .provide(toolshed_platform::PlatformProviders::new(Arc::new(toolshed_platform::NoPlatform)))
            .build()
            .unwrap(),
    );
    host.publish(plugin).unwrap();
    Env { fake, clock, backend, host, template, updates }
}

async fn env() -> Env {
    env_with(|_| {}).await
}

impl Env {
    async fn call(&self, tool: &str, arguments: Value) -> ToolOutput {
        self.host.call_with(&context("chat-1"), tool, Arguments::Json(&arguments), CallOptions::default()).await
    }

    /// The requests so far as "METHOD path" with the fake's ids named.
    fn routes(&self) -> Vec<String> {
        self.fake.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect()
    }

    fn posts(&self) -> Vec<toolshed_coder_fake::Request> {
        self.fake.requests().into_iter().filter(|r| r.method == "POST").collect()
    }
}

#[tokio::test]
async fn create_workspace_sends_the_documented_requests_each_with_the_token() {
    let env = env().await;
    let out = env.call("create_workspace", json!({ "template_id": env.template.template_id, "name": "dev" })).await;
    let result = out.ok();
    assert_eq!(result["created"], true);
    assert_eq!(result["workspace_name"], "alice/dev");
    assert!(result.get("agent_status").is_none(), "a connected, ready agent adds no keys: {result}");
    assert_eq!(env.updates.0.load(Ordering::SeqCst), 2, "chat-updated fires twice on the create path");

    let requests = env.fake.requests();
    assert!(requests.iter().all(|r| r.token.as_deref() == Some(TOKEN)), "every request carries the session token");
    let routes = env.routes();
    let post = routes.iter().position(|r| r.starts_with("POST")).expect("a create request");
    assert_eq!(routes[..post], [format!("GET /api/v2/templates/{}", env.template.template_id)], "only the template is read before creating");
    let posts = env.posts();
    assert_eq!(posts.len(), 1, "{routes:#?}");
    assert_eq!(posts[0].path, format!("/api/v2/users/{USER}/workspaces"));
    assert_eq!(posts[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(posts[0].body, json!({ "template_id": env.template.template_id, "name": "dev", "rich_parameter_values": [] }));
    let build_id = result["build_id"].as_str().unwrap();
    assert!(routes.contains(&format!("GET /api/v2/workspacebuilds/{build_id}")), "the build is polled: {routes:#?}");
    assert!(routes.iter().any(|r| r.starts_with("GET /api/v2/workspaceagents/")), "the agent is read: {routes:#?}");
    assert!(routes.iter().all(|r| r.starts_with("GET ") || r.starts_with("POST ")), "{routes:#?}");
    assert_eq!(env.fake.workspace_count(), 1);
}

#[tokio::test]
async fn the_ttl_and_parameters_reach_coder_as_documented() {
    let env = env_with(|config| config.workspace_ttl = "2h".into()).await;
    let out = env.call("create_workspace", json!({ "template_id": env.template.template_id, "name": "dev", "parameters": { "size": "large" } })).await;
    out.ok();
    let body = &env.posts()[0].body;
    assert_eq!(body["ttl_ms"], 7_200_000);
    assert_eq!(body["rich_parameter_values"], json!([{ "name": "size", "value": "large" }]));
}

#[tokio::test]
async fn list_and_read_templates_ask_for_the_callers_organization() {
    let env = env().await;
    env.fake.add_template("elsewhere", OTHER_ORG, vec![]);
    let listed = env.call("list_templates", json!({})).await;
    let names: Vec<&str> = listed.ok()["templates"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["docker"]);
    let list = env.fake.requests().into_iter().find(|r| r.path == "/api/v2/templates").unwrap();
    assert_eq!(list.query.as_deref(), Some(format!("q=organization%3A{ORG}").as_str()));

    let read = env.call("read_template", json!({ "template_id": env.template.template_id })).await;
    let parameters = &read.ok()["parameters"];
    assert_eq!(parameters[0]["name"], "size");
    assert_eq!(parameters[0]["default"], "default");
    assert!(env.routes().contains(&format!("GET /api/v2/templateversions/{}/rich-parameters", env.template.version_id)));
}

#[tokio::test]
async fn a_failing_build_is_an_error_with_its_build_id_and_coders_reason() {
    let env = env().await;
    env.fake.push_plan(BuildPlan { failure: Some("terraform apply: quota exceeded".into()), ..BuildPlan::default() });
    let out = env.call("create_workspace", json!({ "template_id": env.template.template_id, "name": "dev" })).await;
    let error = out.err();
    assert!(out.message().contains("quota exceeded"), "{error}");
    let build_id = error["build_id"].as_str().expect("the failed build's id");
    assert!(env.routes().contains(&format!("GET /api/v2/workspacebuilds/{build_id}")));
}

#[tokio::test]
async fn a_canceled_build_says_so() {
    let env = env().await;
    env.fake.push_plan(BuildPlan { failure: Some("canceled".into()), ..BuildPlan::default() });
    let out = env.call("create_workspace", json!({ "template_id": env.template.template_id, "name": "dev" })).await;
    assert!(out.message().contains("canceled"), "{}", out.value);
}

#[tokio::test]
async fn stop_then_a_start_that_needs_new_parameters_recovers_through_the_manual_update_flow() {
    let env = env().await;
    env.call("create_workspace", json!({ "template_id": env.template.template_id, "name": "dev" })).await.ok();

    let stopped = env.call("stop_workspace", json!({})).await;
    assert_eq!(stopped.ok()["stopped"], true);
    let stop = env.posts().pop().unwrap();
    assert!(stop.path.ends_with("/builds"), "{}", stop.path);
    assert_eq!(stop.body, json!({ "transition": "stop", "rich_parameter_values": [] }), "a stop keeps the workspace's version");

    // The template moves on: its new active version needs a region, and
    // starting must move to it.
    let version = env.fake.push_version(&env.template.template_id, vec![parameter("size", false), parameter("region", true)]);
    env.fake.require_active_version(&env.template.template_id, true);
    let refused = env.call("start_workspace", json!({})).await;
    let error = refused.err();
    assert!(refused.message().contains("read_template"), "retry instructions: {error}");
    assert_eq!(error["template_id"], env.template.template_id.as_str());
    assert_eq!(error["validations"][0]["field"], "region");
    let refused_post = env.posts().pop().unwrap();
    assert_eq!(refused_post.body["template_version_id"], version.as_str());

    let started = env.call("start_workspace", json!({ "parameters": { "region": "eu-west" } })).await;
    let result = started.ok();
    assert_eq!(result["started"], true);
    assert_eq!(result["updated_to_active_version"], true, "{result}");
    let start = env.posts().pop().unwrap();
    assert_eq!(start.body, json!({ "transition": "start", "rich_parameter_values": [{ "name": "region", "value": "eu-west" }], "template_version_id": version }));
    let (built_version, values) = env.fake.build_inputs(result["build_id"].as_str().unwrap()).unwrap();
    assert_eq!(built_version, version);
    assert!(values.contains(&("region".to_string(), "eu-west".to_string())));
}

#[tokio::test]
async fn an_agent_coder_reports_connecting_is_waited_for_until_connected() {
    let env = env().await;
    let agent = AgentPlan { statuses: vec!["connecting", "connecting", "connected"], lifecycle: vec!["starting", "starting", "starting", "ready"], ..AgentPlan::ready("main") };
    env.fake.push_plan(BuildPlan { agents: vec![agent], ..BuildPlan::default() });
    let out = env.call("create_workspace", json!({ "template_id": env.template.template_id, "name": "dev" })).await;
    let result = out.ok();
    assert!(result.get("agent_status").is_none() && result.get("startup_scripts").is_none(), "{result}");
    assert!(env.clock.sleeps().contains(&Duration::from_secs(2)), "the tools paused between attempts on the host clock");
}

#[tokio::test]
async fn an_agent_that_never_connects_is_not_ready_with_coders_status() {
    let env = env().await;
    let agent = AgentPlan { statuses: vec!["connecting"], ..AgentPlan::ready("main") };
    env.fake.push_plan(BuildPlan { agents: vec![agent], ..BuildPlan::default() });
    let out = env.call("create_workspace", json!({ "template_id": env.template.template_id, "name": "dev" })).await;
    let result = out.ok();
    assert_eq!(result["agent_status"], "not_ready", "{result}");
    assert!(result["agent_error"].as_str().unwrap().contains("connecting"), "{result}");
}

#[tokio::test]
async fn a_startup_script_error_is_reported_with_its_lifecycle_state() {
    let env = env().await;
    let agent = AgentPlan { lifecycle: vec!["starting", "start_error"], ..AgentPlan::ready("main") };
    env.fake.push_plan(BuildPlan { agents: vec![agent], ..BuildPlan::default() });
    let out = env.call("create_workspace", json!({ "template_id": env.template.template_id, "name": "dev" })).await;
    let result = out.ok();
    assert_eq!(result["startup_scripts"], "startup_scripts_failed", "{result}");
    assert_eq!(result["lifecycle_state"], "start_error");
}

#[tokio::test]
async fn coders_validation_errors_reach_the_model_with_their_fields() {
    let env = env().await;
    let out = env.call("create_workspace", json!({ "template_id": env.template.template_id, "name": "dev" })).await;
    out.ok();
    // A second workspace of the same name in another chat: Coder's 409.
    let again = env.host.call_with(&context("chat-2"), "create_workspace", Arguments::Json(&json!({ "template_id": env.template.template_id, "name": "dev" })), CallOptions::default()).await;
    let error = again.err();
    assert!(again.message().contains("already exists"), "{error}");
    assert_eq!(error["validations"][0]["field"], "name");
    assert_eq!(env.fake.workspace_count(), 1);
}

// The host -> backend boundary: a Coder that answers badly or slowly, and
// rows the token can read but the caller does not own.

#[tokio::test]
async fn another_users_workspace_reads_as_not_found_and_is_never_bound() {
    let env = env().await;
    let (workspace, build) = env.fake.add_foreign_workspace(&env.template);
    let cx = context("chat-1");
    assert!(matches!(env.backend.workspace(&cx, &workspace).await, Err(QueryError::NotFound)));
    assert!(matches!(env.backend.build(&cx, &build).await, Err(QueryError::NotFound)));
    let binding = ChatBinding { workspace_id: Some(workspace.clone()), build_id: None, agent_id: None };
    assert!(matches!(env.backend.bind_chat(&cx, binding).await, Err(Refused::Error(QueryError::NotFound))));
    assert_eq!(env.backend.chat(&cx).await.unwrap().workspace_id, None, "nothing was bound");
    // Nor can it be built.
    let request = toolshed_infra::CreateBuildRequest { workspace_id: workspace, transition: toolshed_infra::Transition::Stop, parameters: vec![] };
    assert!(matches!(env.backend.create_build(&cx, request).await, Err(Refused::Error(ControlError::Api(e))) if e.status == 404));
    assert!(env.posts().is_empty(), "no build was asked for");
}

#[tokio::test]
async fn an_id_cannot_climb_out_of_its_path_segment() {
    let env = env().await;
    let cx = context("chat-1");
    assert!(matches!(env.backend.workspace(&cx, "../users/me").await, Err(QueryError::NotFound)));
    assert!(matches!(env.backend.template(&cx, "..").await, Err(QueryError::NotFound)));
    assert!(matches!(env.backend.build(&cx, ".").await, Err(QueryError::NotFound)));
    assert_eq!(env.routes(), ["GET /api/v2/workspaces/..%2Fusers%2Fme"], "a dot segment is never sent");
}

#[tokio::test]
async fn reads_are_retried_after_server_errors_and_creates_are_not() {
    let env = env().await;
    env.fake.inject(Method::GET, "/api/v2/templates", Fault::Status { status: 502, message: "bad gateway".into(), retry_after: None });
    env.fake.inject(Method::GET, "/api/v2/templates", Fault::Status { status: 500, message: "oops".into(), retry_after: None });
    let listed = env.backend.templates(&context("chat-1")).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(env.routes().len(), 3, "two failures, then the answer");
    assert_eq!(env.clock.sleeps(), [Duration::from_millis(100), Duration::from_millis(200)], "backoff doubles");

    env.fake.inject(Method::POST, "/api/v2/users", Fault::Status { status: 500, message: "database hiccup".into(), retry_after: None });
    let request = CreateWorkspaceRequest { template_id: env.template.template_id.clone(), name: "dev".into(), ttl_ms: None, parameters: vec![] };
    let refused = env.backend.create_workspace(&context("chat-1"), request.clone()).await;
    // A server error keeps its status; its text stays in the host's log.
    assert!(matches!(&refused, Err(Refused::Error(ControlError::Api(e))) if e.status == 500 && !e.message.contains("hiccup")), "{refused:?}");
    assert_eq!(env.posts().len(), 1, "a create that may have happened is not sent twice");

    // A 503 says nothing was done, so even a create is tried again.
    env.fake.inject(Method::POST, "/api/v2/users", Fault::Status { status: 503, message: "starting up".into(), retry_after: None });
    env.backend.create_workspace(&context("chat-1"), request).await.unwrap();
    assert_eq!(env.posts().len(), 3);
    assert_eq!(env.fake.workspace_count(), 1);
}

#[tokio::test]
async fn a_rate_limit_waits_as_long_as_retry_after_says_or_says_when_to_come_back() {
    let env = env().await;
    env.fake.inject(Method::GET, "/api/v2/templates", Fault::Status { status: 429, message: "slow down".into(), retry_after: Some(3) });
    env.backend.templates(&context("chat-1")).await.unwrap();
    assert_eq!(env.clock.sleeps(), [Duration::from_secs(3)]);

    env.fake.inject(Method::GET, "/api/v2/templates", Fault::Status { status: 429, message: "slow down".into(), retry_after: Some(600) });
    let Err(QueryError::Failed(reason)) = env.backend.templates(&context("chat-1")).await else { panic!("a ten-minute Retry-After is not waited out") };
    assert!(reason.contains("try again in 600 s"), "{reason}");
    assert_eq!(env.clock.sleeps().len(), 1, "no second wait");
}

#[tokio::test]
async fn a_deployment_that_never_answers_times_out_naming_the_request() {
    let env = env_with(|config| {
        config.client.timeout = Duration::from_millis(300);
        config.client.retry.attempts = 1;
    })
    .await;
    env.fake.inject(Method::GET, "/api/v2/templates", Fault::Stall);
    let Err(QueryError::Failed(reason)) = env.backend.templates(&context("chat-1")).await else { panic!("a stalled request ends") };
    assert!(reason.contains("did not answer GET /api/v2/templates within 0.3 s"), "{reason}");
}

#[tokio::test]
async fn an_answer_without_end_or_not_json_is_refused_with_a_reason() {
    let env = env().await;
    env.fake.inject(Method::GET, "/api/v2/templates", Fault::Endless);
    let Err(QueryError::Failed(reason)) = env.backend.templates(&context("chat-1")).await else { panic!("an endless answer ends") };
    assert!(reason.contains("larger than 8 MiB"), "{reason}");

    env.fake.inject(Method::GET, "/api/v2/templates", Fault::Garbage);
    let Err(QueryError::Failed(reason)) = env.backend.templates(&context("chat-1")).await else { panic!("garbage is refused") };
    assert!(reason.contains("could not be read"), "{reason}");
}

#[tokio::test]
async fn a_refused_token_a_missing_permission_and_no_server_each_say_what_to_do() {
    let env = env().await;
    let clock = Arc::new(SteppingClock::starting_at(EPOCH_MS));
    let wrong = CoderBackend::with_clock(config(&env.fake, "not-the-token"), Arc::new(MemoryChats::default()), clock.clone()).unwrap();
    let refused = wrong.whoami().await.unwrap_err();
    assert_eq!(refused.status(), Some(401));
    assert!(refused.explain().contains("coder tokens create"), "{}", refused.explain());

    env.fake.inject(Method::POST, "/api/v2/users", Fault::Status { status: 403, message: "Forbidden.".into(), retry_after: None });
    let out = env.call("create_workspace", json!({ "template_id": env.template.template_id, "name": "dev" })).await;
    assert!(out.message().contains("lacks the permission"), "{}", out.value);

    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut nowhere = CoderConfig::new(ClientConfig::new(url.as_str(), SessionToken::new(TOKEN).unwrap()));
    nowhere.client.retry = fast_retries();
    let unreachable = CoderBackend::with_clock(nowhere, Arc::new(MemoryChats::default()), clock).unwrap().whoami().await.unwrap_err();
    assert!(unreachable.to_string().starts_with(&format!("cannot reach Coder at {url}/")), "{unreachable}");
}

#[tokio::test]
async fn a_start_uses_the_active_version_only_where_the_template_requires_it_and_only_for_the_owner() {
    use toolshed_infra::BuildVersions;
    let env = env().await;
    let created = env.call("create_workspace", json!({ "template_id": env.template.template_id, "name": "dev" })).await;
    created.ok();
    let cx = context("chat-1");
    let workspace = env.backend.chat(&cx).await.unwrap().workspace_id.unwrap();
    assert!(!env.backend.start_uses_active_version(&cx, &workspace).await, "Coder's default keeps the version");
    env.fake.require_active_version(&env.template.template_id, true);
    assert!(env.backend.start_uses_active_version(&cx, &workspace).await);
    let (foreign, _) = env.fake.add_foreign_workspace(&env.template);
    assert!(!env.backend.start_uses_active_version(&cx, &foreign).await, "another user's workspace says nothing");
}

/// A caller whose identity Coder would read as a user name or as `me` (the
/// token's own user) is refused before anything is sent: a create cannot
/// be undone, so the owner is checked before it, not after.
#[tokio::test]
async fn a_create_for_an_owner_that_is_not_a_user_id_is_refused_before_coder_is_asked() {
    let env = env().await;
    let request = CreateWorkspaceRequest { template_id: env.template.template_id.clone(), name: "dev".into(), ttl_ms: None, parameters: vec![] };
    for owner in ["me", "alice", "C0DE0000-0000-4000-8000-000000000001", "{c0de0000-0000-4000-8000-000000000001}"] {
        let cx = CallContext { owner_id: owner.into(), ..context("chat-1") };
        let refused = env.backend.create_workspace(&cx, request.clone()).await;
        assert!(matches!(&refused, Err(Refused::Error(ControlError::Api(e))) if e.status == 403), "{owner}: {refused:?}");
    }
    assert!(env.posts().is_empty(), "nothing was sent: {:#?}", env.routes());
    assert_eq!(env.fake.workspace_count(), 0, "no workspace was made for anyone");
    env.backend.create_workspace(&context("chat-1"), request).await.expect("the caller's own id still creates");
}

/// The template allow-list binds the backend, not only the guest: a plugin
/// granted control that skips the check creates nothing.
#[tokio::test]
async fn a_template_off_the_allow_list_is_refused_by_the_backend_itself() {
    let allowed = "c0de0000-0000-4000-8000-00000000beef".to_string();
    let env = env_with(|config| config.template_allowlist = vec![allowed]).await;
    let request = CreateWorkspaceRequest { template_id: env.template.template_id.clone(), name: "dev".into(), ttl_ms: None, parameters: vec![] };
    let refused = env.backend.create_workspace(&context("chat-1"), request).await;
    assert!(matches!(&refused, Err(Refused::Error(ControlError::Api(e))) if e.status == 403 && e.message.contains("not available")), "{refused:?}");
    assert!(env.posts().is_empty(), "Coder was never asked: {:#?}", env.routes());
    assert_eq!(env.fake.workspace_count(), 0);
}

/// What Coder says when it fails (a server error's text, which can quote
/// its SQL, and the deployment's URL when it cannot be reached) stays in
/// the host's log; the tool's answer has neither.
#[tokio::test]
async fn coder_failures_reach_the_caller_without_sql_or_the_deployments_url() {
    let env = env().await;
    let leak = "pq: relation \"workspaces\" does not exist: SELECT * FROM workspaces WHERE owner_id = $1";
    for _ in 0..fast_retries().attempts {
        env.fake.inject(Method::GET, "/api/v2/templates", Fault::Status { status: 500, message: leak.into(), retry_after: None });
    }
    let listed = env.call("list_templates", json!({})).await;
    env.fake.inject(Method::POST, "/api/v2/users", Fault::Status { status: 500, message: leak.into(), retry_after: None });
    let created = env.call("create_workspace", json!({ "template_id": env.template.template_id, "name": "dev" })).await;
    for answer in [&listed, &created] {
        assert!(answer.is_error, "{}", answer.value);
        let text = answer.value.to_string();
        for secret in ["SELECT", "relation", "pq:", env.fake.url(), TOKEN] {
            assert!(!text.contains(secret), "the answer holds {secret:?}: {text}");
        }
    }
    assert!(created.value.to_string().contains("500"), "the status is kept: {}", created.value);

    // No server at all: the URL is not in the answer.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut nowhere = CoderConfig::new(ClientConfig::new(url.as_str(), SessionToken::new(TOKEN).unwrap()));
    nowhere.client.retry = fast_retries();
    let backend = CoderBackend::with_clock(nowhere, Arc::new(MemoryChats::default()), Arc::new(SteppingClock::starting_at(EPOCH_MS))).unwrap();
    let Err(QueryError::Failed(reason)) = backend.templates(&context("chat-1")).await else { panic!("no server, no templates") };
    assert!(!reason.contains(&url) && !reason.contains("127.0.0.1"), "{reason}");
}
