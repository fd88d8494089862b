//! `echo`: the diagnostic task. It succeeds at once with its target as output; smoke tests
//! and the dispatch benchmark use it to measure the cluster rather than the work.

use super::{Plan, RunFuture, Runner};
use tokio_util::sync::CancellationToken;

pub struct Echo;

impl Runner for Echo {
    fn kind(&self) -> &'static str {
        "echo"
    }

    fn plan(&self, _target: &str) -> Result<Plan, String> {
        Ok(Plan::fresh(self.kind()))
    }

    fn run(&self, target: String, _cancel: CancellationToken) -> RunFuture {
        Box::pin(async move { Ok(target) })
    }
}
