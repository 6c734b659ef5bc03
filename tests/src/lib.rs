//! The toolshed test harness: a scripted fake backend on virtual time.
//!
//! Plugin authors test tools the way an agent calls them: JSON in, JSON out,
//! through the real `.wasm` and the real host. The [`FakeBackend`] plays the
//! infrastructure (templates, workspaces, builds whose jobs change status
//! over time, agents that connect or not) and records every call that
//! changes something, so a test can say "create was never called" or
//! "exactly one connection attempt", and every read with its virtual time,
//! so a test can pin a poll schedule ("the first poll at once, then one
//! every two seconds"). Time is tokio's paused clock, so a
//! ten-minute build wait finishes in milliseconds.
//!
//! ```
//! use serde_json::json;
//! use toolshed_harness::{BuildPlan, JobScript, OutputExt, TestEnv, ids};
//!
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
//! # rt.block_on(async {
//! // The workspace tools, under the policy that grants them what they import.
//! let env = TestEnv::serving(toolshed_builtin::policy(), &[("workspace-tools", toolshed_builtin::WORKSPACE_TOOLS)]);
//! let template = env.backend.add_template("docker", ids::ORG, 3);
//! // The first build takes five virtual minutes.
//! env.backend.push_plan(BuildPlan::job(JobScript::succeeds_after(5 * 60_000)));
//!
//! let out = env.call("create_workspace", json!({ "template_id": template.id })).await;
//! assert_eq!(out.ok()["created"], true);
//! assert_eq!(env.backend.recorder().creates().len(), 1);
//! assert_eq!(env.backend.recorder().chat_updates(), 2);
//! # });
//! ```

#![deny(missing_docs)]

mod env;
mod fake;
mod handmade;
pub mod ids;
mod record;
pub mod registry;
mod script;

pub use handmade::HandMade;
pub use env::{EPOCH_MS, OutputExt, TestEnv, assert_answer_fits_schema, plugin_on, runtime_under};
pub use fake::{FakeBackend, INACTIVE_DISCONNECT_MS, default_context};
pub use record::{Attempt, Call, Read, ReadKind, Recorder};
pub use script::{AgentSpec, BuildPlan, ConnectScript, Heartbeat, JobScript, TaskScript};
pub use toolshed_infra::{
    ApiError, ControlError, JobStatus, LifecycleState, ParameterOption, QueryError, TemplateParameter, Transition, Validation,
};
pub use toolshed_platform::{ApiFailure, PlatformError, TaskStatus};
