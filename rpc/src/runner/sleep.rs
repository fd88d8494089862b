//! `sleep`: a diagnostic task that takes time. Target: a duration (`500ms`, `2s`, `1m`, at
//! most an hour). It succeeds when the time is up, and stops at once when killed — which is
//! what tests of kill, timeouts, retries and node crashes need.

use super::{Plan, RunFuture, Runner};
use gitflock_core::duration::parse as parse_duration;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct Sleep;

const MAX: Duration = Duration::from_secs(3600);

fn parse(target: &str) -> Result<Duration, String> {
    let d = parse_duration(target)?;
    if d > MAX {
        return Err(format!("sleep target {target:?} is longer than 1h"));
    }
    Ok(d)
}

impl Runner for Sleep {
    fn kind(&self) -> &'static str {
        "sleep"
    }

    fn plan(&self, target: &str) -> Result<Plan, String> {
        parse(target)?;
        Ok(Plan::fresh(self.kind()))
    }

    fn run(&self, target: String, cancel: CancellationToken) -> RunFuture {
        Box::pin(async move {
            let d = parse(&target)?;
            tokio::select! {
                _ = tokio::time::sleep(d) => Ok(format!("slept {target}")),
                _ = cancel.cancelled() => Err("cancelled".to_string()),
            }
        })
    }
}
