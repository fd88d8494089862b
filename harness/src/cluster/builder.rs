//! How a [`Cluster`] is asked for: how many nodes, on which Redis, with what settings; and
//! starting it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Cluster;
use crate::cluster_redis::Redis;
use crate::node::NodeConfig;
use crate::port::{free_port, port_or_free};
use crate::redis_server::{RedisOptions, RedisServer};
use crate::sentinel::{SENTINEL_MASTER, SentinelOptions, SentinelRedis};

/// How long a failed start gives the nodes already running to stop gracefully.
const ABORT_GRACE: Duration = Duration::from_secs(10);

/// A cluster to start: see [`Cluster::builder`].
#[must_use]
pub struct ClusterBuilder {
    /// Name, ports, data dir and log are filled in per node.
    template: NodeConfig,
    dir: PathBuf,
    nodes: usize,
    redis_url: Option<String>,
    /// Start a primary, a replica and three sentinels instead of one redis-server.
    sentinel: Option<SentinelOptions>,
    aof: bool,
    base_port: Option<u16>,
    metrics: bool,
    chain_remote: Option<PathBuf>,
    staggered: bool,
    ready_timeout: Duration,
}

impl ClusterBuilder {
    pub(crate) fn new(program: &Path, dir: &Path, token: &str) -> ClusterBuilder {
        ClusterBuilder {
            template: NodeConfig {
                program: program.to_path_buf(),
                token: token.to_string(),
                ..NodeConfig::default()
            },
            dir: dir.to_path_buf(),
            nodes: 1,
            redis_url: None,
            sentinel: None,
            aof: false,
            base_port: None,
            metrics: false,
            chain_remote: None,
            staggered: false,
            ready_timeout: Duration::from_secs(30),
        }
    }

    /// How many nodes (named node1…nodeN). Default 1.
    pub fn nodes(mut self, n: usize) -> Self {
        self.nodes = n;
        self
    }

    /// Run on this Redis instead of starting redis-server in `<dir>/redis`.
    pub fn redis_url(mut self, url: &str) -> Self {
        self.redis_url = Some(url.to_string());
        self
    }

    /// Run on a Redis that fails over: a primary, a replica and three sentinels in
    /// `<dir>/redis` (see [`SentinelRedis`]); the nodes find the primary through the
    /// sentinels.
    pub fn sentinel(mut self, options: SentinelOptions) -> Self {
        self.sentinel = Some(options);
        self
    }

    /// The started redis-server keeps an fsync'd append-only file (see [`RedisOptions::aof`]).
    pub fn aof(mut self, on: bool) -> Self {
        self.aof = on;
        self
    }

    /// Node i listens on `base + i - 1` (a taken port is replaced by a free one); else every
    /// node on a free port.
    pub fn base_port(mut self, base: u16) -> Self {
        self.base_port = Some(base);
        self
    }

    /// Every node serves `/metrics` on a free port of its own.
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// Blocks go to the bare repository at `path`, made with `git init --bare` if it does not
    /// exist; without git the nodes get no chain remote.
    pub fn chain_remote(mut self, path: &Path) -> Self {
        self.chain_remote = Some(path.to_path_buf());
        self
    }

    /// Sets `key` for every node (later settings, and a node's own, override earlier ones).
    pub fn env(mut self, key: &str, value: impl ToString) -> Self {
        self.template.env.push((key.to_string(), value.to_string()));
        self
    }

    /// [`ClusterBuilder::env`] for each pair.
    pub fn envs(self, pairs: &[(&str, &str)]) -> Self {
        pairs.iter().fold(self, |b, (k, v)| b.env(k, v))
    }

    /// Every node serves gRPC over TLS with `tls` (one certificate for 127.0.0.1 serves
    /// them all); the nodes' URLs are then `https://`.
    pub fn tls(mut self, tls: crate::tls::ServeTls) -> Self {
        self.template.tls = Some(tls);
        self
    }

    /// Pass the caller's environment on to the nodes (`gitflock dev`); else only PATH.
    pub fn inherit_env(mut self, on: bool) -> Self {
        self.template.inherit_env = on;
        self
    }

    /// Start the nodes one after another, each once the one before answers, so that node1 is
    /// (very likely) the first master; else all at once.
    pub fn staggered(mut self, on: bool) -> Self {
        self.staggered = on;
        self
    }

    /// The longest wait for the cluster to be ready (and for a staggered node to answer).
    /// Default 30 s.
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Starts Redis (unless given) and the nodes, and waits until every node answers
    /// `Nodes.Status` naming a master. On an error what was started is stopped again.
    pub async fn start(mut self) -> Result<Cluster, String> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        let redis = match (self.redis_url.take(), self.sentinel.take()) {
            (Some(url), _) => Redis::External(url),
            (None, Some(options)) => {
                let s = SentinelRedis::start(&self.dir.join("redis"), options).await?;
                // Before the caller's settings, which may override them.
                let env = [
                    ("GITFLOCK_REDIS_SENTINELS", s.sentinels()),
                    (
                        "GITFLOCK_REDIS_SENTINEL_MASTER",
                        SENTINEL_MASTER.to_string(),
                    ),
                ];
                let env = env.into_iter().map(|(k, v)| (k.to_string(), v));
                self.template.env.splice(0..0, env);
                Redis::Sentinel(s)
            }
            (None, None) => {
                let options = RedisOptions {
                    port: None,
                    aof: self.aof,
                    log: Some(self.dir.join("redis.log")),
                    replica_of: None,
                };
                Redis::Started(RedisServer::start(&self.dir.join("redis"), options).await?)
            }
        };
        self.template.redis_url = redis.url();
        let chain_remote = self
            .chain_remote
            .take()
            .map(|p| bare_repository(&p).then_some(p));
        if let Some(remote) = &chain_remote {
            // Set even when empty: no remote, whatever the caller's environment says.
            let path = remote.as_deref().unwrap_or(Path::new(""));
            let value = path.to_string_lossy().into_owned();
            self.template
                .env
                .insert(0, ("GITFLOCK_CHAIN_REMOTE".into(), value));
        }
        let mut cluster = Cluster::new(
            redis,
            self.template.clone(),
            &self.dir,
            self.metrics,
            chain_remote.flatten(),
            self.ready_timeout,
        );
        match self.launch(&mut cluster).await {
            Ok(()) => Ok(cluster),
            Err(e) => {
                let _ = cluster.stop(ABORT_GRACE).await;
                Err(e)
            }
        }
    }

    async fn launch(&self, cluster: &mut Cluster) -> Result<(), String> {
        for i in 1..=self.nodes {
            let port = match self.base_port {
                Some(base) => port_or_free(base.saturating_add(i as u16 - 1))?,
                None => free_port()?,
            };
            let node = cluster.spawn_node(port, &[])?;
            if self.staggered {
                node.wait_ready(self.ready_timeout).await?;
            }
        }
        cluster.wait_ready(self.ready_timeout).await.map(|_| ())
    }
}

/// True when `path` is a bare repository, made now with `git init --bare` if need be.
fn bare_repository(path: &Path) -> bool {
    path.join("HEAD").is_file()
        || std::process::Command::new("git")
            .args(["init", "--bare", "-q"])
            .arg(path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}
