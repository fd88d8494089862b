//! `gitflock dev` and `gitflock-node` as processes: start, config errors, Redis away,
//! stopping.

use super::*;
use gitflock_harness::{NodeConfig, NodeProcess, RedisOptions, RedisServer, SIGINT, send_signal};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::{Duration, Instant};
use tonic_health::pb::health_check_response::ServingStatus;

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
