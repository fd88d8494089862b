//! Mirrors against real upstream repositories served by `git daemon` on loopback: changes
//! followed, errors and recovery, placement as nodes die and join, the upstream list, the
//! webhook, hostile URLs, kills, and `git clone` from the cluster.

mod common;

use common::*;
use gitflock_proto::v1::{
    CreateTaskRequest, ListMirrorsRequest, Mirror, SyncMirrorsRequest, TaskIds, TaskState,
    WebhookRequest,
};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.org")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.org")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Refs of a remote as `git ls-remote` sees them (HEAD and peeled tags left out).
fn ls_remote(url: &str) -> BTreeMap<String, String> {
    let out = Command::new("git")
        .args(["ls-remote", url])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ls-remote {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, r)| *r != "HEAD" && !r.ends_with("^{}"))
        .map(|(o, r)| (r.to_string(), o.to_string()))
        .collect()
}

/// Bare upstream repositories under one directory, served by `git daemon` on a free port.
struct Upstream {
    dir: tempfile::TempDir,
    port: u16,
    daemon: Option<Child>,
}

impl Upstream {
    fn start() -> Upstream {
        let mut u = Upstream {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            daemon: None,
        };
        std::fs::create_dir_all(u.dir.path().join("up")).unwrap();
        u.serve();
        u
    }

    fn serve(&mut self) {
        let base = self.dir.path().join("up");
        // `git-daemon` itself (not the `git` wrapper, whose child would outlive a kill).
        let exec_path = git(self.dir.path(), &["--exec-path"]);
        let child = Command::new(Path::new(&exec_path).join("git-daemon"))
            .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
            .arg(format!("--port={}", self.port))
            .arg(format!("--base-path={}", base.display()))
            .arg(&base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.daemon = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "git daemon did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops serving (the port refuses connections).
    fn stop(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}.git", self.port)
    }

    fn bare(&self, name: &str) -> PathBuf {
        self.dir.path().join("up").join(format!("{name}.git"))
    }

    fn work(&self, name: &str) -> PathBuf {
        self.dir.path().join("work").join(name)
    }

    /// A new upstream `name` with a first commit on main; returns its work tree.
    fn create(&self, name: &str) -> PathBuf {
        let bare = self.bare(name);
        std::fs::create_dir_all(bare.parent().unwrap()).unwrap();
        git(
            self.dir.path(),
            &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
        );
        let work = self.work(name);
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q", "-b", "main"]);
        git(&work, &["commit", "-q", "--allow-empty", "-m", "first"]);
        git(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
        work
    }

    /// A new commit on `branch` of `name`, pushed; returns its id.
    fn commit(&self, name: &str, branch: &str, msg: &str) -> String {
        let work = self.work(name);
        git(&work, &["checkout", "-q", "-B", branch]);
        git(&work, &["commit", "-q", "--allow-empty", "-m", msg]);
        git(
            &work,
            &[
                "push",
                "-q",
                "-f",
                self.bare(name).to_str().unwrap(),
                branch,
            ],
        );
        git(&work, &["rev-parse", "HEAD"])
    }

    fn push(&self, name: &str, refspecs: &[&str]) {
        let bare = self.bare(name);
        let mut args = vec!["push", "-q", "-f", bare.to_str().unwrap()];
        args.extend_from_slice(refspecs);
        git(&self.work(name), &args);
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn add_mirror(c: &mut gitflock_client::Client, url: &str, interval: u64) -> String {
    c.tasks
        .create_task(CreateTaskRequest {
            r#type: "mirror".into(),
            target: url.into(),
            interval_secs: interval,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .id
}

async fn mirrors(c: &gitflock_client::Client) -> Vec<Mirror> {
    let mut c = c.clone();
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .mirrors
            .list_mirrors(ListMirrorsRequest {
                text: String::new(),
                page_size: 1000,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        out.extend(page.mirrors);
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

async fn mirror(c: &gitflock_client::Client, task_id: &str) -> Mirror {
    mirrors(c)
        .await
        .into_iter()
        .find(|m| m.task_id == task_id)
        .expect("the mirror is listed")
}

/// Waits until the mirror's status satisfies `f`.
async fn wait_mirror(
    c: &gitflock_client::Client,
    id: &str,
    what: &str,
    timeout: Duration,
    f: impl Fn(&Mirror) -> bool,
) -> Mirror {
    wait_for(what, timeout, || async {
        let m = mirror(c, id).await;
        f(&m).then_some(m)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mirror_follows_the_upstream_and_serves_clones() {
    let up = Upstream::start();
    up.create("team/app");
    let first = up.commit("team/app", "main", "second");
    up.commit("team/app", "feature", "f1");
    up.push("team/app", &["main:refs/tags/v1"]);
    let url = up.url("team/app");

    let cluster = Cluster::start(1).await;
    let mut c = cluster.client().await;
    let id = add_mirror(&mut c, &url, 1).await;
    // The same repository by another URL form finds the same task.
    let again = add_mirror(&mut c, &format!("git://127.0.0.1:{}/team/app", up.port), 0).await;
    assert_eq!(again, id);

    let m = wait_mirror(&c, &id, "the first clone", Duration::from_secs(30), |m| {
        m.head == format!("main {first}")
    })
    .await;
    assert_eq!(m.node, "node1");
    assert_eq!(m.url, url);
    assert_eq!(m.path, format!("127.0.0.1:{}/team/app.git", up.port));
    assert!(
        m.last_error.is_empty() && m.last_fetch > 0 && m.last_change > 0,
        "{m:?}"
    );
    assert!(
        cluster.nodes[0]
            .data_dir()
            .join("mirrors")
            .join(&m.path)
            .join("HEAD")
            .is_file()
    );
    assert_eq!(ls_remote(&m.clone_url), ls_remote(&url));

    // Unchanged runs are cheap checks that change nothing.
    let t = wait_for("an unchanged run", Duration::from_secs(20), || async {
        let t = get(&mut c.clone(), &id).await;
        t.results
            .iter()
            .any(|r| r.message.starts_with("unchanged"))
            .then_some(t)
    })
    .await;
    assert_eq!(t.r#type, "mirror");
    assert_eq!(t.name, format!("127.0.0.1:{}/team/app", up.port));

    // New commits, a new and a deleted branch, a new and a deleted tag, a force-push.
    let work = up.work("team/app");
    up.commit("team/app", "main", "third");
    up.commit("team/app", "topic", "t1");
    up.push(
        "team/app",
        &[":feature", ":refs/tags/v1", "main:refs/tags/v2"],
    );
    git(&work, &["checkout", "-q", "main"]);
    git(&work, &["reset", "-q", "--hard", &first]);
    let forced = up.commit("team/app", "main", "rewritten");
    let want = ls_remote(&url);
    assert!(want.contains_key("refs/heads/topic") && !want.contains_key("refs/heads/feature"));
    assert_eq!(want["refs/heads/main"], forced);
    let m = wait_mirror(&c, &id, "the changes", Duration::from_secs(30), |m| {
        m.head == format!("main {forced}")
    })
    .await;
    wait_for(
        "the served mirror to match",
        Duration::from_secs(10),
        || async { (ls_remote(&m.clone_url) == want).then_some(()) },
    )
    .await;
    assert_eq!(m.refs as usize, want.len());

    // A CI machine clones from the cluster.
    let dest = tempfile::tempdir().unwrap();
    let out = Command::new("git")
        .args(["clone", "-q", &m.clone_url])
        .arg(dest.path().join("app"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        git(&dest.path().join("app"), &["rev-parse", "HEAD"]),
        forced
    );
    // The CLI shows the same, in the contract's JSON shape.
    let out = Command::new(gitflock_harness::binary("gitflock"))
        .args([
            "--server",
            &cluster.nodes[0].url(),
            "--token",
            TOKEN,
            "--json",
            "mirror",
            "list",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = &v[0];
    for k in [
        "url",
        "node",
        "path",
        "clone_url",
        "head",
        "last_fetch",
        "last_change",
        "last_error",
    ] {
        assert!(row.get(k).is_some(), "{k} missing in {row}");
    }
    assert_eq!(row["clone_url"], m.clone_url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_upstream_backs_off_and_recovers() {
    let mut up = Upstream::start();
    up.create("lib");
    let url = up.url("lib");
    up.stop();
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client().await;
    let id = add_mirror(&mut c, &url, 1).await;
    let m = wait_mirror(&c, &id, "failures", Duration::from_secs(30), |m| {
        m.failures >= 2
    })
    .await;
    assert!(!m.last_error.is_empty() && m.head.is_empty(), "{m:?}");
    // Retries back off: the second attempt starts at least ~1 s after the first ended.
    let t = get(&mut c, &id).await;
    let errs: Vec<_> = t.results.iter().filter(|r| r.code == 1).collect();
    assert!(errs.len() >= 2, "{:?}", t.results);
    let retry = errs
        .windows(2)
        .find(|w| w[0].attempt == w[1].attempt + 1)
        .expect("a retry within one cycle");
    assert!(
        retry[0].started_at - retry[1].finished_at >= 700,
        "no back-off: {:?}",
        t.results
    );
    up.serve();
    let m = wait_mirror(&c, &id, "recovery", Duration::from_secs(30), |m| {
        m.last_error.is_empty() && !m.head.is_empty()
    })
    .await;
    assert_eq!(m.failures, 0);
    assert_eq!(ls_remote(&m.clone_url), ls_remote(&url));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_urls_are_refused_and_credentials_never_shown() {
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client().await;
    for bad in [
        "ext::sh -c touch% /tmp/pwned",
        "--upload-pack=touch /tmp/pwned",
        "-oProxyCommand=x@h:a",
        "file:///etc",
        "/etc/passwd",
        "ftp://example.org/a.git",
        "https://example.org/",
        "https://example.org/a\n.git",
        "git@example.org:../../etc",
    ] {
        let e = c
            .tasks
            .create_task(CreateTaskRequest {
                r#type: "mirror".into(),
                target: bad.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad}: {e:?}");
        assert!(e.message().starts_with("target"), "{bad}: {}", e.message());
    }
    assert_eq!(cluster.counts().values().sum::<u64>(), 0);

    // A URL with credentials: accepted, run, and the secret is never shown.
    let port = free_port();
    let secret_url = format!("http://alice:s3cretT0ken@127.0.0.1:{port}/x.git");
    let id = add_mirror(&mut c, &secret_url, 1).await;
    let m = wait_mirror(&c, &id, "the failed fetch", Duration::from_secs(30), |m| {
        !m.last_error.is_empty()
    })
    .await;
    let t = get(&mut c, &id).await;
    let shown = format!("{m:?} {t:?}");
    assert!(
        !shown.contains("s3cretT0ken") && !shown.contains("alice:"),
        "{shown}"
    );
    assert!(t.target.contains("***@127.0.0.1"), "{}", t.target);
    let out = Command::new(gitflock_harness::binary("gitflock"))
        .args([
            "--server",
            &cluster.nodes[0].url(),
            "--token",
            TOKEN,
            "mirror",
            "list",
        ])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("s3cret"));
    assert!(!cluster.logs().contains("s3cretT0ken"));
}

/// Mirrors by node name, from their statuses.
fn owners(ms: &[Mirror]) -> HashMap<String, String> {
    ms.iter()
        .map(|m| (m.task_id.clone(), m.node.clone()))
        .collect()
}

/// Waits until every mirror has been checked after `since` (ms) with success.
async fn wait_all_fetched_after(
    c: &gitflock_client::Client,
    n: usize,
    since: i64,
    what: &str,
) -> Vec<Mirror> {
    wait_for(what, Duration::from_secs(60), || async {
        let ms = mirrors(c).await;
        (ms.len() == n
            && ms
                .iter()
                .all(|m| m.last_fetch > since && m.last_error.is_empty()))
        .then_some(ms)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn placement_moves_a_dead_nodes_mirrors_takes_a_share_for_a_new_node_and_damps_flaps() {
    const N: usize = 24;
    let up = Upstream::start();
    let env = [("GITFLOCK_MIRROR_SETTLE_SECS", "600")];
    let mut cluster = Cluster::start_with(3, &env).await;
    let mut c = cluster.client().await;
    for i in 0..N {
        up.create(&format!("r{i}"));
        add_mirror(&mut c, &up.url(&format!("r{i}")), 1).await;
    }
    let ms = wait_all_fetched_after(&c, N, 0, "every mirror cloned").await;
    let before = owners(&ms);
    let mut per: HashMap<&str, usize> = HashMap::new();
    for n in before.values() {
        *per.entry(n).or_default() += 1;
    }
    assert_eq!(per.len(), 3, "spread over every node: {per:?}");
    assert!(per.values().all(|&k| k >= 2), "{per:?}");

    // Kill -9 a slave that holds mirrors: its mirrors move, the others stay.
    let master = cluster.wait_master().await;
    let victim = ["node1", "node2", "node3"]
        .into_iter()
        .find(|n| *n != master)
        .unwrap()
        .to_string();
    if cluster.nodes[0].name() == victim {
        c = cluster
            .nodes
            .iter()
            .find(|n| n.name() != victim)
            .unwrap()
            .client()
            .await
            .unwrap();
    }
    let killed_at = now_ms();
    cluster.node(&victim).kill9();
    let ms = wait_all_fetched_after(&c, N, killed_at, "every mirror checked after the kill").await;
    let after_kill = owners(&ms);
    for (id, was) in &before {
        let now = &after_kill[id];
        assert_ne!(now, &victim, "mirror {id} still on the dead node");
        if was != &victim {
            assert_eq!(now, was, "mirror {id} moved off a live node");
        }
    }
    // The new owner cloned and serves it.
    let moved = ms.iter().find(|m| before[&m.task_id] == victim).unwrap();
    assert!(!ls_remote(&moved.clone_url).is_empty());

    // A new node takes about a third (3 live nodes on the ring), from the others only.
    cluster.add_node(&env).await.unwrap();
    let joined_at = now_ms();
    let first = wait_all_fetched_after(
        &c,
        N,
        joined_at + 1500,
        "every mirror checked after the join",
    )
    .await;
    let _ = first;
    let seen_at = now_ms();
    let ms = wait_all_fetched_after(&c, N, seen_at, "another round").await;
    let after_join = owners(&ms);
    let to_new = after_join.values().filter(|n| *n == "node4").count();
    assert!(
        (2..=14).contains(&to_new),
        "node4 took {to_new} of {N}: {after_join:?}"
    );
    for (id, now) in &after_join {
        assert!(
            now == &after_kill[id] || now == "node4",
            "mirror {id} moved between old nodes"
        );
    }

    // The dead node comes back: within the settle time it gets nothing back (no flapping).
    cluster.node(&victim).restart().await.unwrap();
    let back_at = now_ms();
    wait_all_fetched_after(&c, N, back_at + 1500, "mirrors checked after the return").await;
    let r = now_ms();
    let ms = wait_all_fetched_after(&c, N, r, "another round after the return").await;
    assert!(
        ms.iter().all(|m| m.node != victim),
        "a returning node took mirrors back before settling"
    );
    assert_eq!(owners(&ms), after_join);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_upstream_list_adds_removes_and_refuses_mass_removal() {
    let up = Upstream::start();
    let list = up.create("upstream-repos");
    let write_entry = |i: usize| {
        let d = list.join(format!("r/r{i}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join(format!("r{i}")),
            format!(
                "---\nurl:\n- {}\n- https://mirror.example/r{i}\n",
                up.url(&format!("r{i}"))
            ),
        )
        .unwrap();
    };
    for i in 0..10 {
        up.create(&format!("r{i}"));
        write_entry(i);
    }
    std::fs::write(
        list.join("DEFAULTS"),
        "url: git://127.0.0.1:1/defaults.git\n",
    )
    .unwrap();
    std::fs::write(list.join(".ignore"), "url: git://127.0.0.1:1/ignored.git\n").unwrap();
    std::fs::write(list.join("README"), "not an entry\n").unwrap();
    git(&list, &["add", "-A"]);
    git(&list, &["commit", "-q", "-m", "ten repos"]);
    up.push("upstream-repos", &["main"]);

    let list_url = up.url("upstream-repos");
    let cluster = Cluster::start_with(
        1,
        &[
            ("GITFLOCK_MIRROR_LIST_URL", &list_url),
            ("GITFLOCK_MIRROR_LIST_REFRESH_SECS", "1"),
        ],
    )
    .await;
    let mut c = cluster.client().await;
    // A mirror added by hand is not the list's to remove.
    up.create("manual");
    let manual = add_mirror(&mut c, &up.url("manual"), 60).await;

    let names = |ms: &[Mirror]| {
        let mut v: Vec<String> = ms.iter().map(|m| m.url.clone()).collect();
        v.sort();
        v
    };
    wait_for("ten listed mirrors", Duration::from_secs(30), || async {
        (mirrors(&c).await.len() == 11).then_some(())
    })
    .await;
    let ms = mirrors(&c).await;
    assert!(
        !names(&ms)
            .iter()
            .any(|u| u.contains("defaults") || u.contains("ignored"))
    );
    let t = get(
        &mut c,
        &ms.iter().find(|m| m.url == up.url("r3")).unwrap().task_id,
    )
    .await;
    assert_eq!(t.name, "list:r/r3/r3");

    let head_of_list = |c: &gitflock_client::Client| {
        let mut c = c.clone();
        async move {
            c.mirrors
                .list_mirrors(ListMirrorsRequest::default())
                .await
                .unwrap()
                .into_inner()
                .list
                .unwrap()
        }
    };
    // One entry removed: its mirror goes.
    git(&list, &["rm", "-q", "-r", "r/r0"]);
    git(&list, &["commit", "-q", "-m", "drop r0"]);
    up.push("upstream-repos", &["main"]);
    wait_for("r0 removed", Duration::from_secs(30), || async {
        (mirrors(&c).await.len() == 10).then_some(())
    })
    .await;
    assert!(!names(&mirrors(&c).await).contains(&up.url("r0")));

    // Seven of nine at once: refused, nothing removed, the refusal shown.
    for i in 1..8 {
        git(&list, &["rm", "-q", "-r", &format!("r/r{i}")]);
    }
    git(&list, &["commit", "-q", "-m", "a broken list"]);
    let broken = git(&list, &["rev-parse", "HEAD"]);
    up.push("upstream-repos", &["main"]);
    let l = wait_for("the broken list read", Duration::from_secs(30), || async {
        let l = head_of_list(&c).await;
        (l.commit == broken).then_some(l)
    })
    .await;
    assert!(l.last_error.contains("refusing to remove 7 of 9"), "{l:?}");
    assert_eq!(mirrors(&c).await.len(), 10);
    assert!(get(&mut c, &manual).await.id == manual);
}

fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_webhook_syncs_at_once_and_packs_stay_bounded() {
    let up = Upstream::start();
    up.create("svc");
    let url = up.url("svc");
    let secret = "hook-secret-123";
    let cluster = Cluster::start_with(1, &[("GITFLOCK_MIRROR_WEBHOOK_SECRET", secret)]).await;
    let mut c = cluster.client().await;
    let id = add_mirror(&mut c, &url, 3600).await;
    let m = wait_mirror(&c, &id, "the first clone", Duration::from_secs(30), |m| {
        !m.head.is_empty()
    })
    .await;

    // A forged hook is refused.
    let body =
        serde_json::json!({"ref": "refs/heads/main", "repository": {"clone_url": url}}).to_string();
    let e = c
        .mirrors
        .webhook(WebhookRequest {
            headers: HashMap::from([(
                "x-hub-signature-256".into(),
                sign("wrong", body.as_bytes()),
            )]),
            body: body.clone().into_bytes(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);

    // A genuine one: the owner syncs at once (the interval is an hour).
    let mut lags = Vec::new();
    for i in 0..3 {
        let sha = up.commit("svc", "main", &format!("hooked {i}"));
        let t0 = Instant::now();
        let r = c
            .mirrors
            .webhook(WebhookRequest {
                headers: HashMap::from([
                    ("X-Hub-Signature-256".into(), sign(secret, body.as_bytes())),
                    ("x-github-event".into(), "push".into()),
                ]),
                body: body.clone().into_bytes(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.synced, vec![id.clone()]);
        wait_mirror(&c, &id, "the hooked sync", Duration::from_secs(10), |m| {
            m.head == format!("main {sha}")
        })
        .await;
        lags.push(t0.elapsed());
    }
    eprintln!("webhook → mirror lag: {lags:?}");
    assert!(lags.iter().all(|l| *l < Duration::from_secs(5)), "{lags:?}");

    // Many fetches: packs are folded, never more than the limit + 1.
    for i in 0..20 {
        let sha = up.commit("svc", "main", &format!("pack {i}"));
        c.mirrors
            .sync_mirrors(SyncMirrorsRequest {
                urls: vec![url.clone()],
            })
            .await
            .unwrap();
        wait_mirror(&c, &id, "the sync", Duration::from_secs(10), |m| {
            m.head == format!("main {sha}")
        })
        .await;
    }
    let dir = cluster.nodes[0].data_dir().join("mirrors").join(&m.path);
    let packs = gitflock_node::mirror::fetch::pack_count(&dir);
    assert!(
        packs <= gitflock_node::mirror::fetch::REPACK_PACKS + 1,
        "{packs} packs"
    );
    assert_eq!(ls_remote(&m.clone_url), ls_remote(&url));
    // Unknown repositories are named back, masked.
    let r = c
        .mirrors
        .sync_mirrors(SyncMirrorsRequest {
            urls: vec!["https://u:pw@example.org/none.git".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.unknown,
        vec!["https://***@example.org/none.git".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kill_stops_a_hung_fetch() {
    // An upstream that accepts connections and never answers.
    let tarpit = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tarpit.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in tarpit.incoming().flatten() {
            held.push(s);
        }
    });
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client().await;
    let id = add_mirror(&mut c, &format!("git://127.0.0.1:{port}/hung.git"), 3600).await;
    wait_state(&c, &id, TaskState::Running, Duration::from_secs(20)).await;
    let t0 = Instant::now();
    c.tasks
        .kill_tasks(TaskIds {
            ids: vec![id.clone()],
        })
        .await
        .unwrap();
    wait_state(&c, &id, TaskState::Killed, Duration::from_secs(5)).await;
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[test]
fn the_unchanged_check_reads_git_urls_as_libgit2_does() {
    use gitflock_node::mirror::{advert, fetch};
    use tokio_util::sync::CancellationToken;
    let up = Upstream::start();
    let cancel = CancellationToken::new();
    // Branches, annotated and lightweight tags, a nested branch name.
    up.create("shapes");
    up.commit("shapes", "dev", "on dev");
    up.commit("shapes", "feature/x", "on x");
    git(
        &up.work("shapes"),
        &["tag", "-a", "-m", "annotated", "v1.0"],
    );
    git(&up.work("shapes"), &["tag", "light"]);
    up.push("shapes", &["--tags"]);
    // An empty repository, and one whose HEAD names a branch it does not have.
    git(
        up.dir.path(),
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            up.bare("empty").to_str().unwrap(),
        ],
    );
    up.create("headless");
    up.commit("headless", "other", "on other");
    git(
        &up.bare("headless"),
        &["update-ref", "-d", "refs/heads/main"],
    );
    let host = format!("127.0.0.1:{}", up.port);
    let data = tempfile::tempdir().unwrap();
    for name in ["shapes", "empty", "headless"] {
        let url = up.url(name);
        let ours = advert::read_git(&url, &cancel)
            .expect("a git:// URL is read natively")
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let theirs = advert::read_libgit2(&url, &cancel).unwrap();
        assert_eq!(ours, theirs, "{name}");
        assert_eq!(ours.refs as usize, ls_remote(&url).len(), "{name}");
        // What a full run leaves is what the next check compares with.
        let dir = data.path().join(name);
        let first = fetch::sync(&dir, &url, &host, 4, &cancel).unwrap();
        assert!(first.cloned, "{name}: {first:?}");
        let kept = std::fs::read_to_string(dir.join("gitflock-upstream")).unwrap();
        assert_eq!(kept.trim(), ours.state, "{name}");
        let again = fetch::sync(&dir, &url, &host, 4, &cancel).unwrap();
        assert!(!again.changed(), "{name}: {again:?}");
        assert_eq!(again.head, first.head, "{name}");
    }
    let shapes = advert::read_git(&up.url("shapes"), &cancel)
        .unwrap()
        .unwrap();
    assert!(shapes.head.starts_with("main "), "{shapes:?}");
    assert_eq!(shapes.refs, 5, "{shapes:?}");
    let headless = advert::read_git(&up.url("headless"), &cancel)
        .unwrap()
        .unwrap();
    assert_eq!(headless.head, "", "{headless:?}");

    // A change is seen, and so is a change back.
    let before = shapes.state.clone();
    up.commit("shapes", "dev", "more");
    let moved = advert::read_git(&up.url("shapes"), &cancel)
        .unwrap()
        .unwrap();
    assert_ne!(moved.state, before);

    // Only plain git:// URLs are read natively.
    assert!(advert::read_git("https://example.org/a.git", &cancel).is_none());
    assert!(advert::read_git("git://example.org/~user/a.git", &cancel).is_none());
    assert!(advert::read_git("git://example.org/a%20b.git", &cancel).is_none());

    // Errors: no such repository, nothing listening, a tarpit cancelled.
    let missing = advert::read_git(&up.url("missing"), &cancel)
        .unwrap()
        .unwrap_err();
    assert!(missing.starts_with("remote error: "), "{missing}");
    let closed = format!("git://127.0.0.1:{}/a.git", free_port());
    let refused = advert::read_git(&closed, &cancel).unwrap().unwrap_err();
    assert!(refused.contains("failed to connect"), "{refused}");
    let tarpit = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("git://{}/hung.git", tarpit.local_addr().unwrap());
    let stop = CancellationToken::new();
    let s = stop.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        s.cancel();
    });
    let t0 = Instant::now();
    let cancelled = advert::read_git(&url, &stop).unwrap().unwrap_err();
    assert_eq!(cancelled, "cancelled");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    drop(tarpit);
}
