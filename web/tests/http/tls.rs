//! The dashboard over nodes that serve gRPC over TLS and ask for client certificates: its
//! `[web] nodes` are `https://`, checked against `[tls] ca`, and it shows the certificate of
//! `[tls] cert` and `key`. Without the CA it does not start.

use crate::common::*;
use gitflock_harness::{CertAuthority, ServeTls, WebConfig};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_reaches_mutual_tls_nodes_with_the_clusters_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertAuthority::create(&dir.path().join("pki"), "web test CA").unwrap();
    let files = ca.issue("node", &["127.0.0.1"]).unwrap();
    let node = gitflock_harness::binary("gitflock-node");
    let cluster = gitflock_harness::Cluster::builder(&node, &dir.path().join("c"), TOKEN)
        .nodes(2)
        .staggered(true)
        .env("RUST_LOG", "info")
        .tls(ServeTls {
            files: files.clone(),
            client_auth: true,
        })
        .ready_timeout(Duration::from_secs(60))
        .start()
        .await
        .unwrap_or_else(|e| panic!("the cluster did not start: {e}"));
    let urls = cluster.urls();
    assert!(urls.iter().all(|u| u.starts_with("https://")), "{urls:?}");

    // https:// nodes and no CA to check them against: a config error at start (exit 2).
    let log = dir.path().join("web-no-ca.log");
    let refused = Web::start(
        WebConfig {
            program: env!("CARGO_BIN_EXE_gitflock-web").into(),
            nodes: urls.clone(),
            token: TOKEN.into(),
            password: PASSWORD.into(),
            listen: ([127, 0, 0, 1], free_port()).into(),
            log: log.clone(),
            env: Vec::new(),
            inherit_env: false,
        },
        Duration::from_secs(20),
    )
    .await;
    assert!(refused.is_err(), "the dashboard started without a CA");
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains("[tls] ca: required"), "{said}");

    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let (ca_file, cert, key) = (path(&files.ca), path(&files.cert), path(&files.key));
    let web = start_web(
        dir.path(),
        &urls,
        &[
            ("GITFLOCK_TLS_CA", &ca_file),
            ("GITFLOCK_TLS_CERT", &cert),
            ("GITFLOCK_TLS_KEY", &key),
        ],
    )
    .await;
    let http = Http::bearer(&web);
    let status = wait_for(
        "the dashboard to see both nodes",
        Duration::from_secs(30),
        || {
            let http = &http;
            async move {
                let (code, v) = http.get_json("/api/v1/status").await.ok()?;
                let alive = v["nodes"]
                    .as_array()?
                    .iter()
                    .filter(|n| n["state"] == "alive");
                (code == 200 && v["master"] == "node1" && alive.count() == 2).then_some(v)
            }
        },
    )
    .await;
    let addr = status["nodes"][0]["addr"].as_str().unwrap_or_default();
    assert!(addr.starts_with("https://127.0.0.1:"), "{status}");
    let id = http.create("echo", "over TLS", "tls", 0).await;
    wait_for("the task to succeed", Duration::from_secs(20), || {
        let (http, id) = (&http, &id);
        async move { (http.task_state(id).await.as_deref() == Some("SUCCEED")).then_some(()) }
    })
    .await;
}
