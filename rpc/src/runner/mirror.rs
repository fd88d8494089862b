//! `mirror`: keeps this node's bare mirror of an upstream repository up to date (see
//! [`crate::mirror::fetch`]) and records what it found for `ListMirrors`. Target: the upstream
//! URL. A mirror task is recurring (`[mirror] interval_secs` unless given), its id is the
//! repository's identity (adding a repository twice finds the first task) and it is placed
//! by consistent hashing (`Placement::Ring`): it runs on the ring owner of its repository.
//!
//! The git work runs on the mirror threads ([`crate::mirror::threads`]) in a network scope
//! ([`crate::mirror::net`]): its sockets end with the run, and with `[mirror]
//! deny_private_networks` they reach public addresses only (a literal private address is
//! refused when the task is created). What a run found is recorded only while the run is its
//! task's current one (its claim), and the task is kept in the node's record of standing
//! mirrors ([`super::standing`]).

use std::sync::Arc;

use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::standing::StandingTask;
use super::{Context, Plan, RunFuture, Runner, ScheduledFuture};
use crate::mirror::{MirrorUrl, mirrors_dir};
use crate::store::{MirrorRun, Placement};

pub struct Mirror {
    pub ctx: Arc<Context>,
}

impl Mirror {
    fn parse(&self, target: &str) -> Result<MirrorUrl, String> {
        MirrorUrl::parse(target, self.ctx.mirror.allow_file_urls)
    }
}

impl Runner for Mirror {
    fn kind(&self) -> &'static str {
        "mirror"
    }

    fn plan(&self, target: &str) -> Result<Plan, String> {
        let m = self.parse(target)?;
        if self.ctx.mirror.deny_private_networks
            && let Some(why) = crate::mirror::net::refused_literal(&m.host)
        {
            return Err(why);
        }
        Ok(Plan {
            id: m.task_id(),
            name: m.key(),
            placement: Placement::Ring(m.place()),
            interval: Duration::from_secs(self.ctx.mirror.interval_secs),
        })
    }

    /// A run outside any claim (no worker's): it syncs, and records nothing.
    fn run(&self, target: String, cancel: CancellationToken) -> RunFuture {
        let run = self.run_scheduled(target, Duration::ZERO, 0, cancel);
        Box::pin(async move { run.await.0 })
    }

    fn run_scheduled(
        &self,
        target: String,
        interval: Duration,
        claim: u64,
        cancel: CancellationToken,
    ) -> ScheduledFuture {
        let ctx = self.ctx.clone();
        let parsed = self.parse(&target);
        Box::pin(async move {
            let m = match parsed {
                Ok(m) => m,
                Err(e) => return (Err(e), None),
            };
            let id = m.task_id();
            if !interval.is_zero() {
                ctx.standing.ran(StandingTask {
                    id: id.clone(),
                    target: target.clone(),
                    interval,
                });
            }
            let rel = m.rel_path();
            let dir = mirrors_dir(&ctx.data_dir).join(&rel);
            let url = m.fetch_url.clone();
            let host = m.host.clone();
            let per_host = ctx.mirror.host_connections;
            let deny_private = ctx.mirror.deny_private_networks;
            let c = cancel.clone();
            let clock = std::time::Instant::now();
            let run = match ctx
                .git_threads
                .run(move || {
                    let _scope = crate::mirror::net::Scope::enter(&c, deny_private);
                    crate::mirror::fetch::sync(&dir, &url, &host, per_host, &c)
                })
                .await
            {
                Ok(r) => r,
                Err(e) => return (Err(format!("mirror run failed: {e}")), None),
            };
            let metrics = &*crate::metrics::METRICS;
            let now = gitflock_core::clock::now_ms();
            match run {
                Ok(report) => {
                    let label = if report.changed() {
                        "changed"
                    } else {
                        "unchanged"
                    };
                    metrics
                        .mirror_sync_seconds
                        .with_label_values(&[label])
                        .observe(clock.elapsed().as_secs_f64());
                    // A clone of a mirror kept elsewhere before (it moved here when its node
                    // died) is no change of the upstream: "last change" stays unless the
                    // upstream's head differs from the one recorded.
                    let changed = report.changed()
                        && !(report.cloned && moved_here_unchanged(&ctx, &id, &report.head).await);
                    let run = MirrorRun::Synced {
                        node: ctx.node.clone(),
                        path: rel.to_string_lossy().into_owned(),
                        head: report.head.clone(),
                        refs: report.refs,
                        at: now,
                        clone_url: ctx.mirror.serve_listen.is_some().then(|| {
                            format!(
                                "git://{}/{}",
                                ctx.mirror.serve_advertise,
                                rel.to_string_lossy()
                            )
                        }),
                        changed,
                        // What "recently active" means for polling: a first clone is not.
                        moved: report.changed() && !report.cloned,
                    };
                    match ctx.store.mirror_report(&id, &ctx.node, claim, &run).await {
                        Ok(Some(r)) => {
                            let since = if r.moved > 0 { now - r.moved } else { -1 };
                            let next = next_cycle(interval, true, 0, since);
                            (Ok(report.summary()), next)
                        }
                        Ok(None) => {
                            stale(&ctx, &id, claim);
                            (Ok(report.summary()), None)
                        }
                        Err(e) => (Err(e.to_string()), None),
                    }
                }
                Err(e) => {
                    if cancel.is_cancelled() {
                        return (Err(e), None);
                    }
                    metrics
                        .mirror_sync_seconds
                        .with_label_values(&["error"])
                        .observe(clock.elapsed().as_secs_f64());
                    let e = gitflock_core::redact::redact(&e);
                    let run = MirrorRun::Failed {
                        error: e.clone(),
                        at: now,
                    };
                    let next = match ctx.store.mirror_report(&id, &ctx.node, claim, &run).await {
                        Ok(Some(r)) => next_cycle(interval, false, r.failures, 0),
                        Ok(None) => {
                            stale(&ctx, &id, claim);
                            None
                        }
                        Err(_) => None,
                    };
                    (Err(e), next)
                }
            }
        })
    }
}

/// A run whose findings were not recorded: its task is gone, or a newer run of it (here or
/// on another node) owns the status now.
fn stale(ctx: &Context, id: &str, claim: u64) {
    ctx.standing.forget(id);
    tracing::info!(
        id,
        claim,
        "not recording a stale mirror run: the task is gone or a newer run owns it"
    );
}

/// True if the mirror `id` was synced before (on another node) with the upstream's head at
/// `head`: a clone here then only moved the copy.
async fn moved_here_unchanged(ctx: &Context, id: &str, head: &str) -> bool {
    match ctx.store.mirror_statuses(&[id.to_string()]).await {
        Ok(s) => s
            .first()
            .is_some_and(|prev| prev.last_change > 0 && prev.head == head),
        Err(_) => false,
    }
}

/// When a mirror's next cycle comes (None: its interval). Bounds:
/// - a repository whose upstream moved within the last hour (a first clone does not count;
///   `since_change_ms` < 0: not since the clone) is checked 4× as often, but never more often
///   than every 60 s (nor less often than its interval);
/// - one unchanged for a week is checked half as often, at most daily (or its interval);
/// - after failures the interval doubles per failed cycle (3 attempts), up to 6 h (or the
///   interval itself if longer), and comes back to normal with the first success.
pub fn next_cycle(
    interval: Duration,
    ok: bool,
    failures: u32,
    since_change_ms: i64,
) -> Option<Duration> {
    if interval.is_zero() {
        return None;
    }
    const HOUR: Duration = Duration::from_secs(3600);
    if !ok {
        let cycles = failures.div_ceil(3).min(16);
        let ceiling = interval.max(6 * HOUR);
        return Some(interval.saturating_mul(1 << cycles.min(20)).min(ceiling));
    }
    if since_change_ms >= 0 && since_change_ms <= HOUR.as_millis() as i64 {
        return Some((interval / 4).max(interval.min(Duration::from_secs(60))));
    }
    if since_change_ms > 7 * 24 * HOUR.as_millis() as i64 {
        return Some((interval * 2).min(interval.max(24 * HOUR)));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::next_cycle;
    use std::time::Duration;

    #[test]
    fn schedules_follow_activity_and_failures_within_bounds() {
        let s = Duration::from_secs;
        let min = 60_000;
        // Hot: 4× as often, not under 60 s, never over the interval.
        assert_eq!(next_cycle(s(600), true, 0, 5 * min), Some(s(150)));
        assert_eq!(next_cycle(s(120), true, 0, 5 * min), Some(s(60)));
        assert_eq!(next_cycle(s(1), true, 0, 0), Some(s(1)));
        // Normal.
        assert_eq!(next_cycle(s(600), true, 0, 24 * 60 * min), None);
        // Cold: half as often, at most daily.
        assert_eq!(
            next_cycle(s(600), true, 0, 8 * 24 * 60 * min),
            Some(s(1200))
        );
        assert_eq!(
            next_cycle(s(86400), true, 0, 8 * 24 * 60 * min),
            Some(s(86400))
        );
        // Failing: doubling per failed cycle, capped at 6 h.
        assert_eq!(next_cycle(s(600), false, 3, 0), Some(s(1200)));
        assert_eq!(next_cycle(s(600), false, 6, 0), Some(s(2400)));
        assert_eq!(next_cycle(s(600), false, 300, 0), Some(s(6 * 3600)));
        assert_eq!(next_cycle(s(0), false, 3, 0), None);
    }
}
