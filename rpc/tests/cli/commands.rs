//! The commands as a new user runs them: watching tasks, making and listing blocks, writing
//! and reading log lines, adding and listing mirrors, listing nodes.

use super::*;
use gitflock_proto::v1::LogEntry;
use std::time::{Duration, Instant};

/// `gitflock ARGS` started now; its output once it exits, or a panic if it runs past
/// `timeout` (it is killed then).
fn finishes_within(server: &str, args: &[&str], timeout: Duration) -> Output {
    let mut child = Command::new(gitflock_harness::binary("gitflock"))
        .env("GITFLOCK_SERVER", server)
        .env("GITFLOCK_TOKEN", TOKEN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "gitflock {args:?} still ran after {timeout:?}; it printed {:?}",
                stdout(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The state named on a `task watch` line (`TIME  ID  STATE …`).
fn watched_state(line: &str) -> String {
    line.split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_string()
}

async fn wait_task_state(url: &str, id: &str, state: &str) {
    wait_for(
        &format!("task {id} {state}"),
        Duration::from_secs(20),
        || async {
            let t = json_of(&gitflock(url, &["--json", "task", "get", id]));
            (t["state"] == state).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_watch_shows_the_state_now_then_each_change_once_and_ends() {
    let cluster = Cluster::start(1).await;
    let url = cluster.nodes[0].url();
    let done = json_of(&gitflock(
        &url,
        &[
            "--json", "task", "create", "--type", "echo", "--target", "w",
        ],
    ));
    let done = done["id"].as_str().unwrap().to_string();
    wait_task_state(&url, &done, "SUCCEED").await;
    // A finished task: its state, with its time, at once; then the watch ends.
    let out = finishes_within(&url, &["task", "watch", &done], Duration::from_secs(15));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(fixed_ms_time(&lines[0][..24]), "a time first: {text}");
    assert_eq!(watched_state(lines[0]), "SUCCEED", "{text}");

    // A live task: each state once, each with its time, ending at the final one.
    let live = json_of(&gitflock(
        &url,
        &[
            "--json", "task", "create", "--type", "sleep", "--target", "2s",
        ],
    ));
    let live = live["id"].as_str().unwrap().to_string();
    let out = finishes_within(&url, &["task", "watch", &live], Duration::from_secs(30));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let states: Vec<String> = text.lines().map(watched_state).collect();
    assert!(
        text.lines()
            .all(|l| l.len() > 24 && fixed_ms_time(&l[..24])),
        "{text}"
    );
    assert_eq!(states.last().map(String::as_str), Some("SUCCEED"), "{text}");
    assert!(
        states.windows(2).all(|w| w[0] != w[1]),
        "a state printed twice in a row: {text}"
    );
    assert_eq!(
        states.iter().filter(|s| *s == "RUNNING").count(),
        1,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_make_waits_for_every_push_and_block_list_shows_a_tip_once() {
    let dir = tempfile::tempdir().unwrap();
    let remote = dir.path().join("chain-remote.git");
    let remote_s = remote.to_string_lossy().to_string();
    let status = Command::new("git")
        .args(["init", "-q", "--bare", &remote_s])
        .status()
        .unwrap();
    assert!(status.success());
    let cluster = Cluster::start_with(
        2,
        &[
            ("GITFLOCK_CHAIN_REMOTE", &remote_s),
            ("GITFLOCK_CHAIN_BLOCK_INTERVAL_SECS", "0"),
        ],
    )
    .await;
    let url = cluster.nodes[0].url();
    cluster.wait_master().await;
    wait_for("both nodes alive", Duration::from_secs(20), || async {
        let nodes = json_of(&gitflock(&url, &["--json", "nodes"]));
        let alive = nodes
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["state"] == "alive");
        (alive.count() == 2).then_some(())
    })
    .await;

    // Every live node's push, waited for: one line each, as it ended.
    let out = gitflock(&url, &["block", "make"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for (line, node) in lines.iter().zip(["node1", "node2"]) {
        assert!(line.starts_with(&format!("{node}: pushed ")), "{text}");
    }
    // The same tips again: pushed, but not new blocks.
    let out = gitflock(&url, &["block", "make", "--node", "node1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("node1: pushed "),
        "{}",
        stdout(&out)
    );
    let blocks = json_of(&gitflock(&url, &["--json", "block", "list"]));
    let blocks = blocks.as_array().unwrap();
    assert_eq!(blocks.len(), 2, "one row per tip: {blocks:?}");
    for b in blocks {
        assert!(fixed_ms_time(b["pushed_at"].as_str().unwrap()), "{b}");
    }
    let text = stdout(&gitflock(&url, &["block", "list", "--node", "node2"]));
    assert_eq!(
        text.lines().count(),
        2,
        "a header and node2's block: {text}"
    );
    assert!(text.starts_with("NODE"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_are_entries_from_any_source_and_read_back_one_per_line() {
    let cluster = Cluster::start(1).await;
    let url = cluster.nodes[0].url();
    // CONTENT and standard input follow one rule: each line is one entry.
    let out = gitflock(&url, &["log", "write", "first\nsecond"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "1..2 (2 entries)");
    let out = gitflock_with_input(&url, &["log", "write", "-"], "third\n\n  \nfourth\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "3..4 (2 entries)");
    assert_eq!(stderr(&out).trim(), "gitflock: 2 empty lines skipped");
    let out = gitflock(&url, &["log", "write", "\n\n"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line_error(&out).contains("nothing to write"));
    // An entry with a newline (written through the API) stays one record on the screen.
    let mut c = cluster.client().await;
    c.chain
        .write_log(LogEntry {
            level: "warn".into(),
            content: "multi\nline\tentry".into(),
            create_at: String::new(),
        })
        .await
        .unwrap();
    let out = gitflock(&url, &["log", "read", "--since", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(
        lines[0].trim_start().starts_with("1 "),
        "from the start: {text}"
    );
    assert!(lines[4].ends_with(r"[warn] multi\nline\tentry"), "{text}");
    let entries: Vec<Value> = stdout(&gitflock(&url, &["--json", "log", "read"]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        entries[4]["content"], "multi\nline\tentry",
        "JSON keeps it exact"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_add_and_list_speak_of_urls_and_nodes() {
    let cluster = Cluster::start(2).await;
    let url = cluster.nodes[0].url();
    let out = gitflock(&url, &["mirror", "add", "bogus://h/x.git"]);
    assert_eq!(out.status.code(), Some(1));
    let err = one_line_error(&out);
    assert!(
        err.starts_with("gitflock: cannot mirror bogus://h/x.git: "),
        "{err}"
    );
    assert!(!err.contains("target"), "{err}");

    // Nothing listens there: every run fails.
    let upstream = "git://127.0.0.1:1/team/app.git";
    let out = gitflock(&url, &["mirror", "add", upstream]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    let again = gitflock(&url, &["mirror", "add", "git://127.0.0.1:1/team/app"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(
        stdout(&again).trim(),
        id,
        "the same repository, the same task"
    );
    assert!(
        stderr(&again).contains("already mirrored"),
        "{}",
        stderr(&again)
    );

    let failing = wait_for(
        "the mirror's first failure",
        Duration::from_secs(30),
        || async {
            let list = json_of(&gitflock(&url, &["--json", "mirror", "list"]));
            let m = list.as_array().unwrap().first().cloned()?;
            (m["failures"].as_u64() >= Some(1)).then_some(m)
        },
    )
    .await;
    let node = failing["node"].as_str().unwrap().to_string();
    assert!(
        node == "node1" || node == "node2",
        "the node that runs it: {failing}"
    );
    let text = stdout(&gitflock(&url, &["mirror", "list"]));
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("URL") && lines[0].contains("LAST_ERROR"),
        "{text}"
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[0], upstream, "{text}");
    assert_eq!(row[2], node, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_are_listed_by_name_with_their_load_and_metrics_address() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = gitflock_harness::Cluster::builder(
        &gitflock_harness::binary("gitflock-node"),
        dir.path(),
        TOKEN,
    )
    .nodes(3)
    .metrics(true)
    .start()
    .await
    .unwrap();
    let url = cluster.nodes[2].url();
    let nodes = wait_for("three nodes", Duration::from_secs(20), || async {
        let nodes = json_of(&gitflock(&url, &["--json", "nodes"]));
        let nodes = nodes.as_array().cloned()?;
        (nodes.len() == 3).then_some(nodes)
    })
    .await;
    for (n, node) in nodes.iter().zip(&cluster.nodes) {
        assert_eq!(n["name"], node.name(), "sorted by name: {nodes:?}");
        let port = node.config().metrics_port.unwrap();
        assert_eq!(n["metrics"], format!("127.0.0.1:{port}"), "{n}");
    }
    let text = stdout(&gitflock(&url, &["nodes"]));
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].contains("LOAD") && lines[0].contains("METRICS"),
        "{text}"
    );
    let names: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(names, ["node1", "node2", "node3"], "{text}");
    assert!(lines[1].contains("/metrics"), "{text}");
}
