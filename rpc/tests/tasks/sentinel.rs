//! A Redis that fails over: a primary, replicas and three real `redis-server --sentinel` on
//! loopback. The nodes find the primary through the sentinels and follow it across a
//! failover; with `[redis] min_replicas_ack = 1` an acknowledged task survives the primary's
//! kill -9; and the master epoch never goes back, even to what a lagging replica kept.

use crate::common::*;
use gitflock_client::Client;
use gitflock_harness::{SIGCONT, SIGSTOP, SentinelOptions, send_signal};
use gitflock_proto::v1::{Empty, TaskState};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinSet;

/// Creates `sleep 20ms` tasks at ~`per_s` a second round-robin through `clients`, each with
/// its own request id and retried (on the next node) until one acknowledges it, until `stop`;
/// returns the acknowledged ids.
async fn steady_load(clients: Vec<Client>, per_s: u64, stop: Arc<AtomicBool>) -> Vec<String> {
    let mut creates = JoinSet::new();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let clients = clients.clone();
        creates.spawn(async move {
            let mut req = sleep_task("20ms");
            req.request_id = format!("load-{i}");
            for attempt in 0..600 {
                let mut c = clients[(i as usize + attempt) % clients.len()].clone();
                if let Ok(t) = c.tasks.create_task(req.clone()).await {
                    return Some(t.into_inner().id);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            None
        });
        i += 1;
        tokio::time::sleep(Duration::from_millis(1000 / per_s)).await;
    }
    let mut ids = Vec::new();
    while let Some(r) = creates.join_next().await {
        ids.push(r.unwrap().expect("a create was never acknowledged"));
    }
    ids
}

/// The epoch node1 reports, every 100 ms until `stop`; fails if it ever goes down.
async fn watch_epochs(c: Client, stop: Arc<AtomicBool>, highest: Arc<AtomicU64>) {
    while !stop.load(Ordering::Relaxed) {
        if let Ok(s) = c.nodes.clone().status(Empty {}).await {
            let e = s.into_inner().epoch;
            let before = highest.fetch_max(e, Ordering::SeqCst);
            assert!(e >= before, "node1 reported epoch {e} after {before}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// CreateTask retried (same request id) until a node acknowledges it: around a failover a
/// node may answer UNAVAILABLE until it follows the new primary.
async fn create_acknowledged(c: &Client, mut req: gitflock_proto::v1::CreateTaskRequest) -> String {
    req.request_id = uuid::Uuid::new_v4().to_string();
    wait_for(
        "a node to acknowledge a create",
        Duration::from_secs(30),
        || {
            let (mut c, req) = (c.clone(), req.clone());
            async move { Some(c.tasks.create_task(req).await.ok()?.into_inner().id) }
        },
    )
    .await
}

async fn clients(cluster: &Cluster) -> Vec<Client> {
    let mut out = Vec::new();
    for n in &cluster.nodes {
        out.push(n.client().await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_primary_killed_under_load_loses_no_acknowledged_task() {
    let options = SentinelOptions {
        replicas: 2,
        ..SentinelOptions::default()
    };
    let env = [
        ("GITFLOCK_REDIS_MIN_REPLICAS_ACK", "1"),
        ("GITFLOCK_NODE_CONCURRENCY", "4"),
    ];
    let mut cluster = Cluster::start_with_sentinels(3, &env, options).await;
    let first_primary = cluster.redis.url();
    let all = clients(&cluster).await;
    let stop = Arc::new(AtomicBool::new(false));
    let highest = Arc::new(AtomicU64::new(0));
    let load = tokio::spawn(steady_load(all.clone(), 40, stop.clone()));
    let epochs = tokio::spawn(watch_epochs(all[0].clone(), stop.clone(), highest.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;

    let s = cluster.redis.sentinel().unwrap();
    let old = s.kill9_primary().unwrap();
    let new = s.wait_failover(old, Duration::from_secs(30)).await.unwrap();
    // Tasks complete on the new primary while the old one is still dead.
    let c = all[1].clone();
    let after = create_acknowledged(&c, echo("after the failover")).await;
    wait_state(&c, &after, TaskState::Succeed, Duration::from_secs(30)).await;
    s.restart_as_replica(old).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let ids = load.await.unwrap();
    epochs.await.unwrap();

    assert_ne!(cluster.redis.url(), first_primary);
    assert_eq!(cluster.redis.url(), format!("redis://127.0.0.1:{new}/0"));
    assert!(ids.len() > 100, "only {} tasks were created", ids.len());
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "a request id made two tasks");
    // At least once: every acknowledged task ends SUCCEED (none lost with the primary).
    for id in &ids {
        wait_state(&c, id, TaskState::Succeed, Duration::from_secs(60)).await;
    }
    // The epoch never went back, and the new primary holds the newest one.
    let (_, epoch) = cluster.lease().expect("a master holds the lease");
    assert!(epoch >= highest.load(Ordering::SeqCst));
    let logs = cluster.logs();
    assert!(logs.contains("redis primary moved"), "no node followed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_demoted_primary_sends_every_node_to_the_new_one() {
    // Writes the old primary takes while the replica is promoted are lost with it (it is then
    // resynced from the new one): only replica-acknowledged writes are acknowledged.
    let env = [("GITFLOCK_REDIS_MIN_REPLICAS_ACK", "1")];
    let mut cluster = Cluster::start_with_sentinels(2, &env, SentinelOptions::default()).await;
    let c = cluster.client().await;
    let before = create_acknowledged(&c, echo("before")).await;
    wait_state(&c, &before, TaskState::Succeed, Duration::from_secs(10)).await;
    let s = cluster.redis.sentinel().unwrap();
    let old = s.primary_port().unwrap();
    // Both servers stay up: the old primary becomes a replica (READONLY to writes).
    s.manual_failover().unwrap();
    let new = s.wait_failover(old, Duration::from_secs(30)).await.unwrap();
    for i in 0..20 {
        let t = create_acknowledged(&c, echo(&format!("after {i}"))).await;
        wait_state(&c, &t, TaskState::Succeed, Duration::from_secs(20)).await;
    }
    // Every node moved: each heartbeats to the new primary (none still writes to the old).
    let url = format!("redis://127.0.0.1:{new}/0");
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    let k = keys();
    wait_for(
        "both nodes heartbeating on the new primary",
        Duration::from_secs(10),
        || {
            let heard: Vec<(String, f64)> = redis::cmd("ZRANGE")
                .arg(k.nodes())
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query(&mut con)
                .unwrap();
            let now: (String, String) = redis::cmd("TIME").query(&mut con).unwrap();
            let now_ms = now.0.parse::<f64>().unwrap() * 1000.0;
            let fresh = heard.iter().filter(|(_, t)| now_ms - t < 1500.0).count();
            async move { (fresh == 2).then_some(()) }
        },
    )
    .await;
}

/// A replica that missed the last election is promoted: it holds an older epoch and lease.
/// The nodes have seen the newer epoch, so the next master's epoch is above it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_promoted_lagging_replica_does_not_take_the_epoch_back() {
    let env = [("GITFLOCK_NODE_CONCURRENCY", "2")];
    let mut cluster = Cluster::start_with_sentinels(2, &env, SentinelOptions::default()).await;
    let mut c = cluster.client().await;
    let (_, first) = cluster.lease().unwrap();
    let s = cluster.redis.sentinel().unwrap();
    let replica = s.servers[1].pid().unwrap();
    send_signal(replica, SIGSTOP).unwrap();
    // The primary drops the stopped replica's link, so nothing written from now on reaches
    // it (not even through its socket buffer).
    let _: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .query(&mut cluster.redis.conn())
        .unwrap();
    // A new master while the replica sleeps: its epoch exists on the primary only.
    c.nodes.resign(Empty {}).await.unwrap();
    let seen = wait_for("a new epoch", Duration::from_secs(20), || {
        let mut c = c.clone();
        async move {
            let e = c.nodes.status(Empty {}).await.ok()?.into_inner().epoch;
            (e > first).then_some(e)
        }
    })
    .await;
    let s = cluster.redis.sentinel().unwrap();
    let old = s.kill9_primary().unwrap();
    send_signal(replica, SIGCONT).unwrap();
    s.wait_failover(old, Duration::from_secs(30)).await.unwrap();
    let mut con = cluster.redis.conn();
    let kept: u64 = redis::cmd("GET")
        .arg(keys().epoch())
        .query(&mut con)
        .unwrap();
    assert!(
        kept < seen,
        "the promoted replica was not behind ({kept} >= {seen})"
    );
    let (_, epoch) = wait_for(
        "a master on the promoted replica",
        Duration::from_secs(30),
        || {
            let lease = cluster.lease();
            async move { lease }
        },
    )
    .await;
    assert!(
        epoch > seen,
        "new lease at epoch {epoch}, but {seen} was seen"
    );
    let t = create_acknowledged(&c, echo("on the promoted replica")).await;
    wait_state(&c, &t, TaskState::Succeed, Duration::from_secs(20)).await;
}

/// The epoch counter and lease are lost (as on a lagging replica or a Redis restored from an
/// old file) while the only node that saw the newer epoch cannot ask for the lease: the one
/// that asks, knowing nothing, still starts above what that node reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_lease_starts_above_every_epoch_a_node_reported() {
    let cluster = Cluster::start(1).await;
    let (_, reported) = cluster.lease().unwrap();
    wait_for("node1 to report its epoch", Duration::from_secs(5), || {
        let e: Option<u64> = redis::cmd("HGET")
            .arg(keys().node_info("node1"))
            .arg("epoch")
            .query(&mut cluster.redis.conn())
            .unwrap();
        async move { (e == Some(reported)).then_some(()) }
    })
    .await;
    cluster.nodes[0].sigstop();
    let mut con = cluster.redis.conn();
    let _: () = redis::cmd("DEL")
        .arg(keys().epoch())
        .arg(keys().lease())
        .query(&mut con)
        .unwrap();
    let url = cluster.redis.url();
    let env = |k: &str| match k {
        "GITFLOCK_REDIS_URL" => Some(url.clone()),
        "GITFLOCK_CLUSTER_TOKEN" => Some(TOKEN.to_string()),
        _ => None,
    };
    let config = gitflock_core::config::Config::load_with(None, &env).unwrap();
    let store = gitflock_node::store::Store::connect(&config.redis)
        .await
        .unwrap();
    let ttl = Duration::from_millis(500);
    let taken = wait_for("the lease", Duration::from_secs(10), || {
        let store = store.clone();
        async move {
            match store.lease_acquire("newcomer", ttl, 0).await.unwrap() {
                gitflock_node::store::LeaseAcquire::Taken(e) => Some(e),
                gitflock_node::store::LeaseAcquire::Held { .. } => None,
            }
        }
    })
    .await;
    cluster.nodes[0].sigcont();
    assert!(
        taken > reported,
        "new lease at epoch {taken}, node1 reported {reported}"
    );
}
