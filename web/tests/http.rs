//! The dashboard over HTTP, against a real cluster (redis-server + gitflock-node processes)
//! and the real gitflock-web binary.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

/// Every page and API route, as (method, path).
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/tasks"),
    ("GET", "/tasks/new"),
    ("GET", "/tasks/0f8fad5b-d9cb-469f-a165-70867728950e"),
    ("GET", "/nodes"),
    ("GET", "/mirrors"),
    ("GET", "/chain"),
    ("GET", "/events"),
    ("GET", "/metrics"),
    ("POST", "/logout"),
    ("POST", "/tasks/new"),
    ("POST", "/tasks/bulk"),
    ("POST", "/tasks/0f8fad5b-d9cb-469f-a165-70867728950e/kill"),
    ("POST", "/tasks/0f8fad5b-d9cb-469f-a165-70867728950e/delete"),
    ("POST", "/mirrors/sync"),
    ("POST", "/chain/write"),
    ("POST", "/chain/block"),
    ("POST", "/create_task"),
    ("POST", "/del_task"),
    ("POST", "/write"),
    ("POST", "/make_block"),
    ("GET", "/api/v1/status"),
    ("GET", "/api/v1/nodes"),
    ("GET", "/api/v1/tasks"),
    ("POST", "/api/v1/tasks"),
    ("POST", "/api/v1/tasks/kill"),
    ("POST", "/api/v1/tasks/delete"),
    ("GET", "/api/v1/tasks/0f8fad5b-d9cb-469f-a165-70867728950e"),
    (
        "DELETE",
        "/api/v1/tasks/0f8fad5b-d9cb-469f-a165-70867728950e",
    ),
    (
        "POST",
        "/api/v1/tasks/0f8fad5b-d9cb-469f-a165-70867728950e/kill",
    ),
    ("GET", "/api/v1/mirrors"),
    ("POST", "/api/v1/mirrors/sync"),
    ("GET", "/api/v1/chain/logs"),
    ("POST", "/api/v1/chain/logs"),
    ("GET", "/api/v1/chain/blocks"),
    ("POST", "/api/v1/chain/blocks"),
    ("GET", "/api/v1/no-such-route"),
    ("GET", "/no-such-page"),
];

#[tokio::test]
async fn every_route_refuses_anonymous_and_wrong_bearer_requests() {
    let c = Cluster::start(1).await;
    let anon = Http::anonymous(&c.web);
    let mut wrong = Http::anonymous(&c.web);
    wrong.bearer = Some("not-the-token-at-all-0123".into());
    let mut forged = Http::anonymous(&c.web);
    forged.cookie =
        Some("gitflock_session=v1.99999999999.0123456789abcdef0123456789abcdef.00".into());
    for (m, path) in ROUTES {
        let method = Method::from_bytes(m.as_bytes()).unwrap();
        for (who, h) in [("anonymous", &anon), ("forged cookie", &forged)] {
            let r = h.req(method.clone(), path).send().await.unwrap();
            let s = r.status().as_u16();
            if *m == "GET"
                && !path.starts_with("/api/")
                && *path != "/events"
                && *path != "/metrics"
            {
                assert_eq!(s, 303, "{who} {m} {path}");
                let loc = r.headers()["location"].to_str().unwrap();
                assert!(loc.starts_with("/login?next="), "{m} {path} → {loc}");
            } else {
                assert_eq!(s, 401, "{who} {m} {path}");
            }
        }
        let s = wrong.req(method, path).send().await.unwrap().status();
        assert_eq!(s, 401, "wrong bearer {m} {path}");
    }
    // The open routes.
    assert_eq!(anon.get_text("/healthz").await.0, 200);
    let (s, login) = anon.get_text("/login").await;
    assert_eq!(s, 200);
    assert!(login.contains("type=\"password\""));
    assert_eq!(anon.get_text("/static/app.css").await.0, 200);
    // Nothing secret in the login page or anywhere a logged-in user looks.
    let user = Http::login(&c.web).await;
    let r = user.req(Method::GET, "/tasks").send().await.unwrap();
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    for page in ["/", "/tasks", "/nodes", "/chain", "/mirrors", "/tasks/new"] {
        let (s, body) = user.get_text(page).await;
        assert_eq!(s, 200, "{page}");
        assert!(
            !body.contains(TOKEN) && !body.contains(PASSWORD),
            "{page} shows a secret"
        );
    }
    assert!(!c.logs().contains(TOKEN), "the token reached a log");
    assert!(!c.logs().contains(PASSWORD), "the password reached a log");
}

#[tokio::test]
async fn state_changing_posts_need_the_csrf_token_of_the_session() {
    let c = Cluster::start(1).await;
    let user = Http::login(&c.web).await;
    let mut no_token = user.clone();
    no_token.csrf = None;
    let mut wrong_token = user.clone();
    wrong_token.csrf = Some("0".repeat(32));

    for h in [&no_token, &wrong_token] {
        let r = h
            .post_form("/tasks/new", &[("type", "echo"), ("target", "x")])
            .await;
        assert_eq!(r.status(), 403);
        let (s, v) = h.post_json("/del_task", json!({"ids": ["x"]})).await;
        assert_eq!(s, 403, "{v}");
        assert!(v["error"].as_str().unwrap().contains("CSRF"));
        let r = h.post_form("/chain/write", &[("content", "x")]).await;
        assert_eq!(r.status(), 403);
    }
    // Nothing was created by the refused posts.
    let (_, v) = user.get_json("/api/v1/tasks").await.unwrap();
    assert_eq!(v["tasks"].as_array().unwrap().len(), 0, "{v}");

    // With the token: accepted.
    let r = user
        .post_form("/tasks/new", &[("type", "echo"), ("target", "csrf ok")])
        .await;
    assert_eq!(r.status(), 303);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with("/tasks/"), "{loc}");
    // A CSRF token from another session does not work.
    let other = Http::login(&c.web).await;
    let mut mixed = user.clone();
    mixed.csrf = other.csrf.clone();
    assert_ne!(other.csrf, user.csrf);
    let r = mixed
        .post_form("/tasks/new", &[("type", "echo"), ("target", "x")])
        .await;
    assert_eq!(r.status(), 403);
    // Bearer clients need no CSRF token.
    let api = Http::bearer(&c.web);
    api.create("echo", "bearer", "b", 0).await;
}

#[tokio::test]
async fn the_login_form_needs_its_own_token_and_cookie() {
    let c = Cluster::start(1).await;
    let anon = Http::anonymous(&c.web);
    let (cookie_a, token_a) = anon.login_form().await;
    let (cookie_b, token_b) = anon.login_form().await;
    assert_ne!(token_a, token_b, "every new form has its own token");
    let post = |cookie: Option<String>, token: Option<String>| {
        let anon = anon.clone();
        async move {
            let mut f = vec![("password", PASSWORD.to_string()), ("next", "/".into())];
            if let Some(t) = token {
                f.push(("csrf", t));
            }
            let mut r = anon.client.post(anon.url("/login")).form(&f);
            if let Some(c) = cookie {
                r = r.header("cookie", c);
            }
            r.send().await.unwrap()
        }
    };
    // The right password, but not from our form: a cross-site post, a stale or mixed form.
    // Six refusals: more than the failed-login allowance, which they do not use up.
    for (what, cookie, token) in [
        ("neither cookie nor token", None, None),
        ("a token without its cookie", None, Some(token_a.clone())),
        ("a cookie without its token", Some(cookie_a.clone()), None),
        (
            "another form's token",
            Some(cookie_a.clone()),
            Some(token_b.clone()),
        ),
        (
            "a forged token",
            Some(format!("gitflock_login={token_a}x")),
            Some(format!("{token_a}x")),
        ),
        (
            "an empty token",
            Some("gitflock_login=".into()),
            Some(String::new()),
        ),
    ] {
        let r = post(cookie, token).await;
        assert_eq!(r.status(), 403, "{what}");
        let sets: Vec<String> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        assert!(
            sets.iter().all(|v| !v.starts_with("gitflock_session=")),
            "{what}: {sets:?}"
        );
        let page = r.text().await.unwrap();
        assert!(
            page.contains("expired or was not sent by this dashboard"),
            "{what}"
        );
        assert!(
            page.contains("name=\"csrf\" value=\"l1."),
            "{what}: a new form to retry"
        );
    }
    // The form's own cookie and token: logged in.
    let r = post(Some(cookie_b), Some(token_b)).await;
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()
            .get_all("set-cookie")
            .iter()
            .any(|v| v.to_str().unwrap().starts_with("gitflock_session=v1."))
    );
}

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
    assert!(page.contains("a whole number of seconds"));
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
}

#[tokio::test]
async fn logins_are_rate_limited() {
    let c = Cluster::start(1).await;
    let anon = Http::anonymous(&c.web);
    for i in 0..5 {
        let r = anon.post_login("guess").await;
        assert_eq!(r.status(), 401, "attempt {i}");
        assert!(r.text().await.unwrap().contains("Wrong password"));
    }
    let r = anon.post_login(PASSWORD).await;
    assert_eq!(
        r.status(),
        429,
        "the right password is refused too while throttled"
    );
    assert!(
        r.headers()
            .get_all("set-cookie")
            .iter()
            .all(|v| !v.to_str().unwrap().starts_with("gitflock_session=")),
        "no session while throttled"
    );
}

#[tokio::test]
async fn the_dashboard_fails_over_when_a_node_dies() {
    let mut c = Cluster::start(2).await;
    let api = Http::bearer(&c.web);
    api.create("echo", "before", "before", 0).await;
    c.cluster.nodes[0].kill9();
    // Every call still answers, through node2.
    for _ in 0..5 {
        let (s, v) = api.get_json("/api/v1/tasks").await.unwrap();
        assert_eq!(s, 200, "{v}");
    }
    let id = api.create("echo", "after", "after", 0).await;
    wait_for(
        "a task created after the failover to finish",
        Duration::from_secs(30),
        || {
            let api = api.clone();
            let id = id.clone();
            async move { (api.task_state(&id).await? == "SUCCEED").then_some(()) }
        },
    )
    .await;
    let (s, m) = api.get_text("/metrics").await;
    assert_eq!(s, 200);
    let failovers: f64 = m
        .lines()
        .find(|l| l.starts_with("gitflock_web_node_failovers_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(failovers >= 1.0, "{m}");
    assert!(
        m.contains(
            "gitflock_web_requests_total{method=\"GET\",route=\"/api/v1/tasks\",status=\"200\"}"
        ),
        "{m}"
    );
    assert!(m.contains("gitflock_web_request_duration_seconds_bucket"));
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
async fn the_webhook_is_open_capped_and_forwarded_to_the_nodes() {
    let c = Cluster::start(1).await;
    let anon = Http::anonymous(&c.web);
    let r = anon
        .req(Method::POST, "/hooks/push")
        .header("x-github-event", "push")
        .body(r#"{"repository":{"clone_url":"https://example.com/a.git"}}"#)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    let v: serde_json::Value = r.json().await.unwrap();
    // No login is asked for: the node answers (401 when the secret does not match, 501 while
    // a node has no Mirrors service, 200 with the sync result).
    assert!(
        !v["error"].as_str().unwrap_or("").contains("login required"),
        "{v}"
    );
    assert!([200, 400, 401, 501].contains(&s), "{s} {v}");
    let big = vec![b'x'; (1 << 20) + 1];
    let r = anon
        .req(Method::POST, "/hooks/push")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
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

#[tokio::test]
async fn a_hashed_password_from_hash_password_logs_in() {
    use std::io::Write;
    let mut p = std::process::Command::new(env!("CARGO_BIN_EXE_gitflock-web"))
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    p.stdin
        .take()
        .unwrap()
        .write_all(b"s3cret passphrase\n")
        .unwrap();
    let out = p.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("s3cret"));

    let dir = tempfile::tempdir().unwrap();
    // No node needs to answer for a login.
    let web = start_web(
        dir.path(),
        &[format!("http://127.0.0.1:{}", free_port())],
        &[
            ("GITFLOCK_WEB_PASSWORD", ""),
            ("GITFLOCK_WEB_PASSWORD_HASH", hash.as_str()),
        ],
    )
    .await;
    let anon = Http::anonymous(&web);
    let r = anon.post_login(PASSWORD).await;
    assert_eq!(r.status(), 401);
    let r = anon.post_login("s3cret passphrase").await;
    assert_eq!(r.status(), 303);
    assert!(r.headers().get("set-cookie").is_some());
    // While no node answers, pages say so (503), they do not fail or hang.
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let mut user = Http::anonymous(&web);
    user.cookie = Some(cookie);
    let (s, body) = user.get_text("/tasks").await;
    assert_eq!(s, 503);
    assert!(body.contains("no node answered"), "{body}");
}

#[tokio::test]
async fn the_dashboard_tells_systemd_when_it_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let web = start_web(
        dir.path(),
        &[format!("http://127.0.0.1:{}", free_port())],
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    )
    .await;
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !(got.iter().any(|m: &String| m == "READY=1") && got.iter().any(|m| m == "WATCHDOG=1")) {
        let n = sock.recv(&mut buf).expect("a notification within 20 s");
        got.push(String::from_utf8_lossy(&buf[..n]).to_string());
    }
    drop(web);
}
