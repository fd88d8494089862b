//! `gitflock-bench`: the load driver behind `bench/run.sh dispatch`, `failover` and `chain`.
//!
//! For `dispatch`, it measures how fast one node moves no-op (`echo`) tasks through the
//! cluster, with the same definitions as the Celery baseline's `drive.py` so the two can be put
//! side by side:
//!
//! - `fill`: enqueue throughput, N CreateTask calls from 16 concurrent clients;
//! - `drain`: drain throughput, N / (last run's end − first run's start), read from the results;
//! - `rate`: create→start latency (p50, p99, max) of N tasks created open loop at R per second;
//! - `ready`: waits until the node answers Status and some node holds the master lease.
//!
//! `failover` runs a whole cluster itself (it spawns the `gitflock-node` processes, so that it
//! can kill -9 and restart them): the master is killed over and over under a steady task load,
//! then the cluster soaks with both cores kept busy and no kills (see [`failover`]).
//!
//! `chain` streams log entries through `Chain.WriteLogs` and checks the chain afterwards (see
//! [`chain`]).
//!
//! Results are `key=value` lines on stdout; progress goes to stderr.

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use gitflock_client::Client;
use gitflock_proto::v1::{
    CreateTaskRequest, Empty, GetTaskRequest, ListTasksRequest, LogEntry, ReadLogsRequest, Task,
    TaskState, VerifyRequest,
};
use std::collections::HashSet;
use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, MissedTickBehavior, interval, sleep, sleep_until};

/// Concurrent clients (one connection each) used by `fill`.
const FILL_CLIENTS: usize = 16;
/// How often `drain` and `rate` look at the task counts.
const POLL: Duration = Duration::from_millis(20);
/// The longest wait for the tasks to succeed.
const FINISH_DEADLINE: Duration = Duration::from_secs(600);
/// The longest wait for a node to answer.
const READY_DEADLINE: Duration = Duration::from_secs(30);
/// Per-call timeout.
const RPC_TIMEOUT: Duration = Duration::from_secs(30);
/// ListTasks' largest page.
const PAGE_SIZE: u32 = 1000;
/// The master lease: `"<node> <epoch>"` (default Redis prefix).
const LEASE_KEY: &str = "gitflock:lease";
/// How often `failover` reads the lease.
const LEASE_POLL: Duration = Duration::from_millis(5);
/// The longest wait for another node to take the lease after a kill.
const FAILOVER_DEADLINE: Duration = Duration::from_secs(30);
/// Per-call timeout of the load's CreateTask calls.
const CREATE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one CreateTask keeps being retried (on the other nodes) before it is given up.
const CREATE_DEADLINE: Duration = Duration::from_secs(60);
/// The longest wait, after the load stopped, for its tasks to succeed.
const LOAD_FINISH_DEADLINE: Duration = Duration::from_secs(180);

#[derive(Parser)]
#[command(
    name = "gitflock-bench",
    about = "Load driver for gitflock's benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Args)]
struct Target {
    /// The node to talk to, like http://127.0.0.1:6666.
    #[arg(long)]
    server: String,
    /// The cluster token.
    #[arg(long, env = "GITFLOCK_TOKEN", hide_env_values = true)]
    token: String,
}

#[derive(Subcommand)]
enum Mode {
    /// Wait until the node answers and a master is elected.
    Ready {
        #[command(flatten)]
        target: Target,
    },
    /// Create N echo tasks as fast as 16 clients can; prints enqueue_tasks_per_s.
    Fill {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        n: usize,
    },
    /// Wait until N tasks succeeded; prints drain_tasks_per_s (first start to last end).
    Drain {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        n: usize,
    },
    /// Create N echo tasks at a fixed rate; prints their create→start latency percentiles.
    Rate {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        n: usize,
        /// Tasks created per second.
        #[arg(long)]
        rate: f64,
    },
    /// Run a cluster, kill -9 its master over and over under load, then soak it with busy
    /// cores; prints failover times, lost tasks and false failovers.
    Failover(FailoverArgs),
    /// Stream N log entries through Chain.WriteLogs, then read and verify the chain; prints
    /// entries_per_s.
    Chain {
        #[command(flatten)]
        target: Target,
        /// Entries in all.
        #[arg(long)]
        n: usize,
        /// Concurrent clients (one connection each).
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Entries per WriteLogs stream.
        #[arg(long, default_value_t = 5000)]
        batch: usize,
    },
}

#[derive(Args)]
struct FailoverArgs {
    /// The gitflock-node binary.
    #[arg(long)]
    node_bin: PathBuf,
    /// The cluster's (private) Redis, like redis://127.0.0.1:6379/0.
    #[arg(long)]
    redis_url: String,
    /// A directory for the nodes' data dirs and logs.
    #[arg(long)]
    dir: PathBuf,
    /// The cluster token.
    #[arg(long, env = "GITFLOCK_TOKEN", hide_env_values = true)]
    token: String,
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Each node's concurrency.
    #[arg(long, default_value_t = 4)]
    concurrency: u32,
    /// Master kills.
    #[arg(long, default_value_t = 20)]
    kills: usize,
    /// `sleep` tasks created per second, the whole time.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// The `sleep` tasks' target.
    #[arg(long, default_value = "20ms")]
    sleep: String,
    /// Least time from a restart to the next kill (the restarted node must also answer).
    #[arg(long, default_value_t = 2.0)]
    settle_secs: f64,
    /// Up to this much more (uniformly drawn) before each kill, so that kills do not fall at
    /// the same point of the master's renewal cycle every time.
    #[arg(long, default_value_t = 1000)]
    kill_jitter_ms: u64,
    /// Length of the soak (no kills, busy cores); 0 skips it.
    #[arg(long, default_value_t = 300)]
    soak_secs: u64,
    /// CPU burners (`sh -c 'while :; do :; done'`) during the soak.
    #[arg(long, default_value_t = 2)]
    burners: usize,
    /// The nodes' RUST_LOG.
    #[arg(long, default_value = "info")]
    node_log: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    let run = async {
        match Cli::parse().mode {
            Mode::Ready { target } => ready(&target).await,
            Mode::Fill { target, n } => fill(&target, n).await,
            Mode::Drain { target, n } => drain(&target, n).await,
            Mode::Rate { target, n, rate } => open_loop(&target, n, rate).await,
            Mode::Failover(a) => failover(&a).await,
            Mode::Chain {
                target,
                n,
                clients,
                batch,
            } => chain(&target, n, clients, batch).await,
        }
    };
    // On SIGINT or SIGTERM the run is dropped, which kills the processes it spawned (nodes and
    // burners are spawned with kill_on_drop).
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = run => r,
        _ = tokio::signal::ctrl_c() => bail!("interrupted"),
        _ = term.recv() => bail!("terminated"),
    }
}

async fn connect(t: &Target, timeout: Duration) -> Result<Client> {
    Client::connect(&t.server, &t.token, Some(timeout))
        .await
        .map_err(|e| anyhow!("{e}"))
}

fn echo(i: usize) -> CreateTaskRequest {
    CreateTaskRequest {
        r#type: "echo".into(),
        target: format!("bench {i}"),
        ..Default::default()
    }
}

async fn ready(t: &Target) -> Result<()> {
    answers(&t.server, &t.token, true).await
}

/// Waits until the node at `server` answers Status (and, with `master`, names a master).
async fn answers(server: &str, token: &str, master: bool) -> Result<()> {
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        let why = match Client::connect(server, token, Some(Duration::from_secs(2))).await {
            Ok(mut c) => match c.nodes.status(Empty {}).await {
                Ok(s) if !master || !s.get_ref().master.is_empty() => return Ok(()),
                Ok(_) => "no master yet".to_string(),
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        if Instant::now() > deadline {
            bail!("{server} not ready after {READY_DEADLINE:?}: {why}");
        }
        sleep(Duration::from_millis(100)).await;
    }
}

async fn fill(t: &Target, n: usize) -> Result<()> {
    let mut clients = Vec::with_capacity(FILL_CLIENTS);
    for _ in 0..FILL_CLIENTS {
        clients.push(connect(t, RPC_TIMEOUT).await?);
    }
    let t0 = Instant::now();
    let mut creators = JoinSet::new();
    for (k, mut c) in clients.into_iter().enumerate() {
        creators.spawn(async move {
            for i in (k..n).step_by(FILL_CLIENTS) {
                c.tasks.create_task(echo(i)).await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(r) = creators.join_next().await {
        r??;
    }
    let secs = t0.elapsed().as_secs_f64();
    eprintln!("fill: created {n} tasks in {secs:.2} s");
    println!("enqueue_tasks_per_s={:.0}", n as f64 / secs);
    Ok(())
}

async fn drain(t: &Target, n: usize) -> Result<()> {
    let mut c = connect(t, RPC_TIMEOUT).await?;
    wait_succeeded(&mut c, n as u64).await?;
    let (mut first_start, mut last_end, mut seen) = (i64::MAX, i64::MIN, 0usize);
    each_succeeded(&mut c, |task| {
        seen += 1;
        for r in &task.results {
            first_start = first_start.min(r.started_at);
            last_end = last_end.max(r.finished_at);
        }
        true
    })
    .await?;
    if seen < n || first_start > last_end {
        bail!("listed {seen} succeeded tasks (with results), expected {n}");
    }
    // Times are whole milliseconds: count a span of 0 as 1 ms.
    let secs = (last_end - first_start).max(1) as f64 / 1000.0;
    eprintln!("drain: {n} tasks from first start to last end in {secs:.3} s");
    println!("drain_tasks_per_s={:.0}", n as f64 / secs);
    Ok(())
}

/// Open loop: the i-th task is sent at t0 + i/rate whatever happened to the earlier ones, so a
/// slow node shows up as latency rather than as a lower offered rate.
async fn open_loop(t: &Target, n: usize, rate: f64) -> Result<()> {
    if n == 0 || rate <= 0.0 {
        bail!("--n and --rate must be positive");
    }
    let mut c = connect(t, RPC_TIMEOUT).await?;
    let before = count(&mut c, TaskState::Succeed).await?;
    let t0 = Instant::now();
    let mut creators = JoinSet::new();
    for i in 0..n {
        sleep_until(t0 + Duration::from_secs_f64(i as f64 / rate)).await;
        let mut tasks = c.tasks.clone();
        creators.spawn(async move { Ok::<_, anyhow::Error>(tasks.create_task(echo(i)).await?) });
    }
    let mut ids = HashSet::with_capacity(n);
    while let Some(r) = creators.join_next().await {
        ids.insert(r??.into_inner().id);
    }
    eprintln!(
        "rate: created {n} tasks in {:.2} s (asked {rate}/s)",
        t0.elapsed().as_secs_f64()
    );
    wait_succeeded(&mut c, before + n as u64).await?;
    // Results are newest first: the last one is the task's first run.
    let mut lat_ms = Vec::with_capacity(n);
    each_succeeded(&mut c, |task| {
        if ids.contains(&task.id)
            && let Some(run) = task.results.last()
        {
            lat_ms.push((run.started_at - task.created_at) as f64);
        }
        lat_ms.len() < ids.len()
    })
    .await?;
    if lat_ms.len() < ids.len() {
        bail!(
            "found {} of the {} tasks with results",
            lat_ms.len(),
            ids.len()
        );
    }
    lat_ms.sort_by(f64::total_cmp);
    println!("rate_per_s={rate:.0}");
    println!("create_to_start_p50_ms={:.2}", pct(&lat_ms, 0.50));
    println!("create_to_start_p99_ms={:.2}", pct(&lat_ms, 0.99));
    println!("create_to_start_max_ms={:.2}", lat_ms[lat_ms.len() - 1]);
    Ok(())
}

/// The percentile as drive.py takes it: `sorted[min(len - 1, int(p * len))]`.
fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[(sorted.len() - 1).min((p * sorted.len() as f64) as usize)]
}

async fn count(c: &mut Client, state: TaskState) -> Result<u64> {
    let s = c.nodes.status(Empty {}).await?.into_inner();
    Ok(s.counts.get(state.as_str_name()).copied().unwrap_or(0))
}

/// Polls Status until at least `target` tasks are SUCCEED; fails fast if any task failed or
/// was killed (an echo task never should), and after [`FINISH_DEADLINE`].
async fn wait_succeeded(c: &mut Client, target: u64) -> Result<()> {
    let t0 = Instant::now();
    let mut said = t0;
    loop {
        let s = c.nodes.status(Empty {}).await?.into_inner();
        let get = |state: TaskState| s.counts.get(state.as_str_name()).copied().unwrap_or(0);
        let done = get(TaskState::Succeed);
        if done >= target {
            return Ok(());
        }
        let failed = get(TaskState::RuntimeError) + get(TaskState::Killed);
        if failed > 0 {
            bail!("{failed} tasks ended RUNTIME_ERROR or KILLED");
        }
        if t0.elapsed() > FINISH_DEADLINE {
            bail!("only {done} of {target} tasks SUCCEED after {FINISH_DEADLINE:?}");
        }
        if said.elapsed() >= Duration::from_secs(5) {
            eprintln!("  {done}/{target} SUCCEED");
            said = Instant::now();
        }
        sleep(POLL).await;
    }
}

/// Calls `f` on every SUCCEED task, with its results, newest first, until `f` returns false.
async fn each_succeeded(c: &mut Client, f: impl FnMut(&Task) -> bool) -> Result<()> {
    each_listed(c, true, f).await
}

/// Calls `f` on every SUCCEED task, newest first, until `f` returns false.
async fn each_listed(
    c: &mut Client,
    with_results: bool,
    mut f: impl FnMut(&Task) -> bool,
) -> Result<()> {
    let mut page_token = String::new();
    loop {
        let page = c
            .tasks
            .list_tasks(ListTasksRequest {
                states: vec![TaskState::Succeed as i32],
                page_size: PAGE_SIZE,
                page_token,
                with_results,
                ..Default::default()
            })
            .await?
            .into_inner();
        for task in &page.tasks {
            if !f(task) {
                return Ok(());
            }
        }
        if page.next_page_token.is_empty() {
            return Ok(());
        }
        page_token = page.next_page_token;
    }
}

// ---- failover ----

/// One `gitflock-node` process that `failover` runs, kills and restarts (same name, port and
/// data dir each time).
struct NodeProc {
    name: String,
    port: u16,
    data: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl NodeProc {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self, a: &FailoverArgs) -> Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let child = Command::new(&a.node_bin)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or("/tmp".into()))
            .env("RUST_LOG", &a.node_log)
            .env("GITFLOCK_NODE_NAME", &self.name)
            .env("GITFLOCK_NODE_DATA_DIR", &self.data)
            .env(
                "GITFLOCK_NODE_GRPC_LISTEN",
                format!("127.0.0.1:{}", self.port),
            )
            .env("GITFLOCK_REDIS_URL", &a.redis_url)
            .env("GITFLOCK_CLUSTER_TOKEN", &a.token)
            .env("GITFLOCK_NODE_CONCURRENCY", a.concurrency.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", a.node_bin.display()))?;
        self.child = Some(child);
        Ok(())
    }
}

/// A uniformly drawn duration in [0, max).
fn jitter(max: Duration) -> Duration {
    use std::hash::BuildHasher;
    // Each RandomState has fresh random keys: hashing anything gives a random u64.
    let r = std::collections::hash_map::RandomState::new().hash_one(0u8);
    max.mul_f64((r >> 11) as f64 / (1u64 << 53) as f64)
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The lease's holder and epoch; None while nobody holds it.
async fn lease(r: &mut redis::aio::MultiplexedConnection) -> Result<Option<(String, u64)>> {
    let v: Option<String> = redis::cmd("GET").arg(LEASE_KEY).query_async(r).await?;
    let Some(v) = v else { return Ok(None) };
    let parsed = v
        .split_once(' ')
        .and_then(|(n, e)| Some((n.to_string(), e.parse().ok()?)));
    match parsed {
        Some(l) => Ok(Some(l)),
        None => bail!("{LEASE_KEY} holds {v:?}, not \"<node> <epoch>\""),
    }
}

/// Waits until some node holds the lease.
async fn some_lease(r: &mut redis::aio::MultiplexedConnection) -> Result<(String, u64)> {
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        if let Some(l) = lease(r).await? {
            return Ok(l);
        }
        if Instant::now() > deadline {
            bail!("nobody took the master lease within {READY_DEADLINE:?}");
        }
        sleep(LEASE_POLL).await;
    }
}

/// A steady open-loop load of `sleep` tasks, created round-robin through the live nodes.
struct Load {
    stop: Arc<AtomicBool>,
    retries: Arc<AtomicU64>,
    handle: JoinHandle<LoadReport>,
}

struct LoadReport {
    /// The ids of the created tasks (one per acknowledged CreateTask, distinct request ids).
    ids: Vec<String>,
    /// Creates given up after [`CREATE_DEADLINE`].
    failed: usize,
}

impl Load {
    /// Starts creating tasks at `rate` per second; the i-th one has request_id `<tag>-<i>`.
    fn start(
        clients: Arc<Vec<Client>>,
        live: Arc<Vec<AtomicBool>>,
        rate: f64,
        target: String,
        tag: String,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let retries = Arc::new(AtomicU64::new(0));
        let (stop2, retries2) = (stop.clone(), retries.clone());
        let handle = tokio::spawn(async move {
            let mut report = LoadReport {
                ids: Vec::new(),
                failed: 0,
            };
            let mut collect = |r: Result<Result<String>, tokio::task::JoinError>| match r {
                Ok(Ok(id)) => report.ids.push(id),
                Ok(Err(e)) => {
                    eprintln!("load: {e:#}");
                    report.failed += 1;
                }
                Err(e) => {
                    eprintln!("load: a create task panicked: {e}");
                    report.failed += 1;
                }
            };
            let t0 = Instant::now();
            let mut creates = JoinSet::new();
            let mut i = 0usize;
            while !stop2.load(Ordering::Relaxed) {
                sleep_until(t0 + Duration::from_secs_f64(i as f64 / rate)).await;
                let req = CreateTaskRequest {
                    r#type: "sleep".into(),
                    target: target.clone(),
                    request_id: format!("{tag}-{i}"),
                    ..Default::default()
                };
                creates.spawn(create_anywhere(
                    clients.clone(),
                    live.clone(),
                    retries2.clone(),
                    req,
                    i,
                ));
                i += 1;
                while let Some(r) = creates.try_join_next() {
                    collect(r);
                }
            }
            while let Some(r) = creates.join_next().await {
                collect(r);
            }
            report
        });
        Load {
            stop,
            retries,
            handle,
        }
    }

    async fn stop(self) -> Result<(LoadReport, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        let report = self.handle.await?;
        Ok((report, self.retries.load(Ordering::Relaxed)))
    }
}

/// CreateTask through node `first % n`, else through the next live ones, until one acknowledges
/// it. The request_id makes a retry of a create that did happen return the same task.
async fn create_anywhere(
    clients: Arc<Vec<Client>>,
    live: Arc<Vec<AtomicBool>>,
    retries: Arc<AtomicU64>,
    req: CreateTaskRequest,
    first: usize,
) -> Result<String> {
    let n = clients.len();
    let deadline = Instant::now() + CREATE_DEADLINE;
    let mut k = first;
    let mut last = String::from("no live node");
    loop {
        for _ in 0..n {
            let j = k % n;
            k += 1;
            if !live[j].load(Ordering::Relaxed) {
                continue;
            }
            let mut tasks = clients[j].tasks.clone();
            match tasks.create_task(req.clone()).await {
                Ok(t) => return Ok(t.into_inner().id),
                Err(e) => {
                    retries.fetch_add(1, Ordering::Relaxed);
                    last = format!("node {j}: {:?}: {}", e.code(), e.message());
                }
            }
        }
        if Instant::now() > deadline {
            bail!(
                "request {}: no node acknowledged it within {CREATE_DEADLINE:?}; last error: {last}",
                req.request_id
            );
        }
        sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (at most [`LOAD_FINISH_DEADLINE`]) until every task of `ids` is SUCCEED; returns the
/// ones that are not, with their state.
async fn not_succeeded(c: &mut Client, ids: &[String]) -> Result<Vec<(String, String)>> {
    let t0 = Instant::now();
    let mut said = t0;
    loop {
        let mut missing: HashSet<&str> = ids.iter().map(String::as_str).collect();
        each_listed(c, false, |t| {
            missing.remove(t.id.as_str());
            !missing.is_empty()
        })
        .await?;
        // Pages can shift while tasks finish: look at the few left one by one.
        let mut left = Vec::new();
        let mut pending = missing.len();
        if missing.len() <= 500 {
            for id in missing {
                let state = match c.tasks.get_task(GetTaskRequest { id: id.into() }).await {
                    Ok(t) if t.get_ref().state() == TaskState::Succeed => continue,
                    Ok(t) => t.get_ref().state().as_str_name().to_string(),
                    Err(e) => format!("unreadable ({:?}: {})", e.code(), e.message()),
                };
                left.push((id.to_string(), state));
            }
            let settled = left
                .iter()
                .all(|(_, s)| s == "RUNTIME_ERROR" || s == "KILLED");
            if left.is_empty() || settled || t0.elapsed() > LOAD_FINISH_DEADLINE {
                return Ok(left);
            }
            pending = left.len();
        } else if t0.elapsed() > LOAD_FINISH_DEADLINE {
            return Ok(missing
                .into_iter()
                .map(|id| (id.to_string(), "not SUCCEED".to_string()))
                .collect());
        }
        if said.elapsed() >= Duration::from_secs(5) {
            eprintln!("  {pending} of {} tasks not SUCCEED yet", ids.len());
            said = Instant::now();
        }
        sleep(Duration::from_secs(1)).await;
    }
}

/// Stops the load and counts its tasks that did not end SUCCEED.
async fn finish_load(what: &str, load: Load, clients: &[Client]) -> Result<(usize, usize, u64)> {
    let (report, retries) = load.stop().await?;
    let distinct: HashSet<&String> = report.ids.iter().collect();
    if distinct.len() != report.ids.len() {
        eprintln!(
            "{what}: {} acknowledged creates gave only {} distinct task ids",
            report.ids.len(),
            distinct.len()
        );
    }
    eprintln!(
        "{what}: {} tasks created ({} CreateTask calls retried, {} creates given up); waiting \
         for them to succeed",
        report.ids.len(),
        retries,
        report.failed
    );
    let mut c = clients[0].clone();
    let left = not_succeeded(&mut c, &report.ids).await?;
    for (id, state) in left.iter().take(20) {
        eprintln!("{what}: task {id} is {state}");
    }
    Ok((report.ids.len(), left.len() + report.failed, retries))
}

/// The failover benchmark.
///
/// 1. `nodes` nodes on one Redis, a steady load of `sleep` tasks (`rate` per second, each
///    CreateTask retried on another node until one acknowledges it).
/// 2. `kills` times: read the master from the lease, kill -9 it, time how long until the lease
///    names another node (read every 5 ms), restart the killed node (same name, port and data
///    dir), wait until it answers and `settle_secs` plus a random 0..`kill_jitter_ms` passed
///    (without the jitter, the kills fell at the same point of the new master's renewal cycle
///    each time, and the times with them).
/// 3. Stop the load; every created task must end SUCCEED (`lost_tasks` counts those that do
///    not, and creates given up).
/// 4. Soak: `burners` busy loops keep the cores busy for `soak_secs` while the same load runs
///    and nobody is killed; every change of the lease's epoch is a false failover.
async fn failover(a: &FailoverArgs) -> Result<()> {
    if a.nodes < 2 || a.rate <= 0.0 {
        bail!("--nodes must be at least 2 and --rate positive");
    }
    let total = Duration::from_secs(600 + 120 * a.kills as u64 + 2 * a.soak_secs);
    tokio::time::timeout(total, failover_run(a))
        .await
        .map_err(|_| anyhow!("the failover benchmark did not finish within {total:?}"))?
}

async fn failover_run(a: &FailoverArgs) -> Result<()> {
    let mut red = redis::Client::open(a.redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await
        .context("connecting to redis")?;
    let mut nodes = Vec::with_capacity(a.nodes);
    for i in 1..=a.nodes {
        let name = format!("node{i}");
        let mut n = NodeProc {
            port: free_port()?,
            data: a.dir.join(&name),
            log: a.dir.join(format!("{name}.log")),
            name,
            child: None,
        };
        n.spawn(a)?;
        nodes.push(n);
    }
    let mut clients = Vec::with_capacity(a.nodes);
    for n in &nodes {
        answers(&n.url(), &a.token, false).await?;
        clients.push(
            Client::connect(&n.url(), &a.token, Some(CREATE_TIMEOUT))
                .await
                .map_err(|e| anyhow!("{e}"))?,
        );
    }
    let clients = Arc::new(clients);
    let live: Arc<Vec<AtomicBool>> =
        Arc::new((0..a.nodes).map(|_| AtomicBool::new(true)).collect());
    let (first, epoch) = some_lease(&mut red).await?;
    eprintln!(
        "failover: {} nodes up, master {first} (epoch {epoch})",
        a.nodes
    );

    // Phase 1: kills under load.
    let run = std::process::id();
    let load = Load::start(
        clients.clone(),
        live.clone(),
        a.rate,
        a.sleep.clone(),
        format!("failover-{run}"),
    );
    sleep(Duration::from_secs(2)).await;
    let settle = Duration::from_secs_f64(a.settle_secs);
    let mut took_ms = Vec::with_capacity(a.kills);
    for k in 1..=a.kills {
        let (master, epoch) = some_lease(&mut red).await?;
        let i = nodes
            .iter()
            .position(|n| n.name == master)
            .ok_or_else(|| anyhow!("the lease names {master:?}, not one of this run's nodes"))?;
        live[i].store(false, Ordering::Relaxed);
        let mut child = nodes[i].child.take().expect("a running master");
        child.start_kill()?;
        let killed = Instant::now();
        let mut tick = interval(LEASE_POLL);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let (new, new_epoch, took) = loop {
            tick.tick().await;
            let l = lease(&mut red).await?;
            let at = killed.elapsed();
            if let Some((holder, e)) = l
                && holder != master
            {
                break (holder, e, at);
            }
            if at > FAILOVER_DEADLINE {
                bail!("kill {k}: no other node took the lease within {FAILOVER_DEADLINE:?}");
            }
        };
        child.wait().await?;
        let ms = took.as_secs_f64() * 1000.0;
        took_ms.push(ms);
        eprintln!(
            "kill {k}/{}: master {master} (epoch {epoch}) killed; {new} (epoch {new_epoch}) took \
             over in {ms:.0} ms",
            a.kills
        );
        if new_epoch <= epoch {
            eprintln!("kill {k}: the new epoch {new_epoch} is not above {epoch}");
        }
        let restarted = Instant::now();
        nodes[i].spawn(a)?;
        answers(&nodes[i].url(), &a.token, false).await?;
        live[i].store(true, Ordering::Relaxed);
        sleep_until(restarted + settle + jitter(Duration::from_millis(a.kill_jitter_ms))).await;
    }
    let (tasks, lost, retries) = finish_load("failover", load, &clients).await?;
    took_ms.sort_by(f64::total_cmp);
    println!("kills={}", a.kills);
    if !took_ms.is_empty() {
        println!("failover_p50_ms={:.0}", pct(&took_ms, 0.50));
        println!("failover_p99_ms={:.0}", pct(&took_ms, 0.99));
        println!("failover_max_ms={:.0}", took_ms[took_ms.len() - 1]);
        println!("failover_min_ms={:.0}", took_ms[0]);
    }
    println!("lost_tasks={lost}");
    println!("tasks={tasks}");
    println!("create_retries={retries}");
    if a.soak_secs == 0 {
        return Ok(());
    }

    // Phase 2: soak, no kills, busy cores.
    let mut burners = Vec::with_capacity(a.burners);
    for _ in 0..a.burners {
        burners.push(
            Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .context("starting a CPU burner")?,
        );
    }
    let load = Load::start(
        clients.clone(),
        live.clone(),
        a.rate,
        a.sleep.clone(),
        format!("soak-{run}"),
    );
    let start = some_lease(&mut red).await?;
    eprintln!(
        "soak: {} s with {} CPU burners, master {} (epoch {})",
        a.soak_secs, a.burners, start.0, start.1
    );
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(a.soak_secs);
    let mut last = start.clone();
    let (mut changes, mut gaps) = (0u64, 0u64);
    let mut gap_since: Option<Instant> = None;
    let mut max_gap = Duration::ZERO;
    let mut tick = interval(LEASE_POLL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut said = t0;
    while Instant::now() < end {
        tick.tick().await;
        match lease(&mut red).await? {
            None => {
                if gap_since.is_none() {
                    gaps += 1;
                    gap_since = Some(Instant::now());
                    eprintln!(
                        "soak: +{:.1} s: nobody holds the lease (last {} epoch {})",
                        t0.elapsed().as_secs_f64(),
                        last.0,
                        last.1
                    );
                }
            }
            Some(l) => {
                if let Some(since) = gap_since.take() {
                    max_gap = max_gap.max(since.elapsed());
                }
                if l != last {
                    changes += 1;
                    eprintln!(
                        "soak: +{:.1} s: master {} (epoch {}) -> {} (epoch {})",
                        t0.elapsed().as_secs_f64(),
                        last.0,
                        last.1,
                        l.0,
                        l.1
                    );
                    last = l;
                }
            }
        }
        if said.elapsed() >= Duration::from_secs(30) {
            eprintln!(
                "soak: +{:.0} s, {changes} master changes so far",
                t0.elapsed().as_secs_f64()
            );
            said = Instant::now();
        }
    }
    let end_lease = some_lease(&mut red).await?;
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    for mut b in burners {
        b.start_kill()?;
        b.wait().await?;
    }
    let by_epoch = end_lease.1.saturating_sub(start.1);
    eprintln!(
        "soak: epoch {} -> {}, {changes} changes seen, {gaps} lease gaps (longest {} ms); \
         loadavg at the end: {}",
        start.1,
        end_lease.1,
        max_gap.as_millis(),
        loadavg.trim()
    );
    let (soak_tasks, soak_lost, soak_retries) = finish_load("soak", load, &clients).await?;
    println!("false_failovers={}", by_epoch.max(changes));
    println!("soak_secs={}", a.soak_secs);
    println!("soak_lease_gaps={gaps}");
    println!("soak_tasks={soak_tasks}");
    println!("soak_lost_tasks={soak_lost}");
    println!("soak_create_retries={soak_retries}");
    Ok(())
}

// ---- chain ----

/// The chain benchmark: `clients` concurrent clients send WriteLogs streams of `batch` entries
/// until `n` entries were sent; throughput is n / (first send → last acknowledgement), and a
/// WriteLogs call is acknowledged only once its entries are durable. Then the chain is read
/// back from height 1 (every entry counted, heights consecutive) and verified.
async fn chain(t: &Target, n: usize, clients: usize, batch: usize) -> Result<()> {
    if n == 0 || clients == 0 || batch == 0 {
        bail!("--n, --clients and --batch must be positive");
    }
    // Streams and verification can take long: a generous per-call timeout.
    let long = Duration::from_secs(900);
    let mut c = connect(t, long).await?;
    let before = c
        .chain
        .verify_chain(VerifyRequest {})
        .await?
        .into_inner()
        .height;
    // All entries are made before the clock starts.
    let mut batches = Vec::new();
    for start in (0..n).step_by(batch) {
        let entries: Vec<LogEntry> = (start..n.min(start + batch))
            .map(|i| {
                let mut content =
                    format!("bench entry {i:08} lorem ipsum dolor sit amet consectetur adipiscing");
                content.truncate(60);
                LogEntry {
                    level: "info".into(),
                    content,
                    create_at: String::new(),
                }
            })
            .collect();
        batches.push(entries);
    }
    let streams = batches.len();
    batches.reverse();
    let queue = Arc::new(Mutex::new(batches));
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(connect(t, long).await?);
    }
    let t0 = Instant::now();
    let mut writers = JoinSet::new();
    for mut w in conns {
        let queue = queue.clone();
        writers.spawn(async move {
            let mut acked = Vec::new();
            loop {
                let Some(b) = queue.lock().unwrap().pop() else {
                    break;
                };
                let sent = b.len() as u64;
                let r = w
                    .chain
                    .write_logs(tokio_stream::iter(b))
                    .await?
                    .into_inner();
                let span = r.last_height.checked_sub(r.first_height).map(|d| d + 1);
                if r.count != sent || span != Some(sent) {
                    bail!(
                        "sent {sent} entries, acknowledged {} at heights {}..={}",
                        r.count,
                        r.first_height,
                        r.last_height
                    );
                }
                acked.push((r.first_height, r.last_height));
            }
            Ok::<_, anyhow::Error>(acked)
        });
    }
    let mut ranges = Vec::with_capacity(streams);
    while let Some(r) = writers.join_next().await {
        ranges.extend(r??);
    }
    let secs = t0.elapsed().as_secs_f64();
    eprintln!("chain: {n} entries in {streams} streams acknowledged in {secs:.2} s");
    // The acknowledged ranges must tile before+1 ..= before+n.
    ranges.sort();
    let mut next = before + 1;
    for &(first, last) in &ranges {
        if first != next {
            eprintln!("chain: acknowledged ranges skip or overlap at height {next} (got {first})");
        }
        next = last + 1;
    }
    let last_acked = ranges.last().map_or(before, |r| r.1);

    // Read everything back from height 1.
    let t1 = Instant::now();
    let mut stream = c
        .chain
        .read_logs(ReadLogsRequest {
            since: 1,
            ..Default::default()
        })
        .await?
        .into_inner();
    let (mut read, mut expect, mut gaps) = (0u64, 1u64, 0u64);
    while let Some(e) = stream.message().await? {
        if e.height != expect {
            gaps += 1;
        }
        expect = e.height + 1;
        read += 1;
    }
    eprintln!(
        "chain: read {read} entries back in {:.2} s",
        t1.elapsed().as_secs_f64()
    );
    if gaps > 0 {
        eprintln!("chain: {gaps} places where the heights read back are not consecutive");
    }
    let t2 = Instant::now();
    let v = c.chain.verify_chain(VerifyRequest {}).await?.into_inner();
    eprintln!(
        "chain: verified height {} in {:.2} s: ok={} {}",
        v.height,
        t2.elapsed().as_secs_f64(),
        v.ok,
        v.problem
    );
    println!("entries_per_s={:.0}", n as f64 / secs);
    println!("write_secs={secs:.3}");
    println!("streams={streams}");
    println!("entries={}", read.saturating_sub(before));
    println!("last_height={last_acked}");
    println!("height_gaps={gaps}");
    println!("verify_ok={}", v.ok);
    println!("verify_height={}", v.height);
    Ok(())
}
