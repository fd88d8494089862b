//! The product contract: JSON shapes, exit codes, one-line errors.

use super::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_shapes_follow_the_product_contract() {
    let cluster = Cluster::start(2).await;
    let url = cluster.nodes[0].url();

    let created = json_of(&gitflock(
        &url,
        &[
            "--json", "task", "create", "--type", "echo", "--target", "hi", "--name", "n1",
        ],
    ));
    for k in [
        "id",
        "name",
        "type",
        "target",
        "state",
        "node",
        "attempts",
        "interval_secs",
        "created_at",
        "updated_at",
        "results",
    ] {
        assert!(created.get(k).is_some(), "task json lacks {k}: {created}");
    }
    let id = created["id"].as_str().unwrap().to_string();
    // Plain `task create` prints just the id.
    let plain = gitflock(
        &url,
        &["task", "create", "--type", "echo", "--target", "again"],
    );
    assert!(plain.status.success());
    let id2 = String::from_utf8(plain.stdout).unwrap().trim().to_string();
    gitflock_core::task::check_id(&id2).unwrap();

    cluster
        .wait_count("SUCCEED", 2, Duration::from_secs(10))
        .await;
    let got = json_of(&gitflock(&url, &["--json", "task", "get", &id]));
    assert_eq!(got["state"], "SUCCEED");
    assert_eq!(got["name"], "n1");
    let r = &got["results"][0];
    for k in ["code", "message", "node", "started_at", "finished_at"] {
        assert!(r.get(k).is_some(), "result json lacks {k}: {r}");
    }
    assert_eq!(r["message"], "hi");
    // RFC 3339 UTC with three digits of milliseconds, every time (`…56.940Z`, not `…56.94Z`).
    for t in [
        &got["created_at"],
        &got["updated_at"],
        &r["started_at"],
        &r["finished_at"],
    ] {
        assert!(fixed_ms_time(t.as_str().unwrap()), "{t}");
    }

    let list = json_of(&gitflock(&url, &["--json", "task", "list"]));
    assert_eq!(list.as_array().unwrap().len(), 2);
    let list = json_of(&gitflock(&url, &["--json", "task", "list", "--limit", "1"]));
    assert_eq!(list.as_array().unwrap().len(), 1);
    let list = json_of(&gitflock(
        &url,
        &["--json", "task", "list", "--state", "killed"],
    ));
    assert_eq!(list.as_array().unwrap().len(), 0);

    let nodes = json_of(&gitflock(&url, &["--json", "nodes"]));
    let nodes = nodes.as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    for k in ["name", "addr", "role", "state", "epoch", "last_heartbeat"] {
        assert!(nodes[0].get(k).is_some(), "node json lacks {k}");
    }
    assert_eq!(nodes.iter().filter(|n| n["role"] == "master").count(), 1);

    let status = json_of(&gitflock(&url, &["--json", "status"]));
    for k in ["master", "epoch", "nodes", "counts"] {
        assert!(status.get(k).is_some(), "status json lacks {k}");
    }
    assert_eq!(
        keys(&status["counts"]).len(),
        6,
        "a count for every state: {}",
        status["counts"]
    );
    assert_eq!(status["counts"]["SUCCEED"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_one_line_with_exit_1_and_usage_is_exit_2() {
    let cluster = Cluster::start(1).await;
    let url = cluster.nodes[0].url();

    // A target the node refuses: its sentence, on one line.
    let out = gitflock(
        &url,
        &["task", "create", "--type", "sleep", "--target", "forever"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line_error(&out).contains("forever"));

    let out = gitflock(&url, &["task", "get", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    one_line_error(&out);

    let out = gitflock(&url, &["task", "kill", &gitflock_core::task::new_id()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a kill that did nothing is an error"
    );

    let out = gitflock(&url, &["--token", "wrong-token-123456789", "status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line_error(&out).contains("token"));

    let out = gitflock("http://127.0.0.1:1", &["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line_error(&out).contains("cannot reach"));
    // host:port, as the dashboard's GITFLOCK_WEB_NODES takes it.
    let bare = url.trim_start_matches("http://");
    let out = gitflock(bare, &["status"]);
    assert!(out.status.success(), "--server {bare}: {}", stderr(&out));

    let out = gitflock(&url, &["task", "frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_bad_node_config_is_one_line_naming_the_key_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gitflock.toml");
    std::fs::write(
        &file,
        "[cluster]\ntoken = \"0123456789abcdef\"\n[node]\nconcurrency = \"lots\"\n",
    )
    .unwrap();
    let out = Command::new(gitflock_harness::binary("gitflock-node"))
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("[node] concurrency"), "{err}");

    let out = Command::new(gitflock_harness::binary("gitflock-node"))
        .env_clear()
        .env("GITFLOCK_CLUSTER_TOKEN", "0123456789abcdef")
        .env("GITFLOCK_CLUSTER_LEASE_MS", "soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[cluster] lease_ms"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_answers_both_v1_and_v1alpha_clients() {
    use tonic_reflection::pb::{v1, v1alpha};
    let cluster = Cluster::start(1).await;
    let channel = tonic::transport::Endpoint::from_shared(cluster.nodes[0].url())
        .unwrap()
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap();

    let mut old = v1alpha::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let ask = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut answers = old
        .server_reflection_info(tokio_stream::iter([ask]))
        .await
        .expect("v1alpha is served (Python's grpcio-reflection, older grpcurl, Evans)")
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(l)) =
        answer.message_response
    else {
        panic!("not a service list: {answer:?}");
    };
    let names: Vec<String> = l.service.into_iter().map(|s| s.name).collect();
    assert!(names.iter().any(|n| n == "gitflock.v1.Tasks"), "{names:?}");

    let mut new = v1::server_reflection_client::ServerReflectionClient::new(channel);
    let ask = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut answers = new
        .server_reflection_info(tokio_stream::iter([ask]))
        .await
        .unwrap()
        .into_inner();
    assert!(answers.message().await.unwrap().is_some());
}
