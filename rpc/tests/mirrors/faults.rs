//! Faults that must not be permanent, against real nodes and upstreams: a stale run's report,
//! a webhook delivered a thousand times, upstreams that drip bytes forever, and the SSRF guard.

use super::*;
use gitflock_proto::v1::{
    Empty, LogEntry, SyncMirrorsRequest, TaskState, VerifyRequest, WebhookRequest,
};
use std::collections::HashMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A relay to a local port whose first connection waits (accepted, nothing passed on) until
/// [`Gate::open`]; every later one is relayed at once.
struct Gate {
    port: u16,
    open: Arc<AtomicBool>,
    first_done: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
}

impl Gate {
    fn start(to: u16) -> Gate {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let g = Gate {
            port: l.local_addr().unwrap().port(),
            open: Arc::default(),
            first_done: Arc::default(),
            accepted: Arc::default(),
        };
        let (open, done, accepted) = (g.open.clone(), g.first_done.clone(), g.accepted.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { return };
                let first = accepted.fetch_add(1, Ordering::SeqCst) == 0;
                let (open, done) = (open.clone(), done.clone());
                std::thread::spawn(move || {
                    while first && !open.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    relay(conn, to);
                    if first {
                        done.store(true, Ordering::SeqCst);
                    }
                });
            }
        });
        g
    }

    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

fn relay(client: TcpStream, to: u16) {
    let Ok(up) = TcpStream::connect(("127.0.0.1", to)) else {
        return;
    };
    let (mut c_in, mut u_out) = (client.try_clone().unwrap(), up.try_clone().unwrap());
    let there = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c_in, &mut u_out);
        let _ = u_out.shutdown(std::net::Shutdown::Write);
    });
    let (mut u_in, mut c_out) = (up, client);
    let _ = std::io::copy(&mut u_in, &mut c_out);
    let _ = c_out.shutdown(std::net::Shutdown::Write);
    let _ = there.join();
}

/// A server that answers every connection with `prefix` and then one more byte every 200 ms,
/// forever: each read gets something, so no read timeout ever fires. Counts the connections
/// its client has not closed.
struct Drip {
    port: u16,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
}

impl Drip {
    fn start(prefix: &'static [u8]) -> Drip {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let d = Drip {
            port: l.local_addr().unwrap().port(),
            accepted: Arc::default(),
            open: Arc::default(),
        };
        let (accepted, open) = (d.accepted.clone(), d.open.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut conn) = conn else { return };
                accepted.fetch_add(1, Ordering::SeqCst);
                open.fetch_add(1, Ordering::SeqCst);
                let open = open.clone();
                std::thread::spawn(move || {
                    let mut out = conn.write_all(prefix);
                    while out.is_ok() {
                        std::thread::sleep(Duration::from_millis(200));
                        out = conn.write_all(b"a");
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        d
    }
}

fn mirror_task(url: &str, interval: u64, timeout: u64, attempts: u32) -> CreateTaskRequest {
    CreateTaskRequest {
        r#type: "mirror".into(),
        target: url.into(),
        interval_secs: interval,
        timeout_secs: timeout,
        max_attempts: attempts,
        ..Default::default()
    }
}

fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The task's `runs` (runs recorded) and `due` (ms) fields, as Redis holds them.
fn runs_and_due(cluster: &Cluster, id: &str) -> (u64, i64) {
    let f = |k| {
        cluster
            .task_field(id, k)
            .unwrap_or_default()
            .parse()
            .unwrap_or(0)
    };
    (f("runs") as u64, f("due"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_mirror_run_never_overwrites_what_the_newer_run_recorded() {
    let up = Upstream::start();
    up.create("svc");
    let gate = Gate::start(up.port);
    // A node declared dead gets no mirror back for ten minutes: the newer run stays the
    // newer run's node's.
    let mut cluster = Cluster::start_with(2, &[("GITFLOCK_MIRROR_SETTLE_SECS", "600")]).await;
    let mut c = cluster.client().await;
    let url = format!("git://127.0.0.1:{}/svc.git", gate.port);
    let id = add_mirror(&mut c, &url, 3600).await;
    // The first run hangs in the held connection.
    let stale_node = wait_for("the first run", Duration::from_secs(30), || async {
        (gate.accepted.load(Ordering::SeqCst) == 1
            && cluster.task_field(&id, "state").as_deref() == Some("RUNNING"))
        .then(|| cluster.task_field(&id, "node"))
        .flatten()
    })
    .await;
    let other = if stale_node == "node1" {
        "node2"
    } else {
        "node1"
    };
    let mut c = cluster.node(other).client().await.unwrap();

    // Its node freezes mid-run and is declared dead: the mirror moves and syncs elsewhere.
    cluster.node(&stale_node).sigstop();
    let m = wait_mirror(
        &c,
        &id,
        "the newer run elsewhere",
        Duration::from_secs(60),
        |m| m.node == other && !m.head.is_empty(),
    )
    .await;
    assert_eq!(m.state(), TaskState::Waiting);

    // The frozen node wakes up and its stale run goes on to the end.
    gate.open();
    cluster.node(&stale_node).sigcont();
    wait_for("the stale run to end", Duration::from_secs(60), || {
        let mut c = c.clone();
        let (gate, stale_node) = (&gate, &stale_node);
        async move {
            if !gate.first_done.load(Ordering::SeqCst) {
                return None;
            }
            let nodes = c.nodes.list_nodes(Empty {}).await.ok()?.into_inner().nodes;
            let n = nodes.into_iter().find(|n| &n.name == stale_node)?;
            (n.state == "alive" && n.running == 0).then_some(())
        }
    })
    .await;
    let after = mirror(&c, &id).await;
    assert_eq!(
        after.node, other,
        "the stale run overwrote the status: {after:?}"
    );
    assert_eq!(after.head, m.head);
    assert_eq!(after.last_fetch, m.last_fetch);
    let t = get(&mut c, &id).await;
    assert_eq!(
        t.node, other,
        "the stale run's FINISH changed the task: {t:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mirror_report_counts_only_from_its_runs_node_and_claim() {
    use gitflock_node::store::{MirrorRun, Store};
    let up = Upstream::start();
    up.create("svc");
    let gate = Gate::start(up.port);
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client().await;
    let id = add_mirror(
        &mut c,
        &format!("git://127.0.0.1:{}/svc.git", gate.port),
        3600,
    )
    .await;
    let claim: u64 = wait_for("the run", Duration::from_secs(30), || async {
        (cluster.task_field(&id, "state").as_deref() == Some("RUNNING"))
            .then(|| cluster.task_field(&id, "claim")?.parse().ok())
            .flatten()
    })
    .await;
    let config = gitflock_core::config::Config::load_with(None, &|k| match k {
        "GITFLOCK_CLUSTER_TOKEN" => Some(TOKEN.into()),
        "GITFLOCK_REDIS_URL" => Some(cluster.redis.url()),
        _ => None,
    })
    .unwrap();
    let store = Store::connect(&config.redis).await.unwrap();
    let run = |node: &str| MirrorRun::Synced {
        node: node.into(),
        path: "forged".into(),
        head: "main forged".into(),
        refs: 1,
        at: 1,
        clone_url: None,
        changed: true,
        moved: true,
    };
    // An older claim, or another node, records nothing.
    for (node, claim) in [("node1", claim - 1), ("node2", claim), ("node1", claim + 1)] {
        let r = store
            .mirror_report(&id, node, claim, &run(node))
            .await
            .unwrap();
        assert_eq!(r, None, "{node} {claim}");
    }
    assert_eq!(mirror(&c, &id).await.head, "", "nothing recorded");
    // The run's own report counts.
    let r = store
        .mirror_report(&id, "node1", claim, &run("node1"))
        .await
        .unwrap();
    assert!(r.is_some());
    assert_eq!(mirror(&c, &id).await.head, "main forged");
    gate.open();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_delivered_a_thousand_times_syncs_once_per_window_and_keeps_a_back_off() {
    let mut up = Upstream::start();
    up.create("svc");
    let url = up.url("svc");
    let secret = "hook-secret-123";
    let cluster = Cluster::start_with(1, &[("GITFLOCK_MIRROR_WEBHOOK_SECRET", secret)]).await;
    let mut c = cluster.client().await;
    let id = create(&mut c, mirror_task(&url, 3600, 0, 1)).await.id;
    wait_mirror(&c, &id, "the first clone", Duration::from_secs(30), |m| {
        !m.head.is_empty() && m.state() == TaskState::Waiting
    })
    .await;
    let sha = up.commit("svc", "main", "pushed once");
    let body = serde_json::json!({"repository": {"clone_url": url}}).to_string();
    let hook = WebhookRequest {
        headers: HashMap::from([("x-hub-signature-256".into(), sign(secret, body.as_bytes()))]),
        body: body.into_bytes(),
    };
    let hooks = c.clone();
    let deliver = |n: usize| {
        let (c, hook) = (hooks.clone(), hook.clone());
        async move {
            let calls = (0..n).map(|_| {
                let (mut c, hook) = (c.clone(), hook.clone());
                async move { c.mirrors.webhook(hook).await.unwrap().into_inner() }
            });
            futures_util::future::join_all(calls).await
        }
    };

    // The same signed push, a thousand times over five seconds.
    let (runs_before, _) = runs_and_due(&cluster, &id);
    let started = Instant::now();
    for _ in 0..50 {
        for r in deliver(20).await {
            assert_eq!(r.synced, vec![id.clone()], "the push names a known mirror");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let spent = started.elapsed();
    // The last window's sync, then quiet: WAITING for the next hour.
    wait_for("the syncs to settle", Duration::from_secs(20), || async {
        let m = mirror(&c, &id).await;
        let (_, due) = runs_and_due(&cluster, &id);
        (m.state() == TaskState::Waiting
            && m.head == format!("main {sha}")
            && due > m.last_fetch + 600_000)
            .then_some(())
    })
    .await;
    let (runs_after, _) = runs_and_due(&cluster, &id);
    let syncs = runs_after - runs_before;
    let windows = spent.as_secs_f64() / 2.0;
    eprintln!("1000 deliveries in {spent:?}: {syncs} syncs");
    assert!(syncs >= 1, "the push was followed");
    assert!(
        (syncs as f64) <= windows.ceil() + 2.0,
        "{syncs} syncs in {spent:?}: more than one per 2 s window"
    );

    // A failing mirror keeps its back-off, however many pushes arrive.
    up.stop();
    let asked = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    c.mirrors
        .sync_mirrors(SyncMirrorsRequest {
            urls: vec![url.clone()],
        })
        .await
        .unwrap();
    wait_mirror(&c, &id, "the failed run", Duration::from_secs(30), |m| {
        m.failures >= 1 && m.state() == TaskState::Waiting
    })
    .await;
    let (runs, due) = runs_and_due(&cluster, &id);
    assert!(due > asked + 3_600_000, "backing off: due {due}");
    for r in deliver(100).await {
        assert!(r.synced.is_empty() && r.unknown.is_empty(), "{r:?}");
    }
    assert_eq!(
        runs_and_due(&cluster, &id),
        (runs, due),
        "the back-off stands"
    );
    assert_eq!(mirror(&c, &id).await.state(), TaskState::Waiting);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upstreams_that_drip_forever_end_at_the_runs_deadline_and_chain_reads_go_on() {
    // An endless pkt-line (git://) and an endless header (http://): libgit2's connect and ref
    // listing wait on them, and each byte resets its read timeout.
    let git = Drip::start(b"fff0");
    let http = Drip::start(b"HTTP/1.1 200 OK\r\nX-Drip: ");
    let cluster = Cluster::start_with(1, &[("GITFLOCK_NODE_CONCURRENCY", "8")]).await;
    let mut c = cluster.client().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let g = format!("git://127.0.0.1:{}/r{i}.git", git.port);
        ids.push(create(&mut c, mirror_task(&g, 3600, 3, 1)).await.id);
        let h = format!("http://127.0.0.1:{}/r{i}.git", http.port);
        ids.push(create(&mut c, mirror_task(&h, 3600, 3, 1)).await.id);
    }
    wait_for("every run to connect", Duration::from_secs(30), || async {
        (git.accepted.load(Ordering::SeqCst) == 3 && http.accepted.load(Ordering::SeqCst) == 3)
            .then_some(())
    })
    .await;
    // While they hang, the chain is read and verified at once (its reads run on the blocking
    // pool, which the hung runs do not hold).
    let started = Instant::now();
    c.chain
        .write_log(LogEntry {
            level: "info".into(),
            content: "while upstreams drip".into(),
            create_at: String::new(),
        })
        .await
        .unwrap();
    let v = c
        .chain
        .verify_chain(VerifyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(v.ok, "{v:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Each run ends at its 3 s timeout, and its socket with it.
    wait_for(
        "every dripping connection closed",
        Duration::from_secs(15),
        || async {
            (git.open.load(Ordering::SeqCst) == 0 && http.open.load(Ordering::SeqCst) == 0)
                .then_some(())
        },
    )
    .await;
    for id in &ids {
        let t = wait_state(&c, id, TaskState::Waiting, Duration::from_secs(10)).await;
        let r = t.results.first().expect("a result");
        assert!(r.message.contains("timed out after 3s"), "{r:?}");
    }
    assert_eq!(
        git.accepted.load(Ordering::SeqCst),
        3,
        "no run was left behind to retry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_ssrf_guard_refuses_internal_addresses_before_connecting() {
    // Something listening on loopback, where no mirror may reach with the guard on.
    let trap = TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let port = trap.local_addr().unwrap().port();
    let cluster =
        Cluster::start_with(1, &[("GITFLOCK_MIRROR_DENY_PRIVATE_NETWORKS", "true")]).await;
    let mut c = cluster.client().await;
    // A literal internal address: refused when the task is created.
    for url in [
        format!("git://127.0.0.1:{port}/x.git"),
        format!("http://[::1]:{port}/x.git"),
        "http://169.254.169.254/latest/meta-data.git".to_string(),
        "https://10.0.0.8/team/app.git".to_string(),
    ] {
        let e = c
            .tasks
            .create_task(mirror_task(&url, 60, 0, 0))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{url}");
        assert!(
            e.message().starts_with("target:") && e.message().contains("deny_private_networks"),
            "{url}: {}",
            e.message()
        );
    }
    // A name that resolves to one: refused after resolving, before connecting, by every
    // transport (the native git:// reader's and libgit2's sockets alike).
    let mut ids = Vec::new();
    for url in [
        format!("git://localhost:{port}/x.git"),
        format!("http://localhost:{port}/y.git"),
        format!("ssh://git@localhost:{port}/z.git"),
    ] {
        ids.push(create(&mut c, mirror_task(&url, 3600, 0, 1)).await.id);
    }
    for id in &ids {
        let m = wait_mirror(&c, id, "the refused run", Duration::from_secs(30), |m| {
            !m.last_error.is_empty()
        })
        .await;
        assert!(
            m.last_error.contains("refused to connect to localhost")
                && m.last_error.contains("loopback")
                && m.last_error.contains("deny_private_networks"),
            "{}",
            m.last_error
        );
    }
    assert!(trap.accept().is_err(), "a mirror connected to the trap");
}
