//! Retention: finished one-off tasks leave Redis after `[tasks] retention_*`, and the change
//! stream is bounded in time. The scripts are in `scripts/retention.rs`.

use gitflock_proto::v1::TaskState;
use redis::Value;
use std::time::Duration;

use super::reply::{Items, malformed};
use super::tasks::count;
use super::{Result, Store};

/// What one EXPIRE call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expired {
    pub removed: u64,
    /// Tasks older than the cutoff remain: call again.
    pub more: bool,
}

impl Store {
    /// Removes up to `max` one-off tasks that ended in `state` (a final state) at least
    /// `retention` ago (Redis clock), with their results, from every index.
    pub async fn expire(
        &self,
        state: TaskState,
        retention: Duration,
        max: usize,
    ) -> Result<Expired> {
        let k = &self.keys;
        let mut c = self.conn.clone();
        let v: Value = self
            .scripts
            .expire
            .key(k.ended(state))
            .key(k.task_family())
            .key(k.results_family())
            .key(k.mirror_family())
            .key(k.all())
            .key(k.state_family())
            .key(k.type_family())
            .key(k.due())
            .key(k.listed())
            .key(k.events())
            .arg(state.as_str_name())
            .arg(retention.as_millis() as u64)
            .arg(max)
            .invoke_async(&mut c)
            .await?;
        let mut r = Items::exactly("EXPIRE", v, 2)?;
        let removed = r.int("removed")?;
        Ok(Expired {
            removed: u64::try_from(removed).map_err(|_| malformed("EXPIRE removed: negative"))?,
            more: match r.int("more")? {
                0 => false,
                1 => true,
                _ => return Err(malformed("EXPIRE more: expected 0 or 1")),
            },
        })
    }

    /// Drops change-stream entries older than `keep`; returns how many.
    pub async fn trim_events(&self, keep: Duration) -> Result<u64> {
        let mut c = self.conn.clone();
        let v: Value = self
            .scripts
            .trim_events
            .key(self.keys.events())
            .arg(keep.as_millis() as u64)
            .invoke_async(&mut c)
            .await?;
        count("TRIM_EVENTS", v)
    }
}
