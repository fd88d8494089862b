//! The node daemon: binds its ports, waits for Redis, assembles the node's parts, serves, and
//! stops them in order.
//!
//! - [`startup`]: the sockets, and waiting for Redis behind a health-only server.
//! - [`Node`]: the parts of a running node (store, chain, lease, worker, membership,
//!   dispatcher, change hub) and the loops and server that run them.
//! - [`shutdown`]: the signal and the three phases of an ordered stop.
//! - [`listener`]: pub/sub messages turned into wake-ups.
//! - `incarnation`: noticing that Redis lost its data, and making the standing tasks again.
//!
//! Shutdown (SIGTERM or SIGINT): resign mastership (announced on the Public channel so another
//! node takes over at once); stop claiming and hand the unclaimed inbox back; let running
//! tasks finish for the grace period, then hand the rest back; record every result; stop the
//! gRPC server; exit 0.

mod incarnation;
pub mod listener;
mod node;
pub mod shutdown;
pub mod startup;
pub mod tls;

pub use node::Node;
pub use shutdown::Shutdown;

use gitflock_core::config::Config;
use std::time::Duration;

/// How long running tasks may take to finish at shutdown before they are handed back.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs a node until SIGTERM or SIGINT, then stops it in order.
pub async fn run(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.node.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create data dir {}: {e}",
            config.node.data_dir.display()
        )
    })?;
    let tls = tls::NodeTls::load(&config.tls)?;
    let sockets = startup::Sockets::bind(&config).await?;
    let shutdown = Shutdown::on_signals();

    let health = tonic_health::server::HealthReporter::new();
    let health_service = node::Health::new(
        tonic_health::server::HealthService::from_health_reporter(health.clone()),
    );
    node::not_serving_yet(&health).await;
    let Some(store) = startup::wait_for_redis(
        &config,
        &sockets.grpc,
        health_service.clone(),
        &tls,
        &shutdown.requested,
    )
    .await?
    else {
        return Ok(());
    };
    tracing::info!(node = %config.node.name, prefix = %config.redis.prefix, "connected to redis");

    let mut node = Node::assemble(config, store, health, tls).await?;
    let loops = node.spawn_loops(&shutdown, sockets.metrics);
    let server = node.serve(sockets.grpc, health_service, &shutdown).await?;

    gitflock_core::systemd::ready();
    shutdown.requested.cancelled().await;
    gitflock_core::systemd::stopping();
    node.stop(&shutdown, loops, server).await;
    Ok(())
}
