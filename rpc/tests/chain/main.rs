//! The log chain with real git repositories, real node processes and real signals.
//!
//! One test binary: the scenarios of writing, reading and blocks are here, hostile input in
//! `hostile`.

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/fake_http.rs"]
mod fake_http;
mod hostile;

use common::*;
use gitflock_proto::v1::{
    GetTaskRequest, ListBlocksRequest, LogEntry, MakeBlockRequest, ReadLogsRequest, TaskState,
    VerifyRequest,
};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tonic::Code;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn bare_remote(dir: &Path, deny_non_ff: bool) -> PathBuf {
    let path = dir.join("remote.git");
    let out = Command::new("git")
        .args(["init", "--bare", "-q"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    if deny_non_ff {
        git(&path, &["config", "receive.denyNonFastForwards", "true"]);
    }
    path
}

fn entry(content: &str) -> LogEntry {
    LogEntry {
        level: "info".into(),
        content: content.into(),
        create_at: String::new(),
    }
}

async fn read_all(c: &mut gitflock_client::Client) -> Vec<gitflock_proto::v1::StoredEntry> {
    let mut s = c
        .chain
        .read_logs(ReadLogsRequest {
            since: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut out = Vec::new();
    while let Some(e) = s.message().await.unwrap() {
        out.push(e);
    }
    out
}

async fn verify(c: &mut gitflock_client::Client) -> gitflock_proto::v1::VerifyResponse {
    c.chain
        .verify_chain(VerifyRequest {})
        .await
        .unwrap()
        .into_inner()
}

async fn make_block(cluster: &Cluster, node: &str) -> gitflock_proto::v1::Task {
    let mut c = cluster.client().await;
    let t = c
        .chain
        .make_block(MakeBlockRequest { node: node.into() })
        .await
        .unwrap()
        .into_inner();
    wait_for("the block task to end", Duration::from_secs(60), || {
        let mut c = c.clone();
        let id = t.id.clone();
        async move {
            let t = c
                .tasks
                .get_task(GetTaskRequest { id })
                .await
                .ok()?
                .into_inner();
            gitflock_core::task::is_final(t.state()).then_some(t)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_get_every_entry_in_once() {
    let cluster = Cluster::start(1).await;
    let mut handles = Vec::new();
    for w in 0..8 {
        let mut c = cluster.client().await;
        handles.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..150 {
                let content = format!("writer {w} entry {i}");
                if i % 3 == 0 {
                    // Some through the stream, as a batch of three.
                    let batch: Vec<LogEntry> = (0..3)
                        .map(|k| entry(&format!("{content} part {k}")))
                        .collect();
                    let r = c
                        .chain
                        .write_logs(tokio_stream::iter(batch.clone()))
                        .await
                        .unwrap()
                        .into_inner();
                    assert_eq!(r.count, 3);
                    assert_eq!(r.last_height - r.first_height, 2);
                    acked.extend(batch.into_iter().map(|e| e.content));
                } else {
                    c.chain.write_log(entry(&content)).await.unwrap();
                    acked.push(content);
                }
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for h in handles {
        acked.extend(h.await.unwrap());
    }
    let mut c = cluster.client().await;
    let stored = read_all(&mut c).await;
    assert_eq!(
        stored.len(),
        acked.len(),
        "entries in the chain == entries acknowledged"
    );
    let contents: HashSet<&str> = stored.iter().map(|e| e.content.as_str()).collect();
    assert_eq!(contents.len(), stored.len(), "no duplicates");
    assert_eq!(contents, acked.iter().map(String::as_str).collect());
    for (i, e) in stored.iter().enumerate() {
        assert_eq!(e.height, i as u64 + 1, "heights are contiguous");
    }
    // A stream's entries stay together, in order.
    for w in stored.windows(3) {
        if w[0].content.ends_with("part 0") {
            assert!(w[1].content.ends_with("part 1") && w[2].content.ends_with("part 2"));
        }
    }
    let v = verify(&mut c).await;
    assert!(v.ok, "{v:?}");
    // git itself agrees: one commit per entry plus the genesis, in the seed's format.
    let repo = cluster.nodes[0].data_dir().join("chain/repo.git");
    assert_eq!(
        git(&repo, &["rev-list", "--count", "chain"]),
        format!("{}", acked.len() + 1)
    );
    let msg = git(&repo, &["log", "-1", "--format=%B", "chain"]);
    let last = stored.last().unwrap();
    assert_eq!(msg, format!("[info] {} {}", last.content, last.create_at));
    let fsck = Command::new("git")
        .arg("--git-dir")
        .arg(&repo)
        .args(["fsck", "--strict"])
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_a_heavy_write_keeps_every_acknowledged_entry() {
    let mut cluster = Cluster::start(1).await;
    let url = cluster.nodes[0].url();
    let acked_so_far = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut handles = Vec::new();
    for w in 0..4 {
        let url = url.clone();
        let counter = acked_so_far.clone();
        handles.push(tokio::spawn(async move {
            let mut acked: Vec<String> = Vec::new();
            let Ok(mut c) =
                gitflock_client::Client::connect(&url, TOKEN, Some(Duration::from_secs(10))).await
            else {
                return acked;
            };
            for round in 0.. {
                let batch: Vec<LogEntry> = (0..200)
                    .map(|i| entry(&format!("w{w} r{round} e{i}")))
                    .collect();
                match c.chain.write_logs(tokio_stream::iter(batch.clone())).await {
                    Ok(_) => {
                        counter.fetch_add(batch.len(), std::sync::atomic::Ordering::SeqCst);
                        acked.extend(batch.into_iter().map(|e| e.content));
                    }
                    Err(_) => return acked,
                }
            }
            acked
        }));
    }
    // Let the writers get going, then kill the node mid-write.
    wait_for(
        "a few thousand acknowledged entries",
        Duration::from_secs(30),
        || async { (acked_so_far.load(std::sync::atomic::Ordering::SeqCst) >= 3000).then_some(()) },
    )
    .await;
    cluster.nodes[0].kill9();
    let mut acked = Vec::new();
    for h in handles {
        acked.extend(h.await.unwrap());
    }
    assert!(acked.len() >= 3000, "{} acknowledged", acked.len());
    cluster.nodes[0].restart().await.unwrap();
    let mut c = cluster.client().await;
    let stored: HashSet<String> = read_all(&mut c)
        .await
        .into_iter()
        .map(|e| e.content)
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|a| !stored.contains(*a)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged entries lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    let v = verify(&mut c).await;
    assert!(v.ok, "{v:?}");
    // And it keeps taking writes.
    c.chain.write_log(entry("after the crash")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blocks_follow_the_utc_day_and_each_day_continues_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let remote = bare_remote(dir.path(), true);
    let clock = dir.path().join("clock");
    std::fs::write(&clock, "2026-11-22T23:59:58Z").unwrap();
    let cluster = Cluster::start_with(
        1,
        &[
            ("GITFLOCK_CHAIN_REMOTE", remote.to_str().unwrap()),
            ("GITFLOCK_CHAIN_BLOCK_INTERVAL_SECS", "0"),
            ("GITFLOCK_CLOCK_FILE", clock.to_str().unwrap()),
        ],
    )
    .await;
    let mut c = cluster.client().await;
    c.chain.write_log(entry("late on the 22nd")).await.unwrap();
    let t = make_block(&cluster, "node1").await;
    assert_eq!(t.state(), TaskState::Succeed, "{:?}", t.results);
    std::fs::write(&clock, "2026-11-23T00:00:01Z").unwrap();
    c.chain.write_log(entry("early on the 23rd")).await.unwrap();
    let t = make_block(&cluster, "node1").await;
    assert_eq!(t.state(), TaskState::Succeed, "{:?}", t.results);

    let day1 = git(&remote, &["rev-parse", "refs/heads/node1-20261122"]);
    let day2 = git(&remote, &["rev-parse", "refs/heads/node1-20261123"]);
    assert_ne!(day1, day2);
    // The 23rd's branch continues the 22nd's chain.
    let ok = Command::new("git")
        .arg("--git-dir")
        .arg(&remote)
        .args(["merge-base", "--is-ancestor", &day1, &day2])
        .status()
        .unwrap();
    assert!(ok.success(), "day 2 does not continue day 1");
    assert_eq!(
        git(&remote, &["log", "-1", "--format=%s", &day1]),
        "[info] late on the 22nd 2026-11-22T23:59:58.000Z"
    );
    let blocks = c
        .chain
        .list_blocks(ListBlocksRequest::default())
        .await
        .unwrap()
        .into_inner()
        .blocks;
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].branch, "node1-20261123");
    assert_eq!(blocks[0].height, 2);
    assert_eq!(blocks[0].tip, day2);
    let v = verify(&mut c).await;
    assert!(v.ok && v.blocks_checked == 2, "{v:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_the_remote_rejects_is_reported_retried_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let remote = bare_remote(dir.path(), true);
    let cluster = Cluster::start_with(
        1,
        &[
            ("GITFLOCK_CHAIN_REMOTE", remote.to_str().unwrap()),
            ("GITFLOCK_CHAIN_BLOCK_INTERVAL_SECS", "0"),
        ],
    )
    .await;
    let mut c = cluster.client().await;
    c.chain.write_log(entry("one")).await.unwrap();
    let t = make_block(&cluster, "node1").await;
    assert_eq!(t.state(), TaskState::Succeed, "{:?}", t.results);
    let branch = c
        .chain
        .list_blocks(ListBlocksRequest::default())
        .await
        .unwrap()
        .into_inner()
        .blocks[0]
        .branch
        .clone();
    // Someone else moves the remote branch to an unrelated history.
    let other = dir.path().join("other");
    let run = |args: &[&str]| {
        let s = Command::new("git")
            .current_dir(&other)
            .args(args)
            .output()
            .unwrap();
        assert!(
            s.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&s.stderr)
        );
    };
    std::fs::create_dir_all(&other).unwrap();
    run(&["init", "-q"]);
    run(&[
        "-c",
        "user.name=x",
        "-c",
        "user.email=x@x",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "intruder",
    ]);
    run(&["update-ref", "refs/heads/other", "HEAD"]);
    // Deleting and re-creating the branch is how an intruder gets past denyNonFastForwards.
    run(&[
        "push",
        "-q",
        remote.to_str().unwrap(),
        &format!(":refs/heads/{branch}"),
    ]);
    run(&[
        "push",
        "-q",
        remote.to_str().unwrap(),
        &format!("HEAD:refs/heads/{branch}"),
    ]);

    c.chain.write_log(entry("two")).await.unwrap();
    let t = make_block(&cluster, "node1").await;
    assert_eq!(
        t.state(),
        TaskState::RuntimeError,
        "a non-fast-forward push must fail"
    );
    assert_eq!(
        t.results.len(),
        3,
        "retried up to max_attempts: {:?}",
        t.results
    );
    assert!(
        t.results[0].message.contains("refused"),
        "{}",
        t.results[0].message
    );
    // Nothing lost: both entries are in the chain, which is intact; verify names the problem.
    let stored = read_all(&mut c).await;
    assert_eq!(
        stored
            .iter()
            .map(|e| e.content.as_str())
            .collect::<Vec<_>>(),
        ["one", "two"]
    );
    let v = verify(&mut c).await;
    assert!(!v.ok);
    assert!(v.problem.contains("no longer contains block tip"), "{v:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rewritten_commit_is_found_at_its_height() {
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client().await;
    for i in 1..=5 {
        c.chain
            .write_log(entry(&format!("entry {i}")))
            .await
            .unwrap();
    }
    let stored = read_all(&mut c).await;
    // Rewrite history from height 3 with git itself: a new commit 3 and copies of 4 and 5.
    let repo = cluster.nodes[0].data_dir().join("chain/repo.git");
    let tree = git(&repo, &["rev-parse", "chain^{tree}"]);
    let mut parent = git(&repo, &["rev-parse", &stored[1].commit]);
    for e in &stored[2..] {
        let msg = if e.height == 3 {
            format!("[info] entry 3 (edited) {}", e.create_at)
        } else {
            git(&repo, &["log", "-1", "--format=%B", &e.commit])
        };
        let date = git(
            &repo,
            &["log", "-1", "--format=%ad", "--date=raw", &e.commit],
        );
        let out = Command::new("git")
            .arg("--git-dir")
            .arg(&repo)
            .args(["commit-tree", &tree, "-p", &parent, "-m", &msg])
            .env("GIT_AUTHOR_NAME", "node1")
            .env("GIT_AUTHOR_EMAIL", "node1@gitflock")
            .env("GIT_COMMITTER_NAME", "node1")
            .env("GIT_COMMITTER_EMAIL", "node1@gitflock")
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .output()
            .unwrap();
        assert!(out.status.success());
        parent = String::from_utf8(out.stdout).unwrap().trim().to_string();
    }
    git(&repo, &["update-ref", "refs/heads/chain", &parent]);
    let v = verify(&mut c).await;
    assert!(!v.ok);
    assert!(v.has_bad_height);
    assert_eq!(v.bad_height, 3, "{v:?}");
    assert_ne!(v.bad_commit, stored[2].commit);
    // The CLI says so in one line and exits 1.
    let out = Command::new(gitflock_harness::binary("gitflock"))
        .args([
            "--server",
            &cluster.nodes[0].url(),
            "--token",
            TOKEN,
            "log",
            "verify",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at height 3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_entries_are_refused_and_nothing_is_half_written() {
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client().await;
    c.chain.write_log(entry("good")).await.unwrap();
    let cases = [
        (
            LogEntry {
                level: "loud".into(),
                ..entry("x")
            },
            "level",
        ),
        (entry(""), "empty"),
        (entry("nul\0inside"), "control"),
        (entry("esc\u{1b}[2J"), "control"),
        (entry(&"z".repeat(70_000)), "bytes"),
        (
            LogEntry {
                create_at: "yesterday".into(),
                ..entry("x")
            },
            "RFC 3339",
        ),
        (
            LogEntry {
                create_at: "2001-01-01T00:00:00Z".into(),
                ..entry("x")
            },
            "before the chain's newest",
        ),
    ];
    for (e, want) in cases {
        let err = c.chain.write_log(e).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message().contains(want),
            "{:?} should mention {want:?}",
            err.message()
        );
    }
    // A stream with one bad entry writes none of its entries.
    let batch = vec![
        entry("a"),
        entry("b"),
        LogEntry {
            level: "nope".into(),
            ..entry("c")
        },
    ];
    let err = c
        .chain
        .write_logs(tokio_stream::iter(batch))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("entry 2"), "{}", err.message());
    let stored = read_all(&mut c).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].content, "good");
    // No remote: a block is refused up front.
    let err = c
        .chain
        .make_block(MakeBlockRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_follows_new_entries_like_tail_f() {
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client().await;
    c.chain.write_log(entry("before")).await.unwrap();
    let mut s = c
        .chain
        .read_logs(ReadLogsRequest {
            since: 1,
            follow: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.message().await.unwrap().unwrap().content, "before");
    c.chain.write_log(entry("after")).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), s.message())
        .await
        .expect("followed")
        .unwrap()
        .unwrap();
    assert_eq!(next.content, "after");
    assert_eq!(next.height, 2);
}
