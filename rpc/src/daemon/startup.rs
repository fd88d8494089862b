//! Start-up: the ports are bound first (a taken port is a start-up error, not a later
//! surprise), then Redis is waited for while the gRPC port serves health alone.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::store::{Store, StoreError};
use gitflock_core::config::Config;

/// The node's sockets, bound before anything else happens.
pub struct Sockets {
    pub grpc: TcpListener,
    pub metrics: Option<TcpListener>,
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}{what}: {e}"))
}

impl Sockets {
    pub async fn bind(config: &Config) -> anyhow::Result<Sockets> {
        let grpc = bind(config.node.grpc_listen, "").await?;
        let metrics = match config.node.metrics_listen {
            Some(addr) => Some(bind(addr, " for metrics").await?),
            None => None,
        };
        Ok(Sockets { grpc, metrics })
    }
}

/// Connects to Redis, retrying until it answers or `stop` fires. Each attempt is bounded
/// (the connection manager itself would retry forever) and raced against `stop`, so a node
/// started while Redis is away still stops at once on SIGTERM.
async fn connect(config: &Config, stop: &CancellationToken) -> Option<Store> {
    let mut delay = Duration::from_millis(100);
    let mut warned = false;
    loop {
        let attempt = async {
            let s = Store::connect(&config.redis).await?;
            s.ping().await?;
            Ok::<_, StoreError>(s)
        };
        let outcome = tokio::select! {
            _ = stop.cancelled() => return None,
            r = tokio::time::timeout(Duration::from_secs(3), attempt) => r,
        };
        match outcome {
            Ok(Ok(s)) => {
                if warned {
                    tracing::info!("redis answers now");
                }
                return Some(s);
            }
            Ok(Err(e)) if !warned => {
                tracing::warn!(error = %e.category(), "cannot reach redis yet; retrying");
                warned = true;
            }
            Err(_) if !warned => {
                tracing::warn!("redis does not answer yet; retrying");
                warned = true;
            }
            _ => {}
        }
        tokio::select! {
            _ = stop.cancelled() => return None,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Waits for Redis while the gRPC port serves health alone (NOT_SERVING), so load balancers
/// and orchestrators see a live but unready node. None: stopped before Redis answered.
pub async fn wait_for_redis(
    config: &Config,
    grpc: &TcpListener,
    health: super::node::Health,
    tls: &super::tls::NodeTls,
    stop: &CancellationToken,
) -> anyhow::Result<Option<Store>> {
    let incoming = futures_util::stream::unfold(grpc, |l| async move {
        Some((l.accept().await.map(|(sock, _)| sock), l))
    });
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    // TLS from the first connection on: no plaintext is served even while Redis is away.
    let waiting = tls
        .server()?
        .add_service(health)
        .serve_with_incoming_shutdown(incoming, async {
            let _ = ready_rx.await;
        });
    tokio::pin!(waiting);
    tokio::select! {
        s = connect(config, stop) => {
            // Connections this server accepted must not outlive it (they would answer
            // UNIMPLEMENTED for everything but health): a graceful stop sends them GOAWAY,
            // and their clients redial the full server.
            let _ = ready_tx.send(());
            let _ = tokio::time::timeout(Duration::from_secs(2), &mut waiting).await;
            Ok(s)
        }
        r = &mut waiting => {
            r?;
            Ok(None)
        }
    }
}
