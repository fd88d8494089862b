//! The master lease: who may dispatch, and until when.
//!
//! One Redis key holds `"<node> <epoch>"` with a TTL (`lease_ms`). A node takes it when it is
//! free (with a new, higher epoch) and renews it every heartbeat while it holds it. Besides the
//! key's TTL in Redis, the holder keeps its own monotonic deadline: `renew sent + 90% of the
//! lease`. [`Lease::current`] answers `None` past that deadline, before talking to Redis, so a
//! master that was paused (SIGSTOP, a long stall, a lost network) stops acting on a stale
//! belief; and every master write is a script that checks the key (the fence), so even a master
//! that tried would be refused.
//!
//! Taking over is fast: a node that finds the lease held asks how long it has left (PTTL) and
//! tries again right when it expires, so a dead master is replaced about `lease_ms` after its
//! last renewal. Taking and giving up the lease are announced, signed, on the Public channel
//! (`2:` messages), and every node that hears an announcement looks at the lease at once.
//!
//! The epoch never goes backwards, even when Redis does (a replica promoted by Sentinel may lag
//! behind the primary it replaces): every signed Public message carries the highest epoch its
//! sender has seen, and a node that learns of an epoch above its own mastership's stops acting
//! as master at once ([`Lease::saw_epoch`]). A node asking for the lease passes the highest
//! epoch it has seen, and LEASE_ACQUIRE also reads the epochs every node reported with its
//! heartbeats; a lease or an epoch counter below either is what a lagging replica kept, and a
//! new lease starts above it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::cluster::public::{Kind, Msg, Signer};
use crate::store::{LeaseAcquire, Store};

/// Longest wait between two looks at a lease someone else holds.
const MAX_WAIT: Duration = Duration::from_secs(5);

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
    /// Wakes the loop early (an announcement was heard, a fenced write was refused).
    poke: Notify,
    /// After a resign, this node does not try to take the lease back before this time, so
    /// another node gets it.
    quiet_until: Mutex<Option<Instant>>,
    signer: Arc<Signer>,
}

impl Lease {
    pub fn new(
        store: Store,
        node: &str,
        ttl: Duration,
        renew_every: Duration,
        signer: Arc<Signer>,
    ) -> Arc<Lease> {
        Arc::new(Lease {
            store,
            node: node.to_string(),
            ttl,
            renew_every,
            view: watch::Sender::new(LeaseView::default()),
            poke: Notify::new(),
            quiet_until: Mutex::new(None),
            signer,
        })
    }

    /// This node's mastership, if it holds the lease, its own deadline has not passed, and no
    /// higher epoch has been seen (a newer master exists, whatever this Redis says).
    pub fn current(&self) -> Option<Mastership> {
        let view = self.view.borrow();
        let m = view.mine.as_ref()?;
        (Instant::now() < m.valid_until && m.epoch >= view.epoch).then(|| m.clone())
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

    /// Wakes the loop now (the lease may have changed hands).
    pub fn poke(&self) {
        self.poke.notify_one();
    }

    /// A verified announcement said who the master is.
    pub fn observe(&self, master: &str, epoch: u64) {
        self.raise(epoch, Some(master));
    }

    /// A verified message (a heartbeat, a vote, an election request) carried the highest epoch
    /// its sender has seen. A higher one than this node's mastership means a newer master
    /// exists: this node stops acting as master now, before it talks to Redis again.
    pub fn saw_epoch(&self, epoch: u64) {
        self.raise(epoch, None);
    }

    fn raise(&self, epoch: u64, master: Option<&str>) {
        let stepped_down = std::cell::Cell::new(None);
        self.view.send_if_modified(|v| {
            if epoch <= v.epoch {
                return false;
            }
            v.epoch = epoch;
            if let Some(m) = master {
                v.master = Some(m.to_string());
            }
            if v.mine.as_ref().is_some_and(|m| m.epoch < epoch) {
                stepped_down.set(v.mine.take().map(|m| m.epoch));
            }
            true
        });
        if let Some(mine) = stepped_down.get() {
            tracing::warn!(
                mine,
                seen = epoch,
                "a higher epoch exists; no longer acting as master"
            );
            self.poke.notify_one();
        }
    }

    fn announce(&self, event: &str, epoch: u64) -> String {
        self.signer.sign(
            Kind::Vote,
            Msg {
                epoch,
                event: event.into(),
                ..Default::default()
            },
        )
    }

    /// Gives the lease up if this node holds it; returns the epoch given up.
    pub async fn resign(&self) -> Option<u64> {
        let m = self.view.borrow().mine.clone()?;
        *self.quiet_until.lock().unwrap() = Some(Instant::now() + self.ttl);
        self.view.send_modify(|v| v.mine = None);
        let msg = self.announce("resign", m.epoch);
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

    /// Takes or renews the lease until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let wait = self.tick().await;
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
                _ = self.poke.notified() => {}
            }
        }
    }

    /// One look at the lease; returns how long to wait before the next.
    async fn tick(&self) -> Duration {
        let wait = self.look().await;
        let m = &*crate::metrics::METRICS;
        m.is_master.set(self.current().is_some() as i64);
        m.epoch.set(self.view.borrow().epoch as i64);
        wait
    }

    async fn look(&self) -> Duration {
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
            return self.renew_every;
        }
        // Not the master (or our own deadline passed): forget it, then try to take the lease.
        if self.view.borrow().mine.is_some() {
            tracing::warn!("master lease expired before it could be renewed");
            self.view.send_modify(|v| v.mine = None);
        }
        let quiet = *self.quiet_until.lock().unwrap();
        if let Some(t) = quiet
            && sent < t
        {
            return t - sent;
        }
        let known = self.view.borrow().epoch;
        match self.store.lease_acquire(&self.node, self.ttl, known).await {
            Ok(LeaseAcquire::Taken(epoch)) => {
                tracing::info!(epoch, "became master");
                crate::metrics::METRICS.elections_won.inc();
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
                let msg = self.announce("elected", epoch);
                if let Err(e) = self
                    .store
                    .publish(&self.store.keys().public_channel(), &msg)
                    .await
                {
                    tracing::warn!(error = %e, "could not announce the new epoch");
                }
                self.renew_every
            }
            Ok(LeaseAcquire::Held { holder, free_in }) => {
                match holder {
                    Some((name, epoch)) => {
                        self.view.send_if_modified(|v| {
                            let changed = v.master.as_deref() != Some(&name) || v.epoch < epoch;
                            v.master = Some(name);
                            v.epoch = v.epoch.max(epoch);
                            changed
                        });
                    }
                    None => {
                        tracing::warn!(wait = ?free_in, "redis lost data: no master until a lease time has passed");
                        self.view.send_modify(|v| v.master = None);
                    }
                }
                // Look again right when it expires (a live master renews it before then).
                let jitter = Duration::from_millis(fastrand::u64(1..15));
                (free_in + jitter).min(MAX_WAIT)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach redis for the lease");
                self.renew_every
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lease that believes it is master under `epoch` (no Redis is talked to).
    fn master_at(epoch: u64) -> Arc<Lease> {
        let store = Store::unconnected("redis://127.0.0.1:1/0", "t").unwrap();
        let signer = Arc::new(Signer::new("token-0123456789abcdef", "n1"));
        let ttl = Duration::from_secs(60);
        let lease = Lease::new(store, "n1", ttl, ttl / 4, signer);
        lease.view.send_modify(|v| {
            v.mine = Some(Mastership {
                epoch,
                holder: format!("n1 {epoch}"),
                valid_until: Instant::now() + ttl,
            });
            v.epoch = epoch;
        });
        lease
    }

    #[tokio::test]
    async fn a_master_stops_acting_once_it_sees_a_higher_epoch() {
        let lease = master_at(5);
        lease.saw_epoch(4);
        lease.saw_epoch(5);
        assert_eq!(lease.current().map(|m| m.epoch), Some(5));
        lease.saw_epoch(6);
        assert!(lease.current().is_none());
        assert_eq!(lease.view().epoch, 6);
        // An announcement of a newer master does the same.
        let lease = master_at(5);
        lease.observe("n2", 7);
        assert!(lease.current().is_none());
        assert_eq!(lease.view().master.as_deref(), Some("n2"));
    }
}
