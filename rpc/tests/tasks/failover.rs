//! Nodes killed, down, or stopped with SIGTERM: nothing lost, mastership handed over.

use crate::common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_a_node_mid_run_then_restart_every_task_succeeds() {
    let conc = "4";
    let mut cluster = Cluster::start_with(2, &[("GITFLOCK_NODE_CONCURRENCY", conc)]).await;
    let mut c = cluster.client().await;
    let n = 200;
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(create(&mut c, sleep_task("100ms")).await.id);
    }
    // Kill node2 while it is running tasks.
    wait_for("node2 running tasks", Duration::from_secs(20), || async {
        let mut con = cluster.redis.conn();
        let inflight: u64 = redis::cmd("LLEN")
            .arg(keys().inflight("node2"))
            .query(&mut con)
            .unwrap();
        (inflight > 0).then_some(())
    })
    .await;
    cluster.node("node2").kill9();
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.node("node2").restart().await.unwrap();
    cluster
        .wait_count("SUCCEED", n, Duration::from_secs(120))
        .await;

    // Only tasks running at the kill (at most `concurrency` of them) were started twice.
    let twice = ids
        .iter()
        .filter(|id| cluster.task_field(id, "attempts").unwrap() != "1")
        .count();
    assert!(
        twice <= 4,
        "{twice} tasks started twice; at most 4 were running on node2"
    );
    assert!(
        twice >= 1,
        "the kill happened mid-run, so at least one task restarted"
    );
    assert!(
        cluster.nodes[1]
            .log_text()
            .contains("recovered tasks in flight")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_dispatched_to_a_node_that_is_down_runs_when_it_returns() {
    // node1 serves the API and is master but runs nothing; node2 is the only worker.
    let mut cluster = Cluster::start_with(1, &[("GITFLOCK_NODE_CONCURRENCY", "0")]).await;
    cluster
        .add_node(&[("GITFLOCK_NODE_CONCURRENCY", "4")])
        .await
        .unwrap();
    let mut c = cluster.client().await;
    cluster.node("node2").kill9();
    // Within dead_after node2 still looks alive, so the master gives it the tasks.
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(create(&mut c, echo(&format!("while down {i}"))).await.id);
    }
    cluster
        .wait_count("INQUEUE", 20, Duration::from_secs(5))
        .await;
    for id in &ids {
        assert_eq!(cluster.task_field(id, "node").as_deref(), Some("node2"));
    }
    // The master declares node2 dead and takes the tasks back; with no other worker they
    // wait (nothing lost, nothing run) until node2 returns and is admitted again.
    cluster
        .wait_count("WAITING", 20, Duration::from_secs(10))
        .await;
    assert_eq!(cluster.counts()["SUCCEED"], 0);
    cluster.node("node2").restart().await.unwrap();
    cluster
        .wait_count("SUCCEED", 20, Duration::from_secs(20))
        .await;
    for id in &ids {
        assert_eq!(cluster.task_field(id, "node").as_deref(), Some("node2"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_of_the_master_hands_mastership_over_at_once_and_loses_nothing() {
    let mut cluster = Cluster::start(2).await;
    let master = cluster.wait_master().await;
    let other = if master == "node1" { "node2" } else { "node1" };
    let mut c = cluster.node(other).client().await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..40 {
        ids.push(create(&mut c, sleep_task("300ms")).await.id);
    }
    let t0 = std::time::Instant::now();
    let exit = cluster.node(&master).terminate(STOP_GRACE).await;
    assert!(exit.unwrap().success(), "clean exit 0");
    let new_master = cluster.wait_master().await;
    assert_eq!(new_master, other);
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "handover took {:?}",
        t0.elapsed()
    );
    cluster
        .wait_count("SUCCEED", 40, Duration::from_secs(60))
        .await;
    let mut con = cluster.redis.conn();
    let inflight: u64 = redis::cmd("LLEN")
        .arg(keys().inflight(&master))
        .query(&mut con)
        .unwrap();
    let inbox: u64 = redis::cmd("LLEN")
        .arg(keys().inbox(&master))
        .query(&mut con)
        .unwrap();
    assert_eq!((inbox, inflight), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_of_a_busy_node_loses_nothing_moves_mastership_within_a_second_and_keeps_its_chain()
{
    let mut cluster = Cluster::start(2).await;
    let master = cluster.wait_master().await;
    let other = if master == "node1" { "node2" } else { "node1" };
    let mut c = cluster.node(&master).client().await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..60 {
        ids.push(create(&mut c, sleep_task("200ms")).await.id);
    }
    let entries: Vec<gitflock_proto::v1::LogEntry> = (0..500)
        .map(|i| gitflock_proto::v1::LogEntry {
            level: "info".into(),
            content: format!("entry {i}"),
            create_at: String::new(),
        })
        .collect();
    c.chain
        .write_logs(tokio_stream::iter(entries))
        .await
        .unwrap();
    wait_for("the master to be busy", Duration::from_secs(10), || async {
        (cluster.counts()["RUNNING"] > 0).then_some(())
    })
    .await;

    let t0 = std::time::Instant::now();
    cluster.node(&master).sigterm();
    let new = wait_for("a new master", Duration::from_secs(5), || async {
        cluster.lease().filter(|(holder, _)| *holder != master)
    })
    .await;
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "mastership moved after {:?}",
        t0.elapsed()
    );
    assert_eq!(new.0, other);
    let exit = cluster.node(&master).terminate(STOP_GRACE).await;
    assert!(exit.unwrap().success(), "the node exits 0");

    cluster
        .wait_count("SUCCEED", 60, Duration::from_secs(60))
        .await;
    let mut con = cluster.redis.conn();
    for (list, key) in [
        ("inbox", keys().inbox(&master)),
        ("inflight", keys().inflight(&master)),
    ] {
        let n: u64 = redis::cmd("LLEN").arg(key).query(&mut con).unwrap();
        assert_eq!(n, 0, "{list} of the stopped node");
    }
    cluster.node(&master).restart().await.unwrap();
    let mut c = cluster.node(&master).client().await.unwrap();
    let v = c
        .chain
        .verify_chain(gitflock_proto::v1::VerifyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.height, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_ends_open_streams_so_the_node_stops_at_once() {
    use gitflock_proto::v1::{ReadLogsRequest, WatchTasksRequest};
    let mut cluster = Cluster::start(1).await;
    let mut c = cluster.client().await;
    let mut watch = c
        .tasks
        .watch_tasks(WatchTasksRequest { ids: vec![] })
        .await
        .unwrap()
        .into_inner();
    let mut follow = c
        .chain
        .read_logs(ReadLogsRequest {
            since: 1,
            follow: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let t0 = std::time::Instant::now();
    let exit = cluster.nodes[0].terminate(STOP_GRACE).await;
    assert!(exit.unwrap().success(), "clean exit 0");
    // The server's graceful stop no longer waits 5 s for streams whose clients stay.
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "stopping took {:?}",
        t0.elapsed()
    );
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match watch.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the watch stream ends");
    match end {
        Err(s) => assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}"),
        Ok(None) => {}
        Ok(Some(_)) => unreachable!(),
    }
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match follow.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the follow stream ends");
    assert!(!matches!(end, Ok(Some(_))));
}
