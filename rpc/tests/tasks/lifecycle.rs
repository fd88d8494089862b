//! Tasks created, run, retried, recurring, killed and deleted, and watched.

use crate::common::*;
use gitflock_proto::v1::{
    CreateTaskRequest, GetTaskRequest, TaskIds, TaskState, WatchTasksRequest,
};
use std::collections::HashSet;
use std::time::Duration;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_echo_tasks_all_succeed_none_lost() {
    let cluster = Cluster::start(3).await;
    let n = 10_000;
    let mut handles = Vec::new();
    for w in 0..16 {
        let mut c = cluster.client().await;
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in (w..n).step_by(16) {
                ids.push(create(&mut c, echo(&format!("t{i}"))).await.id);
            }
            ids
        }));
    }
    let mut ids = HashSet::new();
    for h in handles {
        ids.extend(h.await.unwrap());
    }
    assert_eq!(ids.len(), n, "every create returned a distinct id");
    cluster
        .wait_count("SUCCEED", n as u64, Duration::from_secs(180))
        .await;

    // None lost, none run twice: one result each, output = target; inboxes and in-flight empty.
    let mut con = cluster.redis.conn();
    let mut per_node = std::collections::HashMap::new();
    for id in &ids {
        let runs: u64 = cluster.task_field(id, "runs").unwrap().parse().unwrap();
        assert_eq!(runs, 1, "task {id} ran {runs} times");
        *per_node
            .entry(cluster.task_field(id, "node").unwrap())
            .or_insert(0) += 1;
    }
    for node in &cluster.nodes {
        let inbox: u64 = redis::cmd("LLEN")
            .arg(keys().inbox(node.name()))
            .query(&mut con)
            .unwrap();
        let inflight: u64 = redis::cmd("LLEN")
            .arg(keys().inflight(node.name()))
            .query(&mut con)
            .unwrap();
        assert_eq!(
            (inbox, inflight),
            (0, 0),
            "{} left work behind",
            node.name()
        );
    }
    assert_eq!(
        per_node.len(),
        3,
        "work spread over all nodes: {per_node:?}"
    );
    let mut c = cluster.client().await;
    let some = ids.iter().next().unwrap();
    let t = get(&mut c, some).await;
    assert_eq!(t.results.len(), 1);
    assert_eq!(t.results[0].message, t.target);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_and_delete_of_running_tasks() {
    let cluster = Cluster::start(2).await;
    let mut c = cluster.client().await;
    let a = create(&mut c, sleep_task("60s")).await.id;
    let b = create(&mut c, sleep_task("60s")).await.id;
    wait_state(&c, &a, TaskState::Running, Duration::from_secs(10)).await;
    wait_state(&c, &b, TaskState::Running, Duration::from_secs(10)).await;

    let r = c
        .tasks
        .kill_tasks(TaskIds {
            ids: vec![a.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.results.get(&a), Some(&true));
    let t = wait_state(&c, &a, TaskState::Killed, Duration::from_secs(5)).await;
    assert_eq!(t.results.len(), 1);
    assert_eq!(t.results[0].code, gitflock_core::task::code::KILLED);

    let node_b = cluster.task_field(&b, "node").unwrap();
    let r = c
        .tasks
        .delete_tasks(TaskIds {
            ids: vec![b.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.results.get(&b), Some(&true));
    let e = c
        .tasks
        .get_task(GetTaskRequest { id: b.clone() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    // The run was really cancelled: the node's in-flight list empties.
    wait_for(
        "the deleted task's run to stop",
        Duration::from_secs(5),
        || async {
            let mut con = cluster.redis.conn();
            let n: u64 = redis::cmd("LLEN")
                .arg(keys().inflight(&node_b))
                .query(&mut con)
                .unwrap();
            (n == 0).then_some(())
        },
    )
    .await;

    // Killing a finished task, or a missing one, says so per id and changes nothing.
    let missing = gitflock_core::task::new_id();
    let r = c
        .tasks
        .kill_tasks(TaskIds {
            ids: vec![a.clone(), missing.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.results.get(&a), Some(&false));
    assert_eq!(
        r.errors.get(&a).map(String::as_str),
        Some("already finished")
    );
    assert_eq!(r.results.get(&missing), Some(&false));
    assert_eq!(get(&mut c, &a).await.state(), TaskState::Killed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recurring_task_runs_again_and_again_until_killed() {
    let cluster = Cluster::start(2).await;
    let mut c = cluster.client().await;
    let t = create(
        &mut c,
        CreateTaskRequest {
            interval_secs: 1,
            ..echo("tick")
        },
    )
    .await;
    let t = wait_for("three runs", Duration::from_secs(15), || {
        let c = cluster.nodes[0].client();
        let id = t.id.clone();
        async move {
            let t = get(&mut c.await.unwrap(), &id).await;
            (t.runs >= 3).then_some(t)
        }
    })
    .await;
    // Results newest first, about an interval apart.
    let r = &t.results;
    assert!(r[0].started_at - r[1].started_at >= 900, "{r:?}");
    assert!(r[1].started_at - r[2].started_at >= 900, "{r:?}");
    assert!(matches!(
        t.state(),
        TaskState::Waiting | TaskState::Inqueue | TaskState::Running
    ));

    c.tasks
        .kill_tasks(TaskIds {
            ids: vec![t.id.clone()],
        })
        .await
        .unwrap();
    let killed = wait_state(&c, &t.id, TaskState::Killed, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = get(&mut c, &t.id).await;
    assert_eq!(later.state(), TaskState::Killed);
    assert_eq!(
        later.runs, killed.runs,
        "a killed recurring task does not run again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_task_is_retried_with_backoff_then_ends_runtime_error() {
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client().await;
    let t = create(
        &mut c,
        CreateTaskRequest {
            timeout_secs: 1,
            max_attempts: 2,
            ..sleep_task("10s")
        },
    )
    .await;
    let t = wait_state(&c, &t.id, TaskState::RuntimeError, Duration::from_secs(15)).await;
    assert_eq!(t.results.len(), 2);
    assert!(
        t.results
            .iter()
            .all(|r| r.code == gitflock_core::task::code::TIMEOUT),
        "{:?}",
        t.results
    );
    assert_eq!(t.results[0].message, "timed out after 1s");
    let gap = t.results[0].started_at - t.results[1].finished_at;
    assert!(
        gap >= 700,
        "retried after {gap} ms; the first backoff is about 1 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_create_with_the_same_request_id_makes_one_task() {
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client().await;
    let req = CreateTaskRequest {
        request_id: "retry-me-1".into(),
        ..echo("once")
    };
    let a = create(&mut c, req.clone()).await;
    let b = create(&mut c, req).await;
    assert_eq!(a.id, b.id);
    cluster
        .wait_count("SUCCEED", 1, Duration::from_secs(10))
        .await;
    let mut con = cluster.redis.conn();
    let all: u64 = redis::cmd("ZCARD")
        .arg(keys().all())
        .query(&mut con)
        .unwrap();
    assert_eq!(all, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_tasks_streams_each_change() {
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client().await;
    let mut stream = c
        .tasks
        .watch_tasks(WatchTasksRequest { ids: vec![] })
        .await
        .unwrap()
        .into_inner();
    // The watch is live once the hub reads; a first task proves it.
    let t = create(&mut c, echo("watched")).await;
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = stream.message().await.unwrap() {
            let task = ev.task.unwrap();
            if task.id == t.id {
                seen.push(task.state());
                if task.state() == TaskState::Succeed {
                    break;
                }
            }
        }
    })
    .await
    .expect("events up to SUCCEED");
    assert_eq!(seen.last(), Some(&TaskState::Succeed));
}
