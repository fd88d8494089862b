//! The shared test harness: a real redis-server on a free port, real `gitflock-node`
//! processes (killed with real signals), clients, and waiting on conditions with deadlines.
#![allow(dead_code)]

use gitflock_client::Client;
use gitflock_proto::v1::{CreateTaskRequest, Empty, Task, TaskState};
use std::collections::HashMap;
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "test-token-0123456789abcdef";
pub const PREFIX: &str = "gitflock";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `cond` until it returns Some, or panics with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a child we spawned.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// A private redis-server; stopped on drop.
pub struct Redis {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
    aof: bool,
}

impl Redis {
    pub fn start() -> Redis {
        Self::start_with(false)
    }

    /// With `aof`, every write is appended and fsync'd before Redis answers, so even a kill -9
    /// of Redis keeps every acknowledged write.
    pub fn start_with(aof: bool) -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Self::spawn(port, dir.path(), aof);
        let r = Redis {
            port,
            dir,
            child,
            aof,
        };
        r.wait_ready();
        r
    }

    fn spawn(port: u16, dir: &Path, aof: bool) -> Child {
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", if aof { "yes" } else { "no" }])
            .args(["--appendfsync", "always"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (apt-get install redis-server)")
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(c) = redis::Client::open(self.url())
                && let Ok(mut con) = c.get_connection()
                && redis::cmd("PING").query::<String>(&mut con).is_ok()
            {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// Kills redis-server (SIGKILL) and starts it again on the same port and dir.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(self.port, self.dir.path(), self.aof);
        self.wait_ready();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `gitflock-node` process.
pub struct Node {
    pub name: String,
    pub port: u16,
    pub data: PathBuf,
    pub log: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Node {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(gitflock_harness::binary("gitflock-node"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "RUST_LOG",
                std::env::var("GITFLOCK_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("GITFLOCK_NODE_NAME", &self.name)
            .env("GITFLOCK_NODE_DATA_DIR", &self.data)
            .env(
                "GITFLOCK_NODE_GRPC_LISTEN",
                format!("127.0.0.1:{}", self.port),
            )
            .env("GITFLOCK_CLUSTER_TOKEN", TOKEN);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(
            cmd.stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.url(), TOKEN, Some(Duration::from_secs(30)))
            .await
            .unwrap()
    }

    pub async fn wait_ready(&self) {
        let url = self.url();
        wait_for(
            &format!("{} to answer", self.name),
            Duration::from_secs(20),
            || {
                let url = url.clone();
                async move {
                    let mut c = Client::connect(&url, TOKEN, Some(Duration::from_secs(2)))
                        .await
                        .ok()?;
                    c.nodes.status(Empty {}).await.ok().map(|_| ())
                }
            },
        )
        .await;
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn sigstop(&self) {
        signal(self.pid(), libc::SIGSTOP);
    }

    pub fn sigcont(&self) {
        signal(self.pid(), libc::SIGCONT);
    }

    /// Sends SIGTERM without waiting.
    pub fn sigterm(&self) {
        signal(self.pid(), libc::SIGTERM);
    }

    /// SIGTERM, then waits for the exit; returns whether it exited 0.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        signal(c.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn();
        self.wait_ready().await;
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Redis plus N nodes named node1…nodeN.
pub struct Cluster {
    pub redis: Redis,
    pub nodes: Vec<Node>,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    pub async fn start(n: usize) -> Cluster {
        Self::start_with(n, &[]).await
    }

    /// `env` applies to every node; per-node settings can be changed with [`Cluster::add`].
    /// On a given Redis (e.g. one with AOF).
    pub async fn start_on(redis: Redis, n: usize) -> Cluster {
        let mut c = Cluster {
            redis,
            nodes: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
        };
        for _ in 0..n {
            c.add(&[]).await;
        }
        c.wait_master().await;
        c
    }

    pub async fn start_with(n: usize, env: &[(&str, &str)]) -> Cluster {
        let mut c = Cluster {
            redis: Redis::start(),
            nodes: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
        };
        for _ in 0..n {
            c.add(env).await;
        }
        c.wait_master().await;
        c
    }

    /// Starts one more node and waits until it answers.
    pub async fn add(&mut self, env: &[(&str, &str)]) -> usize {
        let i = self.nodes.len();
        let name = format!("node{}", i + 1);
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.push(("GITFLOCK_REDIS_URL".into(), self.redis.url()));
        if !env.iter().any(|(k, _)| k == "GITFLOCK_MIRROR_SERVE_LISTEN") {
            // Each node serves its mirrors (git daemon) on a port of its own.
            env.push((
                "GITFLOCK_MIRROR_SERVE_LISTEN".into(),
                format!("127.0.0.1:{}", free_port()),
            ));
        }
        let mut node = Node {
            port: free_port(),
            data: self.dir.path().join(&name),
            log: self.dir.path().join(format!("{name}.log")),
            name,
            env,
            child: None,
        };
        node.spawn();
        node.wait_ready().await;
        self.nodes.push(node);
        i
    }

    pub async fn client(&self) -> Client {
        self.nodes[0].client().await
    }

    /// The master's name, once there is one.
    pub async fn wait_master(&self) -> String {
        let r = self.redis.url();
        wait_for("a master", Duration::from_secs(10), || {
            let r = r.clone();
            async move {
                let v: Option<String> = redis_get(&r, &format!("{PREFIX}:lease"));
                v.map(|v| v.split(' ').next().unwrap_or_default().to_string())
            }
        })
        .await
    }

    pub fn node(&mut self, name: &str) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .expect("node")
    }

    /// Task counts by state name, from the store.
    pub fn counts(&self) -> HashMap<String, u64> {
        let mut con = self.redis.conn();
        let mut out = HashMap::new();
        for s in [
            "WAITING",
            "INQUEUE",
            "RUNNING",
            "RUNTIME_ERROR",
            "SUCCEED",
            "KILLED",
        ] {
            let n: u64 = redis::cmd("ZCARD")
                .arg(format!("{PREFIX}:state:{s}"))
                .query(&mut con)
                .unwrap();
            out.insert(s.to_string(), n);
        }
        out
    }

    pub async fn wait_count(&self, state: &str, n: u64, timeout: Duration) {
        wait_for(&format!("{n} tasks {state}"), timeout, || async {
            (self.counts()[state] == n).then_some(())
        })
        .await
    }

    pub fn task_field(&self, id: &str, field: &str) -> Option<String> {
        let mut con = self.redis.conn();
        redis::cmd("HGET")
            .arg(format!("{PREFIX}:task:{id}"))
            .arg(field)
            .query(&mut con)
            .unwrap()
    }

    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- {}\n{}", n.name, n.log_text()))
            .collect()
    }
}

impl Drop for Cluster {
    // A failing test shows what the nodes said (the last lines of each log).
    fn drop(&mut self) {
        if std::thread::panicking() {
            for n in &self.nodes {
                let text = n.log_text();
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(40)..];
                eprintln!(
                    "--- {} (last {} lines)\n{}",
                    n.name,
                    tail.len(),
                    tail.join("\n")
                );
            }
        }
    }
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
        .get_task(gitflock_proto::v1::GetTaskRequest { id: id.into() })
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
