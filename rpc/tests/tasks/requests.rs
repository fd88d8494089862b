//! What the API refuses, and how it lists.

use crate::common::*;
use gitflock_proto::v1::{
    CreateTaskRequest, Empty, GetTaskRequest, ListTasksRequest, TaskIds, TaskState,
};
use std::collections::HashSet;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_requests_get_clear_errors_and_change_nothing() {
    let cluster = Cluster::start(1).await;
    let mut c = cluster.client().await;
    let bad = |req: CreateTaskRequest| req;
    let cases = [
        (
            bad(CreateTaskRequest {
                r#type: "nope".into(),
                ..Default::default()
            }),
            "known types: block, echo, mirror, sleep",
        ),
        (
            bad(CreateTaskRequest {
                r#type: "".into(),
                ..Default::default()
            }),
            "type is empty",
        ),
        (
            bad(CreateTaskRequest {
                name: "x".repeat(300),
                ..echo("")
            }),
            "name is 300 bytes",
        ),
        (
            bad(CreateTaskRequest {
                name: "a\u{7}b".into(),
                ..echo("")
            }),
            "control character",
        ),
        (bad(echo(&"y".repeat(5000))), "target is 5000 bytes"),
        (bad(sleep_task("forever")), "target:"),
        (bad(sleep_task("2h")), "longer than 1h"),
        (
            bad(CreateTaskRequest {
                interval_secs: u64::MAX,
                ..echo("")
            }),
            "interval_secs",
        ),
        (
            bad(CreateTaskRequest {
                max_attempts: 1000,
                ..echo("")
            }),
            "max_attempts",
        ),
        (
            bad(CreateTaskRequest {
                request_id: "a b".into(),
                ..echo("")
            }),
            "request_id",
        ),
    ];
    for (req, want) in cases {
        let e = c.tasks.create_task(req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(
            e.message().contains(want),
            "{:?} should mention {want:?}",
            e.message()
        );
    }
    for id in [
        "",
        "42",
        "../../etc/passwd",
        "0F8FAD5B-D9CB-469F-A165-70867728950E",
    ] {
        let e = c
            .tasks
            .get_task(GetTaskRequest { id: id.into() })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "get {id:?}");
        let e = c
            .tasks
            .kill_tasks(TaskIds {
                ids: vec![id.into()],
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "kill {id:?}");
        let e = c
            .tasks
            .delete_tasks(TaskIds {
                ids: vec![id.into()],
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "delete {id:?}");
    }
    let e = c
        .tasks
        .kill_tasks(TaskIds { ids: vec![] })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = c
        .tasks
        .list_tasks(ListTasksRequest {
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = c
        .tasks
        .list_tasks(ListTasksRequest {
            states: vec![42],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // Missing and wrong tokens.
    let channel = tonic::transport::Endpoint::from_shared(cluster.nodes[0].url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut anon = gitflock_proto::v1::tasks_client::TasksClient::new(channel);
    let e = anon.create_task(echo("x")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let mut wrong =
        gitflock_client::Client::connect(&cluster.nodes[0].url(), "wrong-token-0123456789", None)
            .await
            .unwrap();
    let e = wrong.tasks.create_task(echo("x")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = wrong.nodes.status(Empty {}).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    // Health stays open.
    assert_eq!(
        health(&cluster.nodes[0].url()).await,
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    // Nothing was written.
    let mut con = cluster.redis.conn();
    let all: u64 = redis::cmd("ZCARD")
        .arg(keys().all())
        .query(&mut con)
        .unwrap();
    assert_eq!(all, 0);
    let tasks: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", keys().task_family()))
        .query(&mut con)
        .unwrap();
    assert!(tasks.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_tasks_filters_and_paginates_without_gaps_or_repeats() {
    // No workers: everything stays WAITING except what we kill.
    let cluster = Cluster::start_with(1, &[("GITFLOCK_NODE_CONCURRENCY", "0")]).await;
    let mut c = cluster.client().await;
    let mut all = Vec::new();
    for i in 0..250 {
        let req = if i % 5 == 0 {
            CreateTaskRequest {
                name: format!("Special {i}"),
                ..sleep_task("1s")
            }
        } else {
            echo(&format!("job {i}"))
        };
        all.push(create(&mut c, req).await.id);
    }
    let killed: Vec<String> = all.iter().take(10).cloned().collect();
    c.tasks
        .kill_tasks(TaskIds {
            ids: killed.clone(),
        })
        .await
        .unwrap();

    let list = |req: ListTasksRequest| {
        let mut c = c.clone();
        async move {
            let mut out = Vec::new();
            let mut token = String::new();
            let mut pages = 0;
            loop {
                let p = c
                    .tasks
                    .list_tasks(ListTasksRequest {
                        page_token: token,
                        ..req.clone()
                    })
                    .await
                    .unwrap()
                    .into_inner();
                pages += 1;
                out.extend(p.tasks.into_iter().map(|t| t.id));
                token = p.next_page_token;
                if token.is_empty() {
                    return (out, pages, p.total);
                }
            }
        }
    };
    let (ids, pages, total) = list(ListTasksRequest {
        page_size: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(total, 250);
    assert!(pages >= 3);
    let expect: Vec<String> = all.iter().rev().cloned().collect();
    assert_eq!(ids, expect, "newest first, every task exactly once");

    let (ids, _, total) = list(ListTasksRequest {
        states: vec![TaskState::Killed as i32],
        page_size: 3,
        ..Default::default()
    })
    .await;
    assert_eq!(total, 10);
    assert_eq!(
        ids.iter().cloned().collect::<HashSet<_>>(),
        killed.iter().cloned().collect()
    );

    let (ids, _, total) = list(ListTasksRequest {
        states: vec![TaskState::Waiting as i32, TaskState::Killed as i32],
        r#type: "sleep".into(),
        page_size: 7,
        ..Default::default()
    })
    .await;
    assert_eq!(total, 50);
    assert_eq!(ids.len(), 50);

    let (ids, _, _) = list(ListTasksRequest {
        text: "special 1".into(),
        page_size: 4,
        ..Default::default()
    })
    .await;
    // "Special 10", "Special 100".."Special 195" step 5, "Special 15": names with "special 1".
    let want = (0..250)
        .filter(|i| i % 5 == 0 && format!("{i}").starts_with('1'))
        .count();
    assert_eq!(ids.len(), want);
}
