//! Many `toolshed` processes on one data directory: a build belongs to the
//! process running it under a lease, other processes never fail it while
//! the lease is renewed, and a killed owner's build is failed once its
//! lease lapses, its processes stopped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use toolshed_local::process::ProcessRecord;

use crate::support::{TOOLSHED, alive, chat, data_dir, push_with_cli as push, stop_agents_of, template, toolshed_on as toolshed};

fn create(data: &Path, template_id: &str, name: &str, chat: &str) -> Child {
    toolshed(data)
        .args(["call", "create_workspace", &json!({ "template_id": template_id, "name": name }).to_string(), "--chat", chat])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_survives_every_cli_command_run_beside_it_over_and_over() {
    let root = tempfile::tempdir().unwrap();
    let data = data_dir(root.path());
    let slow = push(&data, root.path(), "slow", &template("slow", "echo started; sleep 8; echo built", "true", ""));
    let other = root.path().join("templates").join("other");
    push(&data, root.path(), "other", &template("other", "true", "true", ""));

    let owner = create(&data, &slow, "busy", "owner");
    let mut commands = 0;
    let mut last_failure = None;
    let mut owner = owner;
    while owner.try_wait().unwrap().is_none() {
        let build_id = build_log(&data).unwrap_or_else(|| "00000000-0000-4000-8000-000000000000".into());
        let runs: [&[&str]; 7] = [
            &["workspaces"],
            &["template", "list"],
            &["tools"],
            &["plugins"],
            &["logs", &build_id],
            &["call", "list_templates", "{}", "--chat", "bystander"],
            &["template", "push", other.to_str().unwrap()],
        ];
        for args in runs {
            let out = toolshed(&data).args(args).output().unwrap();
            commands += 1;
            if !out.status.success() && args[0] != "logs" {
                last_failure = Some(format!("{args:?}: {}", String::from_utf8_lossy(&out.stderr)));
            }
        }
    }
    let out = owner.wait_with_output().unwrap();
    let result: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    eprintln!("{commands} CLI commands ran beside one 8-second build");
    assert!(out.status.success(), "the build failed beside the other commands: {result}");
    assert_eq!(result["created"], true, "{result}");
    assert!(commands >= 14, "only {commands} commands overlapped the build");
    assert_eq!(last_failure, None);
    stop_agents_of(&data).await;
}

/// The pid of a process whose command line is `args`, if one runs.
fn process_running(args: &[&str]) -> Option<i32> {
    let wanted: Vec<u8> = args.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted))
}

/// The id of a build whose log exists.
fn build_log(data: &Path) -> Option<String> {
    std::fs::read_dir(data.join("logs"))
        .ok()?
        .filter_map(|e| e.ok()?.path().file_stem().map(|s| s.to_string_lossy().into_owned()))
        .find(|stem| uuid::Uuid::parse_str(stem).is_ok())
}


#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_owners_build_is_failed_once_its_lease_lapses_and_its_script_is_stopped() {
    let root = tempfile::tempdir().unwrap();
    let data = data_dir(root.path());
    // The script runs in a PID namespace of its own, where `$$` means
    // nothing to the host: it is found by a command line no other process has.
    let forever = format!("600.{}", uuid::Uuid::new_v4().as_u128() % 1_000_000);
    let slow = push(&data, root.path(), "forever", &template("forever", &format!("exec sleep {forever}"), "true", ""));
    let mut owner = create(&data, &slow, "victim", "crash");

    let deadline = Instant::now() + Duration::from_secs(60);
    let script = loop {
        if let Some(pid) = process_running(&["sleep", &forever]) {
            break pid;
        }
        assert!(Instant::now() < deadline, "the build never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(alive(script));

    // kill -9 of the process that owns the build.
    owner.kill().unwrap();
    owner.wait().unwrap();
    let killed = Instant::now();

    // Whichever process looks next fails it: here, `toolshed workspaces`.
    let failed = loop {
        let out = toolshed(&data).arg("workspaces").output().unwrap();
        let listing = String::from_utf8_lossy(&out.stdout).into_owned();
        if listing.contains("start failed") {
            break listing;
        }
        assert!(killed.elapsed() < Duration::from_secs(30), "the orphaned build was never failed: {listing}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("failed {} ms after the kill: {failed}", killed.elapsed().as_millis());
    assert!(!alive(script), "the build's script outlived its owner");

    let backend = toolshed_local::LocalBackend::open(toolshed_local::LocalConfig::new(data.clone(), TOOLSHED)).await.unwrap();
    let bound = chat(&backend, "crash").await;
    let build = backend.store().build(bound.build_id.as_deref().expect("the chat binding survived")).await.unwrap().unwrap();
    assert_eq!(build.status, toolshed_infra::JobStatus::Failed);
    let (job, lease) = backend.store().job(&build.build.job_id).await.unwrap().unwrap();
    assert!(job.error.unwrap().contains("stopped"), "the error says why");
    assert_eq!(lease, None, "a failed job holds no lease");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pid_in_the_database_is_never_signalled_unless_it_is_still_ours() {
    let local = crate::support::Local::new().await;
    let t = local.push("app", &template("app", "true", "true", "")).await;
    let created = local.call("pids", "create_workspace", json!({ "template_id": t.template_id, "name": "pids" })).await;
    assert!(!created.is_error, "{}", created.value);
    let bound = chat(&local.backend, "pids").await;
    let agent_id = bound.agent_id.unwrap();
    let agent = local.backend.store().agent(&agent_id, 0).await.unwrap().unwrap();

    // Somebody else's process, under the pid the database names: as if the
    // agent died and its pid was reused.
    let mut bystander = Command::new("sleep").arg("30").spawn().unwrap();
    let stranger = bystander.id() as i64;
    let real = agent.process.unwrap();
    let reused = ProcessRecord { pid: stranger, ..real.clone() };
    local.backend.store().set_agent_process(&agent_id, Some(&reused)).await.unwrap();

    let stopped = local.call("pids", "stop_workspace", json!({})).await;
    assert!(!stopped.is_error, "{}", stopped.value);
    assert!(alive(stranger as i32), "a process that is not ours was signalled");
    bystander.kill().unwrap();
    bystander.wait().unwrap();
    // The real agent, whose row is now off, stops by itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(real.pid as i32) {
        assert!(Instant::now() < deadline, "the agent outlived its workspace");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pid_recorded_by_another_host_is_never_signalled_and_its_agent_stops_by_itself() {
    let heartbeat = Duration::from_secs(1);
    let local = crate::support::Local::open_with(tempfile::tempdir().unwrap(), |config| config.heartbeat = heartbeat).await;
    let t = local.push("app", &template("app", "true", "true", "")).await;
    let created = local.call("hosts", "create_workspace", json!({ "template_id": t.template_id, "name": "hosts" })).await;
    assert!(!created.is_error, "{}", created.value);
    let agent_id = chat(&local.backend, "hosts").await.agent_id.unwrap();
    let real = local.backend.store().agent(&agent_id, 0).await.unwrap().unwrap().process.unwrap();
    assert_eq!(real.host, toolshed_local::process::host_identity(), "the row names the host that started the agent");

    // The same pid and start time, recorded by a host with another boot id:
    // on this machine they may name any process, so they are never signalled.
    let elsewhere = ProcessRecord { host: "boot:00000000-0000-4000-8000-000000000000 host:elsewhere pidns:4:4026531836".into(), ..real.clone() };
    local.backend.store().set_agent_process(&agent_id, Some(&elsewhere)).await.unwrap();
    // Stopping a signalled agent returns once it is gone (SIGTERM ends it at
    // once); one left alone lives on until its next heartbeat.
    local.backend.stop_all_agents().await;
    assert!(alive(real.pid as i32), "a pid another host recorded was signalled");
    let agent = local.backend.store().agent(&agent_id, 0).await.unwrap().unwrap();
    assert_eq!(agent.agent.lifecycle_state, toolshed_infra::LifecycleState::Off, "its row is marked off instead");

    // It sees its row off at its next heartbeat and exits by itself.
    let marked = Instant::now();
    while alive(real.pid as i32) {
        assert!(marked.elapsed() < heartbeat * 15, "the agent never saw its row off");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn logs_of_something_that_is_not_a_build_id_is_refused_naming_the_argument() {
    let root = tempfile::tempdir().unwrap();
    for bad in ["../x", "/etc/passwd", "nope"] {
        let out = Command::new(TOOLSHED).arg("--data-dir").arg(data_dir(root.path())).args(["logs", bad]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("BUILD") && stderr.contains(bad) && stderr.contains("not an id"), "{stderr}");
    }
}
