//! The dashboard's Prometheus metrics (`gitflock_web_*`), served at `/metrics`.
//!
//! `/metrics` needs the same authentication as the API: a session cookie, or
//! `Authorization: Bearer <cluster token>` (what a Prometheus scrape job sends, with
//! `authorization: {credentials_file: ...}`).

use prometheus::core::Collector;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// Requests by route pattern (e.g. `/tasks/{id}`, so ids do not explode the label set),
    /// method and status.
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    /// gRPC calls that failed, by call and status code.
    pub grpc_errors: IntCounterVec,
    /// Calls answered by another node than the one tried first.
    pub failovers: IntCounter,
    /// WatchTasks streams (re)opened: more than one means the stream moved.
    pub watch_restarts: IntCounter,
    pub sse_clients: IntGauge,
    /// 1 while the WatchTasks stream that feeds live updates is open.
    pub watch_up: IntGauge,
    pub login_failures: IntCounter,
    pub logins_throttled: IntCounter,
    /// Password checks (argon2) running now, and the most that ran at once: bounded by
    /// `auth::PASSWORD_CHECKS` however many logins arrive.
    pub password_checks: IntGauge,
    pub password_checks_peak: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        Metrics {
            requests: registered(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "gitflock_web_requests_total",
                        "HTTP requests by route and status",
                    ),
                    &["route", "method", "status"],
                ),
            ),
            latency: registered(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "gitflock_web_request_duration_seconds",
                        "HTTP request latency by route",
                    )
                    .buckets(vec![
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
                    ]),
                    &["route"],
                ),
            ),
            grpc_errors: registered(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "gitflock_web_grpc_errors_total",
                        "gRPC calls to the nodes that failed, by call and code",
                    ),
                    &["call", "code"],
                ),
            ),
            failovers: counter(
                &r,
                "gitflock_web_node_failovers_total",
                "calls answered by another node than the one tried first",
            ),
            watch_restarts: counter(
                &r,
                "gitflock_web_watch_streams_total",
                "WatchTasks streams opened (reconnections included)",
            ),
            sse_clients: gauge(
                &r,
                "gitflock_web_sse_clients",
                "browsers subscribed to /events now",
            ),
            watch_up: gauge(
                &r,
                "gitflock_web_watch_up",
                "1 while the task change stream from a node is open",
            ),
            login_failures: counter(
                &r,
                "gitflock_web_login_failures_total",
                "login attempts with a wrong password",
            ),
            logins_throttled: counter(
                &r,
                "gitflock_web_login_throttled_total",
                "login attempts refused by the rate limit or while password checks were busy",
            ),
            password_checks: gauge(
                &r,
                "gitflock_web_password_checks",
                "password checks running now",
            ),
            password_checks_peak: gauge(
                &r,
                "gitflock_web_password_checks_peak",
                "the most password checks that ran at once since the start",
            ),
            registry: r,
        }
    }

    pub fn grpc_error(&self, call: &str, code: tonic::Code) {
        self.grpc_errors
            .with_label_values(&[call, &format!("{code:?}")])
            .inc();
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// `metric`, registered in `r` (names are constants: a failure is a bug, found by any test).
fn registered<M: Collector + Clone + 'static>(r: &Registry, metric: prometheus::Result<M>) -> M {
    let m = metric.expect("metric");
    r.register(Box::new(m.clone()))
        .expect("unique metric names");
    m
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    registered(r, IntCounter::new(name, help))
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    registered(r, IntGauge::new(name, help))
}

/// The node pool reports failovers and failed calls here.
impl gitflock_client::Observer for Metrics {
    fn failover(&self) {
        self.failovers.inc();
    }
    fn error(&self, what: &'static str, code: tonic::Code) {
        self.grpc_error(what, code);
    }
}
