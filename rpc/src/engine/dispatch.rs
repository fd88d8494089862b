//! The dispatcher: while this node is master, it moves due WAITING tasks into the inboxes of
//! live nodes (the DISPATCH script, fenced by the lease) and sleeps until the next reason to
//! look again: a `due` wake-up on its channel (a task was created or finished), the next
//! recurring task's due time, or a short poll while work is due but every inbox is full.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::cluster::lease::Lease;
use crate::cluster::membership::Membership;
use crate::mirror::ring::Ring;
use crate::store::{Store, StoreError};

/// Tasks moved by one DISPATCH call (one script run holds Redis for ~1 ms at this size).
const BATCH: usize = 256;
/// The longest sleep between looks, which also bounds the damage of a lost wake-up.
const MAX_IDLE: Duration = Duration::from_secs(1);
/// While tasks are due but no inbox has room, look again this often (a FINISH also wakes us).
const FULL_POLL: Duration = Duration::from_millis(50);

pub struct Dispatcher {
    store: Store,
    lease: Arc<Lease>,
    membership: Arc<Membership>,
    dead_after: Duration,
    /// A node back from the dead waits this long before mirrors are placed on it again.
    settle: Duration,
    /// Rung on `due` (a task was created or finished) and when a node is admitted.
    wake: Arc<Notify>,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        lease: Arc<Lease>,
        membership: Arc<Membership>,
        dead_after: Duration,
        settle: Duration,
        wake: Arc<Notify>,
    ) -> Arc<Dispatcher> {
        Arc::new(Dispatcher {
            store,
            lease,
            membership,
            dead_after,
            settle,
            wake,
        })
    }

    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut lease_changes = self.lease.subscribe();
        let (mut members, mut ring) = (Vec::new(), Ring::default());
        loop {
            let Some(m) = self.lease.current() else {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = lease_changes.changed() => {}
                    _ = tokio::time::sleep(MAX_IDLE) => {}
                }
                continue;
            };
            let wake = self.wake.notified();
            tokio::pin!(wake);
            wake.as_mut().enable();
            let nodes = self.membership.dispatchable();
            let placement = self.membership.placement(self.settle);
            if placement != members {
                tracing::info!(nodes = ?placement, "mirror placement ring changed");
                ring = Ring::new(&placement);
                members = placement;
            }
            let pause = match self
                .store
                .dispatch(
                    &m.holder,
                    m.epoch,
                    BATCH,
                    self.dead_after,
                    &nodes,
                    ring.points(),
                )
                .await
            {
                Ok(r) if r.moved > 0 && r.left > 0 => continue,
                Ok(r) if r.left > 0 => FULL_POLL,
                Ok(r) => match r.next_due {
                    Some(due) => Duration::from_millis(
                        (due - r.now).clamp(0, MAX_IDLE.as_millis() as i64) as u64,
                    ),
                    None => MAX_IDLE,
                },
                Err(StoreError::NotMaster) => {
                    self.lease.lost();
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "dispatch failed");
                    Duration::from_millis(200)
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = &mut wake => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}
