//! TLS and authentication on every hop, on real processes: nodes serving gRPC over TLS with a
//! throwaway CA (made with the `openssl` CLI), the CLI with and without `--ca`, plaintext
//! refused, mutual TLS between nodes, Redis (and its sentinels) over `rediss://` with an ACL
//! password that never shows, and nodes that dial only addresses that came in signed
//! heartbeats.

use crate::common::*;
use gitflock_harness::{
    CertAuthority, NodeConfig, NodeProcess, ServeTls, TlsFiles, TlsRedis, TlsSentinel,
};
use gitflock_proto::v1::TaskState;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The ACL password of the TLS Redis: a text that must appear in no output and no log.
const REDIS_PASSWORD: &str = "rediss-acl-password-7f3a91c2";

/// A CA and one certificate for 127.0.0.1, signed by it, in `dir`.
fn pki(dir: &Path, name: &str) -> (CertAuthority, TlsFiles) {
    let ca = CertAuthority::create(dir, &format!("{name} CA")).unwrap_or_else(|e| panic!("{e}"));
    let files = ca
        .issue(name, &["127.0.0.1"])
        .unwrap_or_else(|e| panic!("{e}"));
    (ca, files)
}

/// `n` nodes (node1 first, so it is master) in `dir` serving gRPC over TLS with `files`;
/// `env` for every node.
async fn tls_cluster(
    dir: &Path,
    n: usize,
    tls: ServeTls,
    env: &[(&str, &str)],
) -> gitflock_harness::Cluster {
    let node = gitflock_harness::binary("gitflock-node");
    gitflock_harness::Cluster::builder(&node, dir, TOKEN)
        .nodes(n)
        .staggered(true)
        .env("RUST_LOG", "info")
        .envs(env)
        .tls(tls)
        .start()
        .await
        .unwrap_or_else(|e| panic!("the TLS cluster did not start: {e}\n{}", logs(dir)))
}

fn logs(dir: &Path) -> String {
    let log = |i| std::fs::read_to_string(dir.join(format!("node{i}.log"))).unwrap_or_default();
    (1..=3)
        .map(|i| format!("--- node{i}\n{}", log(i)))
        .collect()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The CLI as a user runs it: nothing of this process's environment but PATH.
fn gitflock(args: &[&str]) -> Output {
    Command::new(gitflock_harness::binary("gitflock"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GITFLOCK_TOKEN", TOKEN)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Exit 1 with one line on stderr; the line.
fn one_line_error(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
    assert_eq!(out.status.code(), Some(1), "exit 1: {err:?}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("gitflock: "), "{err:?}");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reaches_a_tls_node_only_with_its_ca_and_plaintext_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, node) = pki(&dir.path().join("pki"), "node");
    let (_, stranger) = pki(&dir.path().join("other"), "stranger");
    let tls = ServeTls {
        files: node,
        client_auth: false,
    };
    let cluster = tls_cluster(&dir.path().join("cluster"), 1, tls, &[]).await;
    let url = cluster.nodes[0].url();
    let host_port = url
        .strip_prefix("https://")
        .expect("an https:// node")
        .to_string();
    let ca = path(&ca.cert()).to_string();

    let status: serde_json::Value = serde_json::from_str(&stdout(&gitflock(&[
        "--server", &url, "--ca", &ca, "--json", "status",
    ])))
    .unwrap();
    assert_eq!(status["master"], "node1", "{status}");
    assert_eq!(status["nodes"][0]["addr"], url.as_str(), "{status}");
    // With a CA, a bare host:port means TLS.
    let nodes = stdout(&gitflock(&["--server", &host_port, "--ca", &ca, "nodes"]));
    assert!(nodes.contains("node1"), "{nodes}");

    let e = one_line_error(&gitflock(&["--server", &url, "status"]));
    assert!(e.contains("--ca"), "{e}");
    let other = path(&stranger.ca);
    let e = one_line_error(&gitflock(&["--server", &url, "--ca", other, "status"]));
    assert!(e.contains("not signed by the given CA"), "{e}");
    let e = one_line_error(&gitflock(&[
        "--server",
        &format!("https://localhost:{}", cluster.nodes[0].port()),
        "--ca",
        &ca,
        "status",
    ]));
    assert!(e.contains("does not name the host"), "{e}");

    // Plaintext gets nothing, not even health (which needs no token).
    let e = one_line_error(&gitflock(&[
        "--server",
        &format!("http://{host_port}"),
        "status",
    ]));
    assert!(
        e.contains("serves gRPC over TLS") && e.contains("https://"),
        "{e}"
    );
    let plain = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{host_port}"))
            .unwrap()
            .timeout(Duration::from_secs(5))
            .connect()
            .await
            .ok()?;
        let request = tonic_health::pb::HealthCheckRequest::default();
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        health.check(request).await.ok()
    };
    assert!(plain.await.is_none(), "a plaintext client got an answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_nodes_probe_each_other_and_refuse_clients_without_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, node) = pki(&dir.path().join("pki"), "node");
    let (_, stranger) = pki(&dir.path().join("other"), "stranger");
    let tls = ServeTls {
        files: node.clone(),
        client_auth: true,
    };
    // node1, the master, runs nothing: a task can only run on node2, and node2 gets work only
    // once the master has probed it (AskAlive, over mutual TLS) and admitted it.
    let no_work = [("GITFLOCK_NODE_CONCURRENCY", "0")];
    let mut cluster = tls_cluster(&dir.path().join("cluster"), 1, tls, &no_work).await;
    if let Err(e) = cluster
        .add_node(&[("GITFLOCK_NODE_CONCURRENCY", "2")])
        .await
    {
        panic!("{e}\n{}", cluster.logs());
    }
    let mut c = cluster.nodes[0].client().await.unwrap();
    let task = create(&mut c, echo("over mutual TLS")).await;
    let done = wait_state(&c, &task.id, TaskState::Succeed, Duration::from_secs(20)).await;
    assert_eq!(done.results[0].node, "node2");

    let url = cluster.nodes[0].url();
    let ca = path(&ca.cert()).to_string();
    let e = one_line_error(&gitflock(&["--server", &url, "--ca", &ca, "status"]));
    assert!(e.contains("client certificate"), "{e}");
    let (cert, key) = (path(&stranger.cert), path(&stranger.key));
    let e = one_line_error(&gitflock(&[
        "--server", &url, "--ca", &ca, "--cert", cert, "--key", key, "status",
    ]));
    assert!(e.contains("this client's certificate"), "{e}");
    let (cert, key) = (path(&node.cert), path(&node.key));
    let status = stdout(&gitflock(&[
        "--server", &url, "--ca", &ca, "--cert", cert, "--key", key, "status",
    ]));
    assert!(status.contains("master: node1"), "{status}");

    let ca_only = gitflock_client::Tls::from_files(Some(&node.ca), None, None).unwrap();
    let refused = gitflock_client::Client::connect_with(&url, TOKEN, None, &ca_only).await;
    let e = refused
        .err()
        .expect("a client without a certificate is refused")
        .0;
    assert!(e.contains("client certificate"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_over_tls_with_an_acl_password_that_never_shows() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, redis_cert) = pki(&dir.path().join("pki"), "redis");
    let (stranger, _) = pki(&dir.path().join("other"), "stranger");
    let redis = TlsRedis::start(&dir.path().join("redis"), &redis_cert, REDIS_PASSWORD)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let node = gitflock_harness::binary("gitflock-node");
    let cluster = gitflock_harness::Cluster::builder(&node, &dir.path().join("c"), TOKEN)
        .redis_url(&redis.url())
        .env("GITFLOCK_REDIS_TLS_CA", path(&ca.cert()))
        .env("RUST_LOG", "info")
        .start()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&dir.path().join("c"))));
    let mut c = cluster.nodes[0].client().await.unwrap();
    let task = create(&mut c, echo("through rediss")).await;
    wait_state(&c, &task.id, TaskState::Succeed, Duration::from_secs(20)).await;

    let url = cluster.nodes[0].url();
    for args in [&["status"][..], &["--json", "status"], &["nodes"]] {
        let out = gitflock(&[&["--server", &url][..], args].concat());
        let shown = stdout(&out) + &String::from_utf8_lossy(&out.stderr);
        assert!(
            !shown.contains(REDIS_PASSWORD),
            "{args:?} shows it: {shown}"
        );
    }

    // A node that does not trust the Redis server's CA says why, and still not the password.
    let port = free_port();
    let wrong_ca = NodeProcess::spawn(NodeConfig {
        program: node,
        name: "node9".into(),
        port,
        data_dir: dir.path().join("node9"),
        log: dir.path().join("node9.log"),
        redis_url: redis.url(),
        token: TOKEN.into(),
        serve_port: Some(free_port()),
        env: vec![(
            "GITFLOCK_REDIS_TLS_CA".into(),
            path(&stranger.cert()).into(),
        )],
        ..NodeConfig::default()
    })
    .unwrap();
    let said = wait_for(
        "node9 to say why Redis is out of reach",
        Duration::from_secs(15),
        || {
            let log = wrong_ca.log_text();
            async move { log.contains("cannot reach redis yet").then_some(log) }
        },
    )
    .await;
    assert!(said.contains("not signed by [redis] tls_ca"), "{said}");
    for log in [said, cluster.nodes[0].log_text()] {
        assert!(!log.contains(REDIS_PASSWORD), "a log shows it: {log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_rediss_the_sentinels_are_asked_over_tls_too() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, redis_cert) = pki(&dir.path().join("pki"), "redis");
    let redis = TlsRedis::start(&dir.path().join("redis"), &redis_cert, REDIS_PASSWORD)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let sentinel = TlsSentinel::start(&dir.path().join("sentinel"), &redis_cert, &redis, "gf")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // With sentinels the URL gives only user, password and database (port 1: nothing there),
    // and rediss:// means TLS to the sentinels (which speak nothing else) and to the primary.
    let url = format!("rediss://gitflock:{REDIS_PASSWORD}@127.0.0.1:1/0");
    let node = gitflock_harness::binary("gitflock-node");
    let cluster = gitflock_harness::Cluster::builder(&node, &dir.path().join("c"), TOKEN)
        .redis_url(&url)
        .env("GITFLOCK_REDIS_SENTINELS", sentinel.addr())
        .env("GITFLOCK_REDIS_SENTINEL_MASTER", "gf")
        .env("GITFLOCK_REDIS_TLS_CA", path(&ca.cert()))
        .env("RUST_LOG", "info")
        .start()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&dir.path().join("c"))));
    let mut c = cluster.nodes[0].client().await.unwrap();
    let task = create(&mut c, echo("through a TLS sentinel")).await;
    wait_state(&c, &task.id, TaskState::Succeed, Duration::from_secs(20)).await;
    assert!(!cluster.logs().contains(REDIS_PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_dial_only_addresses_that_came_in_signed_heartbeats() {
    let cluster = Cluster::start(1).await;
    // A presence record written straight into Redis (no signed heartbeat ever named it),
    // pointing at a port this test watches: a probe carries the cluster token.
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let trap_addr = trap.local_addr().unwrap().to_string();
    let dialled = Arc::new(AtomicUsize::new(0));
    let counter = dialled.clone();
    tokio::spawn(async move {
        while trap.accept().await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let mut con = cluster.redis.conn();
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query(&mut con).unwrap();
    let now = secs * 1000 + micros / 1000;
    let k = keys();
    let mut hset = redis::cmd("HSET");
    hset.arg(k.node_info("ghost")).arg("last").arg(now);
    for (field, value) in [
        ("addr", trap_addr.as_str()),
        ("concurrency", "4"),
        ("running", "0"),
        ("version", "0"),
        ("epoch", "0"),
        ("leaving", "0"),
        ("metrics", ""),
    ] {
        hset.arg(field).arg(value);
    }
    let _: () = hset.query(&mut con).unwrap();
    let _: () = redis::cmd("ZADD")
        .arg(k.nodes())
        .arg(now)
        .arg("ghost")
        .query(&mut con)
        .unwrap();
    // The master takes it for a member, cannot admit it, and declares it dead once silent.
    wait_for(
        "the master to declare ghost dead",
        Duration::from_secs(15),
        || {
            let dead: Option<String> = redis::cmd("HGET")
                .arg(k.node_info("ghost"))
                .arg("dead")
                .query(&mut cluster.redis.conn())
                .unwrap();
            async move { (dead.as_deref() == Some("1")).then_some(()) }
        },
    )
    .await;
    assert_eq!(
        dialled.load(Ordering::SeqCst),
        0,
        "the master dialled an address only Redis named"
    );
}
