//! The dashboard's way to the cluster: one lazy gRPC channel per configured node, with the
//! cluster token on every call, and failover — a call that finds its node unreachable is
//! sent to the next one, and the node that answered becomes the first to try next time.
//!
//! Retrying on another node is safe for every call the dashboard makes: reads are
//! idempotent, kill and delete act on ids, and CreateTask carries a `request_id` so a retry
//! returns the task the first attempt created.

use crate::metrics::Metrics;
use gitflock_proto::v1::chain_client::ChainClient;
use gitflock_proto::v1::mirrors_client::MirrorsClient;
use gitflock_proto::v1::nodes_client::NodesClient;
use gitflock_proto::v1::tasks_client::TasksClient;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// Puts `authorization: Bearer <cluster token>` on every call. (The CLI's `Bearer` keeps its
/// value private and connects eagerly; the dashboard needs lazy channels it can fail over.)
#[derive(Clone)]
pub struct Auth(MetadataValue<Ascii>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

type Authed = InterceptedService<Channel, Auth>;

/// The four service clients of one node (cheap to clone: they share the channel).
#[derive(Clone)]
pub struct Clients {
    pub tasks: TasksClient<Authed>,
    pub nodes: NodesClient<Authed>,
    pub chain: ChainClient<Authed>,
    pub mirrors: MirrorsClient<Authed>,
}

impl Clients {
    fn new(channel: Channel, auth: Auth) -> Clients {
        Clients {
            tasks: TasksClient::with_interceptor(channel.clone(), auth.clone()),
            nodes: NodesClient::with_interceptor(channel.clone(), auth.clone()),
            chain: ChainClient::with_interceptor(channel.clone(), auth.clone()),
            mirrors: MirrorsClient::with_interceptor(channel, auth),
        }
    }
}

struct Node {
    url: String,
    calls_ep: Endpoint,
    watch_ep: Endpoint,
    auth: Auth,
    /// Request/response calls: a 10 s deadline each.
    calls: RwLock<Clients>,
    /// The WatchTasks stream: no deadline (it lives as long as the node), HTTP/2 keep-alive
    /// so a frozen node is noticed.
    watch: RwLock<Clients>,
}

impl Node {
    /// New channels: the old connection may be held by a server that will never answer (a
    /// node's start-up server serves health alone, and keeps its connections after it hands
    /// the port over).
    fn reconnect(&self) {
        let calls = Clients::new(self.calls_ep.connect_lazy(), self.auth.clone());
        let watch = Clients::new(self.watch_ep.connect_lazy(), self.auth.clone());
        *self.calls.write().unwrap_or_else(|e| e.into_inner()) = calls;
        *self.watch.write().unwrap_or_else(|e| e.into_inner()) = watch;
    }

    fn calls(&self) -> Clients {
        self.calls.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

pub struct Pool {
    nodes: Vec<Node>,
    /// The node that answered last: tried first.
    current: AtomicUsize,
    metrics: Arc<Metrics>,
}

/// Errors that say "this node cannot answer now", as opposed to an answer.
fn is_unreachable(s: &Status) -> bool {
    match s.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => true,
        Code::Unknown => {
            let m = s.message();
            m.contains("transport error") || m.contains("connection")
        }
        _ => false,
    }
}

impl Pool {
    pub fn new(urls: &[String], token: &str, metrics: Arc<Metrics>) -> Result<Pool, String> {
        let value: MetadataValue<Ascii> = format!("Bearer {token}")
            .parse()
            .map_err(|_| "the cluster token holds characters that cannot be sent".to_string())?;
        let auth = Auth(value);
        let mut nodes = Vec::new();
        for url in urls {
            let ep = Endpoint::from_shared(url.clone())
                .map_err(|_| format!("{url:?} is not a gRPC endpoint URL"))?
                .connect_timeout(Duration::from_secs(1))
                .tcp_nodelay(true);
            let calls_ep = ep.clone().timeout(Duration::from_secs(10));
            let watch_ep = ep
                .http2_keep_alive_interval(Duration::from_secs(2))
                .keep_alive_timeout(Duration::from_secs(3))
                .keep_alive_while_idle(true);
            nodes.push(Node {
                url: url.clone(),
                calls: RwLock::new(Clients::new(calls_ep.connect_lazy(), auth.clone())),
                watch: RwLock::new(Clients::new(watch_ep.connect_lazy(), auth.clone())),
                calls_ep,
                watch_ep,
                auth: auth.clone(),
            });
        }
        if nodes.is_empty() {
            return Err("no nodes configured".into());
        }
        Ok(Pool {
            nodes,
            current: AtomicUsize::new(0),
            metrics,
        })
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed) % self.nodes.len()
    }

    pub fn url(&self, i: usize) -> &str {
        &self.nodes[i % self.nodes.len()].url
    }

    /// The streaming clients of node `i` (for the WatchTasks follower).
    pub fn watch_clients(&self, i: usize) -> Clients {
        self.nodes[i % self.nodes.len()]
            .watch
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Drops node `i`'s connections; the next call dials it again.
    pub fn reconnect(&self, i: usize) {
        self.nodes[i % self.nodes.len()].reconnect();
    }

    /// Makes one call, starting with the node that answered last and moving on while nodes
    /// are unreachable. `what` names the call in metrics.
    pub async fn call<T, F, Fut>(&self, what: &'static str, f: F) -> Result<T, Status>
    where
        F: Fn(Clients) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let n = self.nodes.len();
        let start = self.current();
        let mut last = None;
        for k in 0..n {
            let i = (start + k) % n;
            let mut res = f(self.nodes[i].calls()).await;
            // Every serving node implements the Tasks, Nodes and Chain services: UNIMPLEMENTED
            // there means our connection reached the node's start-up server. Dial again once.
            if let Err(s) = &res
                && s.code() == Code::Unimplemented
                && !what.starts_with("Mirrors.")
            {
                tracing::info!(node = %self.nodes[i].url, call = what, "reconnecting: the node answered UNIMPLEMENTED");
                self.nodes[i].reconnect();
                res = f(self.nodes[i].calls()).await;
            }
            match res {
                Ok(resp) => {
                    if i != start {
                        self.current.store(i, Ordering::Relaxed);
                        self.metrics.failovers.inc();
                        tracing::warn!(from = %self.nodes[start].url, to = %self.nodes[i].url, "failed over to another node");
                    }
                    return Ok(resp.into_inner());
                }
                Err(s) => {
                    self.metrics.grpc_error(what, s.code());
                    if !is_unreachable(&s) && s.code() != Code::Unimplemented
                        || what.starts_with("Mirrors.") && s.code() == Code::Unimplemented
                    {
                        return Err(s);
                    }
                    tracing::debug!(node = %self.nodes[i].url, call = what, code = ?s.code(), "node unreachable");
                    last = Some(s);
                }
            }
        }
        Err(last.unwrap_or_else(|| Status::unavailable("no node answered")))
    }
}
