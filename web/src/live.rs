//! Live updates for every open page, from two followers per web process:
//!
//! - one `WatchTasks` stream (every task), reopened on the next node when it ends or fails;
//! - a cluster snapshot (`Nodes.Status`: master, epoch, nodes, counts) once a second while
//!   anyone is watching, so a node going dead shows up without a task changing.
//!
//! Both publish pre-serialized events on a tokio broadcast channel; `/events` turns each
//! subscriber's receiver into a server-sent event stream. A subscriber that falls behind
//! gets a `resync` event (the page then refreshes its data) instead of stalling the others.

use crate::metrics::Metrics;
use crate::views;
use gitflock_client::Pool;
use gitflock_proto::v1::{Empty, WatchTasksRequest};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// One server-sent event: its name (`task`, `cluster`, `resync`) and JSON data.
#[derive(Clone, Debug)]
pub struct LiveEvent {
    pub name: &'static str,
    pub data: Arc<str>,
}

pub struct Hub {
    tx: broadcast::Sender<LiveEvent>,
}

impl Hub {
    /// Starts both followers on the current runtime; they run as long as the process.
    pub fn start(pool: Arc<Pool>, metrics: Arc<Metrics>) -> Arc<Hub> {
        let (tx, _) = broadcast::channel(1024);
        tokio::spawn(follow_tasks(pool.clone(), tx.clone(), metrics));
        tokio::spawn(snapshot_cluster(pool, tx.clone()));
        Arc::new(Hub { tx })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.tx.subscribe()
    }
}

fn publish(tx: &broadcast::Sender<LiveEvent>, name: &'static str, data: serde_json::Value) {
    // No subscriber is not an error: the page that would show it is simply not open.
    let _ = tx.send(LiveEvent {
        name,
        data: Arc::from(data.to_string()),
    });
}

async fn follow_tasks(pool: Arc<Pool>, tx: broadcast::Sender<LiveEvent>, metrics: Arc<Metrics>) {
    let mut i = pool.current();
    loop {
        let mut clients = pool.watch_clients(i);
        metrics.watch_restarts.inc();
        match clients
            .tasks
            .watch_tasks(WatchTasksRequest { ids: Vec::new() })
            .await
        {
            Ok(resp) => {
                tracing::info!(node = %pool.url(i), "following task changes");
                metrics.watch_up.set(1);
                // Changes may have been missed while no stream was open.
                publish(&tx, "resync", serde_json::json!({}));
                let mut stream = resp.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(ev)) => {
                            if tx.receiver_count() > 0 {
                                publish(&tx, "task", views::task_event_json(&ev));
                            }
                        }
                        Ok(None) => {
                            tracing::warn!(node = %pool.url(i), "task change stream ended");
                            break;
                        }
                        Err(e) => {
                            metrics.grpc_error("WatchTasks", e.code());
                            tracing::warn!(node = %pool.url(i), code = ?e.code(), "task change stream failed");
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                metrics.grpc_error("WatchTasks", e.code());
                if e.code() == tonic::Code::Unimplemented {
                    // Reached the node's start-up server (see `Pool::reconnect`).
                    pool.reconnect(i);
                }
                tracing::warn!(node = %pool.url(i), code = ?e.code(), error = %e.message(), "cannot follow task changes");
            }
        }
        metrics.watch_up.set(0);
        // Prefer the node the request path found alive; else the next one.
        let cur = pool.current();
        i = if cur != i { cur } else { (i + 1) % pool.len() };
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn snapshot_cluster(pool: Arc<Pool>, tx: broadcast::Sender<LiveEvent>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if tx.receiver_count() == 0 {
            continue;
        }
        match pool
            .call(
                "Status",
                |mut c| async move { c.nodes.status(Empty {}).await },
            )
            .await
        {
            Ok(s) => publish(&tx, "cluster", views::status_json(&s)),
            Err(e) => publish(
                &tx,
                "cluster",
                serde_json::json!({ "error": format!("no node answered: {}", e.message()) }),
            ),
        }
    }
}
