//! The node's tests' harness: `gitflock-harness` (a real redis-server on a free port, real
//! `gitflock-node` processes killed with real signals, waiting with deadlines) in a temporary
//! directory, plus what only these tests do: read Redis, through the store's `Keys`, to check
//! what the store wrote. Everything here panics: it is test-only.
#![allow(dead_code)]

use gitflock_client::Client;
use gitflock_proto::v1::{CreateTaskRequest, GetTaskRequest, Task, TaskState};
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::time::Duration;
use tonic_health::pb::health_check_response::ServingStatus;

pub use gitflock_harness::{Redis, wait_for};
pub use gitflock_node::store::Keys;

pub const TOKEN: &str = "test-token-0123456789abcdef";
/// How long a node has to stop after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(30);

/// The keys the nodes write under (the default `[redis] prefix`).
pub fn keys() -> Keys {
    Keys::new("gitflock")
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    gitflock_harness::free_port().expect("a free port")
}

/// Redis plus N nodes named node1…nodeN, in a temporary directory that outlives them. Derefs
/// to the harness's [`gitflock_harness::Cluster`] (nodes, Redis, `node(name)`, `add_node`…).
pub struct Cluster {
    inner: gitflock_harness::Cluster,
    _dir: tempfile::TempDir,
}

impl Deref for Cluster {
    type Target = gitflock_harness::Cluster;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl DerefMut for Cluster {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

impl Cluster {
    pub async fn start(n: usize) -> Cluster {
        Self::launch(n, &[], false, None).await
    }

    /// `env` applies to every node (and to those added later, before their own).
    pub async fn start_with(n: usize, env: &[(&str, &str)]) -> Cluster {
        Self::launch(n, env, false, None).await
    }

    /// On a Redis with an fsync'd append-only file: a kill -9 of Redis keeps every
    /// acknowledged write.
    pub async fn start_with_aof(n: usize) -> Cluster {
        Self::launch(n, &[], true, None).await
    }

    /// On a Redis that fails over (a primary, replicas and three sentinels; see
    /// `gitflock_harness::SentinelRedis`), found by the nodes through the sentinels.
    pub async fn start_with_sentinels(
        n: usize,
        env: &[(&str, &str)],
        options: gitflock_harness::SentinelOptions,
    ) -> Cluster {
        Self::launch(n, env, false, Some(options)).await
    }

    /// Nodes started one after another, so node1 is the first master; their log level is
    /// `GITFLOCK_TEST_LOG` (default info).
    async fn launch(
        n: usize,
        env: &[(&str, &str)],
        aof: bool,
        sentinel: Option<gitflock_harness::SentinelOptions>,
    ) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let level = std::env::var("GITFLOCK_TEST_LOG").unwrap_or_else(|_| "info".into());
        let node = gitflock_harness::binary("gitflock-node");
        let mut builder = gitflock_harness::Cluster::builder(&node, dir.path(), TOKEN)
            .nodes(n)
            .aof(aof)
            .staggered(true)
            .env("RUST_LOG", level)
            .envs(env);
        if let Some(options) = sentinel {
            builder = builder.sentinel(options);
        }
        let started = builder.start().await;
        match started {
            Ok(inner) => Cluster { inner, _dir: dir },
            Err(e) => {
                let log = |i| std::fs::read_to_string(dir.path().join(format!("node{i}.log")));
                let logs: String = (1..=n)
                    .map(|i| format!("--- node{i}\n{}", log(i).unwrap_or_default()))
                    .collect();
                panic!("the cluster did not start: {e}\n{logs}")
            }
        }
    }

    /// A client of node1.
    pub async fn client(&self) -> Client {
        self.nodes[0].client().await.expect("a client of node1")
    }

    /// The master's name, once a node names one (within 10 s).
    pub async fn wait_master(&self) -> String {
        let master = self.master(Duration::from_secs(10)).await;
        master.unwrap_or_else(|e| panic!("{e}"))
    }

    /// The lease's holder and epoch, as Redis holds them.
    pub fn lease(&self) -> Option<(String, u64)> {
        lease_on(&self.redis)
    }

    /// Task counts by state name, from the state indexes.
    pub fn counts(&self) -> HashMap<String, u64> {
        let mut con = self.redis.conn();
        let k = keys();
        gitflock_core::task::STATES
            .iter()
            .map(|s| {
                let n: u64 = redis::cmd("ZCARD")
                    .arg(k.state(*s))
                    .query(&mut con)
                    .unwrap();
                (s.as_str_name().to_string(), n)
            })
            .collect()
    }

    pub async fn wait_count(&self, state: &str, n: u64, timeout: Duration) {
        wait_for(&format!("{n} tasks {state}"), timeout, || async {
            (self.counts()[state] == n).then_some(())
        })
        .await
    }

    /// One field of a task's hash.
    pub fn task_field(&self, id: &str, field: &str) -> Option<String> {
        let mut con = self.redis.conn();
        redis::cmd("HGET")
            .arg(keys().task(id))
            .arg(field)
            .query(&mut con)
            .unwrap()
    }
}

impl Drop for Cluster {
    // A failing test shows what the nodes said (the last lines of each log).
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tails(40));
        }
    }
}

/// A connection to a cluster's Redis, for reading what the store wrote.
pub trait RedisConn {
    fn conn(&self) -> redis::Connection;
}

impl RedisConn for Redis {
    fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

/// The lease's holder and epoch on `redis` (`"<node> <epoch>"`), if someone holds it.
pub fn lease_on(redis: &Redis) -> Option<(String, u64)> {
    let v = redis_get(&redis.url(), &keys().lease())?;
    let (n, e) = v.split_once(' ')?;
    Some((n.to_string(), e.parse().ok()?))
}

/// What the node at `url` answers to a gRPC health check of the whole server (no token:
/// health is open).
pub async fn health(url: &str) -> ServingStatus {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let request = tonic_health::pb::HealthCheckRequest {
        service: String::new(),
    };
    let status = health.check(request).await.unwrap().into_inner().status;
    ServingStatus::try_from(status).unwrap()
}

pub fn redis_get(url: &str, key: &str) -> Option<String> {
    let mut con = redis::Client::open(url).ok()?.get_connection().ok()?;
    redis::cmd("GET").arg(key).query(&mut con).ok()?
}

pub fn echo(target: &str) -> CreateTaskRequest {
    CreateTaskRequest {
        r#type: "echo".into(),
        target: target.into(),
        ..Default::default()
    }
}

pub fn sleep_task(d: &str) -> CreateTaskRequest {
    CreateTaskRequest {
        r#type: "sleep".into(),
        target: d.into(),
        ..Default::default()
    }
}

pub async fn create(c: &mut Client, req: CreateTaskRequest) -> Task {
    c.tasks.create_task(req).await.unwrap().into_inner()
}

pub async fn get(c: &mut Client, id: &str) -> Task {
    c.tasks
        .get_task(GetTaskRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner()
}

pub async fn wait_state(c: &Client, id: &str, state: TaskState, timeout: Duration) -> Task {
    wait_for(
        &format!("task {id} to be {}", state.as_str_name()),
        timeout,
        || {
            let mut c = c.clone();
            let id = id.to_string();
            async move {
                let t = get(&mut c, &id).await;
                (t.state() == state).then_some(t)
            }
        },
    )
    .await
}
