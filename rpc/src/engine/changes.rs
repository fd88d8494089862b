//! The change hub behind `WatchTasks`: one reader per node follows the `P:events` stream (on a
//! connection of its own, since XREAD blocks) while at least one watcher is subscribed, and
//! fans changes out on a broadcast channel. A watcher that falls behind skips ahead.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::broadcast;

use crate::store::{Store, TaskChange};

pub struct ChangeHub {
    store: Store,
    tx: broadcast::Sender<TaskChange>,
    /// True while the reader task runs; it stops when the last watcher is gone.
    reading: AtomicBool,
}

impl ChangeHub {
    pub fn new(store: Store) -> Arc<ChangeHub> {
        let (tx, _) = broadcast::channel(8192);
        Arc::new(ChangeHub {
            store,
            tx,
            reading: AtomicBool::new(false),
        })
    }

    pub fn subscribe(self: &Arc<Self>) -> broadcast::Receiver<TaskChange> {
        let rx = self.tx.subscribe();
        if !self.reading.swap(true, Ordering::SeqCst) {
            tokio::spawn(self.clone().read());
        }
        rx
    }

    async fn read(self: Arc<Self>) {
        let mut last = "$".to_string();
        let mut conn = None;
        loop {
            if self.tx.receiver_count() == 0 {
                self.reading.store(false, Ordering::SeqCst);
                // A watcher may have subscribed between the count and the store.
                if self.tx.receiver_count() == 0 || self.reading.swap(true, Ordering::SeqCst) {
                    return;
                }
            }
            if conn.is_none() {
                match self.store.blocking_connection().await {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        tracing::warn!(error = %e, "change stream: cannot connect");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                }
            }
            let c = conn.as_mut().expect("connected above");
            match self
                .store
                .read_changes(c, &last, Duration::from_millis(500))
                .await
            {
                Ok((next, changes)) => {
                    last = next;
                    for ch in changes {
                        let _ = self.tx.send(ch);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "change stream: read failed");
                    conn = None;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}
