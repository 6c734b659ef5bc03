//! Capabilities: a plugin imports only what its policy grants, and the host
//! binds the chat context so no plugin reads another owner's rows.

use serde_json::json;
use toolshed_runtime::{LoadError, Policy};
use toolshed_fixtures as fixtures;
use toolshed_harness::{BuildPlan, JobScript, OutputExt, Transition, ids};
use crate::support::{runtime};

#[test]
fn an_import_the_policy_does_not_grant_is_refused_at_load_naming_it() {
    let err = runtime().compile("ungranted", fixtures::UNGRANTED).err().expect("refused");
    assert!(matches!(&err, LoadError::NotGranted { interface, .. } if interface == "toolshed:infra/control@0.1.0"), "{err}");
    assert!(err.to_string().contains("toolshed:infra/control"), "{err}");
}

#[test]
fn granting_the_interface_lets_the_same_plugin_load() {
    let policy = Policy::from_toml("[plugins.ungranted]\ngrants = [\"toolshed:runtime/clock\", \"toolshed:infra/control\"]\n").unwrap();
    let runtime = crate::support::builder().policy(policy).concurrent_calls(4).build().unwrap();
    let plugin = runtime.compile("ungranted", fixtures::UNGRANTED).expect("granted now");
    assert_eq!(plugin.tools[0].name, "version");
}

#[test]
fn the_workspace_tools_cannot_load_without_the_infra_grants() {
    let policy = Policy::from_toml("[plugins.workspace-tools]\ngrants = [\"toolshed:runtime/*\"]\n").unwrap();
    let runtime = crate::support::builder().policy(policy).concurrent_calls(4).build().unwrap();
    let err = runtime.compile("workspace-tools", toolshed_builtin::WORKSPACE_TOOLS).err().expect("refused");
    assert!(err.to_string().contains("toolshed:infra/"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn another_owners_workspace_bound_to_the_chat_reads_as_not_found() {
    let env = crate::support::env();
    let template = env.backend.add_template("docker", ids::ORG, 0);
    // A workspace of another owner, bound to our chat as if by a bug elsewhere.
    let other = toolshed_runtime::CallContext { owner_id: ids::OTHER_OWNER.into(), chat_id: "c-other".into(), owner_name: "bob".into(), organization_id: ids::ORG.into() };
    let (foreign, _) = env.backend.add_workspace(&template, Transition::Start, BuildPlan::job(JobScript::succeeded()));
    env.backend.reassign_workspace(&foreign.id, &other.owner_id);
    env.backend.bind(&env.context(), &foreign.id);

    let start = env.call("start_workspace", json!({})).await;
    assert!(start.message().contains("create_workspace"), "the foreign workspace is invisible: {}", start.value);
    let stop = env.call("stop_workspace", json!({})).await;
    assert!(stop.is_error);
    assert!(env.backend.recorder().builds().is_empty(), "nothing was done to the foreign workspace");

    let create = env.call("create_workspace", json!({ "template_id": template.id })).await;
    assert_eq!(create.ok()["created"], true, "a new workspace instead of the foreign one");
}

#[tokio::test(start_paused = true)]
async fn templates_of_an_organization_the_owner_is_not_in_are_invisible_to_every_tool() {
    let env = crate::support::env();
    let ours = env.backend.add_template("ours", ids::ORG, 0);
    let hidden = env.backend.add_template("hidden", ids::OTHER_ORG, 0);
    env.backend.set_memberships(ids::OWNER, &[ids::ORG]);

    let listed = env.call("list_templates", json!({})).await;
    assert_eq!(listed.ok()["total_count"], 1);
    assert_eq!(listed.ok()["templates"][0]["id"], ours.id.as_str());
    let read = env.call("read_template", json!({ "template_id": hidden.id })).await;
    assert_eq!(read.message(), "template not found", "{}", read.value);
    let create = env.call("create_workspace", json!({ "template_id": hidden.id })).await;
    assert_eq!(create.err()["code"], "TEMPLATE_NOT_FOUND", "{}", create.value);
    assert!(env.backend.recorder().creates().is_empty(), "create was never called");
}

/// A capability the policy grants but no backend provides is found when the
/// host is built, named, and the host does not start: not later, as a trap
/// in the first plugin that calls it.
#[test]
fn a_host_refuses_to_start_when_a_granted_capability_has_no_provider() {
    use std::sync::Arc;
    let runtime = Arc::new(crate::support::builder().build().unwrap());
    let infra_only = toolshed_runtime::Toolshed::builder(runtime.clone()).provide(toolshed_infra::InfraProviders::new(Arc::new(toolshed_infra::EmptyInfra)));
    let refused = infra_only.build().err().expect("the platform capability is granted and not provided");
    assert_eq!(refused.capability, "platform");
    assert!(refused.to_string().contains("toolshed:platform/registry"), "{refused}");
    let both = toolshed_runtime::Toolshed::builder(runtime)
        .provide(toolshed_infra::InfraProviders::new(Arc::new(toolshed_infra::EmptyInfra)))
        .provide(toolshed_platform::PlatformProviders::new(Arc::new(toolshed_platform::NoPlatform)));
    assert!(both.build().is_ok());
    // A policy that grants nothing beyond the runtime needs no provider.
    let bare = Arc::new(toolshed_standard::runtime().build().unwrap());
    assert!(toolshed_runtime::Toolshed::builder(bare).build().is_ok());
}
