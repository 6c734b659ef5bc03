//! Chat locks shared by hosts through PostgreSQL advisory locks. Each
//! `AdvisoryLocks` value stands for one host: its own connections, its own
//! in-process table.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use toolshed_local::advisory::{AdvisoryLocks, advisory_key};
use toolshed_local::scratch::ScratchDatabase;
use toolshed_runtime::locks::{ChatLocks, LockName};

fn name(plugin: &str, chat: &str, key: &str) -> LockName {
    LockName { plugin: plugin.into(), owner: "owner".into(), chat: chat.into(), key: key.into() }
}

/// Whether `locks` takes `name` within a short while.
async fn takes(locks: &AdvisoryLocks, name: &LockName) -> bool {
    // Long enough for several polls, short enough to keep the suite quick.
    tokio::time::timeout(Duration::from_millis(300), locks.acquire(name)).await.is_ok_and(|r| r.is_ok())
}

/// How many advisory locks the server holds on `name`'s key in this test's
/// database (tests run at once on one server, with the same names).
async fn held_on_server(url: &str, name: &LockName) -> i64 {
    let mut connection = PgConnection::connect(url).await.unwrap();
    let key = advisory_key(name);
    // A bigint key is stored as two halves: high in classid, low in objid.
    sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND classid::bigint = (($1 >> 32) & 4294967295) AND objid::bigint = ($1 & 4294967295) AND objsubid = 1",
    )
    .bind(key)
    .fetch_one(&mut connection)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_is_exclusive_across_hosts_only_within_one_plugin_and_chat() {
    let db = ScratchDatabase::create().await.unwrap();
    let (one, two) = (AdvisoryLocks::new(db.url()), AdvisoryLocks::new(db.url()));
    let ws = name("workspace-tools", "chat-a", "chat-workspace");
    let held = one.acquire(&ws).await.unwrap();
    assert_eq!(held_on_server(db.url(), &ws).await, 1, "held in PostgreSQL, not only in this process");
    assert!(!takes(&two, &ws).await, "another host waits for the same plugin, chat and key");
    assert!(takes(&two, &name("workspace-tools", "chat-b", "chat-workspace")).await, "another chat does not wait");
    assert!(takes(&two, &name("registry-tools", "chat-a", "chat-workspace")).await, "another plugin does not wait");
    let intruder = LockName { owner: "intruder".into(), ..ws.clone() };
    assert!(takes(&two, &intruder).await, "another owner's chat of the same id does not wait: it is another chat");
    drop(held);
    assert!(takes(&two, &ws).await, "released when the holder drops it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hundred_contenders_on_three_hosts_hold_the_lock_one_at_a_time() {
    let db = ScratchDatabase::create().await.unwrap();
    let hosts: Vec<Arc<AdvisoryLocks>> = (0..3).map(|_| Arc::new(AdvisoryLocks::new(db.url()))).collect();
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut contenders = tokio::task::JoinSet::new();
    for i in 0..100 {
        let (host, inside, most) = (hosts[i % 3].clone(), inside.clone(), most.clone());
        contenders.spawn(async move {
            let _held = host.acquire(&name("workspace-tools", "one-chat", "chat-workspace")).await.unwrap();
            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            tokio::task::yield_now().await;
            inside.fetch_sub(1, Ordering::SeqCst);
        });
    }
    contenders.join_all().await;
    assert_eq!(most.load(Ordering::SeqCst), 1, "never two holders at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_whose_connection_dies_is_released() {
    let db = ScratchDatabase::create().await.unwrap();
    let (one, two) = (AdvisoryLocks::new(db.url()), AdvisoryLocks::new(db.url()));
    let ws = name("workspace-tools", "chat-a", "chat-workspace");
    let _held = one.acquire(&ws).await.unwrap();
    assert!(!takes(&two, &ws).await);
    // The holder's connection dies, as it does when its host is killed.
    let mut admin = PgConnection::connect(db.url()).await.unwrap();
    let key = advisory_key(&ws);
    let terminated: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND classid::bigint = (($1 >> 32) & 4294967295) AND objid::bigint = ($1 & 4294967295)",
    )
    .bind(key)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(terminated, 1);
    assert!(takes(&two, &ws).await, "the server released the dead connection's lock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_stops_waiting_leaves_nothing_held() {
    let db = ScratchDatabase::create().await.unwrap();
    let (one, two, three) = (AdvisoryLocks::new(db.url()), AdvisoryLocks::new(db.url()), AdvisoryLocks::new(db.url()));
    let ws = name("workspace-tools", "chat-a", "chat-workspace");
    let held = one.acquire(&ws).await.unwrap();
    // Host two's call waits, then ends (its deadline, a cancellation).
    assert!(!takes(&two, &ws).await);
    drop(held);
    // Once the unlock reaches the server, the lock is free for anyone.
    tokio::time::timeout(Duration::from_secs(10), async {
        while held_on_server(db.url(), &ws).await != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("unlocked on the server");
    assert!(takes(&three, &ws).await, "the abandoned wait did not take the lock");
    assert!(takes(&two, &ws).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_held_locks_take_no_more_than_a_few_server_connections() {
    let db = ScratchDatabase::create().await.unwrap();
    let host = AdvisoryLocks::new(db.url());
    let mut held = Vec::new();
    for chat in 0..1_000 {
        held.push(host.acquire(&name("workspace-tools", &format!("chat-{chat}"), "chat-workspace")).await.unwrap());
    }
    let mut admin = PgConnection::connect(db.url()).await.unwrap();
    let connections: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    let locks: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(locks, 1_000, "every lock is held on the server");
    assert!(connections <= toolshed_local::advisory::SESSIONS as i64, "{connections} connections hold 1,000 locks");
    // Another host still waits on any of them.
    let other = AdvisoryLocks::new(db.url());
    assert!(!takes(&other, &name("workspace-tools", "chat-500", "chat-workspace")).await);
    drop(held);
}

#[test]
fn odd_names_get_distinct_keys_and_parts_never_run_together() {
    let long = "k".repeat(256);
    let names = [
        name("p", "ab", "c"),
        name("p", "a", "bc"),
        name("pa", "b", "c"),
        name("p", "a\0b", "c"),
        name("p", "a", "b\0c"),
        name("p", "chat", "ключ"),
        name("p", "chat", "🔒"),
        name("p", "chat", ""),
        name("p", "", "chat"),
        name("p", "chat", &long),
        name("p", "chat", "'; SELECT pg_advisory_unlock_all(); --"),
    ];
    let keys: std::collections::BTreeSet<i64> = names.iter().map(advisory_key).collect();
    assert_eq!(keys.len(), names.len(), "every name has a key of its own");
    assert_eq!(advisory_key(&names[0]), advisory_key(&name("p", "ab", "c")), "the same name always gets the same key");
}
