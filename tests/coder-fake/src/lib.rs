//! A contract fake of Coder's REST API, for toolshed's tests.
//!
//! It serves the endpoints the Coder backend uses on a loopback port, with
//! the JSON shapes Coder documents (`codersdk`): users, templates and their
//! rich parameters, workspaces, builds with their provisioner jobs, and
//! agents. Builds and agents follow scripts ([`BuildPlan`], [`AgentPlan`])
//! that move on with each read, so a test needs no real waiting. Every
//! request is logged with its method, path, query, token and body
//! ([`Request`]), and faults can be injected ahead of the fake's own answer
//! ([`Fault`]): error statuses with `Retry-After`, a server that never
//! answers, an answer without end.

mod world;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use toolshed_runtime::{CallContext, Clock};

use world::World;

pub use axum::http::Method;

/// The token the fake accepts.
pub const TOKEN: &str = "coder-test-token-6b1f";
/// The user the token belongs to.
pub const USER: &str = "c0de0000-0000-4000-8000-000000000001";
/// That user's name.
pub const USERNAME: &str = "alice";
/// Another user, whose workspaces the token can read (as an admin's could).
pub const OTHER_USER: &str = "c0de0000-0000-4000-8000-000000000002";
/// The organization of both users.
pub const ORG: &str = "c0de0000-0000-4000-8000-0000000000a1";
/// Another organization.
pub const OTHER_ORG: &str = "c0de0000-0000-4000-8000-0000000000a2";
/// The virtual clock's reading when a fake starts: 2026-01-01T00:00:00Z.
pub const EPOCH_MS: u64 = 1_767_225_600_000;

/// The calling context of `chat` for [`USER`].
pub fn context(chat: &str) -> CallContext {
    CallContext { chat_id: chat.into(), owner_id: USER.into(), owner_name: USERNAME.into(), organization_id: ORG.into() }
}

/// A clock whose `sleep` returns at once, moving the time on by what was
/// asked: a ten-minute wait takes no real time, and the fake's timestamps
/// follow the same reading.
#[derive(Debug)]
pub struct SteppingClock {
    now: AtomicU64,
    slept: Mutex<Vec<Duration>>,
}

impl SteppingClock {
    /// A clock reading `epoch_ms`.
    pub fn starting_at(epoch_ms: u64) -> Self {
        Self { now: AtomicU64::new(epoch_ms), slept: Mutex::default() }
    }

    /// Every sleep so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.slept.lock().unwrap().clone()
    }
}

#[toolshed_runtime::async_trait]
impl Clock for SteppingClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }

    async fn sleep(&self, duration: Duration) {
        self.slept.lock().unwrap().push(duration);
        self.now.fetch_add(duration.as_millis() as u64, Ordering::SeqCst);
        tokio::task::yield_now().await;
    }
}

/// How an agent of a start build behaves: its status and lifecycle state
/// at each direct read (`GET /workspaceagents/{id}`); the last entry stays.
#[derive(Debug, Clone)]
pub struct AgentPlan {
    /// The agent's name.
    pub name: String,
    /// `connecting`, `connected`, `disconnected` or `timeout`, per read.
    pub statuses: Vec<&'static str>,
    /// Lifecycle states, per read.
    pub lifecycle: Vec<&'static str>,
    /// The agent's connection timeout.
    pub timeout_seconds: u32,
}

impl AgentPlan {
    /// An agent that is connected and ready from the start.
    pub fn ready(name: &str) -> Self {
        Self { name: name.into(), statuses: vec!["connected"], lifecycle: vec!["ready"], timeout_seconds: 120 }
    }
}

/// How the next build goes.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    /// Reads of the build that find its job running before it ends.
    pub running_reads: u32,
    /// How the job ends: `None` succeeds, `Some("canceled")` is canceled,
    /// any other text fails with it as the job's error.
    pub failure: Option<String>,
    /// The agents a start build makes.
    pub agents: Vec<AgentPlan>,
}

impl Default for BuildPlan {
    fn default() -> Self {
        Self { running_reads: 2, failure: None, agents: vec![AgentPlan::ready("main")] }
    }
}

/// An answer injected ahead of the fake's own.
#[derive(Debug, Clone)]
pub enum Fault {
    /// This status, with Coder's error body and an optional `Retry-After`
    /// in seconds.
    Status {
        /// The status.
        status: u16,
        /// The message.
        message: String,
        /// `Retry-After`, in seconds.
        retry_after: Option<u64>,
    },
    /// No answer at all: the request hangs until the client gives up.
    Stall,
    /// A 200 whose body never ends.
    Endless,
    /// A 200 whose body is not JSON.
    Garbage,
}

/// One request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The method.
    pub method: String,
    /// The path, as sent (percent-encoding kept).
    pub path: String,
    /// The query, if any.
    pub query: Option<String>,
    /// The `Coder-Session-Token` header.
    pub token: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The body, as JSON (`Null` for none).
    pub body: Value,
}

struct State {
    world: Mutex<World>,
    log: Mutex<Vec<Request>>,
    faults: Mutex<VecDeque<(Method, String, Fault)>>,
    clock: Arc<SteppingClock>,
}

/// A running fake deployment.
#[derive(Clone)]
pub struct FakeCoder {
    url: String,
    state: Arc<State>,
}

/// A template the fake serves, with its active version.
#[derive(Debug, Clone)]
pub struct TemplateIds {
    /// The template.
    pub template_id: String,
    /// Its active version.
    pub version_id: String,
}

/// A rich parameter of a template version, in Coder's shape.
pub fn parameter(name: &str, required: bool) -> Value {
    json!({
        "name": name, "display_name": name, "description": format!("The {name}."), "type": "string", "form_type": "input",
        "mutable": true, "default_value": if required { "" } else { "default" }, "required": required, "ephemeral": false,
        "options": [], "validation_error": "", "icon": ""
    })
}

impl FakeCoder {
    /// Starts a fake on a loopback port, its times following `clock`.
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound.
    pub async fn start(clock: Arc<SteppingClock>) -> FakeCoder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let state = Arc::new(State { world: Mutex::default(), log: Mutex::default(), faults: Mutex::default(), clock });
        let app = axum::Router::new().fallback(handle).with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeCoder { url, state }
    }

    /// The deployment's URL, such as `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Adds a template of `organization_id` whose active version has
    /// `parameters` ([`parameter`]).
    pub fn add_template(&self, name: &str, organization_id: &str, parameters: Vec<Value>) -> TemplateIds {
        let ids = TemplateIds { template_id: uuid::Uuid::new_v4().to_string(), version_id: uuid::Uuid::new_v4().to_string() };
        let template = world::Template {
            json: json!({
                "id": ids.template_id, "name": name, "display_name": name.to_uppercase(), "description": format!("The {name} template."),
                "organization_id": organization_id, "organization_name": "acme", "active_version_id": ids.version_id,
                "deprecated": false, "deprecation_message": "", "active_user_count": 3, "require_active_version": false,
                "created_at": rfc3339(EPOCH_MS), "updated_at": rfc3339(EPOCH_MS), "icon": "", "default_ttl_ms": 0
            }),
            versions: [(ids.version_id.clone(), parameters)].into_iter().collect(),
        };
        self.world().templates.push(template);
        ids
    }

    /// Adds a version with `parameters` to a template and makes it active;
    /// returns its id.
    pub fn push_version(&self, template_id: &str, parameters: Vec<Value>) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let mut world = self.world();
        let template = world.templates.iter_mut().find(|t| t.json["id"] == template_id).expect("a template of this fake");
        template.versions.insert(id.clone(), parameters);
        template.json["active_version_id"] = json!(id);
        id
    }

    /// Sets a template's `require_active_version`.
    pub fn require_active_version(&self, template_id: &str, required: bool) {
        let mut world = self.world();
        let template = world.templates.iter_mut().find(|t| t.json["id"] == template_id).expect("a template of this fake");
        template.json["require_active_version"] = json!(required);
    }

    /// How the next build goes (builds without a plan take the default).
    pub fn push_plan(&self, plan: BuildPlan) {
        self.world().plans.push_back(plan);
    }

    /// Answers the next `method` request whose path starts with
    /// `path_prefix` with `fault` instead.
    pub fn inject(&self, method: Method, path_prefix: &str, fault: Fault) {
        self.state.faults.lock().unwrap().push_back((method, path_prefix.into(), fault));
    }

    /// Makes a workspace of [`OTHER_USER`] with one succeeded build; returns
    /// (workspace id, build id).
    pub fn add_foreign_workspace(&self, template: &TemplateIds) -> (String, String) {
        let now = rfc3339(self.state.clock.now_ms());
        let mut world = self.world();
        let id = uuid::Uuid::new_v4().to_string();
        world.workspaces.insert(
            id.clone(),
            world::Workspace {
                id: id.clone(),
                name: "bobs".into(),
                owner_id: OTHER_USER.into(),
                owner_name: "bob".into(),
                template_id: template.template_id.clone(),
                created_at: now.clone(),
                builds: vec![],
            },
        );
        world.plans.push_front(BuildPlan { running_reads: 0, ..BuildPlan::default() });
        let build = world.create_build(&id, &json!({ "transition": "start" }), &now).1["id"].as_str().unwrap_or_default().to_string();
        (id, build)
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.state.log.lock().unwrap().clone()
    }

    /// Forgets the requests so far.
    pub fn clear_requests(&self) {
        self.state.log.lock().unwrap().clear();
    }

    /// How many workspaces [`USER`] has.
    pub fn workspace_count(&self) -> usize {
        self.world().workspaces.values().filter(|w| w.owner_id == USER).count()
    }

    /// The template version and parameter values of a build.
    pub fn build_inputs(&self, build_id: &str) -> Option<(String, Vec<(String, String)>)> {
        self.world().builds.get(build_id).map(|b| (b.version_id.clone(), b.values.clone()))
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.state.world.lock().unwrap()
    }
}

/// An RFC 3339 time, as Coder writes them.
pub fn rfc3339(epoch_ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(epoch_ms as i64).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn json_response((status, body): world::Answer) -> Response {
    (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), axum::Json(body)).into_response()
}

async fn handle(axum::extract::State(state): axum::extract::State<Arc<State>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let body: Value = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap_or_else(|_| json!(String::from_utf8_lossy(&body))) };
    let path = uri.path().to_string();
    state.log.lock().unwrap().push(Request {
        method: method.to_string(),
        path: path.clone(),
        query: uri.query().map(str::to_string),
        token: header("coder-session-token"),
        content_type: header("content-type"),
        body: body.clone(),
    });
    let fault = {
        let mut faults = state.faults.lock().unwrap();
        let at = faults.iter().position(|(m, prefix, _)| *m == method && path.starts_with(prefix.as_str()));
        at.and_then(|i| faults.remove(i)).map(|(_, _, fault)| fault)
    };
    match fault {
        Some(Fault::Status { status, message, retry_after }) => {
            let mut response = json_response(world::error(status, &message, "", json!([])));
            if let Some(seconds) = retry_after {
                response.headers_mut().insert("retry-after", seconds.into());
            }
            return response;
        }
        Some(Fault::Stall) => std::future::pending::<()>().await,
        Some(Fault::Endless) => {
            let chunk = Bytes::from(vec![b' '; 64 << 10]);
            let stream = futures_util::stream::repeat_with(move || Ok::<_, Infallible>(chunk.clone()));
            return Response::builder().header("content-type", "application/json").body(Body::from_stream(stream)).unwrap_or_default();
        }
        Some(Fault::Garbage) => return (StatusCode::OK, "<html>not json</html>").into_response(),
        None => {}
    }
    match header("coder-session-token").as_deref() {
        None => return json_response(world::error(401, "Cookie or header \"Coder-Session-Token\" must be provided.", "", json!([]))),
        Some(TOKEN) => {}
        Some(_) => return json_response(world::error(401, "Invalid session token.", "", json!([]))),
    }
    let now = rfc3339(state.clock.now_ms());
    let segments: Vec<&str> = path.trim_start_matches("/api/v2/").split('/').collect();
    let mut world = state.world.lock().unwrap();
    let answer = match (method.as_str(), segments.as_slice()) {
        ("GET", ["users", "me"]) => (200, json!({ "id": USER, "username": USERNAME, "email": "alice@example.com", "organization_ids": [ORG], "status": "active" })),
        ("GET", ["templates"]) => {
            let organization = uri.query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("q=organization%3A").or_else(|| kv.strip_prefix("q=organization:"))));
            let list: Vec<Value> = world.templates.iter().filter(|t| organization.is_none_or(|o| t.json["organization_id"] == o)).map(|t| t.json.clone()).collect();
            (200, Value::Array(list))
        }
        ("GET", ["templates", id]) => world.template(id).map_or_else(|| world::error(404, "Resource not found or you do not have access to this resource", "", json!([])), |t| (200, t.json.clone())),
        ("GET", ["templateversions", id, "rich-parameters"]) => {
            let parameters = world.templates.iter().find_map(|t| t.versions.get(*id)).cloned();
            parameters.map_or_else(|| world::error(404, "Resource not found or you do not have access to this resource", "", json!([])), |p| (200, Value::Array(p)))
        }
        ("POST", ["users", user, "workspaces"]) => world.create_workspace(user, &body, &now),
        ("GET", ["workspaces", id]) => match world.workspaces.get(*id) {
            Some(w) => (200, world.workspace_json(w)),
            None => world::error(404, "Resource not found or you do not have access to this resource", "", json!([])),
        },
        ("POST", ["workspaces", id, "builds"]) => world.create_build(id, &body, &now),
        ("GET", ["workspacebuilds", id]) => world.read_build(id),
        ("GET", ["workspaceagents", id]) => world.read_agent(id, &now),
        _ => world::error(404, "Route not found.", &format!("{method} {path}"), json!([])),
    };
    json_response(answer)
}
