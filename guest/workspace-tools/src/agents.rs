//! The chat's workspace agent: its status (SPEC 3.2), which one the chat uses
//! (3.3), and waiting until it is ready (3.4).

use crate::builds::{Again, duration, out_of_budget, still_in_progress};
use crate::capabilities::Capabilities;
use crate::wit::exports::toolshed::tools::workspace_tools::{AgentStatus, CreateWorkspaceResult, StartWorkspaceResult, StartupScripts, ToolError};
use crate::wit::toolshed::infra::db::ChatBinding;
use crate::wit::toolshed::infra::types::{Agent, LifecycleState};

/// The keys that describe the chat agent's readiness, merged into results.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AgentReport {
    pub agent_status: Option<AgentStatus>,
    pub agent_error: Option<String>,
    pub startup_scripts: Option<StartupScripts>,
    pub lifecycle_state: Option<String>,
    /// The caller's wait budget ran out while the agent was still starting.
    pub still_waiting: bool,
}

impl AgentReport {
    /// The report, or, when the wait budget ran out, the answer that says
    /// the workspace is built and its agent still starting.
    pub fn settled(self, build_id: &str, again: Again<'_>) -> Result<AgentReport, ToolError> {
        if self.still_waiting {
            return Err(still_in_progress("the workspace is built and its agent is still starting", build_id, again));
        }
        Ok(self)
    }

    pub fn apply_to_create(self, result: &mut CreateWorkspaceResult) {
        result.agent_status = self.agent_status;
        result.agent_error = self.agent_error;
        result.startup_scripts = self.startup_scripts;
        result.lifecycle_state = self.lifecycle_state;
    }

    pub fn apply_to_start(self, result: &mut StartWorkspaceResult) {
        result.agent_status = self.agent_status;
        result.agent_error = self.agent_error;
        result.startup_scripts = self.startup_scripts;
        result.lifecycle_state = self.lifecycle_state;
    }
}

/// The whole time spent trying to connect to an agent.
pub const CONNECT_WAIT_MS: u64 = 2 * 60 * 1_000;
/// The limit of one connection attempt.
pub const CONNECT_ATTEMPT_MS: u64 = 5_000;
/// The pause between connection attempts.
pub const CONNECT_PAUSE_MS: u64 = 2_000;
/// How often startup scripts are polled.
pub const LIFECYCLE_POLL_MS: u64 = 2_000;
/// How long startup scripts may run before the wait gives up.
pub const LIFECYCLE_WAIT_MS: u64 = 10 * 60 * 1_000;

const CHAT_AGENT_SUFFIX: &str = "-coderd-chat";

/// An agent's connection status as the database times show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    Connecting,
    Connected,
    Disconnected,
    Timeout,
}

/// The connection status of `agent` at `now` (milliseconds).
pub fn connection(agent: &Agent, now: u64) -> Connection {
    let Some(last) = agent.last_connected_at.filter(|_| agent.first_connected_at.is_some()) else {
        // Timed out once the timeout has passed, so at exactly that age too.
        let timeout_ms = u64::from(agent.connection_timeout_seconds) * 1_000;
        if timeout_ms > 0 && now.saturating_sub(agent.created_at) >= timeout_ms {
            return Connection::Timeout;
        }
        return Connection::Connecting;
    };
    if agent.disconnected_at.is_some_and(|d| d >= last) {
        return Connection::Disconnected;
    }
    if now.saturating_sub(last) > agent.inactive_disconnect_ms {
        return Connection::Disconnected;
    }
    Connection::Connected
}

/// Picks the chat's agent among a build's agents.
///
/// Only root agents count. One whose name ends in `-coderd-chat` wins;
/// without one, the first by display order, name and id.
pub fn choose(agents: &[Agent]) -> Result<Agent, String> {
    let mut roots: Vec<&Agent> = agents.iter().filter(|a| a.parent_id.is_none()).collect();
    if roots.is_empty() {
        return Err("no eligible workspace agents found".into());
    }
    roots.sort_by(|a, b| {
        a.display_order
            .cmp(&b.display_order)
            .then_with(|| a.name.to_lowercase().cmp(&b.name.to_lowercase()))
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.id.cmp(&b.id))
    });
    let chat_agents: Vec<&&Agent> =
        roots.iter().filter(|a| a.name.to_lowercase().ends_with(CHAT_AGENT_SUFFIX)).collect();
    match chat_agents.as_slice() {
        [] => Ok(roots[0].clone()),
        [only] => Ok((**only).clone()),
        several => {
            let names: Vec<&str> = several.iter().map(|a| a.name.as_str()).collect();
            Err(format!(
                "several agents use the {CHAT_AGENT_SUFFIX} suffix ({}); only one agent may use it",
                names.join(", ")
            ))
        }
    }
}

/// Whether to try connecting before watching the startup scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectPhase {
    /// Retry connecting for up to two minutes.
    Full,
    /// The database already shows the agent connected: skip connecting.
    Skip,
    /// One connection wait only (an existing workspace whose agent is still connecting).
    Once,
}

/// Chooses the chat agent of `build_id`, binds it, and waits until it is ready.
pub fn wait_until_ready<C: Capabilities>(host: &C, build_id: &str, phase: ConnectPhase) -> AgentReport {
    let agents = match host.build_agents(build_id) {
        Ok(agents) => agents,
        Err(err) => {
            return AgentReport {
                agent_status: Some(AgentStatus::NotReady),
                agent_error: Some(format!("list agents: {err:?}")),
                ..Default::default()
            };
        }
    };
    if agents.is_empty() {
        return AgentReport { agent_status: Some(AgentStatus::NoAgent), ..Default::default() };
    }
    let agent = match choose(&agents) {
        Ok(agent) => agent,
        Err(reason) => {
            return AgentReport {
                agent_status: Some(AgentStatus::SelectionError),
                agent_error: Some(reason),
                ..Default::default()
            };
        }
    };
    // A failed binding only affects the front end's view; the wait goes on.
    let _ = host.bind_chat(&ChatBinding { workspace_id: None, build_id: None, agent_id: Some(agent.id.clone()) });
    wait_for_agent(host, &agent, phase)
}

/// Connects to `agent` (per `phase`), then watches its startup scripts.
pub fn wait_for_agent<C: Capabilities>(host: &C, agent: &Agent, phase: ConnectPhase) -> AgentReport {
    if phase != ConnectPhase::Skip && host.can_connect() {
        match connect(host, &agent.id, phase) {
            Ok(()) => {}
            Err(Some(reason)) => {
                return AgentReport { agent_status: Some(AgentStatus::NotReady), agent_error: Some(reason), ..Default::default() };
            }
            Err(None) => return AgentReport { still_waiting: true, ..Default::default() },
        }
    }
    watch_lifecycle(host, &agent.id)
}

/// Tries to reach the agent as SPEC 3.4 schedules it. `Err(Some(reason))`
/// when it stays unreachable, `Err(None)` when the caller's wait budget
/// runs out first.
fn connect<C: Capabilities>(host: &C, agent_id: &str, phase: ConnectPhase) -> Result<(), Option<String>> {
    let started = host.now();
    let deadline = started.saturating_add(CONNECT_WAIT_MS);
    loop {
        // A heartbeat before each attempt, which takes at most five seconds.
        let waited = host.now().saturating_sub(started);
        host.progress(&format!("connecting to agent {agent_id}: for {} of {}", duration(waited), duration(CONNECT_WAIT_MS)));
        let remaining = deadline.saturating_sub(host.now());
        let attempt = match host.connect(agent_id, remaining.clamp(1, CONNECT_ATTEMPT_MS)) {
            Ok(()) => return Ok(()),
            Err(reason) => reason,
        };
        if phase == ConnectPhase::Once || host.now().saturating_add(CONNECT_PAUSE_MS) >= deadline {
            return Err(Some(format!("agent did not become reachable: {attempt}")));
        }
        if out_of_budget(host, CONNECT_PAUSE_MS + CONNECT_ATTEMPT_MS) {
            return Err(None);
        }
        host.sleep(CONNECT_PAUSE_MS);
    }
}

fn lifecycle_name(state: LifecycleState) -> &'static str {
    toolshed_contract::name(&toolshed_contract::LIFECYCLE_STATE, state as usize)
}

fn watch_lifecycle<C: Capabilities>(host: &C, agent_id: &str) -> AgentReport {
    let started = host.now();
    let deadline = started.saturating_add(LIFECYCLE_WAIT_MS);
    loop {
        let state = match host.agent(agent_id) {
            Ok(agent) => agent.lifecycle_state,
            Err(_) => {
                return AgentReport {
                    startup_scripts: Some(StartupScripts::StartupScriptsUnknown),
                    ..Default::default()
                };
            }
        };
        match state {
            LifecycleState::Ready => return AgentReport::default(),
            LifecycleState::Created | LifecycleState::Starting => {}
            other => {
                return AgentReport {
                    startup_scripts: Some(StartupScripts::StartupScriptsFailed),
                    lifecycle_state: Some(lifecycle_name(other).to_string()),
                    ..Default::default()
                };
            }
        }
        let waited = host.now().saturating_sub(started);
        host.progress(&format!(
            "agent {agent_id}: startup scripts {} for {} of {}",
            lifecycle_name(state),
            duration(waited),
            duration(LIFECYCLE_WAIT_MS)
        ));
        if host.now() >= deadline {
            return AgentReport {
                startup_scripts: Some(StartupScripts::StartupScriptsTimeout),
                ..Default::default()
            };
        }
        if out_of_budget(host, LIFECYCLE_POLL_MS) {
            return AgentReport { still_waiting: true, ..Default::default() };
        }
        host.sleep(LIFECYCLE_POLL_MS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(created_at: u64) -> Agent {
        Agent {
            id: "a".into(),
            name: "main".into(),
            parent_id: None,
            display_order: 0,
            created_at,
            first_connected_at: None,
            last_connected_at: None,
            disconnected_at: None,
            connection_timeout_seconds: 600,
            lifecycle_state: LifecycleState::Starting,
            inactive_disconnect_ms: 30_000,
        }
    }

    #[test]
    fn a_never_connected_agent_times_out_once_its_timeout_has_passed() {
        assert_eq!(connection(&agent(0), 599_999), Connection::Connecting);
        assert_eq!(connection(&agent(0), 600_000), Connection::Timeout);
        assert_eq!(connection(&agent(0), 600_001), Connection::Timeout);
        let no_timeout = Agent { connection_timeout_seconds: 0, ..agent(0) };
        assert_eq!(connection(&no_timeout, u64::MAX), Connection::Connecting, "0 s means no timeout");
    }

    #[test]
    fn a_connection_older_than_the_inactivity_limit_is_disconnected() {
        let heard = |last: u64| Agent { first_connected_at: Some(0), last_connected_at: Some(last), ..agent(0) };
        assert_eq!(connection(&heard(1_000), 31_000), Connection::Connected, "exactly the limit is not older than it");
        assert_eq!(connection(&heard(1_000), 31_001), Connection::Disconnected);
        let gone = Agent { disconnected_at: Some(1_000), ..heard(1_000) };
        assert_eq!(connection(&gone, 1_000), Connection::Disconnected, "disconnected at or after the last connection");
        let back = Agent { disconnected_at: Some(999), ..heard(1_000) };
        assert_eq!(connection(&back, 1_000), Connection::Connected);
    }
}
