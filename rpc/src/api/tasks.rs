//! The gRPC services (`Tasks`, `Nodes`): request validation, then the store.
//!
//! Every call must carry `authorization: Bearer <cluster token>` ([`Auth`]). Bad input is
//! INVALID_ARGUMENT with a sentence saying what is wrong and nothing is written; Redis trouble
//! is UNAVAILABLE (the client may retry; CreateTask retries are made safe by `request_id`).

use gitflock_proto::v1::nodes_server::Nodes;
use gitflock_proto::v1::tasks_server::Tasks;
use gitflock_proto::v1::{
    AskAliveRequest, AskAliveResponse, CreateTaskRequest, Empty, GetTaskRequest, ListTasksRequest,
    ListTasksResponse, NodeInfo, NodeList, OptResult, ResignResponse, StatusResponse, Task,
    TaskEvent, TaskIds, TaskResults, TaskState, WatchTasksRequest, task_event,
};
use std::collections::HashSet;
use std::sync::Arc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::status::store_status;
use crate::cluster::lease::Lease;
use crate::cluster::membership;
use crate::engine::changes::ChangeHub;
use crate::runner::Registry;
use crate::store::{KillOutcome, NewTask, Store, TaskQuery};
use gitflock_core::config::Config;
use gitflock_core::task;

/// Response metadata of CreateTask: `1` when this call created the task, `0` when it found
/// one (same id or request id).
pub const CREATED_HEADER: &str = "gitflock-created";

/// Most ids in one DeleteTasks / KillTasks / WatchTasks call.
const MAX_IDS: usize = 10_000;
const MAX_REQUEST_ID: usize = 128;

fn invalid(msg: impl Into<String>) -> Status {
    Status::invalid_argument(msg.into())
}

pub struct TaskService {
    pub store: Store,
    pub registry: Registry,
    pub hub: Arc<ChangeHub>,
    pub default_max_attempts: u32,
    pub default_timeout_secs: u64,
    /// Fires when the node stops: open WatchTasks streams end with UNAVAILABLE (clients move
    /// to another node) instead of holding the server's graceful shutdown.
    pub closing: tokio_util::sync::CancellationToken,
}

impl TaskService {
    fn validate_create(&self, r: &CreateTaskRequest) -> Result<NewTask, Status> {
        let kind = r.r#type.trim();
        if kind.is_empty() {
            return Err(invalid(format!(
                "type is empty; known types: {}",
                self.registry.known()
            )));
        }
        let Some(runner) = self.registry.get(kind) else {
            return Err(invalid(format!(
                "unknown task type {:?}; known types: {}",
                task::shorten(kind, 40),
                self.registry.known()
            )));
        };
        task::check_text("name", &r.name, task::MAX_NAME_BYTES, true).map_err(invalid)?;
        task::check_text("target", &r.target, task::MAX_TARGET_BYTES, true).map_err(invalid)?;
        let plan = runner
            .plan(&r.target)
            .map_err(|e| invalid(format!("target: {e}")))?;
        if r.interval_secs > task::MAX_INTERVAL_SECS {
            return Err(invalid(format!(
                "interval_secs: at most {}",
                task::MAX_INTERVAL_SECS
            )));
        }
        if r.max_attempts > task::MAX_ATTEMPTS {
            return Err(invalid(format!(
                "max_attempts: at most {}",
                task::MAX_ATTEMPTS
            )));
        }
        if r.timeout_secs > task::MAX_TIMEOUT_SECS {
            return Err(invalid(format!(
                "timeout_secs: at most {}",
                task::MAX_TIMEOUT_SECS
            )));
        }
        if r.request_id.len() > MAX_REQUEST_ID
            || !r.request_id.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(invalid(format!(
                "request_id: at most {MAX_REQUEST_ID} printable ASCII characters"
            )));
        }
        Ok(NewTask {
            id: plan.id,
            name: if r.name.trim().is_empty() {
                plan.name
            } else {
                r.name.clone()
            },
            kind: kind.to_string(),
            target: r.target.clone(),
            interval_secs: if r.interval_secs == 0 {
                plan.interval.as_secs()
            } else {
                r.interval_secs
            },
            max_attempts: if r.max_attempts == 0 {
                self.default_max_attempts
            } else {
                r.max_attempts
            },
            timeout_secs: if r.timeout_secs == 0 {
                self.default_timeout_secs
            } else {
                r.timeout_secs
            },
            request_id: r.request_id.clone(),
            placement: plan.placement,
        })
    }

    async fn fetch(&self, id: &str, with_results: bool) -> Result<Task, Status> {
        task::check_id(id).map_err(invalid)?;
        self.store
            .get_task(id, with_results)
            .await
            .map_err(store_status)?
            .ok_or_else(|| Status::not_found(format!("no task {id}")))
    }
}

fn check_ids(ids: &[String]) -> Result<(), Status> {
    if ids.is_empty() {
        return Err(invalid("ids is empty"));
    }
    if ids.len() > MAX_IDS {
        return Err(invalid(format!(
            "{} ids; at most {MAX_IDS} per call",
            ids.len()
        )));
    }
    for id in ids {
        task::check_id(id).map_err(invalid)?;
    }
    Ok(())
}

#[tonic::async_trait]
impl Tasks for TaskService {
    async fn create_task(&self, req: Request<CreateTaskRequest>) -> Result<Response<Task>, Status> {
        let new = self.validate_create(req.get_ref())?;
        // A task placed on a node nobody knows (or declared dead) could never run.
        crate::runner::block::pinned_node(&self.store, &new.placement)
            .await
            .map_err(super::chain::pin_status)?;
        let c = self.store.create(&new).await.map_err(store_status)?;
        if c.created {
            tracing::debug!(id = %c.id, kind = %new.kind, "task created");
        }
        let mut resp = Response::new(self.fetch(&c.id, true).await?);
        // The answer is the same task either way; this says whether the call made it or found
        // it (a mirror added twice, a retried request), so a client can tell the user.
        resp.metadata_mut().insert(
            CREATED_HEADER,
            tonic::metadata::MetadataValue::from_static(if c.created { "1" } else { "0" }),
        );
        Ok(resp)
    }

    async fn get_task(&self, req: Request<GetTaskRequest>) -> Result<Response<Task>, Status> {
        Ok(Response::new(self.fetch(&req.get_ref().id, true).await?))
    }

    async fn list_tasks(
        &self,
        req: Request<ListTasksRequest>,
    ) -> Result<Response<ListTasksResponse>, Status> {
        let r = req.into_inner();
        let mut states = Vec::new();
        for s in &r.states {
            let s = TaskState::try_from(*s)
                .map_err(|_| invalid(format!("unknown state number {s}")))?;
            if !states.contains(&s) {
                states.push(s);
            }
        }
        if !r.r#type.is_empty() {
            task::check_type_name(&r.r#type).map_err(invalid)?;
        }
        task::check_text("text", &r.text, 256, true).map_err(invalid)?;
        if r.page_size > 1000 {
            return Err(invalid("page_size: at most 1000"));
        }
        let page = self
            .store
            .list_tasks(&TaskQuery {
                states,
                kind: r.r#type,
                text: r.text,
                page_size: super::page_size(r.page_size),
                page_token: r.page_token,
                with_results: r.with_results,
            })
            .await
            .map_err(store_status)?;
        Ok(Response::new(ListTasksResponse {
            tasks: page.tasks,
            next_page_token: page.next_page_token,
            total: page.total,
        }))
    }

    async fn delete_tasks(&self, req: Request<TaskIds>) -> Result<Response<OptResult>, Status> {
        let ids = req.into_inner().ids;
        check_ids(&ids)?;
        let mut out = OptResult::default();
        for id in ids {
            let ok = self.store.delete(&id).await.map_err(store_status)?;
            if !ok {
                out.errors.insert(id.clone(), "no such task".into());
            }
            out.results.insert(id, ok);
        }
        Ok(Response::new(out))
    }

    async fn kill_tasks(&self, req: Request<TaskIds>) -> Result<Response<OptResult>, Status> {
        let ids = req.into_inner().ids;
        check_ids(&ids)?;
        let mut out = OptResult::default();
        for id in ids {
            let r = self.store.kill(&id).await.map_err(store_status)?;
            let ok = matches!(r, KillOutcome::Killed | KillOutcome::Killing);
            match r {
                KillOutcome::Finished => {
                    out.errors.insert(id.clone(), "already finished".into());
                }
                KillOutcome::Missing => {
                    out.errors.insert(id.clone(), "no such task".into());
                }
                _ => {}
            }
            out.results.insert(id, ok);
        }
        Ok(Response::new(out))
    }

    async fn get_task_result(
        &self,
        req: Request<GetTaskRequest>,
    ) -> Result<Response<TaskResults>, Status> {
        let t = self.fetch(&req.get_ref().id, true).await?;
        Ok(Response::new(TaskResults {
            id: t.id.clone(),
            state: t.state,
            results: t.results,
        }))
    }

    type WatchTasksStream = ReceiverStream<Result<TaskEvent, Status>>;

    async fn watch_tasks(
        &self,
        req: Request<WatchTasksRequest>,
    ) -> Result<Response<Self::WatchTasksStream>, Status> {
        let ids = req.into_inner().ids;
        if ids.len() > MAX_IDS {
            return Err(invalid(format!("{} ids; at most {MAX_IDS}", ids.len())));
        }
        for id in &ids {
            task::check_id(id).map_err(invalid)?;
        }
        let only: HashSet<String> = ids.into_iter().collect();
        // The hub reads each changed task once for every stream.
        let mut changes = self.hub.watch(only);
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let closing = self.closing.clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    n = changes.recv() => n,
                    _ = closing.cancelled() => {
                        let _ = tx.send(Err(Status::unavailable("node shutting down"))).await;
                        return;
                    }
                };
                let ch = match next {
                    Ok(ch) => ch,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!(skipped = n, "watcher fell behind");
                        continue;
                    }
                    Err(_) => return,
                };
                let ev = match ch.task {
                    None => TaskEvent {
                        kind: task_event::Kind::Deleted as i32,
                        task: Some(Task {
                            id: ch.id,
                            ..Default::default()
                        }),
                    },
                    Some(t) => TaskEvent {
                        kind: task_event::Kind::Changed as i32,
                        task: Some(Task::clone(&t)),
                    },
                };
                if tx.send(Ok(ev)).await.is_err() {
                    return; // the client went away
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

pub struct NodeService {
    pub store: Store,
    pub lease: Arc<Lease>,
    pub config: Arc<Config>,
}

/// Node names in the order people count them: `node2` before `node10`, then as text.
fn by_name(a: &str, b: &str) -> std::cmp::Ordering {
    fn parts(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let key = |s| {
        parts(s)
            .into_iter()
            .map(|(digits, p)| {
                let p: &str = p;
                if digits {
                    let t = p.trim_start_matches('0');
                    (t.len(), t.to_string())
                } else {
                    (0, p.to_string())
                }
            })
            .collect::<Vec<_>>()
    };
    key(a).cmp(&key(b)).then_with(|| a.cmp(b))
}

impl NodeService {
    /// Every node, sorted by name, so lists keep their order from one look to the next
    /// (Redis keeps them by last heartbeat, which changes every beat).
    async fn node_infos(&self) -> Result<(Vec<NodeInfo>, Option<(String, u64)>), Status> {
        let (mut nodes, now) = self.store.nodes().await.map_err(store_status)?;
        nodes.sort_by(|a, b| by_name(&a.name, &b.name));
        let holder = self.store.lease_holder().await.map_err(store_status)?;
        let master = holder.as_ref().map(|h| h.0.clone());
        let c = &self.config.cluster;
        let infos = nodes
            .into_iter()
            .map(|n| NodeInfo {
                role: if master.as_deref() == Some(n.name.as_str()) {
                    "master"
                } else {
                    "slave"
                }
                .into(),
                state: membership::state_of(&n, now, c.heartbeat, c.dead_after)
                    .as_str()
                    .into(),
                name: n.name,
                addr: n.addr,
                epoch: n.epoch,
                last_heartbeat: n.last_heartbeat,
                running: n.running,
                concurrency: n.concurrency,
                version: n.version,
                metrics: n.metrics,
            })
            .collect();
        Ok((infos, holder))
    }
}

#[tonic::async_trait]
impl Nodes for NodeService {
    async fn list_nodes(&self, _: Request<Empty>) -> Result<Response<NodeList>, Status> {
        Ok(Response::new(NodeList {
            nodes: self.node_infos().await?.0,
        }))
    }

    async fn ask_alive(
        &self,
        req: Request<AskAliveRequest>,
    ) -> Result<Response<AskAliveResponse>, Status> {
        let asker = &req.get_ref().name;
        if asker.len() > 64 {
            return Err(invalid("name: at most 64 bytes"));
        }
        let view = self.lease.view();
        Ok(Response::new(AskAliveResponse {
            name: self.config.node.name.clone(),
            addr: self.config.node.advertise.clone(),
            epoch: view.epoch,
            master: self.lease.current().is_some(),
        }))
    }

    async fn status(&self, _: Request<Empty>) -> Result<Response<StatusResponse>, Status> {
        let (nodes, holder) = self.node_infos().await?;
        let (counts, type_counts) = self.store.counts().await.map_err(store_status)?;
        let epoch = match &holder {
            Some((_, e)) => *e,
            None => self.store.epoch().await.map_err(store_status)?,
        };
        let lost = self
            .store
            .incarnation_record()
            .await
            .map_err(store_status)?
            .unwrap_or_default();
        Ok(Response::new(StatusResponse {
            master: holder.map(|h| h.0).unwrap_or_default(),
            epoch,
            nodes,
            counts: counts.into_iter().collect(),
            type_counts: type_counts.into_iter().collect(),
            data_lost_at: lost.lost,
            data_lost_noticed_by: lost.noticed_by,
        }))
    }

    async fn resign(&self, _: Request<Empty>) -> Result<Response<ResignResponse>, Status> {
        let epoch = self.lease.resign().await;
        Ok(Response::new(ResignResponse {
            resigned: epoch.is_some(),
            epoch: epoch.unwrap_or(0),
        }))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn nodes_sort_as_people_count_them() {
        let mut names = vec!["node10", "node2", "b", "node1", "a7", "a07"];
        names.sort_by(|a, b| super::by_name(a, b));
        assert_eq!(names, ["a07", "a7", "b", "node1", "node2", "node10"]);
    }
}
