//! The master lease: who may dispatch, and until when.
//!
//! One Redis key holds `"<node> <epoch>"` with a TTL (`lease_ms`). A node takes it when it is
//! free (with a new, higher epoch) and renews it every heartbeat while it holds it. Besides the
//! key's TTL in Redis, the holder keeps its own monotonic deadline: `renew sent + 90% of the
//! lease`. [`Lease::current`] answers `None` past that deadline, before talking to Redis, so a
//! master that was paused (SIGSTOP, a long GC-like stall, a lost network) stops acting on a
//! stale belief; and every master write is a script that checks the key (the fence), so even
//! a master that tried would be refused.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::store::{LeaseAcquire, Store};

/// This node's mastership while it lasts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mastership {
    pub epoch: u64,
    /// The exact lease value, which fenced scripts compare against.
    pub holder: String,
    valid_until: Instant,
}

/// What this node last learned about the lease.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseView {
    pub mine: Option<Mastership>,
    /// The master's name, if anyone holds the lease.
    pub master: Option<String>,
    /// The highest epoch this node has seen.
    pub epoch: u64,
}

pub struct Lease {
    store: Store,
    node: String,
    ttl: Duration,
    renew_every: Duration,
    view: watch::Sender<LeaseView>,
    /// Wakes the loop early (a release was announced, or a resign asked).
    poke: Notify,
    /// After a resign, this node does not try to take the lease back before this time, so
    /// another node gets it.
    quiet_until: std::sync::Mutex<Option<Instant>>,
}

impl Lease {
    pub fn new(store: Store, node: &str, ttl: Duration, renew_every: Duration) -> Arc<Lease> {
        Arc::new(Lease {
            store,
            node: node.to_string(),
            ttl,
            renew_every,
            view: watch::Sender::new(LeaseView::default()),
            poke: Notify::new(),
            quiet_until: std::sync::Mutex::new(None),
        })
    }

    /// This node's mastership, if it holds the lease and its own deadline has not passed.
    pub fn current(&self) -> Option<Mastership> {
        let m = self.view.borrow().mine.clone()?;
        (Instant::now() < m.valid_until).then_some(m)
    }

    pub fn view(&self) -> LeaseView {
        self.view.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<LeaseView> {
        self.view.subscribe()
    }

    /// A fenced write was refused: whatever we believed, we are not the master.
    pub fn lost(&self) {
        self.view.send_modify(|v| {
            if v.mine.take().is_some() {
                tracing::warn!(epoch = v.epoch, "lost the master lease");
            }
        });
        self.poke.notify_one();
    }

    /// Wakes the loop now (the lease may have been released).
    pub fn poke(&self) {
        self.poke.notify_one();
    }

    /// Gives the lease up if this node holds it; returns the epoch given up.
    pub async fn resign(&self) -> Option<u64> {
        let m = self.view.borrow().mine.clone()?;
        *self.quiet_until.lock().unwrap() = Some(Instant::now() + self.ttl);
        self.view.send_modify(|v| v.mine = None);
        let msg = format!(
            "2:{}",
            serde_json::json!({"Name": self.node, "Epoch": m.epoch, "Kind": "resign"})
        );
        match self.store.lease_release(&m.holder, &msg).await {
            Ok(true) => {
                tracing::info!(epoch = m.epoch, "resigned as master");
                Some(m.epoch)
            }
            Ok(false) => None,
            Err(e) => {
                tracing::warn!(error = %e, "resign: could not release the lease; it expires by itself");
                None
            }
        }
    }

    /// Takes or renews the lease every `renew_every` until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            self.tick().await;
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(self.renew_every) => {}
                _ = self.poke.notified() => {}
            }
        }
    }

    async fn tick(&self) {
        let sent = Instant::now();
        let deadline = sent + self.ttl * 9 / 10;
        if let Some(m) = self.current() {
            // Bounded: a renewal that answers after the deadline is worthless.
            let r = tokio::time::timeout(self.ttl / 2, self.store.lease_renew(&m.holder, self.ttl))
                .await;
            match r {
                Ok(Ok(true)) => self.view.send_modify(|v| {
                    if let Some(mine) = v.mine.as_mut().filter(|x| x.holder == m.holder) {
                        mine.valid_until = deadline;
                    }
                }),
                Ok(Ok(false)) => self.lost(),
                Ok(Err(e)) => tracing::warn!(error = %e, "lease renewal failed"),
                Err(_) => tracing::warn!("lease renewal timed out"),
            }
            return;
        }
        // Not the master (or our own deadline passed): forget it, then try to take the lease.
        if self.view.borrow().mine.is_some() {
            tracing::warn!("master lease expired before it could be renewed");
            self.view.send_modify(|v| v.mine = None);
        }
        if self
            .quiet_until
            .lock()
            .unwrap()
            .is_some_and(|t| Instant::now() < t)
        {
            return;
        }
        match self.store.lease_acquire(&self.node, self.ttl).await {
            Ok(LeaseAcquire::Taken(epoch)) => {
                tracing::info!(epoch, "became master");
                let holder = format!("{} {epoch}", self.node);
                self.view.send_modify(|v| {
                    v.mine = Some(Mastership {
                        epoch,
                        holder,
                        valid_until: deadline,
                    });
                    v.master = Some(self.node.clone());
                    v.epoch = v.epoch.max(epoch);
                });
            }
            Ok(LeaseAcquire::Held(name, epoch)) => {
                self.view.send_if_modified(|v| {
                    let changed = v.master.as_deref() != Some(&name) || v.epoch < epoch;
                    v.master = Some(name);
                    v.epoch = v.epoch.max(epoch);
                    changed
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot reach redis for the lease"),
        }
    }
}
