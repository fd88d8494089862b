//! Noticing that Redis lost its data, and healing what only the nodes can: every node asks
//! for the incarnation about once a second (INCARNATION, `store::incarnation`). When it is not
//! the one the node knew, Redis restarted empty, was flushed, failed over to a replica
//! without the data, or went back to an older snapshot: the node says so (an error in its
//! log, `gitflock_redis_data_losses_total`, and the loss recorded for `Nodes.Status` and the
//! dashboard) and makes its standing tasks again — its own block task, and the recurring
//! mirrors it ran lately ([`crate::runner::standing`]), which would otherwise vanish while
//! their copies are still served. The upstream list's mirrors come back with the master's
//! next list sync. Creating is idempotent (fixed ids), so nodes that notice together, or a
//! mirror two nodes remember, still make one task.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::runner::{self, Context, Registry};
use crate::store::{NewTask, Store};
use gitflock_core::config::Config;

/// How often the incarnation is read.
const EVERY: Duration = Duration::from_secs(1);
/// How often the record of standing mirrors is checked against Redis (deleted or killed
/// tasks leave it).
const RECHECK: Duration = Duration::from_secs(60);

pub struct IncarnationWatch {
    store: Store,
    config: Arc<Config>,
    registry: Registry,
    context: Arc<Context>,
    /// The incarnation this node knows ('' before its first look).
    known: String,
    /// Standing tasks still to make after a loss (a create that failed is tried again).
    pending: Vec<NewTask>,
    rechecked: Instant,
}

impl IncarnationWatch {
    pub fn new(
        store: Store,
        config: Arc<Config>,
        registry: Registry,
        context: Arc<Context>,
    ) -> IncarnationWatch {
        IncarnationWatch {
            store,
            config,
            registry,
            context,
            known: String::new(),
            pending: Vec::new(),
            rechecked: Instant::now(),
        }
    }

    /// The first look, at start, before this node claims anything: from here on a changed
    /// incarnation is a loss.
    pub async fn first_look(&mut self) -> crate::store::Result<()> {
        let inc = self
            .store
            .incarnation(&self.config.node.name, &self.known)
            .await?;
        tracing::debug!(incarnation = %inc.id, "Redis incarnation");
        self.known = inc.id;
        Ok(())
    }

    /// Watches until `stop`.
    pub async fn run(mut self, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(EVERY) => {}
            }
            self.look().await;
            self.make_pending().await;
            if self.rechecked.elapsed() >= RECHECK {
                self.recheck().await;
            }
        }
    }

    async fn look(&mut self) {
        let node = &self.config.node.name;
        let inc = match self.store.incarnation(node, &self.known).await {
            Ok(inc) => inc,
            Err(e) => {
                tracing::debug!(error = %e.category(), "cannot read the Redis incarnation");
                return;
            }
        };
        if inc.id == self.known {
            return;
        }
        let previous = std::mem::replace(&mut self.known, inc.id.clone());
        if previous.is_empty() {
            return;
        }
        crate::metrics::METRICS.redis_data_losses.inc();
        self.pending = self.standing_tasks();
        tracing::error!(
            previous = %previous,
            incarnation = %inc.id,
            noticed_by = %inc.noticed_by,
            tasks = self.pending.len(),
            "Redis lost its data (restarted empty or from an older snapshot, flushed, or failed \
             over to a replica without it): making this node's standing tasks again"
        );
    }

    /// This node's block task (if it pushes blocks) and the recurring mirrors it ran lately.
    fn standing_tasks(&self) -> Vec<NewTask> {
        let c = &self.config;
        let mut tasks = Vec::new();
        if c.chain.remote.is_some() && !c.chain.block_interval.is_zero() {
            tasks.push(runner::block::standing(
                &c.node.name,
                c.chain.block_interval,
            ));
        }
        let Some(mirror) = self.registry.get("mirror") else {
            return tasks;
        };
        for t in self.context.standing.tasks() {
            // Planned as a create would be: the same id, name and place.
            match mirror.plan(&t.target) {
                Ok(plan) if plan.id == t.id => tasks.push(NewTask {
                    id: plan.id,
                    name: plan.name,
                    kind: "mirror".into(),
                    target: t.target,
                    interval_secs: t.interval.as_secs(),
                    max_attempts: c.node.max_attempts,
                    timeout_secs: c.node.task_timeout.as_secs(),
                    request_id: String::new(),
                    placement: plan.placement,
                }),
                Ok(_) | Err(_) => self.context.standing.forget(&t.id),
            }
        }
        tasks
    }

    async fn make_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut made = 0;
        let mut left = Vec::new();
        for t in std::mem::take(&mut self.pending) {
            match self.store.create(&t).await {
                Ok(c) if c.created => made += 1,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(id = %t.id, error = %e.category(), "cannot make a standing task yet");
                    left.push(t);
                }
            }
        }
        self.pending = left;
        if made > 0 {
            tracing::info!(
                made,
                left = self.pending.len(),
                "made standing tasks again after Redis lost its data"
            );
        }
    }

    /// Drops deleted and killed mirrors from the record (read in one transaction with the
    /// incarnation: a loss meanwhile proves nothing about them).
    async fn recheck(&mut self) {
        self.rechecked = Instant::now();
        let tasks = self.context.standing.tasks();
        if tasks.is_empty() || self.known.is_empty() {
            return;
        }
        let ids: Vec<String> = tasks.into_iter().map(|t| t.id).collect();
        if let Ok(Some(live)) = self.store.live_tasks(&self.known, &ids).await {
            for (id, live) in ids.iter().zip(live) {
                if !live {
                    self.context.standing.forget(id);
                }
            }
        }
    }
}
