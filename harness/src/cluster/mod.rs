//! A local cluster: Redis plus nodes named node1…nodeN, sharing a token and a directory
//! (`<dir>/<name>` data, `<dir>/<name>.log`, `<dir>/redis`), ready when every node answers
//! `Nodes.Status` and a master is named — asked of the nodes over gRPC, never of Redis.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

mod builder;

pub use builder::ClusterBuilder;

use crate::cluster_redis::Redis;
use crate::node::{NodeConfig, NodeProcess, status_master};
use crate::port::free_port;
use crate::wait::{Poll, poll_until};

/// How often readiness is asked while a cluster starts.
const READY_POLL: Duration = Duration::from_millis(50);
/// How long a started redis-server has to stop after the nodes.
const REDIS_GRACE: Duration = Duration::from_secs(5);

/// Nodes first, Redis second: dropping a cluster kills them (SIGKILL) in that order; see
/// [`Cluster::stop`] for a graceful stop.
pub struct Cluster {
    pub nodes: Vec<NodeProcess>,
    pub redis: Redis,
    /// What every node is started with; name, ports, data dir and log are filled in per node.
    template: NodeConfig,
    dir: PathBuf,
    metrics: bool,
    chain_remote: Option<PathBuf>,
    ready_timeout: Duration,
}

impl Cluster {
    /// A cluster of `program` (the `gitflock-node` binary) nodes with cluster token `token`,
    /// keeping their files in `dir`.
    pub fn builder(program: &Path, dir: &Path, token: &str) -> ClusterBuilder {
        ClusterBuilder::new(program, dir, token)
    }

    pub(crate) fn new(
        redis: Redis,
        template: NodeConfig,
        dir: &Path,
        metrics: bool,
        chain_remote: Option<PathBuf>,
        ready_timeout: Duration,
    ) -> Cluster {
        Cluster {
            nodes: Vec::new(),
            redis,
            template,
            dir: dir.to_path_buf(),
            metrics,
            chain_remote,
            ready_timeout,
        }
    }

    pub fn token(&self) -> &str {
        &self.template.token
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The bare repository blocks are pushed to, if the cluster has one.
    pub fn chain_remote(&self) -> Option<&Path> {
        self.chain_remote.as_deref()
    }

    /// Every node's gRPC URL, in order.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(NodeProcess::url).collect()
    }

    /// The node called `name`. Panics if there is none (like indexing `nodes`).
    pub fn node(&mut self, name: &str) -> &mut NodeProcess {
        self.nodes
            .iter_mut()
            .find(|n| n.name() == name)
            .unwrap_or_else(|| panic!("no node {name} in the cluster"))
    }

    /// Starts node `node<N+1>` on `port` with `env` after the cluster's own settings.
    pub(crate) fn spawn_node(
        &mut self,
        port: u16,
        env: &[(&str, &str)],
    ) -> Result<&mut NodeProcess, String> {
        let name = format!("node{}", self.nodes.len() + 1);
        let mut config = self.template.clone();
        config.data_dir = self.dir.join(&name);
        config.log = self.dir.join(format!("{name}.log"));
        config.name = name;
        config.port = port;
        // Each node serves its mirrors (git daemon) on a port of its own.
        config.serve_port = Some(free_port()?);
        if self.metrics {
            config.metrics_port = Some(free_port()?);
        }
        let extra = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        config.env.extend(extra);
        self.nodes.push(NodeProcess::spawn(config)?);
        Ok(self.nodes.last_mut().expect("just pushed"))
    }

    /// Starts one more node, on a free port, with `env` after the cluster's own settings, and
    /// waits until it answers.
    pub async fn add_node(&mut self, env: &[(&str, &str)]) -> Result<&mut NodeProcess, String> {
        let timeout = self.ready_timeout;
        let node = self.spawn_node(free_port()?, env)?;
        node.wait_ready(timeout).await?;
        Ok(node)
    }

    /// Until every node answers `Nodes.Status` naming a master; returns the master. An error
    /// names a node that exited (and its log) or did not answer in time.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let mut master = String::new();
        for node in &mut self.nodes {
            master = loop {
                match node.look(true).await {
                    Poll::Ready(m) => break m,
                    Poll::Failed(e) => return Err(e),
                    Poll::Pending if Instant::now() >= deadline => {
                        let (name, secs) = (node.name(), timeout.as_secs());
                        return Err(format!("{name} did not become ready within {secs}s"));
                    }
                    Poll::Pending => tokio::time::sleep(READY_POLL).await,
                }
            };
        }
        Ok(master)
    }

    /// The master, as the first node to answer `Nodes.Status` names it, once one is named.
    pub async fn master(&self, timeout: Duration) -> Result<String, String> {
        let (urls, token) = (self.urls(), self.token().to_string());
        let tls = self.template.client_tls()?;
        poll_until("a master", timeout, || {
            let (urls, token, tls) = (urls.clone(), token.clone(), tls.clone());
            async move {
                // All at once: a stopped or dead node must not hold up the others.
                let mut asks = tokio::task::JoinSet::new();
                for url in urls {
                    let (token, tls) = (token.clone(), tls.clone());
                    asks.spawn(async move { status_master(&url, &token, &tls).await });
                }
                while let Some(answer) = asks.join_next().await {
                    if let Ok(Some(m)) = answer
                        && !m.is_empty()
                    {
                        return Poll::Ready(m);
                    }
                }
                Poll::Pending
            }
        })
        .await
    }

    /// The processes (Redis, nodes) that exited on their own since the last look, each
    /// reported once, by name.
    pub fn exited(&mut self) -> Vec<(String, ExitStatus)> {
        let redis: Vec<(String, ExitStatus)> = match self.redis.sentinel() {
            Some(s) => s.exited(),
            None => {
                let r = self.redis.server().and_then(|r| r.exited());
                r.map(|s| ("redis-server".to_string(), s))
                    .into_iter()
                    .collect()
            }
        };
        let nodes = self.nodes.iter_mut();
        let nodes = nodes.filter_map(|n| Some((n.name().to_string(), n.exited()?)));
        redis.into_iter().chain(nodes).collect()
    }

    /// A graceful stop: SIGTERM to every node at once (they hand their work back and the
    /// master resigns), up to `grace` for each to exit, then the same for a started Redis.
    /// Whoever had to be killed is named in the error.
    pub async fn stop(&mut self, grace: Duration) -> Result<(), String> {
        self.nodes.iter().for_each(NodeProcess::sigterm);
        let mut killed = Vec::new();
        for node in &mut self.nodes {
            if let Err(e) = node.wait_exit(grace).await {
                killed.push(e);
            }
        }
        if let Some(s) = self.redis.sentinel() {
            if let Err(e) = s.stop(REDIS_GRACE).await {
                killed.push(e);
            }
        } else if let Some(r) = self.redis.server()
            && let Err(e) = r.stop(REDIS_GRACE).await
        {
            killed.push(e);
        }
        if killed.is_empty() {
            Ok(())
        } else {
            Err(killed.join("; "))
        }
    }

    /// Every node's log, each after a `--- <name>` line.
    pub fn logs(&self) -> String {
        self.log_tails(usize::MAX)
    }

    /// The last `lines` lines of every node's log, each after a `--- <name>` line (what a
    /// failed test shows).
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            let text = n.log_text();
            let all: Vec<&str> = text.lines().collect();
            let tail = &all[all.len().saturating_sub(lines)..];
            out.push_str(&format!("--- {}\n{}\n", n.name(), tail.join("\n")));
        }
        out
    }
}
