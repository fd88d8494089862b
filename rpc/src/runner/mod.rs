//! Task runners: one small trait, one file per task type, one registry.
//!
//! Adding a type means a file here plus one line in [`Registry::new`] (and its name in
//! `gitflock_core::task::KNOWN_TYPES`, which a test holds the registry to). A runner plans a
//! task once, when it is created ([`Runner::plan`]: a bad target is INVALID_ARGUMENT, not a
//! failed run; the plan gives its id, default name, placement and default interval), and runs
//! it with a cancellation token that fires on kill, timeout or shutdown. Blocking work (git)
//! must go to `spawn_blocking` inside `run`, never onto the async workers.

pub mod block;
mod echo;
mod mirror;
mod sleep;
pub mod standing;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::store::Placement;

/// What a run produced: the output text, or the error text.
pub type RunResult = Result<String, String>;

pub type RunFuture = Pin<Box<dyn Future<Output = RunResult> + Send + 'static>>;

/// A run's result and, for a recurring task, when its runner wants the next cycle (None: the
/// task's interval).
pub type ScheduledFuture =
    Pin<Box<dyn Future<Output = (RunResult, Option<Duration>)> + Send + 'static>>;

/// What a task of a type becomes, decided once from its target when it is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Derived from the target when one target must be one task (a mirror: the UUID v5 of its
    /// repository's identity, so adding it twice finds the first task); else a fresh one.
    pub id: String,
    /// The name the task gets when the request gives none.
    pub name: String,
    /// Where it may run.
    pub placement: Placement,
    /// The interval it gets when the request gives none (zero: it runs once).
    pub interval: Duration,
}

impl Plan {
    /// A fresh id, named after its type, any node, runs once.
    pub fn fresh(kind: &str) -> Plan {
        Plan {
            id: gitflock_core::task::new_id(),
            name: kind.to_string(),
            placement: Placement::Any,
            interval: Duration::ZERO,
        }
    }
}

pub trait Runner: Send + Sync + 'static {
    /// The task type this runner runs (its name in the registry).
    fn kind(&self) -> &'static str;
    /// Checks a target and plans its task, before the task is accepted.
    fn plan(&self, target: &str) -> Result<Plan, String>;
    /// Runs one attempt. Must end soon after `cancel` fires.
    fn run(&self, target: String, cancel: CancellationToken) -> RunFuture;
    /// Runs one attempt (the run `claim`: a runner that records beside its task presents it,
    /// so a stale run cannot overwrite a newer one) and says when the next cycle of a recurring
    /// task should come; what workers call. By default the task's interval.
    fn run_scheduled(
        &self,
        target: String,
        _interval: Duration,
        _claim: u64,
        cancel: CancellationToken,
    ) -> ScheduledFuture {
        let run = self.run(target, cancel);
        Box::pin(async move { (run.await, None) })
    }
}

/// What runners may use of the node they run on.
pub struct Context {
    pub node: String,
    pub store: crate::store::Store,
    pub chain: Option<Arc<crate::chain::Chain>>,
    pub chain_remote: Option<String>,
    /// `{node}` and `{date}` are replaced.
    pub branch_pattern: String,
    pub data_dir: std::path::PathBuf,
    pub mirror: gitflock_core::config::MirrorConfig,
    /// The recurring mirror tasks this node ran lately (made again if Redis loses its data).
    pub standing: standing::Standing,
    /// Where mirror runs do their blocking git work (not tokio's blocking pool).
    pub git_threads: crate::mirror::threads::GitThreads,
}

/// The known task types.
#[derive(Clone)]
pub struct Registry {
    runners: BTreeMap<&'static str, Arc<dyn Runner>>,
}

impl Registry {
    pub fn new(ctx: Arc<Context>) -> Registry {
        let runners: [Arc<dyn Runner>; 4] = [
            Arc::new(echo::Echo),
            Arc::new(sleep::Sleep),
            Arc::new(block::Block { ctx: ctx.clone() }),
            Arc::new(mirror::Mirror { ctx }),
        ];
        Registry {
            runners: runners.into_iter().map(|r| (r.kind(), r)).collect(),
        }
    }

    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Runner>> {
        self.runners.get(kind)
    }

    /// "echo, sleep" — for error messages that list the known types.
    pub fn known(&self) -> String {
        self.runners.keys().copied().collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_registry_runs_exactly_the_known_types() {
        let config = gitflock_core::config::Config::load_with(None, &|k| {
            (k == "GITFLOCK_CLUSTER_TOKEN").then(|| "0123456789abcdef0123".to_string())
        })
        .unwrap();
        let ctx = Context {
            node: "n1".into(),
            // Never used: building the registry touches no Redis.
            store: crate::store::Store::unconnected("redis://127.0.0.1:1", "t").unwrap(),
            chain: None,
            chain_remote: None,
            branch_pattern: config.chain.branch.clone(),
            data_dir: std::env::temp_dir(),
            mirror: config.mirror.clone(),
            standing: Default::default(),
            git_threads: crate::mirror::threads::GitThreads::new(1),
        };
        let registry = Registry::new(Arc::new(ctx));
        let mut known = gitflock_core::task::KNOWN_TYPES.to_vec();
        known.sort_unstable();
        assert_eq!(registry.runners.keys().copied().collect::<Vec<_>>(), known);
    }
}
