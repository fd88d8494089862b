//! Waiting on a condition with a deadline: [`poll_until`] for programs (an error names what
//! was awaited), [`wait_for`] for tests (it panics).

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is asked again.
const POLL: Duration = Duration::from_millis(20);

/// What one look at a condition found.
pub enum Poll<T> {
    /// The condition holds, with this value.
    Ready(T),
    /// Not yet: look again.
    Pending,
    /// It never will (a process exited, say): stop with this error.
    Failed(String),
}

/// Asks `cond` every 20 ms until it is ready or failed, or `timeout` passes: then the error is
/// "`what` did not happen within …" (`what` reads like "node2 to answer").
pub async fn poll_until<T, F, Fut>(what: &str, timeout: Duration, mut cond: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Poll<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match cond().await {
            Poll::Ready(v) => return Ok(v),
            Poll::Failed(e) => return Err(e),
            Poll::Pending => {}
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Test-only: polls `cond` every 20 ms until it returns `Some`; panics after `timeout`,
/// naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let polled = poll_until(what, timeout, || {
        let fut = cond();
        async move { fut.await.map_or(Poll::Pending, Poll::Ready) }
    })
    .await;
    polled.unwrap_or_else(|e| panic!("{e}"))
}
