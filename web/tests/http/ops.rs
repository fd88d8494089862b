//! Running the dashboard: node failover, the webhook, systemd readiness.

use crate::common::*;
use reqwest::Method;
use std::time::Duration;

#[tokio::test]
async fn the_dashboard_fails_over_when_a_node_dies() {
    let mut c = Cluster::start(2).await;
    let api = Http::bearer(&c.web);
    api.create("echo", "before", "before", 0).await;
    c.cluster.nodes[0].kill9();
    // Every call still answers, through node2.
    for _ in 0..5 {
        let (s, v) = api.get_json("/api/v1/tasks").await.unwrap();
        assert_eq!(s, 200, "{v}");
    }
    let id = api.create("echo", "after", "after", 0).await;
    wait_for(
        "a task created after the failover to finish",
        Duration::from_secs(30),
        || {
            let api = api.clone();
            let id = id.clone();
            async move { (api.task_state(&id).await? == "SUCCEED").then_some(()) }
        },
    )
    .await;
    let (s, m) = api.get_text("/metrics").await;
    assert_eq!(s, 200);
    let failovers: f64 = m
        .lines()
        .find(|l| l.starts_with("gitflock_web_node_failovers_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(failovers >= 1.0, "{m}");
    assert!(
        m.contains(
            "gitflock_web_requests_total{method=\"GET\",route=\"/api/v1/tasks\",status=\"200\"}"
        ),
        "{m}"
    );
    assert!(m.contains("gitflock_web_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn the_webhook_is_open_capped_and_forwarded_to_the_nodes() {
    let c = Cluster::start(1).await;
    let anon = Http::anonymous(&c.web);
    let r = anon
        .req(Method::POST, "/hooks/push")
        .header("x-github-event", "push")
        .body(r#"{"repository":{"clone_url":"https://example.com/a.git"}}"#)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    let v: serde_json::Value = r.json().await.unwrap();
    // No login is asked for: the node answers (401 when the secret does not match, 501 while
    // a node has no Mirrors service, 200 with the sync result).
    assert!(
        !v["error"].as_str().unwrap_or("").contains("login required"),
        "{v}"
    );
    assert!([200, 400, 401, 501].contains(&s), "{s} {v}");
    let big = vec![b'x'; (1 << 20) + 1];
    let r = anon
        .req(Method::POST, "/hooks/push")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

#[tokio::test]
async fn the_dashboard_tells_systemd_when_it_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let web = start_web(
        dir.path(),
        &[format!("http://127.0.0.1:{}", free_port())],
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    )
    .await;
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !(got.iter().any(|m: &String| m == "READY=1") && got.iter().any(|m| m == "WATCHDOG=1")) {
        let n = sock.recv(&mut buf).expect("a notification within 20 s");
        got.push(String::from_utf8_lossy(&buf[..n]).to_string());
    }
    drop(web);
}
