//! The dashboard in headless Chromium (Debian `chromium` + `chromium-driver`), driven with
//! fantoccini against a real cluster. Screenshots of the main pages go to
//! `$GITFLOCK_SCREENSHOTS` (default `target/screenshots`; `docs/screenshots` for the docs).
//!
//! One test binary; the scenarios are in the submodules, the browser helpers here.
#![allow(dead_code)]

#[path = "../common/mod.rs"]
mod common;
mod nodes;
mod operator;
mod pages;

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A chromedriver on a free port, stopped on drop, with a fresh profile directory.
struct Driver {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole process group: a test that failed never closed its session, and Chromium
        // would outlive its driver.
        // SAFETY: kill(2) on the process group of a child we spawned as its leader.
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

fn chromedriver() -> Driver {
    let bin = ["chromedriver", "/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()))
        .expect("chromedriver not found: install Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)");
    let port = free_port();
    use std::os::unix::process::CommandExt;
    let child = Command::new(bin)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver {
        child,
        port,
        profile: tempfile::tempdir().unwrap(),
    }
}

async fn browser(d: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    let mut opts = json!({
        "args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--disable-quic", "--window-size=1280,900",
            "--force-device-scale-factor=1",
            format!("--user-data-dir={}", d.profile.path().display()),
        ]
    });
    if std::path::Path::new("/usr/bin/chromium").exists() {
        opts["binary"] = json!("/usr/bin/chromium");
    }
    caps.insert("goog:chromeOptions".into(), opts);
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", d.port))
        .await
        .expect("a Chromium session")
}

fn shots_dir() -> PathBuf {
    let dir = std::env::var_os("GITFLOCK_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/screenshots"
            ))
        });
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(b: &Client, name: &str) {
    // Let relative times and live data settle, and the page lay out.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let png = b.screenshot().await.unwrap();
    std::fs::write(shots_dir().join(format!("{name}.png")), png).unwrap();
}

fn step(t0: Instant, what: &str) {
    eprintln!("[{:>6.1}s] {what}", t0.elapsed().as_secs_f64());
}

async fn js(b: &Client, script: &str) -> Value {
    b.execute(script, vec![]).await.unwrap()
}

/// The trimmed text of the first element matching `css`, if any.
async fn text(b: &Client, css: &str) -> Option<String> {
    let v = b
        .execute(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent.trim() : null;",
            vec![json!(css)],
        )
        .await
        .unwrap();
    v.as_str().map(str::to_string)
}

async fn wait_text(b: &Client, what: &str, css: &str, want: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let got = text(b, css).await;
        if got.as_deref() == Some(want) {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}: {css} is {got:?}, want {want:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Marks the page; [`same_page`] tells whether it is still this page (no reload happened).
async fn mark(b: &Client) {
    js(b, "window.__noReload = 42; return null;").await;
}

async fn same_page(b: &Client) -> bool {
    js(b, "return window.__noReload === 42;").await == json!(true)
}

async fn path(b: &Client) -> String {
    b.current_url().await.unwrap().path().to_string()
}

async fn login(b: &Client, web: &Web, next: &str) {
    b.goto(&web.url(next)).await.unwrap();
    assert_eq!(
        path(b).await,
        "/login",
        "an anonymous browser is sent to the login form"
    );
    let f = b.find(Locator::Id("password")).await.unwrap();
    f.send_keys(PASSWORD).await.unwrap();
    b.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("header.top"))
        .await
        .unwrap();
    assert_eq!(path(b).await, next);
}

async fn submit_task_form(
    b: &Client,
    web: &Web,
    kind: &str,
    target: &str,
    name: &str,
    interval: &str,
) {
    b.goto(&web.url("/tasks/new")).await.unwrap();
    b.find(Locator::Id("type"))
        .await
        .unwrap()
        .select_by_value(kind)
        .await
        .unwrap();
    for (id, v) in [
        ("target", target),
        ("name", name),
        ("interval_secs", interval),
    ] {
        let e = b.find(Locator::Id(id)).await.unwrap();
        e.clear().await.unwrap();
        e.send_keys(v).await.unwrap();
    }
    b.find(Locator::Id("create"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The id of the task whose page is shown.
/// Writes `content` from the chain page's form and waits for the page to confirm it.
async fn write_entry(b: &Client, content: &str) {
    b.find(Locator::Id("content"))
        .await
        .unwrap()
        .send_keys(content)
        .await
        .unwrap();
    b.find(Locator::Id("write"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("chain-flash"))
        .await
        .unwrap();
}

async fn shown_task_id(b: &Client) -> String {
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("task-detail"))
        .await
        .unwrap()
        .attr("data-task-id")
        .await
        .unwrap()
        .unwrap()
}

fn git(dir: &std::path::Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "git {args:?}");
}
