//! The local backend trusts no plugin: requests straight through the
//! `Backend` trait, as a plugin with the control grant could send them, with
//! no guest to validate them first.

use std::sync::Arc;
use std::time::Duration;

use toolshed_infra::{Control, Db};
use toolshed_platform::Registry;
use toolshed_infra::{ChatBinding, ControlError, CreateBuildRequest, CreateWorkspaceRequest, JobStatus, QueryError, Refused, Transition};
use toolshed_platform::ProvisionRequest;
use toolshed_local::{LOCAL_ORG, LocalBackend, local_context};

use crate::support::{Local, template};

fn create_request(template_id: &str, name: &str) -> CreateWorkspaceRequest {
    CreateWorkspaceRequest { template_id: template_id.into(), name: name.into(), ttl_ms: None, parameters: Vec::new() }
}

fn api_status(outcome: &Result<impl std::fmt::Debug, Refused<ControlError>>) -> Option<u16> {
    match outcome {
        Err(Refused::Error(ControlError::Api(api))) => Some(api.status),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_are_not_workspace_names_are_api_errors_with_a_validation() {
    let local = Local::new().await;
    let t = local.push("app", &template("app", "true", "true", "")).await;
    let cx = local_context("names");
    let outside = tempfile::tempdir().unwrap();
    let escape = outside.path().join("escaped").display().to_string();
    for name in ["../x", escape.as_str(), "a/b", "..", "NEW", "create", "", "under_score", &"a".repeat(33), &"x".repeat(10 << 10)] {
        let outcome = local.backend.create_workspace(&cx, create_request(&t.template_id, name)).await;
        let Err(Refused::Error(ControlError::Api(api))) = &outcome else { panic!("{name:?} was accepted: {outcome:?}") };
        assert_eq!(api.status, 400, "{name:?}");
        assert_eq!(api.validations[0].field, "name", "{name:?}");
        assert!(api.validations[0].detail.len() < 300, "the refusal does not echo a long name whole");
    }
    assert!(!outside.path().join("escaped").exists(), "nothing was made outside the data directory");
    assert!(local.backend.store().workspaces().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_live_workspace_per_name_and_owner_even_when_created_in_parallel() {
    let local = Local::new().await;
    let t = local.push("app", &template("app", "true", "true", "")).await;
    let creates = (0..8).map(|i| {
        let (backend, template_id) = (local.backend.clone(), t.template_id.clone());
        tokio::spawn(async move { backend.create_workspace(&local_context(&format!("chat-{i}")), create_request(&template_id, "same")).await })
    });
    let outcomes: Vec<_> = futures_join(creates).await;
    let created = outcomes.iter().filter(|o| o.is_ok()).count();
    let conflicts = outcomes.iter().filter(|o| api_status(o) == Some(409)).count();
    assert_eq!((created, conflicts), (1, 7), "{outcomes:?}");
    assert_eq!(local.backend.store().workspaces().await.unwrap().len(), 1);
}

async fn futures_join<T: Send + 'static>(tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for task in tasks.collect::<Vec<_>>() {
        out.push(task.await.unwrap());
    }
    out
}

async fn wait_for_job(backend: &LocalBackend, cx: &toolshed_runtime::CallContext, job_id: &str) -> JobStatus {
    for _ in 0..600 {
        let job = backend.job(cx, job_id).await.unwrap();
        if !matches!(job.status, JobStatus::Pending | JobStatus::Running) {
            return job.status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {job_id} never finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_builds_of_one_workspace_start_exactly_one() {
    let local = Local::new().await;
    let t = local.push("app", &template("app", "true", "true", "")).await;
    let cx = local_context("builds");
    let created = local.backend.create_workspace(&cx, create_request(&t.template_id, "racy")).await.unwrap();
    assert_eq!(wait_for_job(&local.backend, &cx, &created.build.job_id).await, JobStatus::Succeeded);

    let requests = (0..8).map(|_| {
        let (backend, cx, workspace_id) = (local.backend.clone(), cx.clone(), created.workspace.id.clone());
        tokio::spawn(async move {
            backend.create_build(&cx, CreateBuildRequest { workspace_id, transition: Transition::Stop, parameters: Vec::new() }).await
        })
    });
    let outcomes = futures_join(requests).await;
    let started = outcomes.iter().filter(|o| o.is_ok()).count();
    let refused = outcomes.iter().filter(|o| api_status(o) == Some(409)).count();
    assert_eq!((started, refused), (1, 7), "{outcomes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_parameter_and_registry_reads_are_scoped_to_the_caller() {
    let local = Local::new().await;
    let ours = local.push("ours", &template("ours", "true", "true", "")).await;
    let foreign_dir = local.dir.path().join("templates").join("theirs");
    std::fs::create_dir_all(&foreign_dir).unwrap();
    std::fs::write(foreign_dir.join("template.toml"), template("theirs", "true", "true", "")).unwrap();
    let other_org = "b1000000-0000-4000-8000-000000000009";
    let theirs = local.backend.push_template_for(other_org, &foreign_dir).await.unwrap();

    let cx = local_context("scoped");
    let listed: Vec<String> = local.backend.templates(&cx).await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(listed, [ours.template_id.clone()]);
    assert!(matches!(local.backend.template(&cx, &theirs.template_id).await, Err(QueryError::NotFound)));
    assert!(matches!(local.backend.template_parameters(&cx, &theirs.version_id).await, Err(QueryError::NotFound)));
    assert!(local.backend.template_parameters(&cx, &ours.version_id).await.is_ok());
    let outcome = local.backend.create_workspace(&cx, create_request(&theirs.template_id, "nope")).await;
    assert_eq!(api_status(&outcome), Some(404), "{outcome:?}");

    let request = ProvisionRequest {
        project_id: "p".into(),
        cluster_id: "c".into(),
        cluster_name: "c".into(),
        provider: "hetzner".into(),
        region: "fsn1".into(),
        registry_name: "main".into(),
        gcp_project_id: None,
    };
    let task = local.backend.start_provisioning(&cx, request).await.unwrap();
    let stranger = toolshed_runtime::CallContext { owner_id: "a1000000-0000-4000-8000-000000000009".into(), ..cx.clone() };
    assert!(local.backend.task(&stranger, &task.id).await.is_err(), "another owner's task reads as absent");
    assert!(local.backend.task(&cx, &task.id).await.is_ok());
    assert_eq!(LOCAL_ORG, cx.organization_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_a_chat_writes_nothing_and_another_owners_chat_of_the_same_id_is_another_chat() {
    let local = Local::new().await;
    let cx = local_context("quiet");
    let chat = local.backend.chat(&cx).await.unwrap();
    assert_eq!((chat.id.as_str(), chat.workspace_id), ("quiet", None));
    assert!(local.backend.store().chats().await.unwrap().is_empty(), "a read created a row");

    let t = local.push("app", &template("app", "true", "true", "")).await;
    let created = local.backend.create_workspace(&cx, create_request(&t.template_id, "mine")).await.unwrap();
    let binding = ChatBinding { workspace_id: Some(created.workspace.id.clone()), build_id: None, agent_id: None };
    local.backend.bind_chat(&cx, binding.clone()).await.unwrap();
    // A stranger naming the chat id gets a chat of its own: nothing bound,
    // and binding to it leaves the owner's chat as it was.
    let stranger = toolshed_runtime::CallContext { owner_id: "a1000000-0000-4000-8000-000000000009".into(), ..cx.clone() };
    let theirs = local.backend.chat(&stranger).await.unwrap();
    assert_eq!((theirs.owner_id.as_str(), theirs.workspace_id.as_deref()), (stranger.owner_id.as_str(), None), "the stranger sees none of the owner's chat");
    assert!(
        matches!(local.backend.bind_chat(&stranger, binding).await, Err(Refused::Error(QueryError::NotFound))),
        "the owner's workspace is not the stranger's to bind"
    );
    local.backend.bind_chat(&stranger, ChatBinding { workspace_id: None, build_id: None, agent_id: None }).await.unwrap();
    assert_eq!(local.backend.chat(&cx).await.unwrap().workspace_id.as_deref(), Some(created.workspace.id.as_str()), "the owner's chat is untouched");
    assert_eq!(local.backend.chat(&stranger).await.unwrap().workspace_id, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_locked_by_another_process_is_waited_out_not_failed() {
    use sqlx::Connection;
    let local = Local::new().await;
    let path = crate::support::data_dir(local.dir.path()).join("toolshed.db");
    // Another process's write transaction, held longer than SQLite's own
    // busy wait: only retrying gets the write through.
    let mut other = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut other).await.unwrap();
    let cx = local_context("patient");
    let backend: Arc<LocalBackend> = local.backend.clone();
    let write = tokio::spawn(async move { backend.store().set_setting("patience", "rewarded").await });
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(!write.is_finished(), "the write waited for the lock");
    sqlx::raw_sql("COMMIT").execute(&mut other).await.unwrap();
    write.await.unwrap().expect("the write went through once the lock was released");
    assert_eq!(local.backend.store().setting("patience").await.unwrap().as_deref(), Some("rewarded"));
    let _ = cx;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_use_the_active_version_only_where_the_template_requires_it_and_only_for_the_owner() {
    use toolshed_infra::BuildVersions;
    let local = Local::new().await;
    let required = local.push("required", &template("required", "true", "true", "")).await;
    let kept = local.push("kept", &template("kept", "true", "true", "").replace("require_active_version = true\n", "")).await;
    let cx = local_context("versions");
    let on_required = local.backend.create_workspace(&cx, create_request(&required.template_id, "one")).await.unwrap().workspace;
    let on_kept = local.backend.create_workspace(&cx, create_request(&kept.template_id, "two")).await.unwrap().workspace;
    assert!(local.backend.start_uses_active_version(&cx, &on_required.id).await);
    assert!(!local.backend.start_uses_active_version(&cx, &on_kept.id).await);
    let stranger = toolshed_runtime::CallContext { owner_id: "a1000000-0000-4000-8000-000000000009".into(), ..cx.clone() };
    assert!(!local.backend.start_uses_active_version(&stranger, &on_required.id).await, "another owner's workspace says nothing");
    assert!(!local.backend.start_uses_active_version(&cx, "../../etc/passwd").await);
}

/// The template allow-list binds the backend, not only the guest: a plugin
/// granted `control` that skips the guest's check creates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_off_the_allow_list_is_refused_by_the_backend_itself() {
    let local = Local::new().await;
    let allowed = local.push("allowed", &template("allowed", "true", "true", "")).await;
    let other = local.push("other", &template("other", "true", "true", "")).await;
    local.backend.store().set_setting("template_allowlist", &allowed.template_id).await.unwrap();
    let cx = local_context("allow-list");
    let outcome = local.backend.create_workspace(&cx, create_request(&other.template_id, "sneaky")).await;
    assert_eq!(api_status(&outcome), Some(403), "{outcome:?}");
    assert!(local.backend.store().workspaces().await.unwrap().is_empty(), "nothing was made");
    local.backend.create_workspace(&cx, create_request(&allowed.template_id, "fine")).await.expect("an allowed template still creates");
}
