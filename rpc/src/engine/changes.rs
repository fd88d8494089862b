//! The change hub behind `WatchTasks`: one reader per node follows the `P:events` stream (on a
//! connection of its own, since XREAD blocks) while at least one watcher is subscribed, reads
//! each changed task once — in one pipeline per batch, and only tasks some watcher asked for —
//! and fans the tasks out on a broadcast channel. So the cost of a change does not grow with
//! the number of streams. A watcher that falls behind skips ahead.

use gitflock_proto::v1::Task;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

use crate::store::{Store, TaskChange};

/// Changes kept for watchers that have not read them yet. Each holds a task with its
/// results, so a slow watcher holds at most this many; past it, it skips ahead.
const BACKLOG: usize = 1024;

/// One change, as every watcher gets it.
#[derive(Clone, Debug)]
pub struct Change {
    pub id: String,
    /// The task as it is now; None: deleted.
    pub task: Option<Arc<Task>>,
}

/// Which tasks a watcher wants: every task (None) or these ids.
type Interest = Option<Arc<HashSet<String>>>;

pub struct ChangeHub {
    store: Store,
    tx: broadcast::Sender<Change>,
    /// True while the reader task runs; it stops when the last watcher is gone.
    reading: AtomicBool,
    /// What each open watch asked for, by watch number: the reader reads only these tasks.
    interests: Mutex<HashMap<u64, Interest>>,
    next_watch: AtomicU64,
}

/// A watcher's subscription; dropping it withdraws its interest.
pub struct Watch {
    rx: broadcast::Receiver<Change>,
    only: Interest,
    number: u64,
    hub: Arc<ChangeHub>,
}

impl Watch {
    /// The next change this watch asked for; `Lagged` when it fell behind (changes were
    /// skipped), `Closed` when the hub is gone.
    pub async fn recv(&mut self) -> Result<Change, broadcast::error::RecvError> {
        loop {
            let ch = self.rx.recv().await?;
            if self.only.as_ref().is_none_or(|ids| ids.contains(&ch.id)) {
                return Ok(ch);
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.hub.interests.lock().unwrap().remove(&self.number);
    }
}

impl ChangeHub {
    pub fn new(store: Store) -> Arc<ChangeHub> {
        let (tx, _) = broadcast::channel(BACKLOG);
        Arc::new(ChangeHub {
            store,
            tx,
            reading: AtomicBool::new(false),
            interests: Mutex::new(HashMap::new()),
            next_watch: AtomicU64::new(0),
        })
    }

    /// Watches every task (`only` empty) or only these ids.
    pub fn watch(self: &Arc<Self>, only: HashSet<String>) -> Watch {
        let only = (!only.is_empty()).then(|| Arc::new(only));
        let number = self.next_watch.fetch_add(1, Ordering::Relaxed);
        self.interests.lock().unwrap().insert(number, only.clone());
        let rx = self.tx.subscribe();
        if !self.reading.swap(true, Ordering::SeqCst) {
            tokio::spawn(self.clone().read());
        }
        Watch {
            rx,
            only,
            number,
            hub: self.clone(),
        }
    }

    /// The ids of a batch worth reading: each id once (its last event counts, in the order of
    /// those last events), and only ids some watch asked for.
    fn wanted(&self, changes: Vec<TaskChange>) -> Vec<TaskChange> {
        let interests = self.interests.lock().unwrap();
        let all = interests.values().any(Option::is_none);
        let mut last: HashMap<String, usize> = HashMap::new();
        for (i, ch) in changes.iter().enumerate() {
            last.insert(ch.id.clone(), i);
        }
        changes
            .into_iter()
            .enumerate()
            .filter(|(i, ch)| last.get(&ch.id) == Some(i))
            .map(|(_, ch)| ch)
            .filter(|ch| all || interests.values().flatten().any(|ids| ids.contains(&ch.id)))
            .collect()
    }

    /// Reads the tasks of a batch once and sends them to every watch. A failed read is
    /// retried (the stream position has moved past the batch) while someone watches.
    async fn publish(&self, changes: Vec<TaskChange>) {
        let changes = self.wanted(changes);
        let ids: Vec<String> = changes
            .iter()
            .filter(|c| !c.deleted)
            .map(|c| c.id.clone())
            .collect();
        let mut read = HashMap::new();
        let mut delay = Duration::from_millis(100);
        while !ids.is_empty() {
            match self.store.get_tasks(&ids, true).await {
                Ok(tasks) => {
                    read = ids.iter().cloned().zip(tasks).collect();
                    break;
                }
                Err(e) => {
                    if self.tx.receiver_count() == 0 {
                        return;
                    }
                    tracing::warn!(error = %e, "change stream: cannot read the changed tasks yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
        for ch in changes {
            let task = if ch.deleted {
                None
            } else {
                match read.remove(&ch.id).flatten() {
                    Some(t) => Some(Arc::new(t)),
                    // Deleted since: its delete event follows.
                    None => continue,
                }
            };
            let _ = self.tx.send(Change { id: ch.id, task });
        }
    }

    async fn read(self: Arc<Self>) {
        let mut last = "$".to_string();
        let mut conn = None;
        // Resolves when the Redis primary moves (sentinels): the connection is then reopened.
        let mut moved = Box::pin(self.store.primary_moved());
        loop {
            if self.tx.receiver_count() == 0 {
                self.reading.store(false, Ordering::SeqCst);
                // A watcher may have subscribed between the count and the store.
                if self.tx.receiver_count() == 0 || self.reading.swap(true, Ordering::SeqCst) {
                    return;
                }
            }
            if conn.is_some() && futures_util::FutureExt::now_or_never(&mut moved).is_some() {
                conn = None;
            }
            if conn.is_none() {
                moved = Box::pin(self.store.primary_moved());
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
                    if !changes.is_empty() {
                        self.publish(changes).await;
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
