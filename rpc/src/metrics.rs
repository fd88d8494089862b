//! Prometheus metrics, all named `gitflock_*`, served at `/metrics` on `[node] metrics_listen`.
//!
//! Process-local counters and histograms are updated where things happen (worker, lease,
//! membership, chain); the cluster-wide task counts are read from the store at each scrape,
//! so any node can be scraped for them.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::LazyLock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::store::Store;

pub struct Metrics {
    pub registry: Registry,
    pub tasks: IntGaugeVec,
    pub tasks_by_type: IntGaugeVec,
    pub dispatch_latency: Histogram,
    pub run_duration: HistogramVec,
    pub runs: IntCounterVec,
    pub retries: IntCounter,
    pub running: IntGauge,
    pub elections_won: IntCounter,
    pub nodes_declared_dead: IntCounter,
    pub tasks_reassigned: IntCounter,
    pub epoch: IntGauge,
    pub is_master: IntGauge,
    pub heartbeat_seconds: Histogram,
    pub heartbeat_failures: IntCounter,
    pub chain_entries: IntCounter,
    pub chain_height: IntGauge,
    pub chain_write_seconds: Histogram,
    pub block_pushes: IntCounterVec,
    pub mirror_sync_seconds: HistogramVec,
    pub mirror_failures: IntCounter,
    pub webhooks: IntCounterVec,
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
    r.register(Box::new(m.clone()))
        .expect("metric names are unique");
    m
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let r = Registry::new();
    let h =
        |name: &str, help: &str| HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
    Metrics {
        tasks: reg(
            &r,
            IntGaugeVec::new(
                Opts::new("gitflock_tasks", "Tasks in the cluster by state"),
                &["state"],
            )
            .unwrap(),
        ),
        tasks_by_type: reg(
            &r,
            IntGaugeVec::new(
                Opts::new("gitflock_tasks_by_type", "Tasks in the cluster by type"),
                &["type"],
            )
            .unwrap(),
        ),
        dispatch_latency: reg(
            &r,
            Histogram::with_opts(h(
                "gitflock_dispatch_latency_seconds",
                "From a task being due to its run starting on this node",
            ))
            .unwrap(),
        ),
        run_duration: reg(
            &r,
            HistogramVec::new(
                h(
                    "gitflock_run_duration_seconds",
                    "Run time of tasks on this node",
                ),
                &["type", "outcome"],
            )
            .unwrap(),
        ),
        runs: reg(
            &r,
            IntCounterVec::new(
                Opts::new("gitflock_runs_total", "Runs finished on this node"),
                &["type", "outcome"],
            )
            .unwrap(),
        ),
        retries: reg(
            &r,
            IntCounter::new(
                "gitflock_task_retries_total",
                "Runs on this node that failed and will be retried",
            )
            .unwrap(),
        ),
        running: reg(
            &r,
            IntGauge::new("gitflock_tasks_running", "Tasks running on this node now").unwrap(),
        ),
        elections_won: reg(
            &r,
            IntCounter::new(
                "gitflock_elections_won_total",
                "Times this node became master",
            )
            .unwrap(),
        ),
        nodes_declared_dead: reg(
            &r,
            IntCounter::new(
                "gitflock_failovers_total",
                "Nodes this node, as master, declared dead",
            )
            .unwrap(),
        ),
        tasks_reassigned: reg(
            &r,
            IntCounter::new(
                "gitflock_tasks_reassigned_total",
                "Tasks moved off dead nodes by this master",
            )
            .unwrap(),
        ),
        epoch: reg(
            &r,
            IntGauge::new(
                "gitflock_epoch",
                "The highest master epoch this node has seen",
            )
            .unwrap(),
        ),
        is_master: reg(
            &r,
            IntGauge::new(
                "gitflock_is_master",
                "1 while this node holds the master lease",
            )
            .unwrap(),
        ),
        heartbeat_seconds: reg(
            &r,
            Histogram::with_opts(h(
                "gitflock_heartbeat_seconds",
                "Round trip of this node's heartbeat to Redis",
            ))
            .unwrap(),
        ),
        heartbeat_failures: reg(
            &r,
            IntCounter::new(
                "gitflock_heartbeat_failures_total",
                "Heartbeats that did not reach Redis",
            )
            .unwrap(),
        ),
        chain_entries: reg(
            &r,
            IntCounter::new(
                "gitflock_chain_entries_total",
                "Log entries made durable on this node's chain",
            )
            .unwrap(),
        ),
        chain_height: reg(
            &r,
            IntGauge::new("gitflock_chain_height", "Height of this node's log chain").unwrap(),
        ),
        chain_write_seconds: reg(
            &r,
            Histogram::with_opts(h(
                "gitflock_chain_write_seconds",
                "Time to make one group of log entries durable",
            ))
            .unwrap(),
        ),
        block_pushes: reg(
            &r,
            IntCounterVec::new(
                Opts::new("gitflock_block_pushes_total", "Block pushes by this node"),
                &["result"],
            )
            .unwrap(),
        ),
        mirror_sync_seconds: reg(
            &r,
            HistogramVec::new(
                h(
                    "gitflock_mirror_sync_seconds",
                    "Mirror runs on this node by result (unchanged, changed, error)",
                ),
                &["result"],
            )
            .unwrap(),
        ),
        mirror_failures: reg(
            &r,
            IntCounter::new(
                "gitflock_mirror_failures_total",
                "Mirror runs on this node that failed",
            )
            .unwrap(),
        ),
        webhooks: reg(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "gitflock_webhooks_total",
                    "Push webhooks received by this node",
                ),
                &["result"],
            )
            .unwrap(),
        ),
        registry: r,
    }
});

/// The text exposition, with the cluster's task counts read fresh.
pub async fn render(store: &Store) -> String {
    let m = &*METRICS;
    if let Ok((states, types)) = store.counts().await {
        for (s, n) in states {
            m.tasks.with_label_values(&[&s]).set(n as i64);
        }
        for (t, n) in types {
            m.tasks_by_type.with_label_values(&[&t]).set(n as i64);
        }
    }
    let mut buf = Vec::new();
    let _ = TextEncoder::new().encode(&m.registry.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

/// A minimal HTTP/1.1 endpoint: `GET /metrics` and `GET /healthz`; anything else is 404.
pub async fn serve(listener: tokio::net::TcpListener, store: Store, stop: CancellationToken) {
    loop {
        let (mut sock, _) = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
        };
        let store = store.clone();
        tokio::spawn(async move {
            let mut req = Vec::with_capacity(1024);
            let mut buf = [0u8; 1024];
            // Read the request head (bounded in size and time).
            let head = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 8192 {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
            })
            .await;
            if head.is_err() {
                return;
            }
            let line = String::from_utf8_lossy(&req)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            let (status, ctype, body) = match line.split_whitespace().take(2).collect::<Vec<_>>()[..]
            {
                ["GET", "/metrics"] => {
                    ("200 OK", "text/plain; version=0.0.4", render(&store).await)
                }
                ["GET", "/healthz"] => ("200 OK", "text/plain", "ok\n".to_string()),
                _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}
