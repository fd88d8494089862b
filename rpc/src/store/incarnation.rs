//! Which life of the data Redis holds. Redis can lose its data while the nodes run (a restart
//! without an append-only file, FLUSHALL, a failover to an empty replica) or go back in time
//! (a restart from an older snapshot). The nodes notice through the incarnation: a random id
//! kept in Redis (`P:incarnation`), made anew whenever Redis has none (by INCARNATION, which
//! every node runs about once a second, or by CLAIM), and replaced when a node was given a
//! claim number that Redis's counter no longer reaches. Claim numbers are scoped by it: each
//! incarnation's start above every earlier one's (see CLAIM).

use redis::Value;
use std::sync::atomic::Ordering;

use super::reply::{Items, malformed};
use super::{Result, Store};

/// The incarnation as Redis holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Incarnation {
    pub id: String,
    /// When it was made (Redis clock, ms).
    pub since: i64,
    /// When a node first found it in place of the one it knew: the data was lost then (ms;
    /// 0: no loss recorded since it was made).
    pub lost: i64,
    /// The node that noticed.
    pub noticed_by: String,
}

impl Store {
    /// The incarnation Redis holds now, made or replaced as INCARNATION says. `known` is the
    /// one this node knew ('' at start): when it differs from the answer, Redis lost its data
    /// since this node last looked.
    pub async fn incarnation(&self, node: &str, known: &str) -> Result<Incarnation> {
        let k = &self.keys;
        let mut c = self.acked();
        let v: Value = self
            .scripts
            .incarnation
            .key(k.incarnation())
            .key(k.claims())
            .arg(new_id())
            .arg(known)
            .arg(self.claims_seen())
            .arg(node)
            .invoke_async(&mut c)
            .await?;
        let mut r = Items::exactly("INCARNATION", v, 4)?;
        Ok(Incarnation {
            id: r.text("id")?,
            since: r.int("since")?,
            lost: r.int("lost")?,
            noticed_by: r.text("noticed by")?,
        })
    }

    /// The incarnation as it stands, read only (None: Redis holds none yet).
    pub async fn incarnation_record(&self) -> Result<Option<Incarnation>> {
        let mut c = self.conn.clone();
        let (id, since, lost, by): (Option<String>, Option<i64>, Option<i64>, Option<String>) =
            redis::cmd("HMGET")
                .arg(self.keys.incarnation())
                .arg(&["id", "since", "lost", "noticed_by"])
                .query_async(&mut c)
                .await?;
        Ok(id.map(|id| Incarnation {
            id,
            since: since.unwrap_or(0),
            lost: lost.unwrap_or(0),
            noticed_by: by.unwrap_or_default(),
        }))
    }

    /// Which of `ids` are tasks that exist and were not killed, read in one transaction with
    /// the incarnation: None when that is not `known` any more (Redis lost its data, so "no
    /// such task" would say nothing about the task).
    pub async fn live_tasks(&self, known: &str, ids: &[String]) -> Result<Option<Vec<bool>>> {
        let mut pipe = redis::pipe();
        pipe.atomic().hget(self.keys.incarnation(), "id");
        for id in ids {
            pipe.hget(self.keys.task(id), "state");
        }
        let mut c = self.conn.clone();
        let mut replies: Vec<Option<String>> = pipe.query_async(&mut c).await?;
        if replies.len() != ids.len() + 1 {
            return Err(malformed("live tasks: one reply per task expected"));
        }
        let states = replies.split_off(1);
        if replies[0].as_deref() != Some(known) {
            return Ok(None);
        }
        Ok(Some(
            states
                .into_iter()
                .map(|s| s.is_some_and(|s| s != "KILLED"))
                .collect(),
        ))
    }

    /// The highest claim number this process was given.
    pub(super) fn claims_seen(&self) -> u64 {
        self.claims_seen.load(Ordering::SeqCst)
    }

    /// Notes a claim number this process was given.
    pub(super) fn saw_claim(&self, claim: u64) {
        self.claims_seen.fetch_max(claim, Ordering::SeqCst);
    }
}

/// A fresh incarnation id, offered to a script that makes one if Redis has none.
pub(super) fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
