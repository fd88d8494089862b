//! The web tests' harness: `gitflock-harness`'s redis-server, `gitflock-node` processes and
//! the real `gitflock-web` binary in a temporary directory, an HTTP client that logs in, and
//! waiting with deadlines. Everything here panics: it is test-only.
#![allow(dead_code)]

use gitflock_harness::WebConfig;
use std::path::Path;
use std::time::{Duration, Instant};

#[allow(unused_imports)] // not every test file waits
pub use gitflock_harness::{WebProcess as Web, wait_for};

pub const TOKEN: &str = "web-test-token-0123456789abcdef";
pub const PASSWORD: &str = "correct horse battery";

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    gitflock_harness::free_port().expect("a free port")
}

/// Redis, nodes and the dashboard over them, in a temporary directory that outlives them.
pub struct Cluster {
    pub web: Web,
    pub cluster: gitflock_harness::Cluster,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// Redis, `n` nodes (with a chain remote), and the dashboard over all of them.
    pub async fn start(n: usize) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let node = gitflock_harness::binary("gitflock-node");
        let cluster = gitflock_harness::Cluster::builder(&node, dir.path(), TOKEN)
            .nodes(n)
            .chain_remote(&dir.path().join("chain-remote.git"))
            .env("RUST_LOG", "info")
            .env("GITFLOCK_NODE_CONCURRENCY", 8)
            .env("GITFLOCK_CHAIN_BLOCK_INTERVAL_SECS", 0)
            .env("GITFLOCK_MIRROR_ALLOW_FILE_URLS", true)
            .ready_timeout(Duration::from_secs(60))
            .start()
            .await
            .unwrap_or_else(|e| panic!("the cluster did not start: {e}"));
        let web = start_web(dir.path(), &cluster.urls(), &[]).await;
        let c = Cluster { web, cluster, dir };
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

    /// The dashboard's log, then every node's.
    pub fn logs(&self) -> String {
        self.web.log_text() + &self.cluster.logs()
    }
}

/// Starts `gitflock-web` over `endpoints` (with `env` after the tests' settings) and waits
/// until it listens.
pub async fn start_web(dir: &Path, endpoints: &[String], env: &[(&str, &str)]) -> Web {
    let port = free_port();
    let mut vars = vec![("RUST_LOG".to_string(), "info".to_string())];
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = WebConfig {
        program: env!("CARGO_BIN_EXE_gitflock-web").into(),
        nodes: endpoints.to_vec(),
        token: TOKEN.into(),
        password: PASSWORD.into(),
        listen: ([127, 0, 0, 1], port).into(),
        log: dir.join(format!("web-{port}.log")),
        env: vars,
        inherit_env: false,
    };
    let log = config.log.clone();
    match Web::start(config, Duration::from_secs(20)).await {
        Ok(web) => web,
        Err(e) => panic!("{e}: {}", std::fs::read_to_string(&log).unwrap_or_default()),
    }
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
