//! Retention, so Redis stays bounded: while this node is master, one-off tasks that ended long
//! enough ago leave Redis with their results (SUCCEED after `[tasks] retention_succeed_secs`,
//! RUNTIME_ERROR and KILLED after `retention_failed_secs`), and the change stream is trimmed
//! to its last few minutes. Recurring tasks stay whatever state they stopped in.
//!
//! The EXPIRE script needs no fence: removing a task that ended long ago is right whoever
//! does it, and the script checks the task's state and age itself. Only the master sweeps so
//! that the nodes do not all do the same work.

use gitflock_proto::v1::TaskState;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::cluster::lease::Lease;
use crate::store::Store;

/// How often the master looks for tasks to remove.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Tasks removed by one EXPIRE call (each ~10 commands: the script holds Redis ~2 ms).
const BATCH: usize = 200;
/// Change-stream entries older than this go, or than the shortest retention if shorter (an
/// entry outliving its task tells a watcher nothing). Watchers follow the stream within a
/// second; one away longer re-reads what it shows anyway.
const EVENTS_KEPT: Duration = Duration::from_secs(300);

pub struct Retention {
    pub store: Store,
    pub lease: Arc<Lease>,
    pub succeed: Duration,
    pub failed: Duration,
}

impl Retention {
    pub async fn run(self, stop: CancellationToken) {
        loop {
            if self.lease.current().is_some()
                && let Err(e) = self.sweep(&stop).await
            {
                tracing::warn!(error = %e.category(), "retention sweep failed");
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(SWEEP_EVERY) => {}
            }
        }
    }

    /// Removes everything due for removal, a batch at a time (other scripts run between
    /// batches), while this node stays master.
    async fn sweep(&self, stop: &CancellationToken) -> crate::store::Result<()> {
        let rules = [
            (TaskState::Succeed, self.succeed),
            (TaskState::RuntimeError, self.failed),
            (TaskState::Killed, self.failed),
        ];
        let mut removed = 0;
        for (state, retention) in rules {
            loop {
                if stop.is_cancelled() || self.lease.current().is_none() {
                    return Ok(());
                }
                let r = self.store.expire(state, retention, BATCH).await?;
                removed += r.removed;
                if !r.more {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
        if removed > 0 {
            crate::metrics::METRICS.tasks_expired.inc_by(removed);
            tracing::debug!(removed, "expired finished tasks");
        }
        let keep = EVENTS_KEPT.min(self.succeed).min(self.failed);
        self.store.trim_events(keep).await?;
        Ok(())
    }
}
