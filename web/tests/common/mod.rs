//! The web tests' harness: a real redis-server, real `gitflock-node` processes, the real
//! `gitflock-web` binary, an HTTP client that logs in, and waiting with deadlines.
#![allow(dead_code)]

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const TOKEN: &str = "web-test-token-0123456789abcdef";
pub const PASSWORD: &str = "correct horse battery";

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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a child we spawned.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// `target/debug` (or whichever profile built this test).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    deps.parent().unwrap().to_path_buf()
}

/// The newest modification time of the files under `path`.
fn newest(path: &std::path::Path) -> std::time::SystemTime {
    let Ok(meta) = std::fs::metadata(path) else {
        return std::time::SystemTime::UNIX_EPOCH;
    };
    let own = meta.modified().unwrap_or(std::time::SystemTime::UNIX_EPOCH);
    if !meta.is_dir() {
        return own;
    }
    std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| newest(&e.path()))
        .fold(own, std::cmp::max)
}

/// The node binary, built first when it is older than its sources: `cargo nextest run -p
/// gitflock-web` builds only this crate's binaries, and a stale node would test yesterday's
/// cluster. A workspace run has just built it: building it again here would resolve other
/// features (only gitflock-rpc's), rebuild a good part of the tree (~100 s on a fresh
/// clone) and replace the binary under the rpc tests' feet.
pub fn node_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let bin = bin_dir().join("gitflock-node");
            let top = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let sources = ["rpc", "proto", "Cargo.lock", "Cargo.toml"]
                .iter()
                .map(|p| newest(&top.join(p)))
                .max()
                .unwrap();
            if std::fs::metadata(&bin)
                .and_then(|m| m.modified())
                .is_ok_and(|built| built >= sources)
            {
                return bin;
            }
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let release = bin_dir().ends_with("release");
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "-q", "-p", "gitflock-rpc", "--bin", "gitflock-node"])
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            if release {
                cmd.arg("--release");
            }
            let ok = cmd.status().is_ok_and(|s| s.success());
            if !ok && !bin.is_file() {
                panic!(
                    "cannot build gitflock-node and {} does not exist: run `cargo build -p gitflock-rpc` first",
                    bin.display()
                );
            }
            bin
        })
        .clone()
}

pub struct Redis {
    pub port: u16,
    _dir: tempfile::TempDir,
    child: Child,
}

impl Redis {
    pub fn start() -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (apt-get install redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis {
            port,
            _dir: dir,
            child,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Node {
    pub name: String,
    pub port: u16,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Node {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), libc::SIGKILL);
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            signal(c.id(), libc::SIGKILL);
            let _ = c.wait();
        }
    }
}

pub struct Web {
    pub port: u16,
    pub log: PathBuf,
    child: Child,
}

impl Web {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        signal(self.child.id(), libc::SIGKILL);
        let _ = self.child.wait();
    }
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    pub web: Web,
    pub dir: tempfile::TempDir,
    pub redis: Redis,
}

impl Cluster {
    /// Redis, `n` nodes (with a chain remote), and the dashboard over all of them.
    pub async fn start(n: usize) -> Cluster {
        let node_bin = node_binary();
        let dir = tempfile::tempdir().unwrap();
        let redis = Redis::start();
        let remote = dir.path().join("chain-remote.git");
        let have_git = Command::new("git")
            .args(["init", "--bare", "-q"])
            .arg(&remote)
            .status()
            .is_ok_and(|s| s.success());
        let mut nodes = Vec::new();
        for i in 1..=n {
            let name = format!("node{i}");
            let port = free_port();
            let log = dir.path().join(format!("{name}.log"));
            let f = std::fs::File::create(&log).unwrap();
            let mut cmd = Command::new(&node_bin);
            cmd.env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("RUST_LOG", "info")
                .env("GITFLOCK_NODE_NAME", &name)
                .env("GITFLOCK_NODE_DATA_DIR", dir.path().join(&name))
                .env("GITFLOCK_NODE_GRPC_LISTEN", format!("127.0.0.1:{port}"))
                .env("GITFLOCK_NODE_CONCURRENCY", "8")
                .env("GITFLOCK_REDIS_URL", redis.url())
                .env("GITFLOCK_CLUSTER_TOKEN", TOKEN)
                .env("GITFLOCK_CHAIN_BLOCK_INTERVAL_SECS", "0")
                .env("GITFLOCK_MIRROR_ALLOW_FILE_URLS", "true")
                .env(
                    "GITFLOCK_MIRROR_SERVE_LISTEN",
                    format!("127.0.0.1:{}", free_port()),
                );
            if have_git {
                cmd.env("GITFLOCK_CHAIN_REMOTE", &remote);
            }
            let child = cmd
                .stdin(Stdio::null())
                .stdout(f.try_clone().unwrap())
                .stderr(f)
                .spawn()
                .unwrap();
            nodes.push(Node {
                name,
                port,
                log,
                child: Some(child),
            });
        }
        let endpoints: Vec<String> = nodes.iter().map(|n| n.url()).collect();
        let web = start_web(dir.path(), &endpoints, &[]);
        let c = Cluster {
            nodes,
            web,
            dir,
            redis,
        };
        c.wait_ready(n).await;
        c
    }

    /// Until the dashboard sees a master and `n` alive nodes through the API.
    async fn wait_ready(&self, n: usize) {
        let http = Http::bearer(&self.web);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = serde_json::Value::Null;
        loop {
            if let Ok((200, v)) = http.get_json("/api/v1/status").await {
                let alive = v["nodes"]
                    .as_array()
                    .map(|a| a.iter().filter(|x| x["state"] == "alive").count())
                    .unwrap_or(0);
                // …and the dashboard follows task changes (live updates start from there).
                let watching = http
                    .get_text("/metrics")
                    .await
                    .1
                    .lines()
                    .any(|l| l == "gitflock_web_watch_up 1");
                if v["master"].as_str().is_some_and(|m| !m.is_empty()) && alive == n && watching {
                    return;
                }
                last = v;
            }
            if Instant::now() > deadline {
                let logs = self.logs();
                let tail: Vec<&str> = logs.lines().rev().take(60).collect();
                panic!(
                    "timed out after 60s waiting for a master and {n} alive nodes; last status {last}\nlogs (newest first):\n{}",
                    tail.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn logs(&self) -> String {
        let mut s = std::fs::read_to_string(&self.web.log).unwrap_or_default();
        for n in &self.nodes {
            s.push_str(&std::fs::read_to_string(&n.log).unwrap_or_default());
        }
        s
    }
}

/// Starts `gitflock-web` over `endpoints` and waits until `/healthz` answers.
pub fn start_web(dir: &Path, endpoints: &[String], env: &[(&str, &str)]) -> Web {
    let port = free_port();
    let log = dir.join(format!("web-{port}.log"));
    let f = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gitflock-web"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("GITFLOCK_CLUSTER_TOKEN", TOKEN)
        .env("GITFLOCK_WEB_NODES", endpoints.join(","))
        .env("GITFLOCK_WEB_PASSWORD", PASSWORD)
        .env("GITFLOCK_WEB_LISTEN", format!("127.0.0.1:{port}"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "gitflock-web did not listen: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Web { port, log, child }
}

/// The `name=value` pair of the response's cookie `name`, which must be HttpOnly and
/// SameSite=Strict.
fn strict_cookie(resp: &reqwest::Response, name: &str) -> String {
    let set = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("a {name} cookie"));
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    set.split(';').next().unwrap().to_string()
}

/// The quoted value that follows `marker` in a page (an attribute: the marker ends in `"`).
fn quoted_after(page: &str, marker: &str) -> String {
    page.split(marker)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("{marker} in the page"))
        .to_string()
}

/// A small HTTP client: anonymous, Bearer, or a logged-in browser-like session.
#[derive(Clone)]
pub struct Http {
    pub base: String,
    pub client: reqwest::Client,
    pub bearer: Option<String>,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
}

impl Http {
    pub fn anonymous(web: &Web) -> Http {
        Http {
            base: web.url(""),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            bearer: None,
            cookie: None,
            csrf: None,
        }
    }

    pub fn bearer(web: &Web) -> Http {
        Http {
            bearer: Some(TOKEN.into()),
            ..Self::anonymous(web)
        }
    }

    /// GETs the login form: the `gitflock_login` cookie pair and the form's token.
    pub async fn login_form(&self) -> (String, String) {
        let resp = self.client.get(self.url("/login")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "the login form");
        let cookie = strict_cookie(&resp, "gitflock_login");
        let page = resp.text().await.unwrap();
        (cookie, quoted_after(&page, "name=\"csrf\" value=\""))
    }

    /// Posts the login form as a browser would: first GET it, then post with its token.
    pub async fn post_login(&self, password: &str) -> reqwest::Response {
        let (cookie, token) = self.login_form().await;
        self.client
            .post(self.url("/login"))
            .header("cookie", cookie)
            .form(&[("password", password), ("next", "/"), ("csrf", &token)])
            .send()
            .await
            .unwrap()
    }

    /// Logs in with the password; keeps the cookie and the page's CSRF token.
    pub async fn login(web: &Web) -> Http {
        let mut h = Self::anonymous(web);
        let resp = h.post_login(PASSWORD).await;
        assert_eq!(resp.status(), 303, "login");
        h.cookie = Some(strict_cookie(&resp, "gitflock_session"));
        let page = h.get_text("/tasks/new").await.1;
        h.csrf = Some(quoted_after(&page, "name=\"csrf-token\" content=\""));
        h
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.client.request(method, self.url(path));
        if let Some(b) = &self.bearer {
            r = r.header("authorization", format!("Bearer {b}"));
        }
        if let Some(c) = &self.cookie {
            r = r.header("cookie", c.clone());
        }
        r
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let r = self.req(reqwest::Method::GET, path).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    pub async fn get_json(&self, path: &str) -> Result<(u16, serde_json::Value), reqwest::Error> {
        let r = self.req(reqwest::Method::GET, path).send().await?;
        let s = r.status().as_u16();
        Ok((s, r.json().await.unwrap_or(serde_json::Value::Null)))
    }

    /// A form post carrying the CSRF token (when logged in).
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut f: Vec<(&str, &str)> = fields.to_vec();
        if let Some(c) = &self.csrf {
            f.push(("csrf", c));
        }
        self.req(reqwest::Method::POST, path)
            .form(&f)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let mut r = self.req(reqwest::Method::POST, path).json(&body);
        if let Some(c) = &self.csrf {
            r = r.header("x-csrf-token", c.clone());
        }
        let r = r.send().await.unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Creates a task through the API; returns its id.
    pub async fn create(&self, kind: &str, target: &str, name: &str, interval: u64) -> String {
        let (s, v) = self
            .post_json(
                "/api/v1/tasks",
                serde_json::json!({"type": kind, "target": target, "name": name, "interval_secs": interval}),
            )
            .await;
        assert_eq!(s, 201, "create: {v}");
        v["id"].as_str().unwrap().to_string()
    }

    pub async fn task_state(&self, id: &str) -> Option<String> {
        let (s, v) = self.get_json(&format!("/api/v1/tasks/{id}")).await.ok()?;
        (s == 200).then(|| v["state"].as_str().unwrap_or_default().to_string())
    }
}
