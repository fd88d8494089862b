//! `failover`: a cluster of real nodes (started through `gitflock-harness`, so that they can
//! be killed -9 and restarted) whose master is killed over and over under a steady load of
//! `sleep` tasks, then a soak with busy cores and no kills. Who the master is comes from the
//! nodes themselves: `Nodes.Status` (which reads the lease) of the live nodes, every 10 ms.

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use gitflock_client::Client;
use gitflock_harness::Cluster;
use gitflock_proto::v1::Empty;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::process::Command;
use tokio::time::{Instant, MissedTickBehavior, interval, sleep, sleep_until};

use crate::load::{Load, finish_load};
use crate::{READY_DEADLINE, pct};

/// How often the master is asked for.
const MASTER_POLL: Duration = Duration::from_millis(10);
/// Per-call timeout of those Status calls (a node that does not answer is skipped).
const STATUS_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest wait for another node to take the lease after a kill.
const FAILOVER_DEADLINE: Duration = Duration::from_secs(30);
/// Per-call timeout of the load's CreateTask calls.
const CREATE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Args)]
pub struct FailoverArgs {
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

/// The master lease as the nodes report it: holder and epoch.
type Lease = (String, u64);

/// The cluster under test, a load client and a Status client per node, and which nodes are up
/// (the load and the master poll skip the others).
struct Rig {
    cluster: Cluster,
    clients: Arc<Vec<Client>>,
    watchers: Vec<Client>,
    live: Arc<Vec<AtomicBool>>,
}

impl Rig {
    /// `nodes` nodes on the given Redis, every one answering and a master named.
    async fn start(a: &FailoverArgs) -> Result<Rig> {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
        let cluster = Cluster::builder(&a.node_bin, &a.dir, &a.token)
            .nodes(a.nodes)
            .redis_url(&a.redis_url)
            .env("HOME", home)
            .env("RUST_LOG", &a.node_log)
            .env("GITFLOCK_NODE_CONCURRENCY", a.concurrency)
            .ready_timeout(READY_DEADLINE)
            .start()
            .await
            .map_err(|e| anyhow!(e))?;
        let (mut clients, mut watchers) = (Vec::new(), Vec::new());
        for url in cluster.urls() {
            let connect = |timeout| Client::connect(&url, &a.token, Some(timeout));
            clients.push(connect(CREATE_TIMEOUT).await.map_err(|e| anyhow!(e))?);
            watchers.push(connect(STATUS_TIMEOUT).await.map_err(|e| anyhow!(e))?);
        }
        let live = (0..a.nodes).map(|_| AtomicBool::new(true)).collect();
        Ok(Rig {
            cluster,
            clients: Arc::new(clients),
            watchers,
            live: Arc::new(live),
        })
    }

    /// Starts the load of `sleep` tasks; request ids begin with `tag`.
    fn load(&self, a: &FailoverArgs, tag: String) -> Load {
        let (clients, live) = (self.clients.clone(), self.live.clone());
        Load::start(clients, live, a.rate, a.sleep.clone(), tag)
    }

    /// The lease as the first live node to answer `Nodes.Status` reports it (None: nobody
    /// holds it); an error if no live node answered.
    async fn lease(&self) -> Result<Option<Lease>> {
        let mut last = String::from("no live node");
        for (i, w) in self.watchers.iter().enumerate() {
            if !self.live[i].load(Ordering::Relaxed) {
                continue;
            }
            match w.nodes.clone().status(Empty {}).await {
                Ok(s) => {
                    let s = s.into_inner();
                    return Ok((!s.master.is_empty()).then_some((s.master, s.epoch)));
                }
                Err(e) => last = format!("node {i}: {:?}: {}", e.code(), e.message()),
            }
        }
        bail!("no live node answered Nodes.Status; last error: {last}")
    }

    /// Waits until some node holds the lease.
    async fn some_lease(&self) -> Result<Lease> {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let why = match self.lease().await {
                Ok(Some(l)) => return Ok(l),
                Ok(None) => "nobody holds it".to_string(),
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                bail!("nobody took the master lease within {READY_DEADLINE:?}: {why}");
            }
            sleep(MASTER_POLL).await;
        }
    }

    /// Polls the live nodes until the lease names a node other than `old`: that node, its
    /// epoch, and how long after `killed` it was seen.
    async fn new_master(&self, old: &str, killed: Instant) -> Result<(String, u64, Duration)> {
        let mut tick = interval(MASTER_POLL);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let lease = self.lease().await;
            let at = killed.elapsed();
            if let Ok(Some((holder, epoch))) = lease
                && holder != old
            {
                return Ok((holder, epoch, at));
            }
            if at > FAILOVER_DEADLINE {
                bail!("no other node took the lease within {FAILOVER_DEADLINE:?}");
            }
        }
    }
}

/// The failover benchmark.
///
/// 1. `nodes` nodes on one Redis, a steady load of `sleep` tasks (`rate` per second, each
///    CreateTask retried on another node until one acknowledges it).
/// 2. `kills` times: ask the nodes who the master is, kill -9 it, time how long until a
///    surviving node's `Nodes.Status` names another master (asked every 10 ms), restart the
///    killed node (same name, port and data dir), wait until it answers and `settle_secs` plus
///    a random 0..`kill_jitter_ms` passed (without the jitter, the kills fell at the same point
///    of the new master's renewal cycle each time, and the times with them).
/// 3. Stop the load; every created task must end SUCCEED (`lost_tasks` counts those that do
///    not, and creates given up).
/// 4. Soak: `burners` busy loops keep the cores busy for `soak_secs` while the same load runs
///    and nobody is killed; every change of the lease's epoch is a false failover.
pub async fn failover(a: &FailoverArgs) -> Result<()> {
    if a.nodes < 2 || a.rate <= 0.0 {
        bail!("--nodes must be at least 2 and --rate positive");
    }
    let total = Duration::from_secs(600 + 120 * a.kills as u64 + 2 * a.soak_secs);
    tokio::time::timeout(total, failover_run(a))
        .await
        .map_err(|_| anyhow!("the failover benchmark did not finish within {total:?}"))?
}

async fn failover_run(a: &FailoverArgs) -> Result<()> {
    let mut rig = Rig::start(a).await?;
    let (first, epoch) = rig.some_lease().await?;
    eprintln!(
        "failover: {} nodes up, master {first} (epoch {epoch})",
        a.nodes
    );

    // Phase 1: kills under load.
    let run = std::process::id();
    let load = rig.load(a, format!("failover-{run}"));
    sleep(Duration::from_secs(2)).await;
    let mut took_ms = kills(&mut rig, a).await?;
    let (tasks, lost, retries) = finish_load("failover", load, &rig.clients).await?;
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
    soak(&rig, a, format!("soak-{run}")).await
}

/// Kills the master `kills` times, restarting it each time; the failover times in ms.
async fn kills(rig: &mut Rig, a: &FailoverArgs) -> Result<Vec<f64>> {
    let settle = Duration::from_secs_f64(a.settle_secs);
    let mut took_ms = Vec::with_capacity(a.kills);
    for k in 1..=a.kills {
        let (master, epoch) = rig.some_lease().await?;
        let nodes = &rig.cluster.nodes;
        let i = nodes
            .iter()
            .position(|n| n.name() == master)
            .ok_or_else(|| anyhow!("the lease names {master:?}, not one of this run's nodes"))?;
        rig.live[i].store(false, Ordering::Relaxed);
        let killed = Instant::now();
        rig.cluster.nodes[i].kill9();
        let (new, new_epoch, took) = rig
            .new_master(&master, killed)
            .await
            .with_context(|| format!("kill {k}"))?;
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
        rig.cluster.nodes[i]
            .restart()
            .await
            .map_err(|e| anyhow!(e))?;
        rig.live[i].store(true, Ordering::Relaxed);
        sleep_until(restarted + settle + jitter(Duration::from_millis(a.kill_jitter_ms))).await;
    }
    Ok(took_ms)
}

/// Phase 2: `soak_secs` with `burners` busy loops and the same load, nobody killed.
async fn soak(rig: &Rig, a: &FailoverArgs, tag: String) -> Result<()> {
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
    let load = rig.load(a, tag);
    let start = rig.some_lease().await?;
    eprintln!(
        "soak: {} s with {} CPU burners, master {} (epoch {})",
        a.soak_secs, a.burners, start.0, start.1
    );
    let mut seen = LeaseLog::new(start.clone());
    let end = seen.t0 + Duration::from_secs(a.soak_secs);
    let mut tick = interval(MASTER_POLL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut said = seen.t0;
    while Instant::now() < end {
        tick.tick().await;
        seen.see(rig.lease().await);
        if said.elapsed() >= Duration::from_secs(30) {
            eprintln!(
                "soak: +{:.0} s, {} master changes so far",
                seen.t0.elapsed().as_secs_f64(),
                seen.changes
            );
            said = Instant::now();
        }
    }
    let end_lease = rig.some_lease().await?;
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    for mut b in burners {
        b.start_kill()?;
        b.wait().await?;
    }
    let by_epoch = end_lease.1.saturating_sub(start.1);
    let LeaseLog {
        changes,
        gaps,
        max_gap,
        unanswered,
        ..
    } = seen;
    eprintln!(
        "soak: epoch {} -> {}, {changes} changes seen, {gaps} lease gaps (longest {} ms), \
         {unanswered} polls no node answered; loadavg at the end: {}",
        start.1,
        end_lease.1,
        max_gap.as_millis(),
        loadavg.trim()
    );
    let (soak_tasks, soak_lost, soak_retries) = finish_load("soak", load, &rig.clients).await?;
    println!("false_failovers={}", by_epoch.max(changes));
    println!("soak_secs={}", a.soak_secs);
    println!("soak_lease_gaps={gaps}");
    println!("soak_tasks={soak_tasks}");
    println!("soak_lost_tasks={soak_lost}");
    println!("soak_create_retries={soak_retries}");
    Ok(())
}

/// What the soak saw of the lease: every change of holder or epoch, and every stretch when
/// nobody held it.
struct LeaseLog {
    t0: Instant,
    last: Lease,
    changes: u64,
    gaps: u64,
    gap_since: Option<Instant>,
    max_gap: Duration,
    /// Polls that no node answered (busy cores can delay a Status past its timeout): they
    /// count as neither a gap nor a change.
    unanswered: u64,
    /// Whether the last poll was one of those (only the first of a run is reported).
    silent: bool,
}

impl LeaseLog {
    fn new(start: Lease) -> LeaseLog {
        LeaseLog {
            t0: Instant::now(),
            last: start,
            changes: 0,
            gaps: 0,
            gap_since: None,
            max_gap: Duration::ZERO,
            unanswered: 0,
            silent: false,
        }
    }

    fn see(&mut self, lease: Result<Option<Lease>>) {
        let at = self.t0.elapsed().as_secs_f64();
        let (holder, epoch) = (&self.last.0, self.last.1);
        let silent = std::mem::replace(&mut self.silent, lease.is_err());
        match lease {
            Err(e) => {
                self.unanswered += 1;
                if !silent {
                    eprintln!("soak: +{at:.1} s: {e}");
                }
            }
            Ok(None) => {
                if self.gap_since.is_none() {
                    self.gaps += 1;
                    self.gap_since = Some(Instant::now());
                    eprintln!(
                        "soak: +{at:.1} s: nobody holds the lease (last {holder} epoch {epoch})"
                    );
                }
            }
            Ok(Some(l)) => {
                if let Some(since) = self.gap_since.take() {
                    self.max_gap = self.max_gap.max(since.elapsed());
                }
                if l != self.last {
                    self.changes += 1;
                    eprintln!(
                        "soak: +{at:.1} s: master {holder} (epoch {epoch}) -> {} (epoch {})",
                        l.0, l.1
                    );
                    self.last = l;
                }
            }
        }
    }
}

/// A uniformly drawn duration in [0, max).
fn jitter(max: Duration) -> Duration {
    use std::hash::BuildHasher;
    // Each RandomState has fresh random keys: hashing anything gives a random u64.
    let r = std::collections::hash_map::RandomState::new().hash_one(0u8);
    max.mul_f64((r >> 11) as f64 / (1u64 << 53) as f64)
}
