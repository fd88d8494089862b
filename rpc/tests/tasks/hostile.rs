//! Hostile input and likely faults that would do lasting harm: a forged `kill` on a node's
//! channel, a kill sent while the node hears nothing, names that hide or reorder text, and
//! reads that grow with the number of watchers or with a search's reach.

use crate::common::*;
use gitflock_proto::v1::{
    CreateTaskRequest, ListTasksRequest, TaskIds, TaskState, WatchTasksRequest,
};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::Code;

/// How many times Redis ran `command` (also from scripts) since the last `CONFIG RESETSTAT`.
fn calls(cluster: &Cluster, command: &str) -> u64 {
    let mut con = cluster.redis.conn();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut con)
        .unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

fn reset_stats(cluster: &Cluster) {
    let mut con = cluster.redis.conn();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut con)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kill_published_by_anyone_on_a_nodes_channel_kills_nothing() {
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client().await;
    let t = create(
        &mut c,
        CreateTaskRequest {
            interval_secs: 1,
            ..sleep_task("2s")
        },
    )
    .await;
    wait_state(&c, &t.id, TaskState::Running, Duration::from_secs(10)).await;
    // Anyone who can reach Redis can publish on the node's (unsigned) channel.
    let mut con = cluster.redis.conn();
    let heard: u64 = redis::cmd("PUBLISH")
        .arg(keys().node_channel("node1"))
        .arg(format!("kill {}", t.id))
        .query(&mut con)
        .unwrap();
    assert_eq!(heard, 1, "the node heard the message");
    // The run goes on to its end, and the recurring task keeps recurring.
    let done = wait_for("the run to end", Duration::from_secs(15), || {
        let mut c = c.clone();
        let id = t.id.clone();
        async move {
            let t = get(&mut c, &id).await;
            (t.runs >= 1).then_some(t)
        }
    })
    .await;
    assert_eq!(
        done.results[0].code,
        gitflock_core::task::code::OK,
        "{:?}",
        done.results
    );
    assert_ne!(done.state(), TaskState::Killed);
    // A kill asked through the API still kills.
    c.tasks
        .kill_tasks(TaskIds {
            ids: vec![t.id.clone()],
        })
        .await
        .unwrap();
    wait_state(&c, &t.id, TaskState::Killed, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kill_stops_its_run_within_seconds_while_the_nodes_pubsub_is_down() {
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client().await;
    let t = create(&mut c, sleep_task("60s")).await;
    wait_state(&c, &t.id, TaskState::Running, Duration::from_secs(10)).await;
    // The node's subscription is cut, and may not come back: everything else still works.
    let mut con = cluster.redis.conn();
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "default",
            "-subscribe",
            "-psubscribe",
            "-ssubscribe",
        ])
        .query(&mut con)
        .unwrap();
    let _: u64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "pubsub"])
        .query(&mut con)
        .unwrap();
    let channel = keys().node_channel("node1");
    wait_for(
        "the node to be unsubscribed",
        Duration::from_secs(10),
        || async {
            let mut con = cluster.redis.conn();
            let n: (String, u64) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(&channel)
                .query(&mut con)
                .unwrap();
            (n.1 == 0).then_some(())
        },
    )
    .await;
    let t0 = Instant::now();
    let r = c
        .tasks
        .kill_tasks(TaskIds {
            ids: vec![t.id.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.results.get(&t.id), Some(&true));
    let killed = wait_state(&c, &t.id, TaskState::Killed, Duration::from_secs(5)).await;
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(killed.results[0].code, gitflock_core::task::code::KILLED);
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "default", "+@all"])
        .query(&mut con)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn names_that_drive_terminals_or_hide_text_are_refused() {
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client().await;
    for (name, why) in [
        ("red\u{1b}[31m", "control character"),
        ("csi\u{9b}2J", "control character"),
        ("invoice\u{202E}fdp.exe", "invisible formatting character"),
        ("ad\u{2066}min\u{2069}", "invisible formatting character"),
        ("zero\u{200B}width", "invisible formatting character"),
    ] {
        let e = c
            .tasks
            .create_task(CreateTaskRequest {
                name: name.into(),
                ..echo("x")
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{name:?}");
        assert!(e.message().contains(why), "{name:?}: {}", e.message());
    }
    assert_eq!(cluster.counts().values().sum::<u64>(), 0);
    // Scripts that need them still pass.
    create(
        &mut c,
        CreateTaskRequest {
            name: "می‌خواهم 👩‍💻".into(),
            ..echo("x")
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_streams_share_one_read_of_each_change() {
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client().await;
    let streams = 10;
    let seen: Arc<Mutex<Vec<HashSet<String>>>> =
        Arc::new(Mutex::new(vec![HashSet::new(); streams]));
    for i in 0..streams {
        let mut s = c
            .tasks
            .watch_tasks(WatchTasksRequest { ids: vec![] })
            .await
            .unwrap()
            .into_inner();
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Ok(Some(ev)) = s.message().await {
                let t = ev.task.unwrap();
                if t.state() == TaskState::Succeed {
                    seen.lock().unwrap()[i].insert(t.id);
                }
            }
        });
    }
    let all_saw = |ids: &HashSet<String>| {
        let seen = seen.lock().unwrap();
        seen.iter().all(|s| ids.is_subset(s))
    };
    // Every stream is live once each sees a first task end.
    let probe = HashSet::from([create(&mut c, echo("probe")).await.id]);
    wait_for("every stream live", Duration::from_secs(10), || async {
        all_saw(&probe).then_some(())
    })
    .await;
    reset_stats(&cluster);
    let mut ids = HashSet::new();
    for i in 0..20 {
        ids.insert(create(&mut c, echo(&format!("w{i}"))).await.id);
    }
    wait_for(
        "every stream to see every task end",
        Duration::from_secs(30),
        || async { all_saw(&ids).then_some(()) },
    )
    .await;
    // Each task's results are read once per change it went through (create, dispatch, claim,
    // finish: at most 80 reads), not once per change and stream (800).
    let reads = calls(&cluster, "lrange");
    assert!(
        reads <= 100,
        "{reads} result reads for 20 tasks and {streams} streams"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_search_reads_the_results_of_its_page_only() {
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client().await;
    for i in 0..300 {
        create(&mut c, echo(&format!("hay {i}"))).await;
    }
    for _ in 0..2 {
        create(&mut c, echo("needle")).await;
    }
    cluster
        .wait_count("SUCCEED", 302, Duration::from_secs(60))
        .await;
    reset_stats(&cluster);
    let page = c
        .tasks
        .list_tasks(ListTasksRequest {
            text: "needle".into(),
            with_results: true,
            page_size: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.tasks.len(), 2);
    assert!(
        page.tasks
            .iter()
            .all(|t| t.results.len() == 1 && t.target == "needle")
    );
    // The 302 tasks it looked through were read without their results.
    let reads = calls(&cluster, "lrange");
    assert!(reads <= 10, "{reads} result reads for a page of 2");
}
