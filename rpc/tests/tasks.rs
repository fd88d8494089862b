//! The foundation, end to end: real redis-server, real node processes, real signals.

mod common;

use common::*;
use gitflock_proto::v1::{
    CreateTaskRequest, Empty, GetTaskRequest, ListTasksRequest, TaskIds, TaskState,
    WatchTasksRequest,
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
async fn bad_requests_get_clear_errors_and_change_nothing() {
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client().await;
    let bad = |req: CreateTaskRequest| req;
    let cases = [
        (
            bad(CreateTaskRequest {
                r#type: "nope".into(),
                ..Default::default()
            }),
            "known types: block, echo, mirror, sleep",
        ),
        (
            bad(CreateTaskRequest {
                r#type: "".into(),
                ..Default::default()
            }),
            "type is empty",
        ),
        (
            bad(CreateTaskRequest {
                name: "x".repeat(300),
                ..echo("")
            }),
            "name is 300 bytes",
        ),
        (
            bad(CreateTaskRequest {
                name: "a\u{7}b".into(),
                ..echo("")
            }),
            "control character",
        ),
        (bad(echo(&"y".repeat(5000))), "target is 5000 bytes"),
        (bad(sleep_task("forever")), "target:"),
        (bad(sleep_task("2h")), "longer than 1h"),
        (
            bad(CreateTaskRequest {
                interval_secs: u64::MAX,
                ..echo("")
            }),
            "interval_secs",
        ),
        (
            bad(CreateTaskRequest {
                max_attempts: 1000,
                ..echo("")
            }),
            "max_attempts",
        ),
        (
            bad(CreateTaskRequest {
                request_id: "a b".into(),
                ..echo("")
            }),
            "request_id",
        ),
    ];
    for (req, want) in cases {
        let e = c.tasks.create_task(req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(
            e.message().contains(want),
            "{:?} should mention {want:?}",
            e.message()
        );
    }
    for id in [
        "",
        "42",
        "../../etc/passwd",
        "0F8FAD5B-D9CB-469F-A165-70867728950E",
    ] {
        let e = c
            .tasks
            .get_task(GetTaskRequest { id: id.into() })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "get {id:?}");
        let e = c
            .tasks
            .kill_tasks(TaskIds {
                ids: vec![id.into()],
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "kill {id:?}");
        let e = c
            .tasks
            .delete_tasks(TaskIds {
                ids: vec![id.into()],
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "delete {id:?}");
    }
    let e = c
        .tasks
        .kill_tasks(TaskIds { ids: vec![] })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = c
        .tasks
        .list_tasks(ListTasksRequest {
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = c
        .tasks
        .list_tasks(ListTasksRequest {
            states: vec![42],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // Missing and wrong tokens.
    let channel = tonic::transport::Endpoint::from_shared(cluster.nodes[0].url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut anon = gitflock_proto::v1::tasks_client::TasksClient::new(channel);
    let e = anon.create_task(echo("x")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let mut wrong =
        gitflock_client::Client::connect(&cluster.nodes[0].url(), "wrong-token-0123456789", None)
            .await
            .unwrap();
    let e = wrong.tasks.create_task(echo("x")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = wrong.nodes.status(Empty {}).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    // Health stays open.
    assert_eq!(
        health(&cluster.nodes[0].url()).await,
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    // Nothing was written.
    let mut con = cluster.redis.conn();
    let all: u64 = redis::cmd("ZCARD")
        .arg(keys().all())
        .query(&mut con)
        .unwrap();
    assert_eq!(all, 0);
    let tasks: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", keys().task_family()))
        .query(&mut con)
        .unwrap();
    assert!(tasks.is_empty());
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
async fn list_tasks_filters_and_paginates_without_gaps_or_repeats() {
    // No workers: everything stays WAITING except what we kill.
    let cluster = Cluster::start_with(1, &[("GITFLOCK_NODE_CONCURRENCY", "0")]).await;
    let mut c = cluster.client().await;
    let mut all = Vec::new();
    for i in 0..250 {
        let req = if i % 5 == 0 {
            CreateTaskRequest {
                name: format!("Special {i}"),
                ..sleep_task("1s")
            }
        } else {
            echo(&format!("job {i}"))
        };
        all.push(create(&mut c, req).await.id);
    }
    let killed: Vec<String> = all.iter().take(10).cloned().collect();
    c.tasks
        .kill_tasks(TaskIds {
            ids: killed.clone(),
        })
        .await
        .unwrap();

    let list = |req: ListTasksRequest| {
        let mut c = c.clone();
        async move {
            let mut out = Vec::new();
            let mut token = String::new();
            let mut pages = 0;
            loop {
                let p = c
                    .tasks
                    .list_tasks(ListTasksRequest {
                        page_token: token,
                        ..req.clone()
                    })
                    .await
                    .unwrap()
                    .into_inner();
                pages += 1;
                out.extend(p.tasks.into_iter().map(|t| t.id));
                token = p.next_page_token;
                if token.is_empty() {
                    return (out, pages, p.total);
                }
            }
        }
    };
    let (ids, pages, total) = list(ListTasksRequest {
        page_size: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(total, 250);
    assert!(pages >= 3);
    let expect: Vec<String> = all.iter().rev().cloned().collect();
    assert_eq!(ids, expect, "newest first, every task exactly once");

    let (ids, _, total) = list(ListTasksRequest {
        states: vec![TaskState::Killed as i32],
        page_size: 3,
        ..Default::default()
    })
    .await;
    assert_eq!(total, 10);
    assert_eq!(
        ids.iter().cloned().collect::<HashSet<_>>(),
        killed.iter().cloned().collect()
    );

    let (ids, _, total) = list(ListTasksRequest {
        states: vec![TaskState::Waiting as i32, TaskState::Killed as i32],
        r#type: "sleep".into(),
        page_size: 7,
        ..Default::default()
    })
    .await;
    assert_eq!(total, 50);
    assert_eq!(ids.len(), 50);

    let (ids, _, _) = list(ListTasksRequest {
        text: "special 1".into(),
        page_size: 4,
        ..Default::default()
    })
    .await;
    // "Special 10", "Special 100".."Special 195" step 5, "Special 15": names with "special 1".
    let want = (0..250)
        .filter(|i| i % 5 == 0 && format!("{i}").starts_with('1'))
        .count();
    assert_eq!(ids.len(), want);
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
    let ok = r#"gitflock_runs_total{outcome="ok",type="echo"} "#;
    assert_eq!(metric(&after, ok) - metric(&before, ok), 5.0, "{after}");
    assert_eq!(metric(&after, r#"gitflock_tasks{state="SUCCEED"} "#), 5.0);
    assert!(metric(&after, "gitflock_dispatch_latency_seconds_count ") >= 5.0);
    assert!(metric(&after, "gitflock_heartbeat_seconds_count ") >= 1.0);
    for line in after
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(
            line.starts_with("gitflock_"),
            "every metric is named gitflock_*: {line}"
        );
    }
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
