//! Lazy gRPC channels to several nodes, with failover: a call that finds its node unreachable
//! is sent to the next one, and the node that answered becomes the first to try next time.
//!
//! Retrying on another node is safe for every call a client of the pool makes: reads are
//! idempotent, kill and delete act on ids, and CreateTask carries a `request_id` so a retry
//! returns the task the first attempt created.

use crate::{Bearer, Client, ClientError, Tls};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tonic::transport::Endpoint;
use tonic::{Code, Status};

/// What a pool reports as it works (the dashboard counts these in its metrics).
pub trait Observer: Send + Sync {
    /// A call moved on to another node.
    fn failover(&self) {}
    /// A call `what` failed on one node with `code`.
    fn error(&self, _what: &'static str, _code: Code) {}
}

/// An observer that notes nothing.
pub struct Quiet;
impl Observer for Quiet {}

struct Node {
    url: String,
    calls_ep: Endpoint,
    watch_ep: Endpoint,
    bearer: Bearer,
    /// Request/response calls: a 10 s deadline each.
    calls: RwLock<Client>,
    /// The WatchTasks stream: no deadline (it lives as long as the node), HTTP/2 keep-alive
    /// so a frozen node is noticed.
    watch: RwLock<Client>,
}

impl Node {
    /// New channels: the old connection may be held by a server that will never answer (a
    /// node's start-up server serves health alone, and keeps its connections after it hands
    /// the port over).
    fn reconnect(&self) {
        let calls = Client::new(self.calls_ep.connect_lazy(), self.bearer.clone());
        let watch = Client::new(self.watch_ep.connect_lazy(), self.bearer.clone());
        *self.calls.write().unwrap_or_else(|e| e.into_inner()) = calls;
        *self.watch.write().unwrap_or_else(|e| e.into_inner()) = watch;
    }

    fn calls(&self) -> Client {
        self.calls.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

pub struct Pool {
    nodes: Vec<Node>,
    /// The node that answered last: tried first.
    current: AtomicUsize,
    observer: Arc<dyn Observer>,
}

/// Errors that say "this node cannot answer now", as opposed to an answer.
pub fn is_unreachable(s: &Status) -> bool {
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
    /// Channels to `addrs` (each `host:port` or a URL; `https://` ones through `tls`),
    /// dialled on first use.
    pub fn new(
        addrs: &[String],
        token: &str,
        tls: &Tls,
        observer: Arc<dyn Observer>,
    ) -> Result<Pool, ClientError> {
        let bearer = Bearer::new(token)?;
        let mut nodes = Vec::new();
        for addr in addrs {
            let url = tls.endpoint_url(addr).map_err(ClientError)?;
            let ep = tls
                .endpoint(&url, Duration::from_secs(3))?
                .connect_timeout(Duration::from_secs(1))
                .tcp_nodelay(true);
            let calls_ep = ep.clone().timeout(Duration::from_secs(10));
            let watch_ep = ep
                .http2_keep_alive_interval(Duration::from_secs(2))
                .keep_alive_timeout(Duration::from_secs(3))
                .keep_alive_while_idle(true);
            nodes.push(Node {
                url,
                calls: RwLock::new(Client::new(calls_ep.connect_lazy(), bearer.clone())),
                watch: RwLock::new(Client::new(watch_ep.connect_lazy(), bearer.clone())),
                calls_ep,
                watch_ep,
                bearer: bearer.clone(),
            });
        }
        if nodes.is_empty() {
            return Err(ClientError("no nodes configured".into()));
        }
        Ok(Pool {
            nodes,
            current: AtomicUsize::new(0),
            observer,
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
    pub fn watch_clients(&self, i: usize) -> Client {
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
        F: Fn(Client) -> Fut,
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
                        self.observer.failover();
                        tracing::warn!(from = %self.nodes[start].url, to = %self.nodes[i].url, "failed over to another node");
                    }
                    return Ok(resp.into_inner());
                }
                Err(s) => {
                    self.observer.error(what, s.code());
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
