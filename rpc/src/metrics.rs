//! Prometheus metrics, served at `/metrics` on `[node] metrics_listen`, following
//! <https://prometheus.io/docs/practices/naming/>: base units (`_seconds`, `_bytes`),
//! `_total` on counters, one label name for an outcome everywhere (`outcome`).
//!
//! Two kinds of series:
//!
//! - **this node's** (`gitflock_*` counters, histograms and gauges, updated where things
//!   happen: worker, lease, membership, chain, mirrors), so `sum()` over the nodes is the
//!   cluster's total;
//! - **the cluster's** task counts (`gitflock_tasks{state}`, `gitflock_tasks_by_type{type}`),
//!   read from Redis at each scrape and exported **by the master only**: every node would
//!   read the same numbers, and `sum()` over the nodes would count each task once per node.
//!   So `sum(gitflock_tasks{state="RUNNING"})` is the number of running tasks, whichever
//!   node is master.
//!
//! Plus `gitflock_build_info{version}` (always 1) and the standard `process_*` metrics of
//! the node process (CPU, memory, file descriptors, start time), read from `/proc`.

use prometheus::{
    Counter, Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::net::SocketAddr;
use std::sync::LazyLock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::store::Store;

pub struct Metrics {
    /// This node's series.
    pub registry: Registry,
    /// The cluster's series, gathered only while this node is master.
    cluster: Registry,
    pub tasks: IntGaugeVec,
    pub tasks_by_type: IntGaugeVec,
    pub dispatch_latency: Histogram,
    /// Its `_count` is the number of runs by type and outcome.
    pub run_duration: HistogramVec,
    pub retries: IntCounter,
    /// Runs in progress on this node (the cluster's RUNNING count is `gitflock_tasks`).
    pub running: IntGauge,
    pub elections_won: IntCounter,
    pub nodes_declared_dead: IntCounter,
    pub tasks_reassigned: IntCounter,
    /// Finished one-off tasks removed by retention (this node as master).
    pub tasks_expired: IntCounter,
    pub epoch: IntGauge,
    pub is_master: IntGauge,
    pub heartbeat_seconds: Histogram,
    pub heartbeat_failures: IntCounter,
    pub chain_entries: IntCounter,
    pub chain_height: IntGauge,
    pub chain_write_seconds: Histogram,
    pub block_pushes: IntCounterVec,
    /// Its `_count{outcome="error"}` is the number of failed mirror runs.
    pub mirror_sync_seconds: HistogramVec,
    pub webhooks: IntCounterVec,
    /// Times this node found that Redis had lost its data (a new incarnation), and made its
    /// standing tasks again.
    pub redis_data_losses: IntCounter,
    process: Process,
}

/// The standard process metrics (as the Prometheus client libraries name them).
struct Process {
    cpu_seconds: Counter,
    resident_memory: Gauge,
    virtual_memory: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
    start_time: Gauge,
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
    r.register(Box::new(m.clone()))
        .expect("metric names are unique");
    m
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn int_counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    reg(r, IntCounter::new(name, help).unwrap())
}

fn int_gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    reg(r, IntGauge::new(name, help).unwrap())
}

fn gauge(r: &Registry, name: &str, help: &str) -> Gauge {
    reg(r, Gauge::new(name, help).unwrap())
}

fn histogram(r: &Registry, name: &str, help: &str) -> Histogram {
    let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
    reg(r, Histogram::with_opts(opts).unwrap())
}

fn histogram_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
    reg(r, HistogramVec::new(opts, labels).unwrap())
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    reg(
        r,
        IntCounterVec::new(Opts::new(name, help), labels).unwrap(),
    )
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    reg(r, IntGaugeVec::new(Opts::new(name, help), labels).unwrap())
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let r = Registry::new();
    let cluster = Registry::new();
    let build = gauge_vec(
        &r,
        "gitflock_build_info",
        "Always 1; the node's version as a label",
        &["version"],
    );
    build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    Metrics {
        tasks: gauge_vec(
            &cluster,
            "gitflock_tasks",
            "Tasks in the cluster by state (exported by the master only)",
            &["state"],
        ),
        tasks_by_type: gauge_vec(
            &cluster,
            "gitflock_tasks_by_type",
            "Tasks in the cluster by type (exported by the master only)",
            &["type"],
        ),
        dispatch_latency: histogram(
            &r,
            "gitflock_dispatch_latency_seconds",
            "From a task being due to its run starting on this node",
        ),
        run_duration: histogram_vec(
            &r,
            "gitflock_run_duration_seconds",
            "Runs finished on this node and their run time, by type and outcome (ok, error, timeout, killed)",
            &["type", "outcome"],
        ),
        retries: int_counter(
            &r,
            "gitflock_task_retries_total",
            "Runs on this node that failed and will be retried",
        ),
        running: int_gauge(
            &r,
            "gitflock_runs_in_progress",
            "Runs in progress on this node now",
        ),
        elections_won: int_counter(
            &r,
            "gitflock_elections_won_total",
            "Times this node became master",
        ),
        nodes_declared_dead: int_counter(
            &r,
            "gitflock_nodes_declared_dead_total",
            "Nodes this node, as master, declared dead (their tasks moved to others)",
        ),
        tasks_reassigned: int_counter(
            &r,
            "gitflock_tasks_reassigned_total",
            "Tasks moved off dead nodes by this node as master",
        ),
        tasks_expired: int_counter(
            &r,
            "gitflock_tasks_expired_total",
            "Finished one-off tasks removed after [tasks] retention by this node as master",
        ),
        epoch: int_gauge(
            &r,
            "gitflock_epoch",
            "The highest master epoch this node has seen",
        ),
        is_master: int_gauge(
            &r,
            "gitflock_is_master",
            "1 while this node holds the master lease",
        ),
        heartbeat_seconds: histogram(
            &r,
            "gitflock_heartbeat_seconds",
            "Round trip of this node's heartbeat to Redis",
        ),
        heartbeat_failures: int_counter(
            &r,
            "gitflock_heartbeat_failures_total",
            "Heartbeats of this node that did not reach Redis",
        ),
        chain_entries: int_counter(
            &r,
            "gitflock_chain_entries_total",
            "Log entries made durable on this node's chain",
        ),
        chain_height: int_gauge(
            &r,
            "gitflock_chain_height",
            "Height of this node's log chain",
        ),
        chain_write_seconds: histogram(
            &r,
            "gitflock_chain_write_seconds",
            "Time to make one group of log entries durable",
        ),
        block_pushes: counter_vec(
            &r,
            "gitflock_block_pushes_total",
            "Block pushes by this node, by outcome (ok, error)",
            &["outcome"],
        ),
        mirror_sync_seconds: histogram_vec(
            &r,
            "gitflock_mirror_sync_seconds",
            "Mirror runs on this node and their time, by outcome (unchanged, changed, error)",
            &["outcome"],
        ),
        webhooks: counter_vec(
            &r,
            "gitflock_webhooks_total",
            "Push webhooks received by this node, by outcome",
            &["outcome"],
        ),
        redis_data_losses: int_counter(
            &r,
            "gitflock_redis_data_losses_total",
            "Times this node found Redis had lost its data (a new incarnation) and made its standing tasks again",
        ),
        process: Process {
            cpu_seconds: reg(
                &r,
                Counter::new(
                    "process_cpu_seconds_total",
                    "User and system CPU time spent in seconds",
                )
                .unwrap(),
            ),
            resident_memory: gauge(
                &r,
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
            ),
            virtual_memory: gauge(
                &r,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
            ),
            open_fds: gauge(&r, "process_open_fds", "Number of open file descriptors"),
            max_fds: gauge(
                &r,
                "process_max_fds",
                "Maximum number of open file descriptors",
            ),
            start_time: gauge(
                &r,
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds",
            ),
        },
        cluster,
        registry: r,
    }
});

/// The text exposition: this node's series, the process's, and, on the master, the
/// cluster's task counts read fresh (left out if Redis does not answer: absent, not stale).
pub async fn render(store: &Store) -> String {
    let m = &*METRICS;
    m.process.refresh();
    let mut families = m.registry.gather();
    if m.is_master.get() == 1
        && let Ok((states, types)) = store.counts().await
    {
        // Two scrapes at once must not interleave one's reset with the other's gather.
        static CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
        m.tasks.reset();
        m.tasks_by_type.reset();
        for (s, n) in states {
            m.tasks.with_label_values(&[&s]).set(n as i64);
        }
        for (t, n) in types {
            m.tasks_by_type.with_label_values(&[&t]).set(n as i64);
        }
        families.extend(m.cluster.gather());
        families.sort_by(|a, b| a.name().cmp(b.name()));
    }
    let mut buf = Vec::new();
    let _ = TextEncoder::new().encode(&families, &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

/// The address to scrape, as `gitflock nodes` shows it: the listen address, its host
/// replaced by the advertised one when it listens on every interface (`0.0.0.0:9100` is
/// no address to dial). Empty when metrics are not served.
pub fn scrape_address(listen: Option<SocketAddr>, advertise: &str) -> String {
    let Some(listen) = listen else {
        return String::new();
    };
    if !listen.ip().is_unspecified() {
        return listen.to_string();
    }
    let host = advertise
        .split_once("://")
        .map_or(advertise, |(_, rest)| rest)
        .rsplit_once(':')
        .map_or("", |(host, _)| host);
    if host.is_empty() || host == "0.0.0.0" || host == "[::]" {
        return listen.to_string();
    }
    format!("{host}:{}", listen.port())
}

impl Process {
    /// Reads `/proc/self` (Linux); elsewhere, or on a read error, the values stay as they were.
    fn refresh(&self) {
        // SAFETY: sysconf only reads a system constant.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
            && let Some(s) = ProcStat::parse(&stat)
            && ticks > 0
        {
            let ticks = ticks as f64;
            let cpu = (s.utime + s.stime) as f64 / ticks;
            let seen = self.cpu_seconds.get();
            if cpu > seen {
                self.cpu_seconds.inc_by(cpu - seen);
            }
            self.resident_memory
                .set((s.rss_pages * page.max(0) as u64) as f64);
            self.virtual_memory.set(s.vsize as f64);
            if let Some(boot) = boot_time() {
                self.start_time
                    .set(boot as f64 + s.start_ticks as f64 / ticks);
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(dir.count() as f64);
        }
        if let Some(max) = max_open_files() {
            self.max_fds.set(max as f64);
        }
    }
}

/// The fields of `/proc/self/stat` the process metrics use.
#[derive(Debug, PartialEq, Eq)]
struct ProcStat {
    utime: u64,
    stime: u64,
    start_ticks: u64,
    vsize: u64,
    rss_pages: u64,
}

impl ProcStat {
    /// The command name (field 2) may hold spaces and parentheses: fields are counted from
    /// the last `)`.
    fn parse(stat: &str) -> Option<ProcStat> {
        let rest = &stat[stat.rfind(')')? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // rest starts at field 3 (state): field n is f[n - 3].
        let n = |i: usize| f.get(i - 3)?.parse::<u64>().ok();
        Some(ProcStat {
            utime: n(14)?,
            stime: n(15)?,
            start_ticks: n(22)?,
            vsize: n(23)?,
            rss_pages: n(24)?,
        })
    }
}

fn boot_time() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn max_open_files() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_fields_are_counted_from_the_last_parenthesis() {
        let line = "4242 (gitflock (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 50 0 0 20 0 9 0 123456 1073741824 2048 18446744073709551615";
        assert_eq!(
            ProcStat::parse(line),
            Some(ProcStat {
                utime: 250,
                stime: 50,
                start_ticks: 123456,
                vsize: 1073741824,
                rss_pages: 2048,
            })
        );
        assert_eq!(ProcStat::parse("garbage"), None);
    }

    #[test]
    fn the_scrape_address_is_one_to_dial() {
        let a = |s: &str| Some(s.parse().unwrap());
        assert_eq!(scrape_address(None, "n1:6666"), "");
        assert_eq!(
            scrape_address(a("127.0.0.1:9666"), "n1:6666"),
            "127.0.0.1:9666"
        );
        assert_eq!(
            scrape_address(a("0.0.0.0:9100"), "node2:6666"),
            "node2:9100"
        );
        assert_eq!(
            scrape_address(a("0.0.0.0:9100"), "https://node2.example:6666"),
            "node2.example:9100"
        );
        assert_eq!(
            scrape_address(a("0.0.0.0:9100"), "0.0.0.0:6666"),
            "0.0.0.0:9100"
        );
    }
}
