//! The node's Prometheus metrics.

use crate::common::*;
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
