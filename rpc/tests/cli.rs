//! The `gitflock` CLI and `gitflock-node` as a user runs them: JSON shapes, exit codes,
//! one-line errors, and `gitflock dev` from start to Ctrl-C.

mod common;

use common::*;
use gitflock_harness::{NodeConfig, NodeProcess, RedisOptions, RedisServer, SIGINT, send_signal};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tonic_health::pb::health_check_response::ServingStatus;

fn gitflock(server: &str, args: &[&str]) -> Output {
    Command::new(gitflock_harness::binary("gitflock"))
        .env_remove("GITFLOCK_TOKEN")
        .env("GITFLOCK_SERVER", server)
        .env("GITFLOCK_TOKEN", TOKEN)
        .args(args)
        .output()
        .unwrap()
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn one_line_error(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("gitflock: "), "{err:?}");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_shapes_follow_the_product_contract() {
    let cluster = Cluster::start(2).await;
    let url = cluster.nodes[0].url();

    let created = json_of(&gitflock(
        &url,
        &[
            "--json", "task", "create", "--type", "echo", "--target", "hi", "--name", "n1",
        ],
    ));
    for k in [
        "id",
        "name",
        "type",
        "target",
        "state",
        "node",
        "attempts",
        "interval_secs",
        "created_at",
        "updated_at",
        "results",
    ] {
        assert!(created.get(k).is_some(), "task json lacks {k}: {created}");
    }
    let id = created["id"].as_str().unwrap().to_string();
    // Plain `task create` prints just the id.
    let plain = gitflock(
        &url,
        &["task", "create", "--type", "echo", "--target", "again"],
    );
    assert!(plain.status.success());
    let id2 = String::from_utf8(plain.stdout).unwrap().trim().to_string();
    gitflock_core::task::check_id(&id2).unwrap();

    cluster
        .wait_count("SUCCEED", 2, Duration::from_secs(10))
        .await;
    let got = json_of(&gitflock(&url, &["--json", "task", "get", &id]));
    assert_eq!(got["state"], "SUCCEED");
    assert_eq!(got["name"], "n1");
    let r = &got["results"][0];
    for k in ["code", "message", "node", "started_at", "finished_at"] {
        assert!(r.get(k).is_some(), "result json lacks {k}: {r}");
    }
    assert_eq!(r["message"], "hi");
    assert!(
        got["created_at"].as_str().unwrap().ends_with('Z'),
        "RFC 3339 UTC"
    );

    let list = json_of(&gitflock(&url, &["--json", "task", "list"]));
    assert_eq!(list.as_array().unwrap().len(), 2);
    let list = json_of(&gitflock(&url, &["--json", "task", "list", "--limit", "1"]));
    assert_eq!(list.as_array().unwrap().len(), 1);
    let list = json_of(&gitflock(
        &url,
        &["--json", "task", "list", "--state", "killed"],
    ));
    assert_eq!(list.as_array().unwrap().len(), 0);

    let nodes = json_of(&gitflock(&url, &["--json", "nodes"]));
    let nodes = nodes.as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    for k in ["name", "addr", "role", "state", "epoch", "last_heartbeat"] {
        assert!(nodes[0].get(k).is_some(), "node json lacks {k}");
    }
    assert_eq!(nodes.iter().filter(|n| n["role"] == "master").count(), 1);

    let status = json_of(&gitflock(&url, &["--json", "status"]));
    for k in ["master", "epoch", "nodes", "counts"] {
        assert!(status.get(k).is_some(), "status json lacks {k}");
    }
    assert_eq!(
        keys(&status["counts"]).len(),
        6,
        "a count for every state: {}",
        status["counts"]
    );
    assert_eq!(status["counts"]["SUCCEED"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_one_line_with_exit_1_and_usage_is_exit_2() {
    let cluster = Cluster::start(1).await;
    let url = cluster.nodes[0].url();

    let out = gitflock(&url, &["task", "create", "--type", "bogus"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line_error(&out).contains("known types: block, echo, mirror, sleep"));

    let out = gitflock(&url, &["task", "get", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    one_line_error(&out);

    let out = gitflock(&url, &["task", "kill", &gitflock_core::task::new_id()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a kill that did nothing is an error"
    );

    let out = gitflock(&url, &["--token", "wrong-token-123456789", "status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line_error(&out).contains("token"));

    let out = gitflock("http://127.0.0.1:1", &["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line_error(&out).contains("cannot reach"));

    let out = gitflock(&url, &["task", "frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_bad_node_config_is_one_line_naming_the_key_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gitflock.toml");
    std::fs::write(
        &file,
        "[cluster]\ntoken = \"0123456789abcdef\"\n[node]\nconcurrency = \"lots\"\n",
    )
    .unwrap();
    let out = Command::new(gitflock_harness::binary("gitflock-node"))
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("[node] concurrency"), "{err}");

    let out = Command::new(gitflock_harness::binary("gitflock-node"))
        .env_clear()
        .env("GITFLOCK_CLUSTER_TOKEN", "0123456789abcdef")
        .env("GITFLOCK_CLUSTER_LEASE_MS", "soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[cluster] lease_ms"));
}

#[test]
fn gitflock_dev_runs_a_cluster_that_takes_tasks_and_stops_cleanly_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_port();
    let mut dev = Command::new(gitflock_harness::binary("gitflock"))
        .current_dir(dir.path())
        .env_remove("GITFLOCK_TOKEN")
        .env_remove("GITFLOCK_SERVER")
        .args(["dev", "--nodes", "3", "--base-port", &base.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(dev.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let line = lines.next().expect("dev printed its summary").unwrap();
        let done = line.starts_with("Ctrl-C");
        seen.push(line);
        if done {
            break;
        }
    }
    let summary = seen.join("\n");
    assert!(summary.contains("cluster is up"), "{summary}");
    assert!(summary.contains("node3"), "{summary}");
    assert!(summary.contains("token:"), "{summary}");

    // The CLI, run from the same directory, finds the token dev wrote.
    let server = format!("http://127.0.0.1:{base}");
    let cli = |args: &[&str]| {
        Command::new(gitflock_harness::binary("gitflock"))
            .current_dir(dir.path())
            .env_remove("GITFLOCK_TOKEN")
            .env("GITFLOCK_SERVER", &server)
            .args(args)
            .output()
            .unwrap()
    };
    let out = cli(&["task", "create", "--type", "echo", "--target", "hello"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let t = json_of(&cli(&["--json", "task", "get", &id]));
        if t["state"] == "SUCCEED" {
            assert_eq!(t["results"][0]["message"], "hello");
            break;
        }
        assert!(Instant::now() < deadline, "task did not succeed: {t}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let nodes = json_of(&cli(&["--json", "nodes"]));
    assert_eq!(nodes.as_array().unwrap().len(), 3);

    // Ctrl-C: everything stops, exit 0, the ports are free again.
    send_signal(dev.id(), SIGINT).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = dev.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "dev did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    // The ports dev printed, gRPC and metrics (a taken one is replaced by a free one), are
    // free again.
    let ports: Vec<u16> = seen
        .iter()
        .filter_map(|l| l.split("http://127.0.0.1:").nth(1))
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect();
    // Three nodes' gRPC and metrics ports, and the dashboard's when its binary was built.
    let expected = if summary.contains("  web:") { 7 } else { 6 };
    assert_eq!(ports.len(), expected, "{summary}");
    for p in ports {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", p)).is_ok(),
            "port {p} still in use"
        );
    }
}

/// A node alone on the Redis at `redis_port` (which need not be up), serving no mirrors.
fn lone_node(dir: &Path, name: &str, redis_port: u16) -> NodeProcess {
    let config = NodeConfig {
        program: gitflock_harness::binary("gitflock-node"),
        name: name.into(),
        port: free_port(),
        data_dir: dir.join(name),
        log: dir.join(format!("{name}.log")),
        redis_url: format!("redis://127.0.0.1:{redis_port}/0"),
        token: TOKEN.into(),
        env: vec![("GITFLOCK_MIRROR_SERVE_LISTEN".into(), String::new())],
        ..NodeConfig::default()
    };
    NodeProcess::spawn(config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_waiting_for_redis_stops_at_once_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = lone_node(dir.path(), "lonely", free_port());
    // It keeps trying (and says so) while Redis is away...
    wait_for(
        "the node to log its retries",
        Duration::from_secs(20),
        || async {
            let log = node.log_text();
            let retrying = |l: &str| l.contains("redis") && l.contains("retrying");
            log.lines().any(retrying).then_some(())
        },
    )
    .await;
    assert!(node.exited().is_none(), "still waiting for redis");
    // Meanwhile gRPC health answers, and says the node is not ready.
    assert_eq!(health(&node.url()).await, ServingStatus::NotServing);
    // ...and stops at once when told to.
    let exit = node.terminate(Duration::from_secs(5)).await;
    assert!(
        exit.expect("SIGTERM ignored while waiting for redis")
            .success()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_connected_during_start_up_is_served_once_redis_answers() {
    let dir = tempfile::tempdir().unwrap();
    let redis_port = free_port();
    let mut node = lone_node(dir.path(), "early", redis_port);
    let url = node.url();
    // Connected while the node waits for Redis (its start-up server answers health only).
    let client = wait_for("the start-up server", Duration::from_secs(20), || async {
        gitflock_client::Client::connect(&url, TOKEN, Some(Duration::from_secs(5)))
            .await
            .ok()
    })
    .await;
    let early = client
        .clone()
        .nodes
        .status(gitflock_proto::v1::Empty {})
        .await
        .unwrap_err();
    assert_eq!(early.code(), tonic::Code::Unimplemented, "{early:?}");
    let options = RedisOptions {
        port: Some(redis_port),
        ..RedisOptions::default()
    };
    let _redis = RedisServer::start(&dir.path().join("redis"), options)
        .await
        .unwrap();
    // The same client is served by the full server once it is up.
    let status = wait_for("the full server", Duration::from_secs(20), || {
        let mut c = client.clone();
        async move {
            c.nodes
                .status(gitflock_proto::v1::Empty {})
                .await
                .ok()
                .map(|r| r.into_inner())
        }
    })
    .await;
    assert!(status.nodes.iter().any(|n| n.name == "early"), "{status:?}");
    let _ = node.terminate(STOP_GRACE).await;
}
