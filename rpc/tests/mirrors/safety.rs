//! Hostile URLs, hidden credentials, and kills of hung fetches.

use super::*;
use gitflock_proto::v1::{TaskIds, TaskState};

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
