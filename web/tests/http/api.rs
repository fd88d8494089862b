//! The JSON API and the seed-compatible routes.

use crate::common::*;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn seed_compatible_routes_behave_as_specified() {
    let c = Cluster::start(1).await;
    let user = Http::login(&c.web).await;
    // POST /create_task (form name, target, type) → the task.
    let r = user
        .post_form(
            "/create_task",
            &[("name", "seed"), ("target", "hello"), ("type", "echo")],
        )
        .await;
    assert_eq!(r.status(), 200);
    let t: serde_json::Value = r.json().await.unwrap();
    assert_eq!(t["name"], "seed");
    assert_eq!(t["type"], "echo");
    let id = t["id"].as_str().unwrap().to_string();
    // A bad type: 400 with the field named.
    let r = user
        .post_form(
            "/create_task",
            &[("name", "x"), ("target", "y"), ("type", "nosuch")],
        )
        .await;
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["fields"]["type"].as_str().is_some(), "{v}");

    // POST /del_task {"ids":[..]} → map id → bool.
    let missing = "0f8fad5b-d9cb-469f-a165-70867728950e";
    let (s, v) = user
        .post_json("/del_task", json!({"ids": [id, missing, "not-an-id"]}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v[&id], true, "{v}");
    assert_eq!(v[missing], false, "{v}");
    assert_eq!(v["not-an-id"], false, "{v}");
    assert_eq!(v.as_object().unwrap().len(), 3);
    assert_eq!(
        user.get_json(&format!("/api/v1/tasks/{id}"))
            .await
            .unwrap()
            .0,
        404
    );
    let (s, _) = user.post_json("/del_task", json!({"nope": 1})).await;
    assert_eq!(s, 400);

    // POST /write (form create_at, level, content) → heights.
    let r = user
        .post_form(
            "/write",
            &[
                ("create_at", ""),
                ("level", "warn"),
                ("content", "seed entry"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let w: serde_json::Value = r.json().await.unwrap();
    assert_eq!(w["count"], 1, "{w}");
    let r = user
        .post_form(
            "/write",
            &[
                ("create_at", "yesterday"),
                ("level", "info"),
                ("content", "x"),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    let r = user
        .post_form("/write", &[("level", "loud"), ("content", "x")])
        .await;
    assert_eq!(r.status(), 400);
    let (_, logs) = user.get_json("/api/v1/chain/logs").await.unwrap();
    let last = logs.as_array().unwrap().last().cloned().unwrap();
    assert_eq!(last["content"], "seed entry");
    assert_eq!(last["level"], "warn");
    assert_eq!(last["height"], w["last_height"]);

    // POST /make_block → the block task.
    let r = user.post_form("/make_block", &[]).await;
    assert_eq!(r.status(), 200);
    let b: serde_json::Value = r.json().await.unwrap();
    assert_eq!(b["type"], "block", "{b}");
}

#[tokio::test]
async fn api_filters_searches_paginates_and_reports_per_id_outcomes() {
    let c = Cluster::start(1).await;
    let api = Http::bearer(&c.web);
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            api.create("echo", &format!("page-{i}"), &format!("pager {i}"), 0)
                .await,
        );
    }
    let sleeper = api.create("sleep", "60s", "long sleeper", 0).await;
    // Pages of 3 via the keyset token, newest first, no duplicates.
    let mut seen = Vec::new();
    let mut token = String::new();
    for _ in 0..10 {
        let path = format!("/api/v1/tasks?type=echo&size=3&page={token}");
        let (s, v) = api.get_json(&path).await.unwrap();
        assert_eq!(s, 200, "{v}");
        assert!(v["tasks"].as_array().unwrap().len() <= 3);
        for t in v["tasks"].as_array().unwrap() {
            seen.push(t["id"].as_str().unwrap().to_string());
        }
        token = v["next_page_token"].as_str().unwrap().to_string();
        if token.is_empty() {
            break;
        }
    }
    ids.reverse();
    assert_eq!(seen, ids);
    // Search and type filter.
    let (_, v) = api.get_json("/api/v1/tasks?q=PAGE-3").await.unwrap();
    assert_eq!(v["tasks"].as_array().unwrap().len(), 1, "{v}");
    let (_, v) = api.get_json("/api/v1/tasks?type=sleep").await.unwrap();
    assert_eq!(v["tasks"][0]["id"], sleeper.as_str());
    // Bad input is a 400 with a message.
    for bad in [
        "/api/v1/tasks?state=NOPE",
        "/api/v1/tasks?size=0",
        "/api/v1/tasks?size=x",
        "/api/v1/tasks/not-a-uuid",
    ] {
        let (s, v) = api.get_json(bad).await.unwrap();
        assert_eq!(s, 400, "{bad}: {v}");
        assert!(!v["error"].as_str().unwrap().is_empty());
    }
    let (s, v) = api
        .post_json(
            "/api/v1/tasks",
            json!({"type": "echo", "interval_secs": "soon"}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(v["fields"]["interval_secs"].is_string(), "{v}");
    let r = api
        .req(Method::POST, "/api/v1/tasks")
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Bulk kill: per-id outcome.
    wait_for("the sleeper to run", Duration::from_secs(20), || {
        let api = api.clone();
        let id = sleeper.clone();
        async move { (api.task_state(&id).await? == "RUNNING").then_some(()) }
    })
    .await;
    let (s, v) = api
        .post_json("/api/v1/tasks/kill", json!({"ids": [sleeper, "bad"]}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["results"][&sleeper], true, "{v}");
    assert_eq!(v["results"]["bad"], false, "{v}");
    assert!(
        v["errors"]["bad"].as_str().unwrap().contains("malformed"),
        "{v}"
    );
    wait_for("the sleeper killed", Duration::from_secs(20), || {
        let api = api.clone();
        let id = sleeper.clone();
        async move { (api.task_state(&id).await? == "KILLED").then_some(()) }
    })
    .await;
    // The bulk form: per-id outcome on a page.
    let user = Http::login(&c.web).await;
    let r = user
        .post_form(
            "/tasks/bulk",
            &[
                ("action", "delete"),
                ("ids", &ids[0]),
                ("ids", &sleeper),
                ("ids", "0f8fad5b-d9cb-469f-a165-70867728950e"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(
        page.contains(&format!("data-outcome-id=\"{}\" data-ok=\"true\"", ids[0])),
        "{page}"
    );
    assert!(
        page.contains("data-outcome-id=\"0f8fad5b-d9cb-469f-a165-70867728950e\" data-ok=\"false\"")
    );
    assert!(page.contains("2 of 3"), "{page}");
}
