//! Who may do what: login, sessions, bearer tokens, CSRF, rate limits, password hashes.

use crate::common::*;
use reqwest::Method;
use serde_json::json;

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
