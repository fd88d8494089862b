//! `redis-failover`: a cluster on a Redis that fails over (a primary, two replicas and three
//! sentinels, through `gitflock-harness`), whose primary is killed -9 over and over under a
//! steady load of `sleep` tasks.
//!
//! How long the cluster stops is read from the tasks themselves: a task's `updated_at` is
//! Redis's clock when its FINISH ran, and every server runs on this machine, so the first
//! task that ended SUCCEED after a kill finished on the new primary (the old one was dead).
//! Recovery = that time minus the kill's.

use anyhow::{Result, anyhow, bail};
use clap::Args;
use gitflock_client::Client;
use gitflock_harness::{Cluster, SentinelOptions};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::{Instant, sleep};

use crate::listing::each_listed;
use crate::load::{Load, finish_load};
use crate::{READY_DEADLINE, pct};

/// Per-call timeout of the load's CreateTask calls.
const CREATE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait for the sentinels to promote a replica.
const PROMOTION_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Args)]
pub struct RedisFailoverArgs {
    /// The gitflock-node binary.
    #[arg(long)]
    node_bin: PathBuf,
    /// A directory for the servers' and nodes' files and logs.
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
    /// Primary kills.
    #[arg(long, default_value_t = 5)]
    kills: usize,
    /// `sleep` tasks created per second, the whole time.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// The `sleep` tasks' target.
    #[arg(long, default_value = "20ms")]
    sleep: String,
    /// `[redis] min_replicas_ack` of the nodes.
    #[arg(long, default_value_t = 1)]
    min_replicas_ack: u32,
    /// Sentinel's `down-after-milliseconds`.
    #[arg(long, default_value_t = 1000)]
    down_after_ms: u64,
    /// Time between a killed primary's return (as a replica) and the next kill.
    #[arg(long, default_value_t = 8.0)]
    settle_secs: f64,
    /// The nodes' RUST_LOG.
    #[arg(long, default_value = "info")]
    node_log: String,
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub async fn redis_failover(a: &RedisFailoverArgs) -> Result<()> {
    if a.nodes < 1 || a.rate <= 0.0 || a.kills == 0 {
        bail!("--nodes, --rate and --kills must be positive");
    }
    let total = Duration::from_secs(600 + 120 * a.kills as u64);
    tokio::time::timeout(total, run(a))
        .await
        .map_err(|_| anyhow!("the redis-failover benchmark did not finish within {total:?}"))?
}

async fn run(a: &RedisFailoverArgs) -> Result<()> {
    let options = SentinelOptions {
        down_after: Duration::from_millis(a.down_after_ms),
        replicas: 2,
        ..SentinelOptions::default()
    };
    let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
    let mut cluster = Cluster::builder(&a.node_bin, &a.dir, &a.token)
        .nodes(a.nodes)
        .sentinel(options)
        .env("HOME", home)
        .env("RUST_LOG", &a.node_log)
        .env("GITFLOCK_NODE_CONCURRENCY", a.concurrency)
        .env("GITFLOCK_REDIS_MIN_REPLICAS_ACK", a.min_replicas_ack)
        .ready_timeout(READY_DEADLINE)
        .start()
        .await
        .map_err(|e| anyhow!(e))?;
    let mut clients = Vec::new();
    for url in cluster.urls() {
        let c = Client::connect(&url, &a.token, Some(CREATE_TIMEOUT)).await;
        clients.push(c.map_err(|e| anyhow!(e))?);
    }
    let clients = Arc::new(clients);
    let live = Arc::new((0..a.nodes).map(|_| AtomicBool::new(true)).collect());
    eprintln!(
        "redis-failover: {} nodes on {} (sentinels {}), min_replicas_ack {}, {} tasks/s",
        a.nodes,
        cluster.redis.url(),
        cluster
            .redis
            .sentinel()
            .map(|s| s.sentinels())
            .unwrap_or_default(),
        a.min_replicas_ack,
        a.rate
    );
    let tag = format!("redis-failover-{}", std::process::id());
    let load = Load::start(clients.clone(), live, a.rate, a.sleep.clone(), tag);
    sleep(Duration::from_secs(3)).await;

    let mut kills = Vec::with_capacity(a.kills);
    let mut promoted_ms = Vec::with_capacity(a.kills);
    for k in 1..=a.kills {
        let s = cluster
            .redis
            .sentinel()
            .ok_or_else(|| anyhow!("no sentinels"))?;
        let (at, t0) = (wall_ms(), Instant::now());
        let old = s.kill9_primary().map_err(|e| anyhow!(e))?;
        let new = s
            .wait_failover(old, PROMOTION_DEADLINE)
            .await
            .map_err(|e| anyhow!("kill {k}: {e}"))?;
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        promoted_ms.push(ms);
        eprintln!(
            "kill {k}/{}: primary :{old} killed; the sentinels named :{new} after {ms:.0} ms",
            a.kills
        );
        kills.push(at);
        s.restart_as_replica(old).await.map_err(|e| anyhow!(e))?;
        sleep(Duration::from_secs_f64(a.settle_secs)).await;
    }
    let (tasks, lost, retries) = finish_load("redis-failover", load, &clients).await?;

    // When each task ended (Redis clock at its FINISH), to find the first after each kill.
    let mut ended = Vec::new();
    let mut c = clients[0].clone();
    each_listed(&mut c, false, |t| {
        ended.push(t.updated_at);
        true
    })
    .await?;
    ended.sort_unstable();
    let mut recovery_ms = Vec::with_capacity(kills.len());
    for (k, at) in kills.iter().enumerate() {
        let first = ended.iter().find(|&&t| t > *at);
        match first {
            Some(t) => {
                let ms = (t - at) as f64;
                eprintln!(
                    "kill {}: first task completed {ms:.0} ms after the kill",
                    k + 1
                );
                recovery_ms.push(ms);
            }
            None => eprintln!("kill {}: no task completed after the kill", k + 1),
        }
    }
    recovery_ms.sort_by(f64::total_cmp);
    promoted_ms.sort_by(f64::total_cmp);
    println!("kills={}", a.kills);
    println!("min_replicas_ack={}", a.min_replicas_ack);
    println!("down_after_ms={}", a.down_after_ms);
    if !recovery_ms.is_empty() {
        println!(
            "kill_to_first_completed_p50_ms={:.0}",
            pct(&recovery_ms, 0.50)
        );
        println!(
            "kill_to_first_completed_p99_ms={:.0}",
            pct(&recovery_ms, 0.99)
        );
        println!(
            "kill_to_first_completed_max_ms={:.0}",
            recovery_ms[recovery_ms.len() - 1]
        );
    }
    println!("kill_to_promotion_p50_ms={:.0}", pct(&promoted_ms, 0.50));
    println!("lost_tasks={lost}");
    println!("tasks={tasks}");
    println!("create_retries={retries}");
    let _ = cluster.stop(Duration::from_secs(15)).await;
    Ok(())
}
