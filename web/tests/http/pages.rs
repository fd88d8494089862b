//! The HTML pages and the event stream.

use crate::common::*;
use reqwest::Method;
use std::time::Duration;

#[tokio::test]
async fn a_script_task_name_is_rendered_escaped() {
    let c = Cluster::start(1).await;
    let api = Http::bearer(&c.web);
    let evil = "<script>alert('x')</script>";
    let id = api
        .create("echo", "<img src=x onerror=alert(1)>", evil, 0)
        .await;
    let user = Http::login(&c.web).await;
    wait_for("the task to finish", Duration::from_secs(20), || {
        let api = api.clone();
        let id = id.clone();
        async move { (api.task_state(&id).await? == "SUCCEED").then_some(()) }
    })
    .await;
    for page in [
        "/tasks".to_string(),
        format!("/tasks/{id}"),
        "/".to_string(),
    ] {
        let (s, body) = user.get_text(&page).await;
        assert_eq!(s, 200);
        assert!(
            !body.contains("<script>alert"),
            "{page} renders the name raw"
        );
        assert!(
            !body.contains("<img src=x"),
            "{page} renders the target raw"
        );
        if page != "/" {
            assert!(
                body.contains("&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62;")
                    || body.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"),
                "{page} does not show the escaped name: {}",
                body.split("task-name")
                    .nth(1)
                    .unwrap_or(&body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            );
        }
    }
}

#[tokio::test]
async fn the_create_form_shows_field_level_errors() {
    let c = Cluster::start(1).await;
    let user = Http::login(&c.web).await;
    let r = user
        .post_form(
            "/tasks/new",
            &[("type", ""), ("target", "x"), ("interval_secs", "often")],
        )
        .await;
    assert_eq!(r.status(), 400);
    let page = r.text().await.unwrap();
    assert!(page.contains("id=\"error-type\""), "{page}");
    assert!(page.contains("id=\"error-interval\""), "{page}");
    assert!(page.contains("a duration such as 30s, 5m or 2h"));
    assert!(
        page.contains("value=\"x\""),
        "the form keeps what was typed"
    );
    // The node's own validation lands on the field it is about.
    let r = user
        .post_form("/tasks/new", &[("type", "sleep"), ("target", "forever")])
        .await;
    assert_eq!(r.status(), 400);
    let page = r.text().await.unwrap();
    assert!(page.contains("id=\"error-target\""), "{page}");
    // Every field's error at once, not one per attempt.
    let r = user
        .post_form(
            "/tasks/new",
            &[
                ("type", "mirror"),
                ("target", "ftp://example.com/x.git"),
                ("name", "bad\u{1}name"),
                ("interval_secs", "often"),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    let page = r.text().await.unwrap();
    for field in ["error-target", "error-name", "error-interval"] {
        assert!(page.contains(&format!("id=\"{field}\"")), "{field}: {page}");
    }
    // Durations are welcome here too.
    let r = user
        .post_form(
            "/tasks/new",
            &[("type", "echo"), ("target", "x"), ("interval_secs", "5m")],
        )
        .await;
    assert_eq!(r.status(), 303);
}

#[tokio::test]
async fn events_stream_task_changes_and_cluster_snapshots() {
    let c = Cluster::start(1).await;
    let user = Http::login(&c.web).await;
    let api = Http::bearer(&c.web);
    let mut resp = user.req(Method::GET, "/events").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let id = api.create("echo", "live", "live", 0).await;
    let mut text = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !(text.contains(&format!("\"id\":\"{id}\""))
        && text.contains("SUCCEED")
        && text.contains("event: cluster"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "events seen so far: {text}\n{}",
            c.logs()
        );
        match tokio::time::timeout(Duration::from_secs(5), resp.chunk()).await {
            Ok(Ok(Some(b))) => text.push_str(&String::from_utf8_lossy(&b)),
            other => panic!("event stream ended: {other:?}; so far: {text}"),
        }
    }
    assert!(text.contains("event: task"));
}

#[tokio::test]
async fn chain_and_mirrors_pages_show_real_data() {
    let c = Cluster::start(1).await;
    let user = Http::login(&c.web).await;
    let r = user
        .post_form(
            "/chain/write",
            &[("level", "error"), ("content", "disk <full> on db1")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let r = user
        .post_form("/chain/write", &[("level", "info"), ("content", "  ")])
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("content is empty"));
    let (s, page) = user.get_text("/chain").await;
    assert_eq!(s, 200);
    assert!(
        page.contains("disk &#60;full&#62; on db1") || page.contains("disk &lt;full&gt; on db1"),
        "{page}\n{}",
        c.logs()
    );
    let (s, page) = user.get_text("/mirrors").await;
    assert_eq!(s, 200);
    let (ms, mv) = user.get_json("/api/v1/mirrors").await.unwrap();
    if ms == 501 {
        assert!(page.contains("mirrors not available"), "{page}");
    } else {
        assert_eq!(ms, 200, "{mv}");
        assert!(page.contains("Mirrors"));
    }
}
