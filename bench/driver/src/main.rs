//! `gitflock-bench`: the load driver behind `bench/run.sh dispatch`, `failover` and `chain`.
//!
//! - `dispatch.rs`: how fast one node moves no-op (`echo`) tasks through the cluster, with the
//!   same definitions as the Celery baseline's `drive.py` so the two can be put side by side
//!   (`ready`, `fill`, `drain`, `rate`).
//! - `failover.rs`: runs a whole cluster itself (through `gitflock-harness`, so that it can
//!   kill -9 and restart the nodes): the master is killed over and over under a steady task
//!   load, then the cluster soaks with both cores kept busy and no kills; `load.rs` is that
//!   load.
//! - `redis_failover.rs`: a cluster on a primary, two replicas and three sentinels (through
//!   `gitflock-harness`); the Redis primary is killed over and over under the same load.
//! - `chain.rs`: streams log entries through `Chain.WriteLogs` and checks the chain afterwards.
//! - `listing.rs`: walking the SUCCEED tasks page by page.
//!
//! Results are `key=value` lines on stdout; progress goes to stderr.

mod chain;
mod dispatch;
mod failover;
mod listing;
mod load;
mod redis_failover;

use anyhow::{Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use gitflock_client::Client;
use std::time::Duration;

/// The longest wait for a node to answer (and a cluster to be ready).
const READY_DEADLINE: Duration = Duration::from_secs(30);
/// Per-call timeout.
const RPC_TIMEOUT: Duration = Duration::from_secs(30);

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
    Failover(failover::FailoverArgs),
    /// Run a cluster on a Redis primary, two replicas and three sentinels, kill -9 the
    /// primary over and over under load; prints the time from each kill to the first task
    /// completed on the new primary, and lost tasks.
    RedisFailover(redis_failover::RedisFailoverArgs),
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

#[tokio::main]
async fn main() -> Result<()> {
    let run = async {
        match Cli::parse().mode {
            Mode::Ready { target } => dispatch::ready(&target).await,
            Mode::Fill { target, n } => dispatch::fill(&target, n).await,
            Mode::Drain { target, n } => dispatch::drain(&target, n).await,
            Mode::Rate { target, n, rate } => dispatch::open_loop(&target, n, rate).await,
            Mode::Failover(a) => failover::failover(&a).await,
            Mode::RedisFailover(a) => redis_failover::redis_failover(&a).await,
            Mode::Chain {
                target,
                n,
                clients,
                batch,
            } => chain::chain(&target, n, clients, batch).await,
        }
    };
    // On SIGINT or SIGTERM the run is dropped, which kills the processes it spawned (the
    // harness kills its nodes when dropped; burners are spawned with kill_on_drop).
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

/// The percentile as drive.py takes it: `sorted[min(len - 1, int(p * len))]`.
fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[(sorted.len() - 1).min((p * sorted.len() as f64) as usize)]
}
