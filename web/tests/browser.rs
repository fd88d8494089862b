//! The dashboard in headless Chromium (Debian `chromium` + `chromium-driver`), driven with
//! fantoccini against a real cluster. Screenshots of the main pages go to
//! `$GITFLOCK_SCREENSHOTS` (default `target/screenshots`; `docs/screenshots` for the docs).

mod common;

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

#[tokio::test]
async fn an_operator_drives_tasks_chain_and_mirrors_from_the_browser() {
    let d = chromedriver();
    let c = Cluster::start(2).await;
    let api = Http::bearer(&c.web);
    let b = browser(&d).await;
    let t0 = Instant::now();

    // Log in: a wrong password is refused with a message, the right one lands on the page.
    b.goto(&c.web.url("/tasks")).await.unwrap();
    assert_eq!(path(&b).await, "/login");
    shot(&b, "login").await;
    b.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys("wrong password")
        .await
        .unwrap();
    b.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(
        &b,
        "the login error",
        "#login-error",
        "Wrong password.",
        Duration::from_secs(10),
    )
    .await;
    login(&b, &c.web, "/tasks").await;

    step(t0, "A validation error");
    // A validation error, shown on its field; what was typed stays.
    submit_task_form(&b, &c.web, "echo", "keep me", "", "soon").await;
    wait_text(
        &b,
        "the interval error",
        "#error-interval",
        "a whole number of seconds (0: run once)",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        b.find(Locator::Id("target"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("keep me")
    );

    step(t0, "An echo task from the form");
    // An echo task from the form reaches SUCCEED on its page without a reload.
    submit_task_form(
        &b,
        &c.web,
        "echo",
        "hello from the browser",
        "browser echo",
        "",
    )
    .await;
    let echo = shown_task_id(&b).await;
    mark(&b).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while text(&b, "#task-state").await.as_deref() != Some("SUCCEED") {
        if Instant::now() > deadline {
            panic!(
                "the echo task's page shows {:?} after 30 s; the API says {:?}\n{}",
                text(&b, "#task-state").await,
                api.task_state(&echo).await,
                c.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_text(
        &b,
        "its output",
        "#results td.msg pre",
        "hello from the browser",
        Duration::from_secs(10),
    )
    .await;
    assert!(same_page(&b).await, "the page was reloaded");

    step(t0, "The task list follows");
    // The task list follows changes live: a task created elsewhere appears and finishes.
    b.goto(&c.web.url("/tasks")).await.unwrap();
    wait_text(
        &b,
        "the live indicator",
        "#live",
        "live",
        Duration::from_secs(10),
    )
    .await;
    mark(&b).await;
    let slow = api.create("sleep", "1500ms", "created elsewhere", 0).await;
    let row = format!("tr[data-task-id=\"{slow}\"] [data-field=state]");
    wait_text(
        &b,
        "the new row running",
        &row,
        "RUNNING",
        Duration::from_secs(20),
    )
    .await;
    wait_text(
        &b,
        "the new row succeeded",
        &row,
        "SUCCEED",
        Duration::from_secs(20),
    )
    .await;
    assert!(same_page(&b).await, "the list was reloaded");

    step(t0, "A recurring task");
    // A recurring task: it runs again and again (live), then is killed, then deleted.
    submit_task_form(&b, &c.web, "echo", "tick", "recurring tick", "1").await;
    let tick = shown_task_id(&b).await;
    mark(&b).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let runs: u64 = text(&b, "#task-runs")
            .await
            .unwrap_or_default()
            .parse()
            .unwrap_or(0);
        if runs >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the recurring task did not run twice"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(same_page(&b).await);
    b.find(Locator::Id("kill"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(
        &b,
        "the recurring task killed",
        "#task-state",
        "KILLED",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(api.task_state(&tick).await.as_deref(), Some("KILLED"));
    js(&b, "window.confirm = () => true; return null;").await;
    b.find(Locator::Id("delete"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(
        &b,
        "the deletion notice",
        ".alert.good",
        "Task deleted.",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(path(&b).await, "/tasks");
    assert!(
        text(&b, &format!("tr[data-task-id=\"{tick}\"]"))
            .await
            .is_none()
    );
    assert_eq!(
        api.get_json(&format!("/api/v1/tasks/{tick}"))
            .await
            .unwrap()
            .0,
        404
    );

    step(t0, "Select all + bulk");
    // Select all + bulk kill: per-id outcomes.
    let s1 = api.create("sleep", "60s", "bulk one", 0).await;
    let s2 = api.create("sleep", "60s", "bulk two", 0).await;
    b.goto(
        &c.web
            .url("/tasks?type=sleep&state=RUNNING&state=INQUEUE&state=WAITING"),
    )
    .await
    .unwrap();
    b.find(Locator::Id("select-all"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(
        &b,
        "the selection count",
        "#selected-count",
        "2 selected",
        Duration::from_secs(5),
    )
    .await;
    b.find(Locator::Id("bulk-kill"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("outcomes"))
        .await
        .unwrap();
    for id in [&s1, &s2] {
        let ok = text(&b, &format!("tr[data-outcome-id=\"{id}\"] .badge")).await;
        assert_eq!(ok.as_deref(), Some("done"), "bulk kill of {id}");
    }

    step(t0, "The chain page");
    // The chain page: write an entry from the form, make a block, see both.
    b.goto(&c.web.url("/chain")).await.unwrap();
    b.find(Locator::Id("level"))
        .await
        .unwrap()
        .select_by_value("warn")
        .await
        .unwrap();
    b.find(Locator::Id("content"))
        .await
        .unwrap()
        .send_keys("deployed v1.2 to <prod>")
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
    wait_text(
        &b,
        "the new entry",
        "#entries-table tbody tr td.msg pre",
        "deployed v1.2 to <prod>",
        Duration::from_secs(5),
    )
    .await;
    b.find(Locator::Id("make-block"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        b.goto(&c.web.url("/chain")).await.unwrap();
        if text(&b, "#blocks-table tbody tr td").await.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no block listed on the chain page:\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    shot(&b, "chain").await;

    step(t0, "The mirrors page");
    // The mirrors page: a mirror of a local repository, with its data.
    let (ms, _) = api.get_json("/api/v1/mirrors").await.unwrap();
    if ms == 501 {
        b.goto(&c.web.url("/mirrors")).await.unwrap();
        assert!(
            text(&b, "#mirrors-unavailable")
                .await
                .unwrap()
                .contains("mirrors not available")
        );
    } else {
        let upstream = c.dir.path().join("upstream");
        std::fs::create_dir_all(&upstream).unwrap();
        git(&upstream, &["init", "-q", "-b", "main"]);
        std::fs::write(upstream.join("README"), "hello\n").unwrap();
        git(&upstream, &["add", "README"]);
        git(&upstream, &["commit", "-q", "-m", "first"]);
        let url = format!("file://{}", upstream.display());
        api.create("mirror", &url, "upstream", 0).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            b.goto(&c.web.url("/mirrors")).await.unwrap();
            let head = text(&b, "#mirrors-table tbody tr td:nth-child(4)")
                .await
                .unwrap_or_default();
            if head.contains("main") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the mirror's head never showed: {head:?}\n{}",
                c.logs()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        shot(&b, "mirrors").await;
    }

    step(t0, "The remaining screenshots");
    // The remaining screenshots, with the data made above.
    b.goto(&c.web.url(&format!("/tasks/{echo}"))).await.unwrap();
    shot(&b, "task").await;
    b.goto(&c.web.url("/tasks")).await.unwrap();
    shot(&b, "tasks").await;
    b.goto(&c.web.url("/")).await.unwrap();
    wait_text(
        &b,
        "the live indicator",
        "#live",
        "live",
        Duration::from_secs(10),
    )
    .await;
    shot(&b, "overview").await;
    b.close().await.unwrap();
}

#[tokio::test]
async fn the_nodes_page_shows_a_node_going_dead_without_a_reload() {
    let d = chromedriver();
    let mut c = Cluster::start(3).await;
    let b = browser(&d).await;
    login(&b, &c.web, "/nodes").await;
    for n in ["node1", "node2", "node3"] {
        let css = format!("tr[data-node=\"{n}\"] [data-field=state]");
        assert_eq!(text(&b, &css).await.as_deref(), Some("alive"), "{n}");
    }
    wait_text(
        &b,
        "the live indicator",
        "#live",
        "live",
        Duration::from_secs(10),
    )
    .await;
    mark(&b).await;
    c.cluster.nodes[2].kill9();
    wait_text(
        &b,
        "node3 shown dead",
        "tr[data-node=\"node3\"] [data-field=state]",
        "dead",
        Duration::from_secs(30),
    )
    .await;
    assert!(same_page(&b).await, "the nodes page was reloaded");
    shot(&b, "nodes").await;
    b.close().await.unwrap();
}
