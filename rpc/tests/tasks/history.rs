//! A task's history tells its whole story: a run lost with its node is recorded.

use crate::common::*;
use gitflock_proto::v1::{CreateTaskRequest, TaskState};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_lost_with_its_node_is_recorded_as_an_attempt() {
    let mut cluster = Cluster::start(3).await;
    cluster.wait_master().await;
    let mut c = cluster.client().await;
    let t = create(
        &mut c,
        CreateTaskRequest {
            max_attempts: 3,
            ..sleep_task("4s")
        },
    )
    .await;
    let running = wait_state(&c, &t.id, TaskState::Running, Duration::from_secs(20)).await;
    let lost_on = running.node.clone();
    cluster.node(&lost_on).kill9();
    // Ask a node that lives.
    let alive = cluster
        .nodes
        .iter()
        .find(|n| n.name() != lost_on)
        .unwrap()
        .client()
        .await
        .unwrap();
    let done = wait_state(&alive, &t.id, TaskState::Succeed, Duration::from_secs(60)).await;

    assert_eq!(done.results.len(), 2, "{:?}", done.results);
    let (ok, lost) = (&done.results[0], &done.results[1]);
    assert_eq!((ok.code, ok.attempt), (0, 2), "{ok:?}");
    assert_ne!(ok.node, lost_on);
    assert_eq!((lost.code, lost.attempt), (1, 1), "{lost:?}");
    assert_eq!(lost.node, lost_on);
    assert!(lost.message.contains("declared dead"), "{lost:?}");
    assert!(
        lost.started_at > 0 && lost.finished_at >= lost.started_at,
        "{lost:?}"
    );
    // Attempts and the history agree: two attempts, two records; one run finished.
    assert_eq!((done.attempts, done.runs), (2, 1), "{done:?}");
}
