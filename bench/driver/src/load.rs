//! The failover benchmark's load: a steady open-loop stream of `sleep` tasks, each CreateTask
//! retried on the other live nodes until one acknowledges it; and, once stopped, how many of
//! its tasks did not end SUCCEED.

use anyhow::{Result, bail};
use gitflock_client::Client;
use gitflock_proto::v1::{CreateTaskRequest, GetTaskRequest, TaskState};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, sleep, sleep_until};

use crate::listing::each_listed;

/// How long one CreateTask keeps being retried (on the other nodes) before it is given up.
const CREATE_DEADLINE: Duration = Duration::from_secs(60);
/// The longest wait, after the load stopped, for its tasks to succeed.
const LOAD_FINISH_DEADLINE: Duration = Duration::from_secs(180);

/// A steady open-loop load of `sleep` tasks, created round-robin through the live nodes.
pub struct Load {
    stop: Arc<AtomicBool>,
    retries: Arc<AtomicU64>,
    handle: JoinHandle<LoadReport>,
}

pub struct LoadReport {
    /// The ids of the created tasks (one per acknowledged CreateTask, distinct request ids).
    ids: Vec<String>,
    /// Creates given up after [`CREATE_DEADLINE`].
    failed: usize,
}

impl Load {
    /// Starts creating tasks at `rate` per second; the i-th one has request_id `<tag>-<i>`.
    pub fn start(
        clients: Arc<Vec<Client>>,
        live: Arc<Vec<AtomicBool>>,
        rate: f64,
        target: String,
        tag: String,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let retries = Arc::new(AtomicU64::new(0));
        let (stop2, retries2) = (stop.clone(), retries.clone());
        let handle = tokio::spawn(async move {
            let mut report = LoadReport {
                ids: Vec::new(),
                failed: 0,
            };
            let mut collect = |r: Result<Result<String>, tokio::task::JoinError>| match r {
                Ok(Ok(id)) => report.ids.push(id),
                Ok(Err(e)) => {
                    eprintln!("load: {e:#}");
                    report.failed += 1;
                }
                Err(e) => {
                    eprintln!("load: a create task panicked: {e}");
                    report.failed += 1;
                }
            };
            let t0 = Instant::now();
            let mut creates = JoinSet::new();
            let mut i = 0usize;
            while !stop2.load(Ordering::Relaxed) {
                sleep_until(t0 + Duration::from_secs_f64(i as f64 / rate)).await;
                let req = CreateTaskRequest {
                    r#type: "sleep".into(),
                    target: target.clone(),
                    request_id: format!("{tag}-{i}"),
                    ..Default::default()
                };
                creates.spawn(create_anywhere(
                    clients.clone(),
                    live.clone(),
                    retries2.clone(),
                    req,
                    i,
                ));
                i += 1;
                while let Some(r) = creates.try_join_next() {
                    collect(r);
                }
            }
            while let Some(r) = creates.join_next().await {
                collect(r);
            }
            report
        });
        Load {
            stop,
            retries,
            handle,
        }
    }

    async fn stop(self) -> Result<(LoadReport, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        let report = self.handle.await?;
        Ok((report, self.retries.load(Ordering::Relaxed)))
    }
}

/// CreateTask through node `first % n`, else through the next live ones, until one acknowledges
/// it. The request_id makes a retry of a create that did happen return the same task.
async fn create_anywhere(
    clients: Arc<Vec<Client>>,
    live: Arc<Vec<AtomicBool>>,
    retries: Arc<AtomicU64>,
    req: CreateTaskRequest,
    first: usize,
) -> Result<String> {
    let n = clients.len();
    let deadline = Instant::now() + CREATE_DEADLINE;
    let mut k = first;
    let mut last = String::from("no live node");
    loop {
        for _ in 0..n {
            let j = k % n;
            k += 1;
            if !live[j].load(Ordering::Relaxed) {
                continue;
            }
            let mut tasks = clients[j].tasks.clone();
            match tasks.create_task(req.clone()).await {
                Ok(t) => return Ok(t.into_inner().id),
                Err(e) => {
                    retries.fetch_add(1, Ordering::Relaxed);
                    last = format!("node {j}: {:?}: {}", e.code(), e.message());
                }
            }
        }
        if Instant::now() > deadline {
            bail!(
                "request {}: no node acknowledged it within {CREATE_DEADLINE:?}; last error: {last}",
                req.request_id
            );
        }
        sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (at most [`LOAD_FINISH_DEADLINE`]) until every task of `ids` is SUCCEED; returns the
/// ones that are not, with their state.
async fn not_succeeded(c: &mut Client, ids: &[String]) -> Result<Vec<(String, String)>> {
    let t0 = Instant::now();
    let mut said = t0;
    loop {
        let mut missing: HashSet<&str> = ids.iter().map(String::as_str).collect();
        each_listed(c, false, |t| {
            missing.remove(t.id.as_str());
            !missing.is_empty()
        })
        .await?;
        // Pages can shift while tasks finish: look at the few left one by one.
        let mut left = Vec::new();
        let mut pending = missing.len();
        if missing.len() <= 500 {
            for id in missing {
                let state = match c.tasks.get_task(GetTaskRequest { id: id.into() }).await {
                    Ok(t) if t.get_ref().state() == TaskState::Succeed => continue,
                    Ok(t) => t.get_ref().state().as_str_name().to_string(),
                    Err(e) => format!("unreadable ({:?}: {})", e.code(), e.message()),
                };
                left.push((id.to_string(), state));
            }
            let settled = left
                .iter()
                .all(|(_, s)| s == "RUNTIME_ERROR" || s == "KILLED");
            if left.is_empty() || settled || t0.elapsed() > LOAD_FINISH_DEADLINE {
                return Ok(left);
            }
            pending = left.len();
        } else if t0.elapsed() > LOAD_FINISH_DEADLINE {
            return Ok(missing
                .into_iter()
                .map(|id| (id.to_string(), "not SUCCEED".to_string()))
                .collect());
        }
        if said.elapsed() >= Duration::from_secs(5) {
            eprintln!("  {pending} of {} tasks not SUCCEED yet", ids.len());
            said = Instant::now();
        }
        sleep(Duration::from_secs(1)).await;
    }
}

/// Stops the load and counts its tasks that did not end SUCCEED.
pub async fn finish_load(
    what: &str,
    load: Load,
    clients: &[Client],
) -> Result<(usize, usize, u64)> {
    let (report, retries) = load.stop().await?;
    let distinct: HashSet<&String> = report.ids.iter().collect();
    if distinct.len() != report.ids.len() {
        eprintln!(
            "{what}: {} acknowledged creates gave only {} distinct task ids",
            report.ids.len(),
            distinct.len()
        );
    }
    eprintln!(
        "{what}: {} tasks created ({} CreateTask calls retried, {} creates given up); waiting \
         for them to succeed",
        report.ids.len(),
        retries,
        report.failed
    );
    let mut c = clients[0].clone();
    let left = not_succeeded(&mut c, &report.ids).await?;
    for (id, state) in left.iter().take(20) {
        eprintln!("{what}: task {id} is {state}");
    }
    Ok((report.ids.len(), left.len() + report.failed, retries))
}
