//! Hostile input to the chain: times from the far future, streams too big or too many, blocks
//! of nodes that do not exist or are dead, and the remote's credentials kept off every command
//! line.

use super::*;
use crate::fake_http::{FakeHttp, command_lines_with, has_authorization, response, unauthorized};
use gitflock_core::log_entry::format_time;
use gitflock_proto::v1::CreateTaskRequest;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn at(create_at: &str, content: &str) -> LogEntry {
    LogEntry {
        create_at: create_at.into(),
        ..entry(content)
    }
}

/// Runs the CLI against `cluster`'s node1; (exit code, stdout, stderr).
fn cli(cluster: &Cluster, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(gitflock_harness::binary("gitflock"))
        .args(["--server", &cluster.nodes[0].url(), "--token", TOKEN])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_far_future_create_at_is_refused_on_every_path_and_cannot_poison_the_chain() {
    let cluster = Cluster::start_with(1, &[("GITFLOCK_CHAIN_MAX_FUTURE_SKEW_SECS", "2m")]).await;
    let mut c = cluster.client().await;
    let doomsday = "9999-12-31T23:59:59Z";

    let e = c.chain.write_log(at(doomsday, "poison")).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(
        e.message()
            .starts_with("create_at 9999-12-31T23:59:59.000Z is more than 120s ahead"),
        "{}",
        e.message()
    );
    // In a stream: the whole stream is refused, naming the entry.
    let e = c
        .chain
        .write_logs(tokio_stream::iter(vec![
            entry("fine"),
            at(doomsday, "poison"),
        ]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().starts_with("entry 1: create_at"),
        "{}",
        e.message()
    );
    // The CLI: exit 1, one line.
    let (code, _, err) = cli(&cluster, &["log", "write", "--at", doomsday, "poison"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("ahead of this node's clock"), "{err}");

    // Within the skew is fine; past it is not.
    let now = gitflock_core::clock::now_ms();
    c.chain
        .write_log(at(&format_time(now + 60_000), "a minute early"))
        .await
        .unwrap();
    let e = c
        .chain
        .write_log(at(&format_time(now + 10 * 60_000), "ten minutes early"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // The chain took nothing from the far future, and "now" is still now.
    c.chain.write_log(entry("after")).await.unwrap();
    let stored = read_all(&mut c).await;
    let contents: Vec<&str> = stored.iter().map(|e| e.content.as_str()).collect();
    assert_eq!(contents, ["a minute early", "after"]);
    for e in &stored {
        assert!(!e.create_at.starts_with("9999"), "{e:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn write_streams_are_capped_in_bytes_and_in_number() {
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client().await;
    // 36 MB in one stream: over the 32 MiB a stream may hold, refused, nothing written.
    let big: Vec<LogEntry> = (0..600)
        .map(|i| entry(&format!("{i} {}", "x".repeat(60_000))))
        .collect();
    let e = c
        .chain
        .write_logs(tokio_stream::iter(big))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("more than 32 MiB"), "{}", e.message());
    assert!(read_all(&mut c).await.is_empty());

    // Eight streams held open take every slot; a ninth waits, then is told to try again.
    let mut senders = Vec::new();
    let mut open = Vec::new();
    for i in 0..8 {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(entry(&format!("held {i}"))).await.unwrap();
        senders.push(tx);
        let mut c = c.clone();
        open.push(tokio::spawn(async move {
            c.chain
                .write_logs(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
        }));
    }
    let refused = wait_for(
        "a ninth stream to be refused",
        Duration::from_secs(60),
        || {
            let mut c = c.clone();
            async move {
                let r = c
                    .chain
                    .write_logs(tokio_stream::iter(vec![entry("ninth")]))
                    .await;
                match r {
                    Err(e) if e.code() == Code::ResourceExhausted => Some(e),
                    // The eight were not all in yet: what got in is counted below.
                    _ => None,
                }
            }
        },
    )
    .await;
    assert!(
        refused.message().contains("try again"),
        "{}",
        refused.message()
    );
    // Ending the held streams writes them, and frees their slots.
    drop(senders);
    for h in open {
        assert_eq!(h.await.unwrap().unwrap().into_inner().count, 1);
    }
    c.chain
        .write_logs(tokio_stream::iter(vec![entry("later")]))
        .await
        .unwrap();
    let stored = read_all(&mut c).await;
    assert!(
        stored
            .iter()
            .filter(|e| e.content.starts_with("held "))
            .count()
            == 8
    );
    assert_eq!(stored.last().unwrap().content, "later");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blocks_of_unknown_nodes_are_refused_and_those_of_dead_nodes_expire() {
    let dir = tempfile::tempdir().unwrap();
    let remote = bare_remote(dir.path(), true);
    let cluster = Cluster::start_with(
        2,
        &[
            ("GITFLOCK_CHAIN_REMOTE", remote.to_str().unwrap()),
            ("GITFLOCK_CHAIN_BLOCK_INTERVAL_SECS", "0"),
        ],
    )
    .await;
    cluster.wait_master().await;
    let mut c = cluster.client().await;
    let e = c
        .chain
        .make_block(MakeBlockRequest {
            node: "ghost".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(
        e.message()
            .contains("\"ghost\" is not a node of this cluster (nodes: node1, node2)"),
        "{}",
        e.message()
    );
    let e = c
        .tasks
        .create_task(CreateTaskRequest {
            r#type: "block".into(),
            target: "ghost".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let (code, _, err) = cli(&cluster, &["block", "make", "--node", "ghost"]);
    assert_eq!((code, err.trim().lines().count()), (1, 1), "{err}");
    assert!(err.contains("not a node of this cluster"), "{err}");
    assert_eq!(
        cluster.counts().values().sum::<u64>(),
        0,
        "nothing was created"
    );

    // A block asked of a node that then dies ends with the reason, instead of waiting for ever.
    cluster.nodes[1].sigstop();
    let t = c
        .chain
        .make_block(MakeBlockRequest {
            node: "node2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let t = wait_state(&c, &t.id, TaskState::RuntimeError, Duration::from_secs(30)).await;
    assert!(
        t.results[0]
            .message
            .contains("node node2 was declared dead"),
        "{:?}",
        t.results
    );
    // And once it is declared dead, asking for its block is refused up front.
    let e = c
        .chain
        .make_block(MakeBlockRequest {
            node: "node2".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    cluster.nodes[1].sigcont();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_remotes_credentials_reach_its_host_but_never_a_command_line() {
    // The remote asks for credentials (taking its time, so git's processes can be looked at),
    // then refuses what it gets.
    let server = FakeHttp::start(|head| {
        std::thread::sleep(Duration::from_millis(1500));
        if has_authorization(head) {
            response("403 Forbidden", &[])
        } else {
            unauthorized()
        }
    });
    let remote = format!("http://alice:s3cret-pw@127.0.0.1:{}/logs.git", server.port);
    let cluster = Cluster::start_with(
        1,
        &[
            ("GITFLOCK_CHAIN_REMOTE", remote.as_str()),
            ("GITFLOCK_CHAIN_BLOCK_INTERVAL_SECS", "0"),
        ],
    )
    .await;
    let mut c = cluster.client().await;
    c.chain.write_log(entry("one")).await.unwrap();

    // Every process's command line, looked at all through the pushes.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, port) = (stop.clone(), format!("127.0.0.1:{}", server.port));
        std::thread::spawn(move || {
            let (mut leaks, mut seen) = (Vec::new(), 0usize);
            while !stop.load(Ordering::SeqCst) {
                leaks.extend(command_lines_with("s3cret"));
                seen += command_lines_with(&port).len();
                std::thread::sleep(Duration::from_millis(5));
            }
            (leaks, seen)
        })
    };
    let t = make_block(&cluster, "node1").await;
    stop.store(true, Ordering::SeqCst);
    let (leaks, seen) = watcher.join().unwrap();
    assert!(leaks.is_empty(), "credentials on a command line: {leaks:?}");
    assert!(
        seen > 0,
        "git's processes were never seen: the check saw nothing"
    );
    // They did reach the remote's own host, through the credential helper.
    let auth = server.authorizations();
    assert!(
        auth.iter()
            .any(|a| a.ends_with("Basic YWxpY2U6czNjcmV0LXB3")),
        "{auth:?} {:?}",
        t.results
    );
    assert_eq!(t.state(), TaskState::RuntimeError, "{:?}", t.results);
    let shown = format!("{:?}", t.results);
    assert!(
        !shown.contains("s3cret") && shown.contains("127.0.0.1"),
        "{shown}"
    );
    assert!(!cluster.logs().contains("s3cret"));
}
