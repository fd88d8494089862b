//! Membership: who is in the cluster, and who is alive.
//!
//! Every node, every heartbeat, writes its presence to Redis and publishes a signed `0:`
//! heartbeat on the Public channel in one round trip ([`Presence`]). The master keeps the
//! authoritative table ([`Membership`]):
//!
//! - a node is heard through verified heartbeats, or through its Redis presence (so a missed
//!   pub/sub message, a late joiner or a reconnect change nothing);
//! - an unknown node (and, after a master change, every node) is **probed** with a direct gRPC
//!   `AskAlive` carrying the token before it is admitted, as in the seed; a forged heartbeat
//!   fails its HMAC and is never even probed;
//! - alive → suspect after two missed heartbeats → after `dead_after` of silence, probed once
//!   more; only if the probe fails is it declared **dead**, and its inbox and in-flight tasks
//!   go back to WAITING (the fenced REASSIGN script);
//! - a dead node that speaks again is probed and admitted again.
//!
//! Only admitted, alive nodes get work ([`Membership::dispatchable`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::cluster::lease::Lease;
use crate::cluster::public::{Kind, Msg, Signer, Verifier};
use crate::store::{Beat, NodeRecord, Store, StoreError};
use gitflock_proto::v1::AskAliveRequest;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How long a probe (connect + AskAlive) may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

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

/// The state shown for a node record: dead if the master declared it dead or it left;
/// otherwise by the age of its last heartbeat (alive within two heartbeats, suspect until
/// `dead_after`, then dead).
pub fn state_of(
    n: &NodeRecord,
    now_ms: i64,
    heartbeat: Duration,
    dead_after: Duration,
) -> NodeState {
    let age = now_ms.saturating_sub(n.last_heartbeat).max(0) as u128;
    if n.dead || n.leaving || age > dead_after.as_millis() {
        NodeState::Dead
    } else if age > 2 * heartbeat.as_millis() {
        NodeState::Suspect
    } else {
        NodeState::Alive
    }
}

/// What a heartbeat says of this node's work. The worker implements it; the cluster layer
/// does not depend on the engine.
pub trait Load: Send + Sync {
    fn running(&self) -> usize;
    fn concurrency(&self) -> usize;
}

/// Writes this node's presence and heartbeat every `heartbeat`.
pub struct Presence {
    pub store: Store,
    pub node: String,
    pub addr: String,
    /// Where this node serves `/metrics` (empty: not served), for `gitflock nodes`.
    pub metrics: String,
    pub heartbeat: Duration,
    pub load: Arc<dyn Load>,
    pub lease: Arc<Lease>,
    pub signer: Arc<Signer>,
    /// Set at shutdown, so heartbeats keep saying "no new work" while runs drain.
    pub leaving: Arc<AtomicBool>,
    /// The gRPC health reporter: NOT_SERVING while heartbeats cannot reach Redis.
    pub health: Option<tonic_health::server::HealthReporter>,
}

impl Presence {
    pub async fn beat(&self) -> crate::store::Result<i64> {
        let view = self.lease.view();
        let role = if self.lease.current().is_some() {
            "master"
        } else {
            "slave"
        };
        let msg = self.signer.sign(
            Kind::Heartbeat,
            Msg {
                addr: self.addr.clone(),
                epoch: view.epoch,
                role: role.into(),
                load: self.load.running() as u32,
                concurrency: self.load.concurrency() as u32,
                version: VERSION.into(),
                ..Default::default()
            },
        );
        self.store
            .heartbeat(
                &Beat {
                    node: &self.node,
                    addr: &self.addr,
                    concurrency: self.load.concurrency(),
                    running: self.load.running(),
                    version: VERSION,
                    epoch: view.epoch,
                    leaving: self.leaving.load(Ordering::SeqCst),
                    metrics: &self.metrics,
                },
                &msg,
            )
            .await
    }

    pub async fn run(self, stop: CancellationToken) {
        let mut failing = false;
        let watchdog = gitflock_core::systemd::watchdog_every();
        let mut fed = std::time::Instant::now();
        loop {
            let t0 = std::time::Instant::now();
            let beat = self.beat().await;
            match &beat {
                Ok(_) => crate::metrics::METRICS
                    .heartbeat_seconds
                    .observe(t0.elapsed().as_secs_f64()),
                Err(_) => crate::metrics::METRICS.heartbeat_failures.inc(),
            }
            // The watchdog is fed by the loop that carries heartbeats: if the runtime wedges,
            // systemd restarts the node. (Redis being away is not a reason to restart.)
            if let Some(every) = watchdog
                && fed.elapsed() >= every
            {
                gitflock_core::systemd::watchdog();
                fed = std::time::Instant::now();
            }
            match beat {
                Ok(_) if failing => {
                    tracing::info!("heartbeats reach redis again");
                    failing = false;
                    if let Some(h) = &self.health {
                        h.set_service_status("", tonic_health::ServingStatus::Serving)
                            .await;
                    }
                }
                Ok(_) => {}
                Err(e) if !failing => {
                    tracing::warn!(error = %e, "heartbeat failed");
                    failing = true;
                    // Without Redis this node can do nothing useful: say so to health checks.
                    if let Some(h) = &self.health {
                        h.set_service_status("", tonic_health::ServingStatus::NotServing)
                            .await;
                    }
                }
                Err(_) => {}
            }
            let pause = watchdog.map_or(self.heartbeat, |w| w.min(self.heartbeat));
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}

#[derive(Clone, Debug)]
struct Member {
    /// Where probes dial it: only ever from a signed heartbeat (empty until one came). A
    /// presence record in Redis is not signed, and a probe carries the cluster token.
    addr: String,
    last_heard: Instant,
    /// Probed (by this master) and answered.
    admitted: bool,
    /// Declared dead (its work was reassigned); it must be probed to come back.
    dead: bool,
    probing: bool,
    /// When it was admitted again after being declared dead (flap damping for placement).
    back_at: Option<Instant>,
}

pub struct Membership {
    me: String,
    store: Store,
    lease: Arc<Lease>,
    token: String,
    /// How probes dial `https://` nodes (the cluster's CA, this node's client certificate).
    dial: gitflock_client::Tls,
    heartbeat: Duration,
    dead_after: Duration,
    verifier: Verifier,
    table: Mutex<HashMap<String, Member>>,
    /// The epoch whose table this is; a new mastership rebuilds it from Redis.
    table_epoch: Mutex<u64>,
    /// Rung when a node is admitted, so the dispatcher gives it work at once.
    wake_dispatch: Arc<Notify>,
    signer: Arc<Signer>,
    /// The epoch whose master this node last asked an election about (once per epoch).
    requested: Mutex<u64>,
}

impl Membership {
    pub fn new(
        me: &str,
        store: Store,
        lease: Arc<Lease>,
        config: &gitflock_core::config::ClusterConfig,
        wake_dispatch: Arc<Notify>,
        signer: Arc<Signer>,
        dial: gitflock_client::Tls,
    ) -> Arc<Membership> {
        Arc::new(Membership {
            me: me.to_string(),
            store,
            lease,
            token: config.token.clone(),
            dial,
            heartbeat: config.heartbeat,
            dead_after: config.dead_after,
            verifier: Verifier::new(&config.token),
            table: Mutex::new(HashMap::new()),
            table_epoch: Mutex::new(0),
            wake_dispatch,
            signer,
            requested: Mutex::new(0),
        })
    }

    /// Checks a Public message; returns it if it is genuine and new. Heartbeats count as
    /// having heard from their sender.
    pub fn on_public(self: &Arc<Self>, text: &str) -> Option<(Kind, Msg)> {
        match self.verifier.verify(text) {
            Ok((kind, msg)) => {
                if kind == Kind::Heartbeat && msg.name != self.me {
                    self.heard(&msg.name, &msg.addr);
                }
                Some((kind, msg))
            }
            Err(why) => {
                tracing::debug!(?why, "dropped a Public message");
                None
            }
        }
    }

    /// Nodes that may get work now: admitted, not dead, heard within two heartbeats (and this
    /// node itself).
    pub fn dispatchable(&self) -> Vec<String> {
        let now = Instant::now();
        let table = self.table.lock().unwrap();
        let mut out: Vec<String> = table
            .iter()
            .filter(|(_, m)| {
                m.admitted && !m.dead && now.duration_since(m.last_heard) <= 2 * self.heartbeat
            })
            .map(|(n, _)| n.clone())
            .collect();
        out.push(self.me.clone());
        out
    }

    /// The nodes mirrors are placed on (the consistent-hashing ring): admitted and not
    /// declared dead (or being probed, as after a change of master) — a node late with a
    /// heartbeat keeps its repositories (they wait for it) until it is confirmed dead — and,
    /// for a node that came back from the dead, up for
    /// `settle` already, so a flapping node does not pull repositories back and forth.
    pub fn placement(&self, settle: Duration) -> Vec<String> {
        let table = self.table.lock().unwrap();
        let mut out: Vec<String> = table
            .iter()
            .filter(|(_, m)| {
                (m.admitted || m.probing)
                    && !m.dead
                    && m.back_at.is_none_or(|t| t.elapsed() >= settle)
            })
            .map(|(n, _)| n.clone())
            .collect();
        out.push(self.me.clone());
        out.sort();
        out.dedup();
        out
    }

    fn heard(self: &Arc<Self>, name: &str, addr: &str) {
        let mut table = self.table.lock().unwrap();
        let m = table.entry(name.to_string()).or_insert_with(|| Member {
            addr: addr.to_string(),
            last_heard: Instant::now(),
            admitted: false,
            dead: false,
            probing: false,
            back_at: None,
        });
        m.last_heard = Instant::now();
        m.addr = addr.to_string();
        // Only the master admits; the others just listen.
        if self.lease.current().is_some() {
            self.start_admission(name, m);
        }
    }

    /// Starts an admission probe of a member, unless one runs or it is admitted and alive.
    fn start_admission(self: &Arc<Self>, name: &str, m: &mut Member) {
        // Without an address from a signed heartbeat there is nothing to dial yet: its next
        // heartbeat (within one period) starts the probe.
        if m.probing || (m.admitted && !m.dead) || m.addr.is_empty() {
            return;
        }
        m.probing = true;
        let me = self.clone();
        let (name, addr) = (name.to_string(), m.addr.clone());
        tokio::spawn(async move { me.admit(&name, &addr).await });
    }

    /// Probes a node and admits it if it answers as itself.
    async fn admit(&self, name: &str, addr: &str) {
        let ok = probe(addr, name, &self.token, &self.dial).await;
        let was_dead = {
            let mut table = self.table.lock().unwrap();
            let Some(m) = table.get_mut(name) else { return };
            m.probing = false;
            if !ok {
                return;
            }
            let was_dead = m.dead;
            m.admitted = true;
            m.last_heard = Instant::now();
            was_dead
        };
        if was_dead {
            let Some(master) = self.lease.current() else {
                return;
            };
            match self.store.admit(&master.holder, name).await {
                Ok(()) => {
                    tracing::info!(node = name, "node is back and admitted again");
                    if let Some(m) = self.table.lock().unwrap().get_mut(name) {
                        m.dead = false;
                        m.back_at = Some(Instant::now());
                    }
                }
                Err(StoreError::NotMaster) => self.lease.lost(),
                Err(e) => tracing::warn!(error = %e, node = name, "could not admit node"),
            }
        } else {
            tracing::info!(node = name, addr, "node admitted");
        }
        self.wake_dispatch.notify_one();
    }

    /// The master's watch: every heartbeat, rebuild the table after a master change, merge
    /// Redis presence, and judge the silent.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            if let Err(e) = self.watch().await {
                tracing::warn!(error = %e, "membership check failed");
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.heartbeat) => {}
            }
        }
    }

    async fn watch(self: &Arc<Self>) -> crate::store::Result<()> {
        let Some(master) = self.lease.current() else {
            *self.table_epoch.lock().unwrap() = 0;
            self.request_election_if_master_silent().await;
            return Ok(());
        };
        let (records, now_ms) = self.store.nodes().await?;
        let fresh_epoch = {
            let mut e = self.table_epoch.lock().unwrap();
            let fresh = *e != master.epoch;
            *e = master.epoch;
            fresh
        };
        if fresh_epoch && records.iter().any(|r| r.name == self.me && r.dead) {
            // Declared dead while away (paused, cut off); as master it takes work again.
            match self.store.admit(&master.holder, &self.me).await {
                Err(StoreError::NotMaster) => self.lease.lost(),
                Err(e) => return Err(e),
                Ok(()) => {}
            }
        }
        let now = Instant::now();
        let mut to_probe = Vec::new();
        {
            let mut table = self.table.lock().unwrap();
            for r in records.iter().filter(|r| r.name != self.me) {
                let age =
                    Duration::from_millis(now_ms.saturating_sub(r.last_heartbeat).max(0) as u64);
                let heard_at = now.checked_sub(age).unwrap_or(now);
                match table.get_mut(&r.name) {
                    None => {
                        // Recently alive: probe (once a signed heartbeat gives its address)
                        // before admitting. Long silent: keep it as a
                        // member to be confirmed dead (its work must come back). Declared dead
                        // and silent: nothing to do until it speaks.
                        let silent = age > self.dead_after;
                        table.insert(
                            r.name.clone(),
                            Member {
                                addr: String::new(),
                                last_heard: heard_at,
                                admitted: silent && !r.dead,
                                dead: r.dead,
                                probing: false,
                                back_at: None,
                            },
                        );
                        if !silent {
                            to_probe.push(r.name.clone());
                        }
                    }
                    Some(m) => {
                        if fresh_epoch {
                            // Verdicts of earlier masters are in Redis; admissions this process
                            // made itself stand.
                            m.dead = r.dead;
                        }
                        if heard_at > m.last_heard {
                            m.last_heard = heard_at;
                            if (!m.admitted || m.dead) && age <= 2 * self.heartbeat {
                                to_probe.push(r.name.clone());
                            }
                        }
                    }
                }
            }
        }
        for name in to_probe {
            self.heard_quietly(&name);
        }

        // The silent (admitted or not: an unadmitted node may hold work a previous master gave
        // it): probe once more, then declare dead.
        let silent: Vec<(String, String)> = {
            let mut table = self.table.lock().unwrap();
            table
                .iter_mut()
                .filter(|(_, m)| {
                    !m.dead && !m.probing && now.duration_since(m.last_heard) > self.dead_after
                })
                .map(|(n, m)| {
                    m.probing = true;
                    (n.clone(), m.addr.clone())
                })
                .collect()
        };
        for (name, addr) in silent {
            let me = self.clone();
            tokio::spawn(async move { me.confirm_dead(&name, &addr).await });
        }
        Ok(())
    }

    /// A slave that has not heard the master for two heartbeats says so on the Public channel
    /// (`1:`, once per epoch): every node then looks at the lease at once, and the first to
    /// find it expired becomes master with the next epoch.
    async fn request_election_if_master_silent(&self) {
        let view = self.lease.view();
        let Some(master) = view.master.as_deref() else {
            return;
        };
        if master == self.me || *self.requested.lock().unwrap() >= view.epoch {
            return;
        }
        let silent = self
            .table
            .lock()
            .unwrap()
            .get(master)
            .is_some_and(|m| m.last_heard.elapsed() > 2 * self.heartbeat);
        if !silent {
            return;
        }
        *self.requested.lock().unwrap() = view.epoch;
        tracing::info!(
            master,
            epoch = view.epoch,
            "master is silent; requesting an election"
        );
        let msg = self.signer.sign(
            Kind::ElectionRequest,
            Msg {
                epoch: view.epoch,
                ..Default::default()
            },
        );
        if let Err(e) = self
            .store
            .publish(&self.store.keys().public_channel(), &msg)
            .await
        {
            tracing::warn!(error = %e, "could not publish the election request");
        }
        self.lease.poke();
    }

    /// Starts an admission probe for a node seen in Redis (not via a heartbeat message).
    fn heard_quietly(self: &Arc<Self>, name: &str) {
        if let Some(m) = self.table.lock().unwrap().get_mut(name) {
            self.start_admission(name, m);
        }
    }

    async fn confirm_dead(&self, name: &str, addr: &str) {
        if probe(addr, name, &self.token, &self.dial).await {
            tracing::info!(node = name, "silent node answered its probe; still alive");
            if let Some(m) = self.table.lock().unwrap().get_mut(name) {
                m.probing = false;
                m.last_heard = Instant::now();
            }
            return;
        }
        let Some(master) = self.lease.current() else {
            if let Some(m) = self.table.lock().unwrap().get_mut(name) {
                m.probing = false;
            }
            return;
        };
        let r = self.store.reassign(&master.holder, name).await;
        let mut table = self.table.lock().unwrap();
        let m = table.get_mut(name);
        match r {
            Ok((requeued, ended)) => {
                tracing::warn!(
                    node = name,
                    requeued,
                    ended,
                    "node declared dead; its tasks go back"
                );
                crate::metrics::METRICS.nodes_declared_dead.inc();
                crate::metrics::METRICS
                    .tasks_reassigned
                    .inc_by(requeued + ended);
                if let Some(m) = m {
                    m.dead = true;
                    m.admitted = false;
                    m.probing = false;
                }
                drop(table);
                self.wake_dispatch.notify_one();
            }
            Err(e) => {
                if let Some(m) = m {
                    m.probing = false;
                }
                drop(table);
                if matches!(e, StoreError::NotMaster) {
                    self.lease.lost();
                } else {
                    tracing::warn!(error = %e, node = name, "could not reassign a dead node's tasks");
                }
            }
        }
    }
}

/// A direct gRPC `AskAlive` with the token; true if the node answers as `name`. An empty
/// `addr` (no signed heartbeat has named one yet) is never dialled.
pub async fn probe(addr: &str, name: &str, token: &str, tls: &gitflock_client::Tls) -> bool {
    if addr.is_empty() {
        return false;
    }
    let ask = async {
        let mut c = gitflock_client::Client::connect_with(addr, token, Some(PROBE_TIMEOUT), tls)
            .await
            .ok()?;
        let r = c
            .nodes
            .ask_alive(AskAliveRequest {
                name: String::new(),
            })
            .await
            .ok()?;
        Some(r.into_inner().name == name)
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, ask).await,
        Ok(Some(true))
    )
}
