//! The cluster in Redis: the master lease, the master's fenced writes (DISPATCH, REASSIGN,
//! ADMIT), and presence (HEARTBEAT, the node records). The scripts are in
//! `scripts/cluster.rs` and `scripts/work.rs` (DISPATCH).

use redis::{AsyncCommands, Value};
use std::collections::HashMap;
use std::time::Duration;

use super::reply::{self, Fields, Items, malformed};
use super::tasks::PutBack;
use super::{Result, Store, fenced};
use gitflock_core::task;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DispatchReport {
    pub moved: u64,
    /// Tasks due now still WAITING (no room in the inboxes, or no live worker).
    pub left: u64,
    /// The earliest due time (Redis clock, ms) of any WAITING task, if any.
    pub next_due: Option<i64>,
    /// The Redis clock (ms) when the script ran.
    pub now: i64,
}

#[derive(Clone, Debug)]
pub enum LeaseAcquire {
    Taken(u64),
    /// Not taken: who holds it (nobody during a hold-off after data loss), and how long until
    /// it may be free.
    Held {
        holder: Option<(String, u64)>,
        free_in: Duration,
    },
}

/// What a node publishes about itself at each heartbeat.
#[derive(Clone, Debug)]
pub struct Beat<'a> {
    pub node: &'a str,
    pub addr: &'a str,
    pub concurrency: usize,
    pub running: usize,
    pub version: &'a str,
    pub epoch: u64,
    /// Shutting down: the master gives it no more work.
    pub leaving: bool,
    /// Where it serves `/metrics` (`host:port`; empty: not served), shown by ListNodes.
    pub metrics: &'a str,
}

#[derive(Clone, Debug)]
pub struct NodeRecord {
    pub name: String,
    pub addr: String,
    pub last_heartbeat: i64,
    pub concurrency: u32,
    pub running: u32,
    pub version: String,
    pub epoch: u64,
    pub leaving: bool,
    /// Declared dead by the master (until it admits the node again).
    pub dead: bool,
    /// Where it serves `/metrics` (empty: not served, or a node from before it was recorded).
    pub metrics: String,
}

/// The lease's value, `"<node> <epoch>"` (what LEASE_ACQUIRE writes).
fn parse_holder(v: &str) -> Result<(String, u64)> {
    v.split_once(' ')
        .and_then(|(name, epoch)| Some((name.to_string(), epoch.parse().ok()?)))
        .ok_or_else(|| malformed("lease: expected \"<node> <epoch>\""))
}

impl Store {
    // ---- the master ----

    /// Fenced: refused with `NotMaster` unless `holder` is the current lease value. Gives work
    /// only to `nodes` (the ones the master's membership admits as alive); tasks placed on the
    /// ring go to the owner of their point in `ring` ((point, node) sorted by point).
    pub async fn dispatch(
        &self,
        holder: &str,
        epoch: u64,
        max: usize,
        dead_after: Duration,
        nodes: &[String],
        ring: &[(u32, String)],
    ) -> Result<DispatchReport> {
        let k = &self.keys;
        let mut c = self.acked();
        let mut inv = self.scripts.dispatch.prepare_invoke();
        inv.key(k.lease())
            .key(k.nodes())
            .key(k.node_info_family())
            .key(k.inbox_family())
            .key(k.inflight_family())
            .key(k.due())
            .key(k.task_family())
            .key(k.state_family())
            .key(k.events())
            .key(k.node_channel_family())
            .key(k.dispatched())
            .key(k.results_family())
            .key(k.ended_family())
            .arg(holder)
            .arg(max)
            .arg(dead_after.as_millis() as u64)
            .arg(epoch)
            .arg(gitflock_core::task::RESULTS_KEPT)
            .arg(nodes.len());
        for n in nodes {
            inv.arg(n);
        }
        for (point, n) in ring {
            inv.arg(point).arg(n);
        }
        let v: Value = fenced(inv.invoke_async(&mut c).await)?;
        let mut r = Items::exactly("DISPATCH", v, 4)?;
        let mut count = |name: &'static str| {
            r.int(name).and_then(|n| {
                u64::try_from(n).map_err(|_| malformed(format!("DISPATCH {name}: negative")))
            })
        };
        let moved = count("moved")?;
        let left = count("left")?;
        let next = r.int("next due")?;
        Ok(DispatchReport {
            moved,
            left,
            next_due: (next >= 0).then_some(next),
            now: r.int("now")?,
        })
    }

    /// Takes the lease if it is free. `known_epoch` is the highest epoch this node has seen
    /// (how Redis data loss, or a lagging replica promoted, is noticed; the script also reads
    /// the epochs the nodes report).
    pub async fn lease_acquire(
        &self,
        node: &str,
        ttl: Duration,
        known_epoch: u64,
    ) -> Result<LeaseAcquire> {
        let k = &self.keys;
        let mut c = self.acked();
        let v: Value = self
            .scripts
            .lease_acquire
            .key(k.lease())
            .key(k.holdoff())
            .key(k.epoch())
            .key(k.nodes())
            .key(k.node_info_family())
            .arg(node)
            .arg(ttl.as_millis() as u64)
            .arg(known_epoch)
            .invoke_async(&mut c)
            .await?;
        let mut r = Items::exactly("LEASE_ACQUIRE", v, 3)?;
        match r.int("taken")? {
            1 => Ok(LeaseAcquire::Taken(r.parsed("epoch")?)),
            0 => {
                let holder = r.text("holder")?;
                // PTTL: -2 if the key expired meanwhile.
                let ms = r.int("ms")?;
                Ok(LeaseAcquire::Held {
                    holder: if holder.is_empty() {
                        None
                    } else {
                        Some(parse_holder(&holder)?)
                    },
                    free_in: Duration::from_millis(ms.max(0) as u64),
                })
            }
            _ => Err(malformed("LEASE_ACQUIRE taken: expected 0 or 1")),
        }
    }

    pub async fn lease_renew(&self, holder: &str, ttl: Duration) -> Result<bool> {
        let mut c = self.acked();
        let v: Value = self
            .scripts
            .lease_renew
            .key(self.keys.lease())
            .arg(holder)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut c)
            .await?;
        yes_or_no("LEASE_RENEW", v)
    }

    pub async fn lease_release(&self, holder: &str, announcement: &str) -> Result<bool> {
        let mut c = self.acked();
        let v: Value = self
            .scripts
            .lease_release
            .key(self.keys.lease())
            .key(self.keys.public_channel())
            .arg(holder)
            .arg(announcement)
            .invoke_async(&mut c)
            .await?;
        yes_or_no("LEASE_RELEASE", v)
    }

    /// The current master and epoch, if any node holds the lease.
    pub async fn lease_holder(&self) -> Result<Option<(String, u64)>> {
        let mut c = self.conn.clone();
        let v: Option<String> = c.get(self.keys.lease()).await?;
        v.map(|v| parse_holder(&v)).transpose()
    }

    /// The newest epoch handed out (0 before any master).
    pub async fn epoch(&self) -> Result<u64> {
        let mut c = self.conn.clone();
        let v: Option<u64> = c.get(self.keys.epoch()).await?;
        Ok(v.unwrap_or(0))
    }

    /// Fenced: a node was declared dead; its inbox and in-flight tasks go back.
    /// Returns (requeued, ended).
    pub async fn reassign(&self, holder: &str, node: &str) -> Result<(u64, u64)> {
        let k = &self.keys;
        let mut c = self.acked();
        let mut inv = self.scripts.reassign.prepare_invoke();
        inv.key(k.lease())
            .key(k.node_info(node))
            .key(k.inbox(node))
            .key(k.inflight(node))
            .key(k.task_family())
            .key(k.results_family())
            .key(k.due())
            .key(k.state_family())
            .key(k.events())
            .key(k.ended_family())
            .arg(holder)
            .arg(node)
            .arg(task::RESULTS_KEPT);
        let v: Value = fenced(inv.invoke_async(&mut c).await)?;
        let p = PutBack::read("REASSIGN", v)?;
        Ok((p.requeued, p.ended))
    }

    /// Fenced: a node declared dead may take work again.
    pub async fn admit(&self, holder: &str, node: &str) -> Result<()> {
        let mut c = self.acked();
        let mut inv = self.scripts.admit.prepare_invoke();
        inv.key(self.keys.lease())
            .key(self.keys.node_info(node))
            .arg(holder);
        let v: Value = fenced(inv.invoke_async(&mut c).await)?;
        match reply::int("ADMIT", v)? {
            1 => Ok(()),
            _ => Err(malformed("ADMIT: expected 1")),
        }
    }

    // ---- presence ----

    /// Presence, and `signed` (the `0:` heartbeat) published on the Public channel; returns
    /// the Redis server time (ms).
    pub async fn heartbeat(&self, b: &Beat<'_>, signed: &str) -> Result<i64> {
        let k = &self.keys;
        let mut c = self.conn.clone();
        let v: Value = self
            .scripts
            .heartbeat
            .key(k.nodes())
            .key(k.node_info(b.node))
            .key(k.public_channel())
            .arg(b.node)
            .arg(b.addr)
            .arg(b.concurrency)
            .arg(b.running)
            .arg(b.version)
            .arg(b.epoch)
            .arg(if b.leaving { 1 } else { 0 })
            .arg(signed)
            .arg(b.metrics)
            .invoke_async(&mut c)
            .await?;
        reply::int("HEARTBEAT", v)
    }

    /// Every node that ever heartbeated and was not forgotten, with the server time (ms).
    pub async fn nodes(&self) -> Result<(Vec<NodeRecord>, i64)> {
        let mut c = self.conn.clone();
        let (names, time): (Vec<(String, f64)>, (String, String)) = redis::pipe()
            .zrange_withscores(self.keys.nodes(), 0, -1)
            .cmd("TIME")
            .query_async(&mut c)
            .await?;
        let now = match (time.0.parse::<i64>(), time.1.parse::<i64>()) {
            (Ok(s), Ok(us)) => s * 1000 + us / 1000,
            _ => return Err(malformed("TIME: expected seconds and microseconds")),
        };
        let mut pipe = redis::pipe();
        for (name, _) in &names {
            pipe.hgetall(self.keys.node_info(name));
        }
        let infos: Vec<HashMap<String, String>> = pipe.query_async(&mut c).await?;
        let nodes = names
            .into_iter()
            .zip(infos)
            .map(|((name, last), info)| {
                let f = Fields::of("node info", &info);
                Ok(NodeRecord {
                    addr: f.text("addr"),
                    last_heartbeat: last as i64,
                    concurrency: f.number("concurrency")?,
                    running: f.number("running")?,
                    version: f.text("version"),
                    epoch: f.number("epoch")?,
                    leaving: f.flag("leaving"),
                    dead: f.flag("dead"),
                    metrics: f.text("metrics"),
                    name,
                })
            })
            .collect::<Result<_>>()?;
        Ok((nodes, now))
    }
}

/// A script's 1 (yes) or 0 (no).
fn yes_or_no(script: &str, v: Value) -> Result<bool> {
    match reply::int(script, v)? {
        1 => Ok(true),
        0 => Ok(false),
        _ => Err(malformed(format!("{script}: expected 0 or 1"))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_lease_value_names_its_node_and_epoch() {
        assert_eq!(super::parse_holder("n1 7").unwrap(), ("n1".into(), 7));
        assert!(super::parse_holder("n1").is_err());
        assert!(super::parse_holder("n1 x").is_err());
    }
}
