//! `dispatch`: how fast one node moves no-op (`echo`) tasks through the cluster, with the
//! same definitions as the Celery baseline's `drive.py`:
//!
//! - `fill`: enqueue throughput, N CreateTask calls from 16 concurrent clients;
//! - `drain`: drain throughput, N / (last run's end − first run's start), read from the results;
//! - `rate`: create→start latency (p50, p99, max) of N tasks created open loop at R per second;
//! - `ready`: waits until the node answers Status and some node holds the master lease.

use anyhow::{Result, bail};
use gitflock_client::Client;
use gitflock_proto::v1::{CreateTaskRequest, Empty, TaskState};
use std::collections::HashSet;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until};

use crate::listing::each_succeeded;
use crate::{READY_DEADLINE, RPC_TIMEOUT, Target, connect, pct};

/// Concurrent clients (one connection each) used by `fill`.
const FILL_CLIENTS: usize = 16;
/// How often `drain` and `rate` look at the task counts.
const POLL: Duration = Duration::from_millis(20);
/// The longest wait for the tasks to succeed.
const FINISH_DEADLINE: Duration = Duration::from_secs(600);

fn echo(i: usize) -> CreateTaskRequest {
    CreateTaskRequest {
        r#type: "echo".into(),
        target: format!("bench {i}"),
        ..Default::default()
    }
}

/// Waits until the node answers Status naming a master.
pub async fn ready(t: &Target) -> Result<()> {
    let (server, token) = (&t.server, &t.token);
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        let why = match Client::connect(server, token, Some(Duration::from_secs(2))).await {
            Ok(mut c) => match c.nodes.status(Empty {}).await {
                Ok(s) if !s.get_ref().master.is_empty() => return Ok(()),
                Ok(_) => "no master yet".to_string(),
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        if Instant::now() > deadline {
            bail!("{server} not ready after {READY_DEADLINE:?}: {why}");
        }
        sleep(Duration::from_millis(100)).await;
    }
}

pub async fn fill(t: &Target, n: usize) -> Result<()> {
    let mut clients = Vec::with_capacity(FILL_CLIENTS);
    for _ in 0..FILL_CLIENTS {
        clients.push(connect(t, RPC_TIMEOUT).await?);
    }
    let t0 = Instant::now();
    let mut creators = JoinSet::new();
    for (k, mut c) in clients.into_iter().enumerate() {
        creators.spawn(async move {
            for i in (k..n).step_by(FILL_CLIENTS) {
                c.tasks.create_task(echo(i)).await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(r) = creators.join_next().await {
        r??;
    }
    let secs = t0.elapsed().as_secs_f64();
    eprintln!("fill: created {n} tasks in {secs:.2} s");
    println!("enqueue_tasks_per_s={:.0}", n as f64 / secs);
    Ok(())
}

pub async fn drain(t: &Target, n: usize) -> Result<()> {
    let mut c = connect(t, RPC_TIMEOUT).await?;
    wait_succeeded(&mut c, n as u64).await?;
    let (mut first_start, mut last_end, mut seen) = (i64::MAX, i64::MIN, 0usize);
    each_succeeded(&mut c, |task| {
        seen += 1;
        for r in &task.results {
            first_start = first_start.min(r.started_at);
            last_end = last_end.max(r.finished_at);
        }
        true
    })
    .await?;
    if seen < n || first_start > last_end {
        bail!("listed {seen} succeeded tasks (with results), expected {n}");
    }
    // Times are whole milliseconds: count a span of 0 as 1 ms.
    let secs = (last_end - first_start).max(1) as f64 / 1000.0;
    eprintln!("drain: {n} tasks from first start to last end in {secs:.3} s");
    println!("drain_tasks_per_s={:.0}", n as f64 / secs);
    Ok(())
}

/// Open loop: the i-th task is sent at t0 + i/rate whatever happened to the earlier ones, so a
/// slow node shows up as latency rather than as a lower offered rate.
pub async fn open_loop(t: &Target, n: usize, rate: f64) -> Result<()> {
    if n == 0 || rate <= 0.0 {
        bail!("--n and --rate must be positive");
    }
    let mut c = connect(t, RPC_TIMEOUT).await?;
    let before = count(&mut c, TaskState::Succeed).await?;
    let t0 = Instant::now();
    let mut creators = JoinSet::new();
    for i in 0..n {
        sleep_until(t0 + Duration::from_secs_f64(i as f64 / rate)).await;
        let mut tasks = c.tasks.clone();
        creators.spawn(async move { Ok::<_, anyhow::Error>(tasks.create_task(echo(i)).await?) });
    }
    let mut ids = HashSet::with_capacity(n);
    while let Some(r) = creators.join_next().await {
        ids.insert(r??.into_inner().id);
    }
    eprintln!(
        "rate: created {n} tasks in {:.2} s (asked {rate}/s)",
        t0.elapsed().as_secs_f64()
    );
    wait_succeeded(&mut c, before + n as u64).await?;
    // Results are newest first: the last one is the task's first run.
    let mut lat_ms = Vec::with_capacity(n);
    each_succeeded(&mut c, |task| {
        if ids.contains(&task.id)
            && let Some(run) = task.results.last()
        {
            lat_ms.push((run.started_at - task.created_at) as f64);
        }
        lat_ms.len() < ids.len()
    })
    .await?;
    if lat_ms.len() < ids.len() {
        bail!(
            "found {} of the {} tasks with results",
            lat_ms.len(),
            ids.len()
        );
    }
    lat_ms.sort_by(f64::total_cmp);
    println!("rate_per_s={rate:.0}");
    println!("create_to_start_p50_ms={:.2}", pct(&lat_ms, 0.50));
    println!("create_to_start_p99_ms={:.2}", pct(&lat_ms, 0.99));
    println!("create_to_start_max_ms={:.2}", lat_ms[lat_ms.len() - 1]);
    Ok(())
}

async fn count(c: &mut Client, state: TaskState) -> Result<u64> {
    let s = c.nodes.status(Empty {}).await?.into_inner();
    Ok(s.counts.get(state.as_str_name()).copied().unwrap_or(0))
}

/// Polls Status until at least `target` tasks are SUCCEED; fails fast if any task failed or
/// was killed (an echo task never should), and after [`FINISH_DEADLINE`].
async fn wait_succeeded(c: &mut Client, target: u64) -> Result<()> {
    let t0 = Instant::now();
    let mut said = t0;
    loop {
        let s = c.nodes.status(Empty {}).await?.into_inner();
        let get = |state: TaskState| s.counts.get(state.as_str_name()).copied().unwrap_or(0);
        let done = get(TaskState::Succeed);
        if done >= target {
            return Ok(());
        }
        let failed = get(TaskState::RuntimeError) + get(TaskState::Killed);
        if failed > 0 {
            bail!("{failed} tasks ended RUNTIME_ERROR or KILLED");
        }
        if t0.elapsed() > FINISH_DEADLINE {
            bail!("only {done} of {target} tasks SUCCEED after {FINISH_DEADLINE:?}");
        }
        if said.elapsed() >= Duration::from_secs(5) {
            eprintln!("  {done}/{target} SUCCEED");
            said = Instant::now();
        }
        sleep(POLL).await;
    }
}
