//! The threads mirror git work runs on: threads of their own, not tokio's blocking pool, so
//! runs stuck in the network (until their scope's watchdog ends them, see [`super::net`])
//! never hold the threads that chain reads and verification need.

use std::sync::Arc;
use tokio::sync::{Semaphore, oneshot};

/// At most `n` git jobs at once, each on a thread of its own.
#[derive(Clone)]
pub struct GitThreads {
    /// One permit per job that may run. A job holds its permit until its thread returns, not
    /// until its caller stops waiting: a run dropped on kill or timeout still counts until its
    /// git work has really ended, so the bound holds.
    slots: Arc<Semaphore>,
}

impl GitThreads {
    pub fn new(n: usize) -> GitThreads {
        GitThreads {
            slots: Arc::new(Semaphore::new(n.max(1))),
        }
    }

    /// Runs `job` on a new thread once a slot is free; waiting is cancelled by dropping the
    /// future. An error if the thread cannot start or the job panicked.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| "the git threads are closed".to_string())?;
        let (tx, rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("gitflock-git".into())
            .spawn(move || {
                let _ = tx.send(job());
                drop(permit);
            })
            .map_err(|e| format!("cannot start a git thread: {e}"))?;
        rx.await.map_err(|_| "the git job panicked".to_string())
    }
}
