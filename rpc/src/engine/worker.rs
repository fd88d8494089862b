//! The worker: claims tasks from this node's inbox, runs them with bounded concurrency, and
//! reports how each run ended.
//!
//! - Claiming takes only as many tasks as there are free slots (`[node] concurrency`), so
//!   what a node has not started stays in its inbox, where the master can still move it.
//! - Each run has a timeout and a cancellation token. A run is killed only when its task's
//!   kill flag in Redis says so (or its task is gone, or no longer this run's): the kill loop
//!   reads the flags of every run in progress each second, and at once when `kill <id>`
//!   arrives on the node's channel. The message itself carries no authority (anyone who can
//!   PUBLISH could send it) and may be lost (pub/sub is down): it only wakes the loop.
//! - Ends of runs go to one reporter task that records them in batches (the FINISH script),
//!   retrying until Redis takes them: a result is never dropped because Redis blinked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::runner::Registry;
use crate::store::{Claimed, Finished, Outcome, RunCheck, Store};
use gitflock_core::clock::now_ms;

/// Most tasks claimed in one CLAIM call.
const CLAIM_BATCH: usize = 64;
/// Most runs recorded in one FINISH call.
const FINISH_BATCH: usize = 512;
/// How often an idle worker looks at its inbox even without a wake-up (a lost message costs
/// at most this much delay).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// How often the kill flags of the runs in progress are read even without a wake-up: a kill
/// whose message was lost stops its run within this long.
const KILL_POLL: Duration = Duration::from_secs(1);
/// How often the in-flight list is checked for runs this node does not know (a claim whose
/// reply was lost); one must be seen unknown twice in a row before it is put back.
const AUDIT_EVERY: Duration = Duration::from_secs(5);

/// Retry delay after a failed attempt: 1 s, 2 s, 4 s … capped at 5 minutes, ±20% jitter.
pub fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_secs(1) * 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
    let capped = base.min(Duration::from_secs(300));
    capped.mul_f64(0.8 + fastrand::f64() * 0.4)
}

impl crate::cluster::membership::Load for Worker {
    fn running(&self) -> usize {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }
}

pub struct Worker {
    store: Store,
    node: String,
    registry: Registry,
    /// One permit per run slot; a claim first takes permits, so the node never holds more
    /// claimed tasks than it can run.
    slots: Arc<Semaphore>,
    concurrency: usize,
    /// The runs in progress, by task id: their claim number and cancellation token.
    running: Mutex<HashMap<String, (u64, CancellationToken)>>,
    /// Ids claimed by this process whose end is not yet recorded in Redis (a superset of
    /// `running`); anything else in the in-flight list is a lost claim.
    known: Mutex<std::collections::HashSet<String>>,
    /// Rung by `kill <id>` wake-ups: the kill loop reads the kill flags now.
    kill_check: Notify,
    /// Set at shutdown: runs cancelled from now on are handed back, not killed.
    handing_back: AtomicBool,
    /// Rung by the wake-up listener on `inbox`.
    pub wake: Notify,
    /// Every run goes through this tracker, so shutdown can wait for them all.
    runs: TaskTracker,
    report: mpsc::UnboundedSender<Finished>,
}

impl Worker {
    /// The worker and the receiving end of its reports (for [`Worker::report_loop`]).
    pub fn new(
        store: Store,
        node: &str,
        registry: Registry,
        concurrency: usize,
    ) -> (Arc<Worker>, mpsc::UnboundedReceiver<Finished>) {
        let (report, rx) = mpsc::unbounded_channel();
        let w = Arc::new(Worker {
            store,
            node: node.to_string(),
            registry,
            slots: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            running: Mutex::new(HashMap::new()),
            known: Mutex::new(std::collections::HashSet::new()),
            kill_check: Notify::new(),
            handing_back: AtomicBool::new(false),
            wake: Notify::new(),
            runs: TaskTracker::new(),
            report,
        });
        (w, rx)
    }

    /// Claims and starts tasks until `stop`.
    pub async fn claim_loop(self: Arc<Self>, stop: CancellationToken) {
        if self.concurrency == 0 {
            return;
        }
        loop {
            let first = tokio::select! {
                _ = stop.cancelled() => return,
                p = self.slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            };
            let mut permits = vec![first];
            while permits.len() < CLAIM_BATCH {
                match self.slots.clone().try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            let wake = self.wake.notified();
            tokio::pin!(wake);
            wake.as_mut().enable();
            match self.store.claim(&self.node, permits.len()).await {
                Ok(tasks) if !tasks.is_empty() => {
                    for (task, permit) in tasks.into_iter().zip(permits.drain(..)) {
                        self.start(task, permit);
                    }
                }
                Ok(_) => {
                    drop(permits);
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = &mut wake => {}
                        _ = tokio::time::sleep(IDLE_POLL) => {}
                    }
                }
                Err(e) => {
                    drop(permits);
                    tracing::warn!(error = %e, "claim failed");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        }
    }

    fn start(self: &Arc<Self>, task: Claimed, permit: OwnedSemaphorePermit) {
        let cancel = CancellationToken::new();
        self.known.lock().unwrap().insert(task.id.clone());
        self.running
            .lock()
            .unwrap()
            .insert(task.id.clone(), (task.claim, cancel.clone()));
        let me = self.clone();
        self.runs.spawn(async move {
            let finished = me.run_one(&task, cancel).await;
            me.running.lock().unwrap().remove(&task.id);
            // The reporter outlives every run (it ends when the last sender is gone).
            let _ = me.report.send(finished);
            drop(permit);
        });
    }

    async fn run_one(&self, task: &Claimed, cancel: CancellationToken) -> Finished {
        let started_at = now_ms();
        let m = &*crate::metrics::METRICS;
        if task.due > 0 {
            m.dispatch_latency
                .observe((started_at - task.due).max(0) as f64 / 1000.0);
        }
        m.running.inc();
        let clock = std::time::Instant::now();
        let mut next_cycle = None;
        let (outcome, message) = match self.registry.get(&task.kind) {
            None => (
                Outcome::Error,
                format!("this node does not know task type {:?}", task.kind),
            ),
            Some(runner) => {
                let run = runner.run_scheduled(
                    task.target.clone(),
                    task.interval,
                    task.claim,
                    cancel.child_token(),
                );
                tokio::select! {
                    r = tokio::time::timeout(task.timeout, run) => match r {
                        _ if cancel.is_cancelled() => self.cancelled(),
                        Ok((Ok(out), next)) => {
                            next_cycle = next;
                            (Outcome::Ok, out)
                        }
                        Ok((Err(e), next)) => {
                            next_cycle = next;
                            (Outcome::Error, e)
                        }
                        Err(_) => {
                            cancel.cancel();
                            (Outcome::Timeout, format!("timed out after {}s", task.timeout.as_secs()))
                        }
                    },
                    _ = cancel.cancelled() => self.cancelled(),
                }
            }
        };
        m.running.dec();
        let label = outcome.as_str();
        m.run_duration
            .with_label_values(&[&task.kind, label])
            .observe(clock.elapsed().as_secs_f64());
        if matches!(outcome, Outcome::Error | Outcome::Timeout) && task.attempt < task.max_attempts
        {
            m.retries.inc();
        }
        Finished {
            id: task.id.clone(),
            claim: task.claim,
            attempt: task.attempt,
            outcome,
            message,
            started_at,
            finished_at: now_ms(),
            retry_delay: backoff(task.attempt),
            next_cycle,
        }
    }

    fn cancelled(&self) -> (Outcome, String) {
        if self.handing_back.load(Ordering::SeqCst) {
            (Outcome::HandBack, "node shutting down".into())
        } else {
            (Outcome::Killed, "killed".into())
        }
    }

    /// A `kill <id>` wake-up arrived: the kill loop reads the kill flags now. Which id it names
    /// does not matter: a forged message kills nothing, and a burst of them costs one read.
    pub fn kill(&self, _id: &str) {
        self.kill_check.notify_one();
    }

    /// Stops the runs whose task's kill flag is set, or whose task is gone or no longer this
    /// run's (deleted, or given to another node), reading every run's flag each [`KILL_POLL`]
    /// and when woken; ends at `stop` (after the runs drained, so kills reach them till then).
    pub async fn kill_loop(self: Arc<Self>, stop: CancellationToken) {
        if self.concurrency == 0 {
            return;
        }
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.kill_check.notified() => {}
                _ = tokio::time::sleep(KILL_POLL) => {}
            }
            let runs: Vec<(String, u64)> = {
                let running = self.running.lock().unwrap();
                running
                    .iter()
                    .map(|(id, (claim, _))| (id.clone(), *claim))
                    .collect()
            };
            if runs.is_empty() {
                continue;
            }
            let checks = match self.store.run_checks(&self.node, &runs).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot read kill flags yet");
                    continue;
                }
            };
            let running = self.running.lock().unwrap();
            for ((id, claim), check) in runs.iter().zip(checks) {
                if check == RunCheck::Running {
                    continue;
                }
                // Only the run that was checked: the task may have been claimed again since.
                if let Some((c, token)) = running.get(id)
                    && c == claim
                {
                    tracing::info!(id = %id, why = ?check, "stopping a run");
                    token.cancel();
                }
            }
        }
    }

    /// At shutdown, after claiming stopped: lets runs finish for up to `grace`, then cancels the
    /// rest, which are handed back to be run again elsewhere.
    pub async fn drain(&self, grace: Duration) {
        self.runs.close();
        if tokio::time::timeout(grace, self.runs.wait()).await.is_err() {
            self.handing_back.store(true, Ordering::SeqCst);
            let tokens: Vec<_> = self
                .running
                .lock()
                .unwrap()
                .values()
                .map(|(_, t)| t.clone())
                .collect();
            tracing::info!(count = tokens.len(), "handing back unfinished runs");
            for t in tokens {
                t.cancel();
            }
            self.runs.wait().await;
        }
    }

    /// Records ends of runs in batches. After `done` fires (once every run has ended) it
    /// records what is queued and returns.
    pub async fn report_loop(
        self: Arc<Self>,
        mut rx: mpsc::UnboundedReceiver<Finished>,
        done: CancellationToken,
    ) {
        let mut batch = Vec::with_capacity(FINISH_BATCH);
        loop {
            let last = tokio::select! {
                n = rx.recv_many(&mut batch, FINISH_BATCH) => n == 0,
                _ = done.cancelled() => {
                    while let Ok(f) = rx.try_recv() {
                        batch.push(f);
                    }
                    true
                }
            };
            for chunk in batch.chunks(FINISH_BATCH) {
                record(&self.store, &self.node, chunk).await;
                let mut known = self.known.lock().unwrap();
                for f in chunk {
                    known.remove(&f.id);
                }
            }
            batch.clear();
            if last {
                return;
            }
        }
    }

    /// Puts back in-flight runs this process does not know: the reply to a CLAIM that Redis
    /// carried out was lost (Redis restarted or the call timed out), so the task is RUNNING
    /// here in Redis's eyes only. An id must be unknown at two audits in a row.
    pub async fn audit_loop(self: Arc<Self>, stop: CancellationToken) {
        if self.concurrency == 0 {
            return;
        }
        let mut suspects: std::collections::HashSet<String> = Default::default();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(AUDIT_EVERY) => {}
            }
            let Ok(ids) = self.store.inflight(&self.node).await else {
                continue;
            };
            let unknown: std::collections::HashSet<String> = {
                let known = self.known.lock().unwrap();
                ids.into_iter().filter(|id| !known.contains(id)).collect()
            };
            let lost: Vec<String> = unknown.intersection(&suspects).cloned().collect();
            if !lost.is_empty() {
                match self.store.recover(&self.node, &lost).await {
                    Ok((requeued, ended)) => {
                        tracing::warn!(requeued, ended, "put back runs whose claim reply was lost")
                    }
                    Err(e) => tracing::warn!(error = %e, "could not put back lost claims"),
                }
            }
            suspects = unknown;
        }
    }
}

/// Records a batch, retrying until Redis takes it (FINISH is fenced by claim numbers, so a
/// retry of a batch that did land records nothing twice).
async fn record(store: &Store, node: &str, batch: &[Finished]) {
    let mut delay = Duration::from_millis(50);
    loop {
        match store.finish(node, batch).await {
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, runs = batch.len(), "cannot record finished runs yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let a1 = backoff(1);
        assert!(
            a1 >= Duration::from_millis(800) && a1 <= Duration::from_millis(1200),
            "{a1:?}"
        );
        let a3 = backoff(3);
        assert!(
            a3 >= Duration::from_millis(3200) && a3 <= Duration::from_millis(4800),
            "{a3:?}"
        );
        assert!(backoff(60) <= Duration::from_secs(360));
    }
}
