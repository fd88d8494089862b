//! Following an upstream: changes, clones from the cluster, errors and recovery, and the
//! cheap unchanged check.

use super::*;

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
