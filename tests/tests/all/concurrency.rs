//! SPEC 0: parallel calls in one chat never create two workspaces.

use futures::future::join_all;
use serde_json::json;
use toolshed_harness::{OutputExt, TestEnv};

use crate::support::env_with_template;

async fn create_many(env: &TestEnv, template_id: &str, chats: &[toolshed_runtime::CallContext], per_chat: usize) -> Vec<toolshed_runtime::ToolOutput> {
    let args = json!({ "template_id": template_id });
    let calls = chats.iter().flat_map(|cx| (0..per_chat).map(move |_| cx)).map(|cx| env.call_in(cx, "create_workspace", args.clone()));
    join_all(calls).await
}

#[tokio::test(start_paused = true)]
async fn a_hundred_parallel_creates_in_one_chat_make_exactly_one_workspace() {
    let (env, template) = env_with_template();
    let outputs = create_many(&env, &template.id, &[env.context()], 100).await;
    assert_eq!(env.backend.live_workspaces().len(), 1);
    assert_eq!(env.backend.recorder().creates().len(), 1);
    let created = outputs.iter().filter(|o| o.ok()["created"] == true).count();
    let existing = outputs.iter().filter(|o| o.ok()["status"] == "already_exists").count();
    assert_eq!((created, existing), (1, 99));
    let names: std::collections::BTreeSet<_> = outputs.iter().map(|o| o.ok()["workspace_name"].to_string()).collect();
    assert_eq!(names.len(), 1, "every call names the same workspace");
}

#[tokio::test(start_paused = true)]
async fn parallel_creates_in_two_chats_make_two_workspaces() {
    let (env, template) = env_with_template();
    let chats = [env.context(), env.other_chat()];
    create_many(&env, &template.id, &chats, 50).await;
    assert_eq!(env.backend.live_workspaces().len(), 2);
    let first = env.backend.chat(&chats[0]).workspace_id;
    let second = env.backend.chat(&chats[1]).workspace_id;
    assert!(first.is_some() && second.is_some());
    assert_ne!(first, second);
}

#[tokio::test(start_paused = true)]
async fn the_lock_is_taken_after_argument_validation() {
    let (env, template) = env_with_template();
    // A call holding the chat's lock for minutes must not delay a call whose
    // arguments are wrong: that one fails at once.
    env.backend.push_plan(toolshed_harness::BuildPlan::job(toolshed_harness::JobScript::succeeds_after(300_000)));
    let cx = env.context();
    let long = env.call_in(&cx, "create_workspace", json!({ "template_id": template.id }));
    let bad = async {
        tokio::task::yield_now().await;
        let started = tokio::time::Instant::now();
        let out = env.call_in(&cx, "create_workspace", json!({ "template_id": "nope" })).await;
        (out, started.elapsed())
    };
    let (long_out, (bad_out, waited)) = tokio::join!(long, bad);
    long_out.ok();
    assert!(bad_out.message().contains("invalid template_id"));
    assert!(waited < std::time::Duration::from_secs(1), "the invalid call waited {waited:?} of virtual time");
}
