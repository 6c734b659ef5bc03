//! What the fake deployment holds, and how it answers each endpoint with
//! the JSON shapes Coder documents.

use std::collections::{HashMap, VecDeque};

use serde_json::{Value, json};

use crate::{AgentPlan, BuildPlan, ORG, OTHER_USER, USER, USERNAME};

pub(crate) struct Template {
    pub json: Value,
    /// version id -> rich parameters
    pub versions: HashMap<String, Vec<Value>>,
}

pub(crate) struct Workspace {
    pub id: String,
    pub name: String,
    pub owner_id: String,
    pub owner_name: String,
    pub template_id: String,
    pub created_at: String,
    pub builds: Vec<String>,
}

pub(crate) struct Build {
    pub id: String,
    pub workspace_id: String,
    pub owner_id: String,
    pub version_id: String,
    pub transition: String,
    pub job_id: String,
    pub values: Vec<(String, String)>,
    pub plan: BuildPlan,
    pub reads: u32,
    pub created_at: String,
    pub agents: Vec<String>,
}

pub(crate) struct Agent {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub plan: AgentPlan,
    pub reads: usize,
    pub first_connected_at: Option<String>,
    pub last_connected_at: Option<String>,
}

#[derive(Default)]
pub(crate) struct World {
    pub templates: Vec<Template>,
    pub workspaces: HashMap<String, Workspace>,
    pub builds: HashMap<String, Build>,
    pub agents: HashMap<String, Agent>,
    pub plans: VecDeque<BuildPlan>,
}

/// An answer: status and JSON body.
pub(crate) type Answer = (u16, Value);

pub(crate) fn error(status: u16, message: &str, detail: &str, validations: Value) -> Answer {
    (status, json!({ "message": message, "detail": detail, "validations": validations }))
}

fn not_found(what: &str) -> Answer {
    error(404, &format!("{what} not found"), "", json!([]))
}

/// Coder's workspace name rule.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 32 && name.split('-').all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric()))
}

impl World {
    pub fn template(&self, id: &str) -> Option<&Template> {
        self.templates.iter().find(|t| t.json["id"] == id)
    }

    fn version_parameters(&self, version_id: &str) -> Option<&Vec<Value>> {
        self.templates.iter().find_map(|t| t.versions.get(version_id))
    }

    /// The job status a build shows after its reads so far.
    fn job_status(build: &Build) -> (&'static str, String) {
        if build.reads <= build.plan.running_reads {
            return if build.reads == 0 { ("pending", String::new()) } else { ("running", String::new()) };
        }
        match &build.plan.failure {
            Some(reason) if reason == "canceled" => ("canceled", String::new()),
            Some(reason) => ("failed", reason.clone()),
            None => ("succeeded", String::new()),
        }
    }

    fn agent_json(agent: &Agent) -> Value {
        let at = |plan: &[&'static str]| plan[agent.reads.min(plan.len().saturating_sub(1))];
        let status = at(&agent.plan.statuses);
        json!({
            "id": agent.id,
            "name": agent.name,
            "parent_id": null,
            "created_at": agent.created_at,
            "first_connected_at": agent.first_connected_at,
            "last_connected_at": agent.last_connected_at,
            "disconnected_at": if status == "disconnected" { agent.last_connected_at.clone() } else { None },
            "status": status,
            "lifecycle_state": at(&agent.plan.lifecycle),
            "connection_timeout_seconds": agent.plan.timeout_seconds,
            "operating_system": "linux",
            "architecture": "amd64",
            "apps": [],
        })
    }

    pub fn build_json(&self, build: &Build) -> Value {
        let (status, error) = Self::job_status(build);
        let workspace = &self.workspaces[&build.workspace_id];
        let agents: Vec<Value> = if status == "succeeded" { build.agents.iter().map(|id| Self::agent_json(&self.agents[id])).collect() } else { vec![] };
        let resources = if agents.is_empty() { json!([]) } else { json!([{ "id": format!("{}-vm", build.id), "name": "dev", "type": "docker_container", "agents": agents }]) };
        json!({
            "id": build.id,
            "created_at": build.created_at,
            "workspace_id": build.workspace_id,
            "workspace_name": workspace.name,
            "workspace_owner_id": build.owner_id,
            "workspace_owner_name": workspace.owner_name,
            "template_version_id": build.version_id,
            "build_number": workspace.builds.iter().position(|b| *b == build.id).map_or(0, |i| i + 1),
            "transition": build.transition,
            "status": match (build.transition.as_str(), status) {
                ("start", "succeeded") => "running",
                ("stop", "succeeded") => "stopped",
                (_, "failed") => "failed",
                (_, "canceled") => "canceled",
                ("stop", _) => "stopping",
                _ => "starting",
            },
            "job": { "id": build.job_id, "status": status, "error": error, "created_at": build.created_at },
            "resources": resources,
        })
    }

    pub fn workspace_json(&self, workspace: &Workspace) -> Value {
        let latest = workspace.builds.last().map(|id| self.build_json(&self.builds[id]));
        json!({
            "id": workspace.id,
            "created_at": workspace.created_at,
            "name": workspace.name,
            "owner_id": workspace.owner_id,
            "owner_name": workspace.owner_name,
            "organization_id": ORG,
            "template_id": workspace.template_id,
            "latest_build": latest,
        })
    }

    /// Required parameters of `version_id` that `values` leave out, as
    /// Coder's validations.
    fn missing(&self, version_id: &str, values: &[(String, String)]) -> Vec<Value> {
        let parameters = self.version_parameters(version_id).cloned().unwrap_or_default();
        parameters
            .iter()
            .filter(|p| p["required"] == true && !values.iter().any(|(name, _)| p["name"] == name.as_str()))
            .map(|p| json!({ "field": p["name"], "detail": "Required parameter not provided" }))
            .collect()
    }

    fn new_build(&mut self, workspace_id: &str, version_id: &str, transition: &str, values: Vec<(String, String)>, now: &str) -> String {
        let plan = self.plans.pop_front().unwrap_or_default();
        let owner_id = self.workspaces[workspace_id].owner_id.clone();
        let id = uuid::Uuid::new_v4().to_string();
        let agents = if transition == "start" {
            plan.agents
                .iter()
                .map(|agent| {
                    let agent_id = uuid::Uuid::new_v4().to_string();
                    self.agents.insert(
                        agent_id.clone(),
                        Agent { id: agent_id.clone(), name: agent.name.clone(), created_at: now.into(), plan: agent.clone(), reads: 0, first_connected_at: None, last_connected_at: None },
                    );
                    agent_id
                })
                .collect()
        } else {
            vec![]
        };
        let build = Build {
            id: id.clone(),
            workspace_id: workspace_id.into(),
            owner_id,
            version_id: version_id.into(),
            transition: transition.into(),
            job_id: uuid::Uuid::new_v4().to_string(),
            values,
            plan,
            reads: 0,
            created_at: now.into(),
            agents,
        };
        self.builds.insert(id.clone(), build);
        self.workspaces.get_mut(workspace_id).expect("the workspace exists").builds.push(id.clone());
        id
    }

    /// `POST /api/v2/users/{user}/workspaces`
    pub fn create_workspace(&mut self, user: &str, body: &Value, now: &str) -> Answer {
        if user != "me" && user != USER {
            let known = user == OTHER_USER;
            return if known { error(403, "Forbidden.", "You may not create workspaces for other users.", json!([])) } else { not_found("user") };
        }
        let name = body["name"].as_str().unwrap_or_default();
        if !valid_name(name) {
            return error(400, "Validation failed.", "", json!([{ "field": "name", "detail": "Validation failed for tag \"workspace_name\"." }]));
        }
        let template_id = body["template_id"].as_str().unwrap_or_default();
        let Some(template) = self.template(template_id) else {
            return error(400, &format!("Template {template_id:?} doesn't exist."), "", json!([{ "field": "template_id", "detail": "template not found" }]));
        };
        let version_id = template.json["active_version_id"].as_str().unwrap_or_default().to_string();
        let template_id = template_id.to_string();
        let live = self.workspaces.values().any(|w| w.owner_id == USER && w.name == name);
        if live {
            return error(409, &format!("Workspace {name:?} already exists."), "", json!([{ "field": "name", "detail": "This value is already in use and should be unique." }]));
        }
        let values = parameter_values(body);
        let missing = self.missing(&version_id, &values);
        if !missing.is_empty() {
            return error(400, "Unable to validate parameters", "", Value::Array(missing));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let workspace = Workspace {
            id: id.clone(),
            name: name.into(),
            owner_id: USER.into(),
            owner_name: USERNAME.into(),
            template_id,
            created_at: now.into(),
            builds: vec![],
        };
        self.workspaces.insert(id.clone(), workspace);
        self.new_build(&id, &version_id, "start", values, now);
        (201, self.workspace_json(&self.workspaces[&id]))
    }

    /// `POST /api/v2/workspaces/{id}/builds`
    pub fn create_build(&mut self, workspace_id: &str, body: &Value, now: &str) -> Answer {
        let Some(workspace) = self.workspaces.get(workspace_id) else { return not_found("workspace") };
        let previous = workspace.builds.last().map(|id| &self.builds[id]);
        if previous.is_some_and(|b| matches!(Self::job_status(b).0, "pending" | "running")) {
            return error(409, "A workspace build is already active.", "", json!([]));
        }
        let transition = body["transition"].as_str().unwrap_or_default().to_string();
        if !matches!(transition.as_str(), "start" | "stop" | "delete") {
            return error(400, "Invalid request body.", "transition must be start, stop or delete", json!([{ "field": "transition", "detail": "invalid" }]));
        }
        let template_active = self.template(&workspace.template_id).and_then(|t| t.json["active_version_id"].as_str()).unwrap_or_default().to_string();
        let version_id = body["template_version_id"]
            .as_str()
            .map(str::to_string)
            .or_else(|| previous.map(|b| b.version_id.clone()))
            .unwrap_or(template_active);
        let mut values = previous.map(|b| b.values.clone()).unwrap_or_default();
        for (name, value) in parameter_values(body) {
            values.retain(|(n, _)| *n != name);
            values.push((name, value));
        }
        if transition == "start" {
            let missing = self.missing(&version_id, &values);
            if !missing.is_empty() {
                return error(400, "Unable to validate parameters", "", Value::Array(missing));
            }
        }
        let id = self.new_build(workspace_id, &version_id, &transition, values, now);
        (201, self.build_json(&self.builds[&id]))
    }

    /// `GET /api/v2/workspacebuilds/{id}`: each read moves the job on.
    pub fn read_build(&mut self, id: &str) -> Answer {
        let Some(build) = self.builds.get_mut(id) else { return not_found("workspace build") };
        build.reads += 1;
        (200, self.build_json(&self.builds[id]))
    }

    /// `GET /api/v2/workspaceagents/{id}`: each read moves the agent on.
    pub fn read_agent(&mut self, id: &str, now: &str) -> Answer {
        let Some(agent) = self.agents.get_mut(id) else { return not_found("workspace agent") };
        let status = agent.plan.statuses[agent.reads.min(agent.plan.statuses.len() - 1)];
        if status == "connected" {
            agent.first_connected_at.get_or_insert_with(|| now.to_string());
            agent.last_connected_at = Some(now.into());
        }
        let answer = Self::agent_json(agent);
        agent.reads += 1;
        (200, answer)
    }
}

fn parameter_values(body: &Value) -> Vec<(String, String)> {
    body["rich_parameter_values"]
        .as_array()
        .map(|list| list.iter().map(|v| (v["name"].as_str().unwrap_or_default().to_string(), v["value"].as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default()
}
