//! Task runners: one small trait, one file per task type, one registry.
//!
//! Adding a type means a file here plus one line in [`Registry::new`]. A runner validates its
//! target when the task is created (so a bad target is INVALID_ARGUMENT, not a failed run) and
//! runs it with a cancellation token that fires on kill, timeout or shutdown. Blocking work
//! (git) must go to `spawn_blocking` inside `run`, never onto the async workers.

pub mod block;
mod echo;
mod mirror;
mod sleep;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What a run produced: the output text, or the error text.
pub type RunResult = Result<String, String>;

pub type RunFuture = Pin<Box<dyn Future<Output = RunResult> + Send + 'static>>;

/// A run's result and, for a recurring task, when its runner wants the next cycle (None: the
/// task's interval).
pub type ScheduledFuture =
    Pin<Box<dyn Future<Output = (RunResult, Option<std::time::Duration>)> + Send + 'static>>;

pub trait Runner: Send + Sync + 'static {
    /// Checks a target before the task is accepted.
    fn validate(&self, target: &str) -> Result<(), String>;
    /// Runs one attempt. Must end soon after `cancel` fires.
    fn run(&self, target: String, cancel: CancellationToken) -> RunFuture;
    /// Runs one attempt and says when the next cycle of a recurring task should come; what
    /// workers call. By default the task's interval.
    fn run_scheduled(
        &self,
        target: String,
        _interval: std::time::Duration,
        cancel: CancellationToken,
    ) -> ScheduledFuture {
        let run = self.run(target, cancel);
        Box::pin(async move { (run.await, None) })
    }
    /// The only node that may run a task with this target (None: any node).
    fn pin(&self, _target: &str) -> Option<String> {
        None
    }
    /// A task id derived from the target (one task per target: creating it again finds the
    /// first); None: a fresh id per task.
    fn task_id(&self, _target: &str) -> Option<String> {
        None
    }
    /// The name a task of this type gets when the request gives none (None: the type).
    fn default_name(&self, _target: &str) -> Option<String> {
        None
    }
    /// The interval a task of this type gets when the request gives none (0: runs once).
    fn default_interval(&self) -> u64 {
        0
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
}

/// The known task types.
#[derive(Clone)]
pub struct Registry {
    runners: BTreeMap<&'static str, Arc<dyn Runner>>,
}

impl Registry {
    pub fn new(ctx: Arc<Context>) -> Registry {
        let mut runners: BTreeMap<&'static str, Arc<dyn Runner>> = BTreeMap::new();
        runners.insert("echo", Arc::new(echo::Echo));
        runners.insert("sleep", Arc::new(sleep::Sleep));
        runners.insert("block", Arc::new(block::Block { ctx: ctx.clone() }));
        runners.insert("mirror", Arc::new(mirror::Mirror { ctx }));
        Registry { runners }
    }

    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Runner>> {
        self.runners.get(kind)
    }

    /// "echo, sleep" — for error messages that list the known types.
    pub fn known(&self) -> String {
        self.runners.keys().copied().collect::<Vec<_>>().join(", ")
    }
}
