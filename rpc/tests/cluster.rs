//! The cluster under crashes, pauses, forgeries and Redis restarts — real processes, real
//! signals, and the proof read from Redis state.

mod common;

use common::*;
use gitflock_proto::v1::{AskAliveRequest, CreateTaskRequest, Empty, TaskState};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn epoch_of_lease(redis: &Redis) -> Option<(String, u64)> {
    lease_on(redis)
}

fn dispatched_under(redis: &Redis, epoch: u64) -> u64 {
    let mut con = redis.conn();
    redis::cmd("HGET")
        .arg(keys().dispatched())
        .arg(epoch)
        .query::<Option<u64>>(&mut con)
        .unwrap()
        .unwrap_or(0)
}

/// The gRPC URLs of every node but `name`.
fn urls_except(cluster: &Cluster, name: &str) -> Vec<String> {
    cluster
        .nodes
        .iter()
        .filter(|n| n.name() != name)
        .map(|n| n.url())
        .collect()
}

/// Waits until the lease names a master other than `old`; returns it and its epoch.
async fn wait_new_master(cluster: &Cluster, old: &str) -> (String, u64) {
    wait_for("a new master", Duration::from_secs(5), || async {
        epoch_of_lease(&cluster.redis).filter(|(n, _)| n != old)
    })
    .await
}

/// Every node the cluster lists.
async fn list_nodes(c: &mut gitflock_client::Client) -> Vec<gitflock_proto::v1::NodeInfo> {
    list_nodes_now(c).await.expect("ListNodes")
}

/// Every node the cluster lists, or None if the call failed (for use while waiting).
async fn list_nodes_now(
    c: &mut gitflock_client::Client,
) -> Option<Vec<gitflock_proto::v1::NodeInfo>> {
    Some(c.nodes.list_nodes(Empty {}).await.ok()?.into_inner().nodes)
}

/// Creates tasks at a steady pace from a background thread until stopped; returns the ids.
struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: Option<tokio::task::JoinHandle<Vec<String>>>,
}

impl Load {
    /// `urls`: nodes to send to (the first that answers is used; on failure, the next).
    fn start(urls: Vec<String>, req: CreateTaskRequest, per_sec: u64) -> Load {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let handle = tokio::spawn(async move {
            let mut ids = Vec::new();
            let gap = Duration::from_micros(1_000_000 / per_sec);
            let mut clients: HashMap<String, gitflock_client::Client> = HashMap::new();
            let mut i = 0usize;
            let mut next = Instant::now();
            while !s.load(std::sync::atomic::Ordering::SeqCst) {
                let req = CreateTaskRequest {
                    request_id: format!("load-{}", ids.len()),
                    ..req.clone()
                };
                // A create is retried (same request id) on another node until it is taken.
                loop {
                    let url = urls[i % urls.len()].clone();
                    i += 1;
                    if !clients.contains_key(&url) {
                        match gitflock_client::Client::connect(
                            &url,
                            TOKEN,
                            Some(Duration::from_secs(2)),
                        )
                        .await
                        {
                            Ok(c) => {
                                clients.insert(url.clone(), c);
                            }
                            Err(_) => {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                continue;
                            }
                        }
                    }
                    let c = clients.get_mut(&url).unwrap();
                    match c.tasks.create_task(req.clone()).await {
                        Ok(t) => {
                            ids.push(t.into_inner().id);
                            break;
                        }
                        Err(_) => {
                            clients.remove(&url);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                next += gap;
                tokio::time::sleep_until(next.into()).await;
            }
            ids
        });
        Load {
            stop,
            handle: Some(handle),
        }
    }

    async fn stop(mut self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.handle.take().unwrap().await.unwrap()
    }
}

async fn all_succeed(cluster: &Cluster, ids: &[String], timeout: Duration) {
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "each create made one task");
    wait_for("every task SUCCEED", timeout, || async {
        let c = cluster.counts();
        (c["SUCCEED"] == ids.len() as u64).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_master_mid_dispatch_elects_a_new_master_within_3s_and_loses_no_task() {
    let mut cluster = Cluster::start(3).await;
    let (master, epoch) = epoch_of_lease(&cluster.redis).unwrap();
    let others: Vec<String> = urls_except(&cluster, &master);
    let mut c = gitflock_client::Client::connect(&others[0], TOKEN, None)
        .await
        .unwrap();
    // Thousands of tasks queued, then the master dies while dispatching them.
    let mut ids = Vec::new();
    for i in 0..3000 {
        ids.push(
            create(&mut c, sleep_task(if i % 2 == 0 { "5ms" } else { "20ms" }))
                .await
                .id,
        );
    }
    cluster.node(&master).kill9();
    let killed_at = Instant::now();
    let (new_master, new_epoch) = wait_new_master(&cluster, &master).await;
    let took = killed_at.elapsed();
    assert!(took < Duration::from_secs(3), "failover took {took:?}");
    assert!(new_epoch > epoch);
    assert_ne!(new_master, master);
    all_succeed(&cluster, &ids, Duration::from_secs(120)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_paused_past_its_lease_comes_back_a_slave_and_writes_nothing() {
    let mut cluster = Cluster::start(3).await;
    let (old, old_epoch) = epoch_of_lease(&cluster.redis).unwrap();
    let urls: Vec<String> = urls_except(&cluster, &old);
    let load = Load::start(urls, sleep_task("10ms"), 100);
    tokio::time::sleep(Duration::from_millis(500)).await;

    cluster.node(&old).sigstop();
    let (_, new_epoch) = wait_new_master(&cluster, &old).await;
    assert!(new_epoch > old_epoch);
    // From now on, every dispatch the old master might still attempt is under old_epoch.
    let before = dispatched_under(&cluster.redis, old_epoch);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.node(&old).sigcont();
    // Load keeps flowing; the old master wakes up believing nothing for long.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ids = load.stop().await;
    assert_eq!(
        dispatched_under(&cluster.redis, old_epoch),
        before,
        "the deposed master dispatched after the new epoch"
    );
    let mut c = cluster.node(&old).client().await.unwrap();
    let alive = c
        .nodes
        .ask_alive(AskAliveRequest {
            name: "test".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!alive.master, "the old master knows it is a slave");
    assert!(alive.epoch >= new_epoch);
    let nodes = list_nodes(&mut c).await;
    let me = nodes.iter().find(|n| n.name == old).unwrap();
    assert_eq!(me.role, "slave");
    all_succeed(&cluster, &ids, Duration::from_secs(60)).await;
    // It was admitted again and takes work.
    wait_for(
        "the old master to be alive again",
        Duration::from_secs(10),
        || async {
            let mut c = cluster.client().await;
            let nodes = list_nodes_now(&mut c).await?;
            nodes
                .iter()
                .any(|n| n.name == old && n.state == "alive")
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forged_heartbeat_admits_nobody_and_is_not_even_probed() {
    let cluster = Cluster::start(2).await;
    // A trap where the forged node claims to live: any probe would connect here.
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let addr = trap.local_addr().unwrap().to_string();
    let mut con = cluster.redis.conn();
    let public = keys().public_channel();
    let now = gitflock_core::clock::now_ms();
    let body = format!(
        r#"{{"Name":"ghost","Inc":1,"Seq":1,"Ts":{now},"Addr":"{addr}","Epoch":99,"Role":"master"}}"#
    );
    let forgeries = [
        format!(r#"0:{{"Host":"{addr}","Name":"ghost"}}"#), // the seed's unsigned form
        format!(r#"0:{{"Msg":{body},"Mac":"{}"}}"#, "00".repeat(32)), // a wrong MAC
        format!(r#"0:{{"Msg":{body}}}"#),                   // no MAC
        format!(r#"2:{{"Msg":{body},"Mac":"zz"}}"#),        // a fake announcement
    ];
    for _ in 0..5 {
        for f in &forgeries {
            let _: i64 = redis::cmd("PUBLISH")
                .arg(&public)
                .arg(f)
                .query(&mut con)
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Several heartbeats later: no connection reached the trap, nobody lists the ghost.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(trap.accept().is_err(), "a forged heartbeat was probed");
    let mut c = cluster.client().await;
    let nodes = list_nodes(&mut c).await;
    assert!(nodes.iter().all(|n| n.name != "ghost"));
    let (master, epoch) = epoch_of_lease(&cluster.redis).unwrap();
    assert_ne!(master, "ghost");
    assert!(epoch < 99);

    // A correctly signed heartbeat from an unknown node is probed before admission; a trap
    // that is no gitflock node fails the probe, so it gets no work.
    let signer = gitflock_node::cluster::public::Signer::new(TOKEN, "stranger");
    let msg = signer.sign(
        gitflock_node::cluster::public::Kind::Heartbeat,
        gitflock_node::cluster::public::Msg {
            addr: addr.clone(),
            concurrency: 8,
            ..Default::default()
        },
    );
    let _: i64 = redis::cmd("PUBLISH")
        .arg(&public)
        .arg(&msg)
        .query(&mut con)
        .unwrap();
    wait_for(
        "the stranger to be probed",
        Duration::from_secs(5),
        || async { trap.accept().ok().map(|_| ()) },
    )
    .await;
    let t = create(&mut c, echo("not for strangers")).await;
    let t = wait_state(&c, &t.id, TaskState::Succeed, Duration::from_secs(10)).await;
    assert_ne!(t.node, "stranger");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_restarted_with_aof_mid_run_the_cluster_recovers_and_loses_nothing() {
    let mut cluster = Cluster::start_with_aof(3).await;
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.url()).collect();
    let load = Load::start(urls, sleep_task("20ms"), 100);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.redis.kill9_and_restart().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let ids = load.stop().await;
    assert!(ids.len() > 250, "load kept flowing: {}", ids.len());
    all_succeed(&cluster, &ids, Duration::from_secs(60)).await;
    // Still one master, and every node alive.
    cluster.wait_master().await;
    wait_for("three alive nodes", Duration::from_secs(10), || async {
        let mut c = cluster.client().await;
        let nodes = list_nodes_now(&mut c).await?;
        (nodes.iter().filter(|n| n.state == "alive").count() == 3).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_redis_lost_its_data_no_master_acts_until_a_lease_time_has_passed() {
    let mut cluster = Cluster::start(2).await;
    let (_, epoch) = epoch_of_lease(&cluster.redis).unwrap();
    // No persistence: the restart loses everything.
    cluster.redis.kill9_and_restart().await.unwrap();
    let back = Instant::now();
    let (_, new_epoch) = wait_for("a master again", Duration::from_secs(10), || async {
        epoch_of_lease(&cluster.redis)
    })
    .await;
    let waited = back.elapsed();
    assert!(
        waited >= Duration::from_millis(1800),
        "a master acted {waited:?} after the loss"
    );
    assert!(
        new_epoch > epoch,
        "epochs keep rising across the loss: {epoch} then {new_epoch}"
    );
    // And the cluster works again.
    let mut c = cluster.client().await;
    let t = create(&mut c, echo("after the loss")).await;
    wait_state(&c, &t.id, TaskState::Succeed, Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resign_hands_mastership_over_at_once() {
    let mut cluster = Cluster::start(3).await;
    let (master, epoch) = epoch_of_lease(&cluster.redis).unwrap();
    let mut c = cluster.node(&master).client().await.unwrap();
    let t0 = Instant::now();
    let r = c.nodes.resign(Empty {}).await.unwrap().into_inner();
    assert!(r.resigned);
    assert_eq!(r.epoch, epoch);
    let (next, next_epoch) = wait_for("another master", Duration::from_secs(3), || async {
        epoch_of_lease(&cluster.redis).filter(|(n, _)| *n != master)
    })
    .await;
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(next_epoch, epoch + 1);
    assert_ne!(next, master);
    // A slave's resign is a no-op.
    let r = c.nodes.resign(Empty {}).await.unwrap().into_inner();
    assert!(!r.resigned);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_back_from_the_dead_does_not_finish_a_task_that_was_reassigned() {
    let mut cluster = Cluster::start_with(2, &[("GITFLOCK_NODE_CONCURRENCY", "1")]).await;
    let (master, _) = epoch_of_lease(&cluster.redis).unwrap();
    let other = if master == "node1" { "node2" } else { "node1" };
    let mut c = cluster.node(&master).client().await.unwrap();
    // Fill both slots, then pause the slave while its task runs.
    let a = create(&mut c, sleep_task("3s")).await.id;
    let b = create(&mut c, sleep_task("3s")).await.id;
    wait_state(&c, &a, TaskState::Running, Duration::from_secs(5)).await;
    wait_state(&c, &b, TaskState::Running, Duration::from_secs(5)).await;
    let on_other = if cluster.task_field(&a, "node").as_deref() == Some(other) {
        a.clone()
    } else {
        b.clone()
    };
    cluster.node(other).sigstop();
    // Declared dead, its task goes back and runs on the master.
    wait_for("the task to move", Duration::from_secs(10), || async {
        (cluster.task_field(&on_other, "node").as_deref() == Some(master.as_str())).then_some(())
    })
    .await;
    cluster.node(other).sigcont();
    let t = wait_state(&c, &on_other, TaskState::Succeed, Duration::from_secs(20)).await;
    // The paused node's run ended too, but only the new owner's run was recorded (beside the
    // record of the run lost when the paused node was declared dead).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t2 = get(&mut c, &on_other).await;
    assert_eq!(t2.runs, 1, "{:?}", t2.results);
    assert_eq!(t2.results.len(), 2, "{:?}", t2.results);
    assert_eq!(t2.results[0].node, master);
    assert_eq!(
        (t2.results[1].node.as_str(), t2.results[1].code),
        (other, 1)
    );
    assert!(t2.results[1].message.contains("declared dead"));
    assert_eq!(t.node, master);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_node_in_turn_killed_and_restarted_keeps_every_invariant() {
    let mut cluster = Cluster::start(3).await;
    // Every announcement of a new master, as heard on the Public channel.
    let announcements: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
    let heard = announcements.clone();
    let url = cluster.redis.url();
    std::thread::spawn(move || {
        let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
        let mut ps = con.as_pubsub();
        ps.subscribe(keys().public_channel()).unwrap();
        let v = gitflock_node::cluster::public::Verifier::new(TOKEN);
        while let Ok(m) = ps.get_message() {
            let text: String = m.get_payload().unwrap_or_default();
            if let Ok((gitflock_node::cluster::public::Kind::Vote, msg)) = v.verify(&text)
                && msg.event == "elected"
            {
                heard.lock().unwrap().push((msg.epoch, msg.name));
            }
        }
    });
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.url()).collect();
    let load = Load::start(urls, sleep_task("30ms"), 60);
    let mut killed_running: HashSet<String> = HashSet::new();
    for name in ["node1", "node2", "node3"] {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        cluster.node(name).kill9();
        // The tasks it was running when it died may run twice. (Read after the kill: a dead
        // process claims nothing more, and its list is reassigned only after dead_after.)
        let mut con = cluster.redis.conn();
        let inflight: Vec<String> = redis::cmd("LRANGE")
            .arg(keys().inflight(name))
            .arg(0)
            .arg(-1)
            .query(&mut con)
            .unwrap();
        killed_running.extend(inflight);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        cluster.node(name).restart().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let ids = load.stop().await;
    all_succeed(&cluster, &ids, Duration::from_secs(60)).await;

    // One master per epoch.
    let mut by_epoch: HashMap<u64, HashSet<String>> = HashMap::new();
    for (e, n) in announcements.lock().unwrap().iter() {
        by_epoch.entry(*e).or_default().insert(n.clone());
    }
    assert!(!by_epoch.is_empty());
    for (e, names) in &by_epoch {
        assert_eq!(names.len(), 1, "epoch {e} had masters {names:?}");
    }
    // No task finished twice; only tasks running on a killed node started twice.
    for id in &ids {
        let runs: u64 = cluster.task_field(id, "runs").unwrap().parse().unwrap();
        assert_eq!(runs, 1, "task {id} finished {runs} times");
        let attempts: u64 = cluster.task_field(id, "attempts").unwrap().parse().unwrap();
        if attempts > 1 {
            assert!(
                killed_running.contains(id),
                "task {id} started {attempts} times"
            );
        }
    }
}
