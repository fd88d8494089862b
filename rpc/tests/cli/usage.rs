//! What a new user meets before any command works: the help, durations, usage errors (exit
//! 2, listing what is allowed), and a `--server` that is not a node at all.

use super::*;
use gitflock_harness::{RedisOptions, RedisServer};
use std::io::Read;
use std::net::TcpListener;

/// `gitflock ARGS` that must not need a node (help, usage errors).
fn offline(args: &[&str]) -> Output {
    gitflock("http://127.0.0.1:1", args)
}

#[test]
fn help_describes_every_flag_and_lists_the_allowed_values() {
    let help = |args: &[&str]| {
        let out = offline(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    let create = help(&["task", "create", "--help"]);
    assert!(
        create.contains("[possible values: echo, sleep, mirror, block]"),
        "{create}"
    );
    assert!(!create.contains("[default: 0]"), "{create}");
    for described in [
        "What the task does",
        "What it works on",
        "A name to show",
        "30s, 5m, 2h",
    ] {
        assert!(create.contains(described), "{described:?} in {create}");
    }
    let list = help(&["task", "list", "--help"]);
    assert!(
        list.contains("WAITING, INQUEUE, RUNNING, RUNTIME_ERROR, SUCCEED, KILLED"),
        "{list}"
    );
    assert!(list.contains("[possible values: echo, sleep, mirror, block]"));
    let write = help(&["log", "write", "--help"]);
    assert!(
        write.contains("trace, debug, info, warn, error, fatal"),
        "{write}"
    );
    let make = help(&["block", "make", "--help"]);
    assert!(make.contains("Only this node's block"), "{make}");
    let get = help(&["task", "get", "--help"]);
    assert!(get.contains("The task's id"), "{get}");
}

#[test]
fn usage_errors_exit_2_and_list_the_known_values() {
    for (args, listed) in [
        (&["task", "list", "--state", "bogus"][..], "RUNTIME_ERROR"),
        (&["task", "list", "--type", "bogus"][..], "mirror"),
        (&["task", "create", "--type", "bogus"][..], "echo"),
        (&["log", "write", "--level", "loud", "x"][..], "fatal"),
        (
            &["task", "create", "--type", "echo", "--timeout", "soon"][..],
            "500ms",
        ),
    ] {
        let out = offline(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(listed), "{args:?}: {}", stderr(&out));
    }
    // Any case for states, as the API takes them.
    let out = offline(&["task", "list", "--state", "running"]);
    assert_eq!(out.status.code(), Some(1), "parsed, then no node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durations_take_the_same_units_everywhere() {
    let cluster = Cluster::start(1).await;
    let url = cluster.nodes[0].url();
    let t = json_of(&gitflock(
        &url,
        &[
            "--json",
            "task",
            "create",
            "--type",
            "sleep",
            "--target",
            "1s",
            "--timeout",
            "1s",
            "--interval",
            "2m",
        ],
    ));
    assert_eq!(t["timeout_secs"], 1, "{t}");
    assert_eq!(t["interval_secs"], 120, "{t}");
    let t = json_of(&gitflock(
        &url,
        &[
            "--json",
            "task",
            "create",
            "--type",
            "echo",
            "--timeout",
            "90",
        ],
    ));
    assert_eq!(t["timeout_secs"], 90, "a bare number is seconds: {t}");
    let m = json_of(&gitflock(
        &url,
        &[
            "--json",
            "mirror",
            "add",
            "git://127.0.0.1:1/d/u.git",
            "--interval",
            "5m",
        ],
    ));
    assert_eq!(m["interval_secs"], 300, "{m}");
    let out = gitflock(
        &url,
        &["task", "create", "--type", "echo", "--timeout", "1500ms"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("whole number of seconds"),
        "{}",
        stderr(&out)
    );
}

/// A server on a free port that answers every connection with `reply` (nothing: it closes).
fn impostor(reply: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut sock in listener.incoming().flatten() {
            let mut buf = [0u8; 256];
            let _ = sock.read(&mut buf);
            let _ = sock.write_all(reply);
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_not_a_node_is_named_as_such() {
    let web = impostor(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
    let out = gitflock(&format!("127.0.0.1:{web}"), &["status"]);
    assert_eq!(out.status.code(), Some(1));
    let err = one_line_error(&out);
    assert!(
        err.contains(&format!("127.0.0.1:{web} is not a gitflock node")) && err.contains("HTTP"),
        "{err}"
    );
    assert!(!err.contains("h2 protocol error"), "{err}");

    let closer = impostor(b"");
    let out = gitflock(&format!("http://127.0.0.1:{closer}"), &["nodes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line_error(&out).contains("is not a gitflock node"));

    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path(), RedisOptions::default())
        .await
        .unwrap();
    let out = gitflock(&format!("127.0.0.1:{}", redis.port()), &["status"]);
    assert_eq!(out.status.code(), Some(1));
    let err = one_line_error(&out);
    assert!(
        err.contains("is not a gitflock node") && err.contains("Redis"),
        "{err}"
    );
}
