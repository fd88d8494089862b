//! Membership: every node writes its presence to Redis each heartbeat (the HEARTBEAT script,
//! stamped with the Redis clock), and anyone can read the member list with a state derived
//! from the age of the last heartbeat.

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::lease::Lease;
use crate::store::{Beat, NodeRecord, Store};
use crate::worker::Worker;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    Alive,
    /// Heartbeats missed, not yet dead.
    Suspect,
    Dead,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Alive => "alive",
            NodeState::Suspect => "suspect",
            NodeState::Dead => "dead",
        }
    }
}

/// Alive while heard from within two heartbeats; suspect until `dead_after`; then dead.
/// A node that left cleanly is dead at once.
pub fn state_of(
    n: &NodeRecord,
    now_ms: i64,
    heartbeat: Duration,
    dead_after: Duration,
) -> NodeState {
    let age = now_ms.saturating_sub(n.last_heartbeat).max(0) as u128;
    if n.leaving || age > dead_after.as_millis() {
        NodeState::Dead
    } else if age > 2 * heartbeat.as_millis() {
        NodeState::Suspect
    } else {
        NodeState::Alive
    }
}

pub struct Presence {
    pub store: Store,
    pub node: String,
    pub addr: String,
    pub heartbeat: Duration,
    pub worker: Arc<Worker>,
    pub lease: Arc<Lease>,
    /// Set at shutdown, so heartbeats keep saying "no new work" while runs drain.
    pub leaving: Arc<std::sync::atomic::AtomicBool>,
}

impl Presence {
    pub async fn beat(&self) -> crate::store::Result<i64> {
        self.store
            .heartbeat(&Beat {
                node: &self.node,
                addr: &self.addr,
                concurrency: self.worker.concurrency(),
                running: self.worker.running(),
                version: VERSION,
                epoch: self.lease.view().epoch,
                leaving: self.leaving.load(std::sync::atomic::Ordering::SeqCst),
            })
            .await
    }

    pub async fn run(self, stop: CancellationToken) {
        let mut failing = false;
        loop {
            match self.beat().await {
                Ok(_) if failing => {
                    tracing::info!("heartbeats reach redis again");
                    failing = false;
                }
                Ok(_) => {}
                Err(e) if !failing => {
                    tracing::warn!(error = %e, "heartbeat failed");
                    failing = true;
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.heartbeat) => {}
            }
        }
    }
}
