//! Redis stays bounded: finished one-off tasks leave after `[tasks] retention_*` with their
//! results and every index entry; recurring tasks stay; the change stream empties when idle.

use crate::common::*;
use gitflock_proto::v1::{CreateTaskRequest, GetTaskRequest, TaskIds, TaskState};
use std::time::{Duration, Instant};

/// Every key of the prefix and its type (test-only: a SCAN on a test Redis).
fn keys_left(cluster: &Cluster) -> Vec<String> {
    let mut con = cluster.redis.conn();
    let mut out: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", keys().prefix()))
        .query(&mut con)
        .unwrap();
    out.sort();
    out
}

async fn gone(c: &gitflock_client::Client, id: &str) -> bool {
    let mut c = c.clone();
    let r = c.tasks.get_task(GetTaskRequest { id: id.into() }).await;
    matches!(r, Err(s) if s.code() == tonic::Code::NotFound)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finished_one_off_tasks_expire_with_their_results_and_recurring_ones_stay() {
    let env = [
        ("GITFLOCK_TASKS_RETENTION_SUCCEED_SECS", "2s"),
        ("GITFLOCK_TASKS_RETENTION_FAILED_SECS", "5"),
    ];
    let cluster = Cluster::start_with(1, &env).await;
    let mut c = cluster.client().await;
    let ok = create(&mut c, echo("short-lived")).await;
    let failed = CreateTaskRequest {
        timeout_secs: 1,
        max_attempts: 1,
        ..sleep_task("30s")
    };
    let failed = create(&mut c, failed).await;
    let killed = create(&mut c, sleep_task("30s")).await;
    let recurring = CreateTaskRequest {
        interval_secs: 1,
        ..echo("every second")
    };
    let recurring = create(&mut c, recurring).await;
    wait_state(&c, &killed.id, TaskState::Running, Duration::from_secs(10)).await;
    c.tasks
        .kill_tasks(TaskIds {
            ids: vec![killed.id.clone()],
        })
        .await
        .unwrap();
    let done = wait_state(&c, &ok.id, TaskState::Succeed, Duration::from_secs(10)).await;
    assert_eq!(done.results.len(), 1);
    wait_state(
        &c,
        &failed.id,
        TaskState::RuntimeError,
        Duration::from_secs(10),
    )
    .await;
    wait_state(&c, &killed.id, TaskState::Killed, Duration::from_secs(10)).await;
    let t0 = Instant::now();

    wait_for(
        "the succeeded task to expire",
        Duration::from_secs(10),
        || {
            let c = c.clone();
            let id = ok.id.clone();
            async move { gone(&c, &id).await.then_some(()) }
        },
    )
    .await;
    // Failed and killed tasks are kept longer.
    if t0.elapsed() < Duration::from_secs(4) {
        assert!(!gone(&c, &failed.id).await && !gone(&c, &killed.id).await);
    }
    for id in [&failed.id, &killed.id] {
        wait_for("a failed task to expire", Duration::from_secs(15), || {
            let c = c.clone();
            let id = id.clone();
            async move { gone(&c, &id).await.then_some(()) }
        })
        .await;
    }
    // Nothing of them is left: no hash, no results, no index entry.
    let left = keys_left(&cluster);
    for id in [&ok.id, &failed.id, &killed.id] {
        assert!(
            !left.iter().any(|k| k.contains(id.as_str())),
            "{id} left {left:?}"
        );
    }
    let counts = cluster.counts();
    assert_eq!(
        counts["SUCCEED"] + counts["RUNTIME_ERROR"] + counts["KILLED"],
        0
    );
    let mut con = cluster.redis.conn();
    for index in [
        keys().all(),
        keys().by_type("echo"),
        keys().by_type("sleep"),
    ] {
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(&index)
            .arg(0)
            .arg(-1)
            .query(&mut con)
            .unwrap();
        assert!(
            !ids.contains(&ok.id) && !ids.contains(&failed.id) && !ids.contains(&killed.id),
            "{index} still holds an expired task"
        );
    }
    // The recurring task ran more than the retention ago and is still there, with results.
    let r = get(&mut c, &recurring.id).await;
    assert!(r.runs >= 3, "the recurring task ran {} times", r.runs);
    let m = cluster.nodes[0].log_text();
    assert!(!m.contains("retention sweep failed"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_change_stream_empties_once_the_cluster_is_idle() {
    let env = [
        ("GITFLOCK_TASKS_RETENTION_SUCCEED_SECS", "2"),
        ("GITFLOCK_TASKS_RETENTION_FAILED_SECS", "2"),
    ];
    let cluster = Cluster::start_with(1, &env).await;
    let mut c = cluster.client().await;
    for i in 0..50 {
        create(&mut c, echo(&format!("burst {i}"))).await;
    }
    cluster
        .wait_count("SUCCEED", 50, Duration::from_secs(20))
        .await;
    let len = || -> u64 {
        redis::cmd("XLEN")
            .arg(keys().events())
            .query(&mut cluster.redis.conn())
            .unwrap()
    };
    assert!(
        len() >= 150,
        "each task made create, dispatch, claim, finish events"
    );
    // The tasks expire (a deletion event each), then the stream is trimmed to its window.
    wait_for(
        "the events stream to empty",
        Duration::from_secs(20),
        || {
            let n = len();
            async move { (n == 0).then_some(()) }
        },
    )
    .await;
    assert_eq!(cluster.counts()["SUCCEED"], 0);
}
