//! Redis loses its data under running nodes — flushed, or restarted from an older snapshot —
//! and the cluster notices (log, metrics, `Nodes.Status`), makes its standing tasks again
//! without a node restart, and never hands out a claim number of before the loss again.

use crate::common::*;
use gitflock_proto::v1::{CreateTaskRequest, Empty, ListMirrorsRequest};
use std::path::Path;
use std::time::Duration;

fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.org")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.org")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A bare repository with one commit on main; its `file://` URL.
fn upstream(dir: &Path) -> String {
    let (bare, work) = (dir.join("up.git"), dir.join("work"));
    std::fs::create_dir_all(&work).unwrap();
    git(
        dir,
        &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
    );
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["commit", "-q", "--allow-empty", "-m", "first"]);
    git(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
    format!("file://{}", bare.display())
}

/// Redis plus `n` nodes pushing blocks (each has its standing block task), mirroring from
/// `file://`, each serving `/metrics`.
async fn start(dir: &Path, n: usize) -> gitflock_harness::Cluster {
    let node = gitflock_harness::binary("gitflock-node");
    gitflock_harness::Cluster::builder(&node, &dir.join("cluster"), TOKEN)
        .nodes(n)
        .staggered(true)
        .metrics(true)
        .chain_remote(&dir.join("chain-remote.git"))
        .env("RUST_LOG", "info")
        .env("GITFLOCK_MIRROR_ALLOW_FILE_URLS", true)
        .start()
        .await
        .unwrap_or_else(|e| panic!("the cluster did not start: {e}"))
}

fn redis(cluster: &gitflock_harness::Cluster) -> redis::Connection {
    redis::Client::open(cluster.redis.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

fn claims(cluster: &gitflock_harness::Cluster) -> u64 {
    let v: Option<String> = redis::cmd("GET")
        .arg(keys().claims())
        .query(&mut redis(cluster))
        .unwrap();
    v.and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// `gitflock_redis_data_losses_total` of a node.
fn losses(node: &gitflock_harness::NodeProcess) -> u64 {
    use std::io::{Read, Write};
    let port = node.config().metrics_port.expect("metrics");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.lines()
        .find_map(|l| l.strip_prefix("gitflock_redis_data_losses_total "))
        .expect("the metric")
        .trim()
        .parse()
        .unwrap()
}

async fn exists(c: &mut gitflock_client::Client, id: &str) -> bool {
    c.tasks
        .get_task(gitflock_proto::v1::GetTaskRequest { id: id.into() })
        .await
        .is_ok()
}

/// The mirror's head, once its status has one.
async fn mirror_head(c: &mut gitflock_client::Client, id: &str) -> Option<String> {
    let l = c
        .mirrors
        .list_mirrors(ListMirrorsRequest::default())
        .await
        .ok()?
        .into_inner();
    l.mirrors
        .into_iter()
        .find(|m| m.task_id == id && !m.head.is_empty())
        .map(|m| m.head)
}

fn mirror(url: &str) -> CreateTaskRequest {
    CreateTaskRequest {
        r#type: "mirror".into(),
        target: url.into(),
        interval_secs: 3600,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flushed_redis_is_noticed_and_the_standing_tasks_come_back_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = upstream(dir.path());
    let cluster = start(dir.path(), 2).await;
    let mut c = cluster.nodes[0].client().await.unwrap();
    let blocks: Vec<String> = ["node1", "node2"]
        .iter()
        .map(|n| gitflock_node::runner::block::standing(n, Duration::from_secs(3600)).id)
        .collect();
    let id = create(&mut c, mirror(&url)).await.id;
    let head = wait_for("the mirror's first run", Duration::from_secs(30), || {
        let mut c = c.clone();
        let id = id.clone();
        async move { mirror_head(&mut c, &id).await }
    })
    .await;
    for b in &blocks {
        assert!(exists(&mut c, b).await, "the standing block task {b}");
    }
    let pids: Vec<_> = cluster.nodes.iter().map(|n| n.pid()).collect();
    let claimed_before = claims(&cluster);
    assert!(claimed_before > 0);

    let _: () = redis::cmd("FLUSHALL").query(&mut redis(&cluster)).unwrap();

    // Both block tasks and the hand-added mirror are back, and the mirror runs again.
    wait_for(
        "the standing tasks made again",
        Duration::from_secs(30),
        || {
            let mut c = c.clone();
            let (blocks, id) = (blocks.clone(), id.clone());
            async move {
                for t in blocks.iter().chain([&id]) {
                    if !exists(&mut c, t).await {
                        return None;
                    }
                }
                Some(())
            }
        },
    )
    .await;
    let again = wait_for(
        "the mirror's run after the loss",
        Duration::from_secs(30),
        || {
            let mut c = c.clone();
            let id = id.clone();
            async move { mirror_head(&mut c, &id).await }
        },
    )
    .await;
    assert_eq!(again, head);
    // Claims of after the loss are above every claim of before it.
    let claim: String = redis::cmd("HGET")
        .arg(keys().task(&id))
        .arg("claim")
        .query(&mut redis(&cluster))
        .unwrap();
    let claim: u64 = claim.parse().unwrap();
    assert!(
        claim > claimed_before,
        "claim {claim} after the loss, {claimed_before} before"
    );

    // Said in the log, the metrics and Nodes.Status; no node restarted.
    assert!(
        cluster.logs().contains("Redis lost its data"),
        "the log says so"
    );
    for n in &cluster.nodes {
        assert_eq!(losses(n), 1, "{} noticed the loss once", n.name());
    }
    let s = c.nodes.status(Empty {}).await.unwrap().into_inner();
    assert!(s.data_lost_at > 0, "{s:?}");
    assert!(
        ["node1", "node2"].contains(&s.data_lost_noticed_by.as_str()),
        "{s:?}"
    );
    assert_eq!(
        cluster.nodes.iter().map(|n| n.pid()).collect::<Vec<_>>(),
        pids
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_restarted_from_an_older_snapshot_is_noticed_too() {
    let dir = tempfile::tempdir().unwrap();
    let url = upstream(dir.path());
    let mut cluster = start(dir.path(), 1).await;
    let mut c = cluster.nodes[0].client().await.unwrap();
    let _: () = redis::cmd("SAVE").query(&mut redis(&cluster)).unwrap();
    // After the snapshot: a mirror, and claims the snapshot does not know.
    let id = create(&mut c, mirror(&url)).await.id;
    wait_for("the mirror's first run", Duration::from_secs(30), || {
        let mut c = c.clone();
        let id = id.clone();
        async move { mirror_head(&mut c, &id).await }
    })
    .await;

    // Redis dies and comes back with the snapshot: no mirror, and fewer claims than given.
    cluster.redis.kill9_and_restart().await.unwrap();
    wait_for("the mirror made again", Duration::from_secs(30), || {
        let mut c = c.clone();
        let id = id.clone();
        async move { mirror_head(&mut c, &id).await }
    })
    .await;
    assert_eq!(losses(&cluster.nodes[0]), 1);
    let s = c.nodes.status(Empty {}).await.unwrap().into_inner();
    assert!(
        s.data_lost_at > 0 && s.data_lost_noticed_by == "node1",
        "{s:?}"
    );
    assert!(cluster.logs().contains("Redis lost its data"));
}
