//! The node's Prometheus metrics: live values, names by the Prometheus conventions, and
//! cluster-wide gauges that a `sum()` over all nodes counts once.

use crate::common::*;
use gitflock_proto::v1::{CreateTaskRequest, TaskIds, TaskState};
use std::collections::HashMap;
use std::time::Duration;

fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

fn metric(text: &str, line_prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The sample lines (no comments) of a scrape.
fn samples(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_show_live_values_that_move_while_tasks_run() {
    let addr = format!("127.0.0.1:{}", free_port());
    let cluster = Cluster::start_with(1, &[("GITFLOCK_NODE_METRICS_LISTEN", &addr)]).await;
    let before = scrape(&addr);
    assert_eq!(metric(&before, "gitflock_is_master "), 1.0);
    assert!(metric(&before, "gitflock_epoch ") >= 1.0);
    let mut c = cluster.client().await;
    for i in 0..5 {
        create(&mut c, echo(&format!("m{i}"))).await;
    }
    cluster
        .wait_count("SUCCEED", 5, Duration::from_secs(10))
        .await;
    let after = scrape(&addr);
    let ok = r#"gitflock_run_duration_seconds_count{outcome="ok",type="echo"} "#;
    assert_eq!(metric(&after, ok) - metric(&before, ok), 5.0, "{after}");
    assert_eq!(metric(&after, r#"gitflock_tasks{state="SUCCEED"} "#), 5.0);
    assert!(metric(&after, "gitflock_dispatch_latency_seconds_count ") >= 5.0);
    assert!(metric(&after, "gitflock_heartbeat_seconds_count ") >= 1.0);
    for line in samples(&after) {
        assert!(
            line.starts_with("gitflock_") || line.starts_with("process_"),
            "every metric is gitflock_* or a standard process_* one: {line}"
        );
        assert!(!line.contains("result=\""), "one outcome label: {line}");
    }
    // One counter per fact: run counts are the histogram's _count, failed mirror runs its
    // outcome="error" count; a dead node counts as what it is.
    for gone in [
        "gitflock_runs_total",
        "gitflock_mirror_failures_total",
        "gitflock_failovers_total",
        "gitflock_tasks_running ",
    ] {
        assert!(!after.contains(gone), "{gone} is still exported");
    }
    assert!(after.contains("# TYPE gitflock_nodes_declared_dead_total counter"));
    assert!(after.contains("# TYPE gitflock_runs_in_progress gauge"));
    let version = env!("CARGO_PKG_VERSION");
    let build = format!("gitflock_build_info{{version=\"{version}\"}} 1");
    assert!(after.lines().any(|l| l == build), "{build} in {after}");
    assert!(metric(&after, "process_resident_memory_bytes ") > 1e6);
    assert!(metric(&after, "process_open_fds ") >= 3.0);
    assert!(metric(&after, "process_start_time_seconds ") > 1.7e9);
    assert!(after.contains("# TYPE process_cpu_seconds_total counter"));
    // The address is logged at start, for whoever must point Prometheus at it.
    let log = cluster.nodes[0].log_text();
    assert!(log.contains(&format!("http://{addr}/metrics")), "{log}");
}

/// The value of every sample of `name` (labels included in the key) in a scrape.
fn series(text: &str, name: &str) -> HashMap<String, f64> {
    samples(text)
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter_map(|l| {
            let (key, v) = l.rsplit_once(' ')?;
            Some((key.to_string(), v.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_gauges_summed_over_all_nodes_count_every_task_once() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = gitflock_harness::Cluster::builder(
        &gitflock_harness::binary("gitflock-node"),
        dir.path(),
        TOKEN,
    )
    .nodes(3)
    .metrics(true)
    .start()
    .await
    .unwrap();
    cluster.master(Duration::from_secs(10)).await.unwrap();
    let mut c = cluster.nodes[0].client().await.unwrap();
    // Tasks in five states: SUCCEED, RUNNING, KILLED, RUNTIME_ERROR, WAITING (recurring).
    for i in 0..4 {
        create(&mut c, echo(&format!("ok{i}"))).await;
    }
    let long = create(&mut c, sleep_task("60s")).await;
    let killed = create(&mut c, sleep_task("60s")).await;
    let failing = CreateTaskRequest {
        max_attempts: 1,
        timeout_secs: 1,
        ..sleep_task("30s")
    };
    create(&mut c, failing).await;
    let recurring = CreateTaskRequest {
        interval_secs: 3600,
        ..echo("hourly")
    };
    create(&mut c, recurring).await;
    wait_state(&c, &killed.id, TaskState::Running, Duration::from_secs(20)).await;
    c.tasks
        .kill_tasks(TaskIds {
            ids: vec![killed.id.clone()],
        })
        .await
        .unwrap();
    wait_state(&c, &long.id, TaskState::Running, Duration::from_secs(20)).await;
    let want: HashMap<&str, u64> = [
        ("SUCCEED", 4),
        ("RUNNING", 1),
        ("KILLED", 1),
        ("RUNTIME_ERROR", 1),
        ("WAITING", 1),
        ("INQUEUE", 0),
    ]
    .into();
    let counts = wait_for("the tasks to settle", Duration::from_secs(30), || {
        let mut c = c.clone();
        let want = want.clone();
        async move {
            let s = c
                .nodes
                .status(gitflock_proto::v1::Empty {})
                .await
                .ok()?
                .into_inner();
            let settled = want
                .iter()
                .all(|(k, n)| s.counts.get(*k).copied().unwrap_or(0) == *n);
            settled.then_some(s)
        }
    })
    .await;

    let scrapes: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| scrape(&format!("127.0.0.1:{}", n.config().metrics_port.unwrap())))
        .collect();
    // Only the master exports the cluster's counts...
    let exporting: Vec<usize> = (0..3)
        .filter(|&i| !series(&scrapes[i], "gitflock_tasks").is_empty())
        .collect();
    assert_eq!(
        exporting.len(),
        1,
        "nodes exporting gitflock_tasks: {exporting:?}"
    );
    assert_eq!(
        metric(&scrapes[exporting[0]], "gitflock_is_master "),
        1.0,
        "the one that does is the master"
    );
    // ...so sum() over every node is the real count.
    for (state, n) in &counts.counts {
        let key = format!("gitflock_tasks{{state=\"{state}\"}}");
        let sum: f64 = scrapes
            .iter()
            .filter_map(|s| series(s, "gitflock_tasks").get(&key).copied())
            .sum();
        assert_eq!(sum, *n as f64, "sum({key}) over 3 nodes");
    }
    for (kind, n) in &counts.type_counts {
        let key = format!("gitflock_tasks_by_type{{type=\"{kind}\"}}");
        let sum: f64 = scrapes
            .iter()
            .filter_map(|s| series(s, "gitflock_tasks_by_type").get(&key).copied())
            .sum();
        assert_eq!(sum, *n as f64, "sum({key}) over 3 nodes");
    }
    // Runs in progress are per node: their sum is the cluster's one running task.
    let in_progress: f64 = scrapes
        .iter()
        .map(|s| metric(s, "gitflock_runs_in_progress "))
        .sum();
    assert_eq!(in_progress, 1.0);
}
