//! The login's defences against the real binary: where `next=` may lead, attempts counted
//! before the password is checked (a parallel burst gets no more guesses than a sequence),
//! password checks bounded, and the client behind a trusted proxy.

use crate::common::*;
use futures_util::future::join_all;
use reqwest::Url;

/// A dashboard whose password is an argon2 hash (checked on the blocking pool, where a burst
/// of posts overlaps), over a node that never answers (a login needs none); `env` after.
async fn hashed_web(dir: &std::path::Path, env: &[(&str, &str)]) -> Web {
    let hash = gitflock_web::auth::hash_password(PASSWORD).unwrap();
    let mut vars = vec![
        ("GITFLOCK_WEB_PASSWORD", ""),
        ("GITFLOCK_WEB_PASSWORD_HASH", hash.as_str()),
    ];
    vars.extend_from_slice(env);
    start_web(dir, &[format!("http://127.0.0.1:{}", free_port())], &vars).await
}

/// Posts the login form (fetched first, as a browser would) with extra request headers.
async fn post_login_as(
    h: &Http,
    password: &str,
    next: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let (cookie, token) = h.login_form().await;
    let mut r = h
        .client
        .post(h.url("/login"))
        .header("cookie", cookie)
        .form(&[("password", password), ("next", next), ("csrf", &token)]);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

/// Posts `n` wrong passwords at once (each from its own form); their statuses.
async fn burst(h: &Http, n: usize, headers: impl Fn(usize) -> Vec<(String, String)>) -> Vec<u16> {
    let mut forms = Vec::new();
    for _ in 0..n {
        forms.push(h.login_form().await);
    }
    let posts = forms.into_iter().enumerate().map(|(i, (cookie, token))| {
        let mut r = h
            .client
            .post(h.url("/login"))
            .header("cookie", cookie)
            .form(&[
                ("password", "a wrong guess"),
                ("next", "/"),
                ("csrf", &token),
            ]);
        for (k, v) in headers(i) {
            r = r.header(k, v);
        }
        async move { r.send().await.unwrap().status().as_u16() }
    });
    join_all(posts).await
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

/// A gauge of the dashboard's `/metrics`.
async fn metric(web: &Web, name: &str) -> i64 {
    let (_, text) = Http::bearer(web).get_text("/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} in /metrics"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn next_after_login_stays_on_the_dashboards_origin() {
    let dir = tempfile::tempdir().unwrap();
    let web = start_web(
        dir.path(),
        &[format!("http://127.0.0.1:{}", free_port())],
        &[],
    )
    .await;
    let anon = Http::anonymous(&web);
    let base = Url::parse(&web.url("/login")).unwrap();
    for next in [
        "//evil.example/",
        "/\\evil.example/",
        "\\\\evil.example/",
        "/\t/evil.example/",
        "/\n/evil.example/",
        "/\r\n/evil.example/",
        "\t//evil.example/",
        " //evil.example/",
        "/%2f%2fevil.example/",
        "/%2F/evil.example/",
        "/%5cevil.example/",
        "https://evil.example/",
        "https:evil.example",
        "javascript:alert(1)",
        "/t\u{e2}ches",
    ] {
        // Where the browser goes after logging in: the Location, resolved the way browsers
        // resolve it (WHATWG: tabs and newlines dropped, `\` read as `/`).
        let r = post_login_as(&anon, PASSWORD, next, &[]).await;
        assert_eq!(r.status(), 303, "{next:?}");
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        let to = base.join(&loc).unwrap();
        assert_eq!(to.origin(), base.origin(), "{next:?} led to {to}");
        assert_eq!(to.path(), "/", "{next:?} led to {to}");
        // The form carries the same refusal.
        let q = serde_urlencoded::to_string([("next", next)]).unwrap();
        let (s, page) = anon.get_text(&format!("/login?{q}")).await;
        assert_eq!(s, 200);
        assert!(page.contains("name=\"next\" value=\"/\""), "{next:?}");
    }
    // A path of the dashboard is where the login leads.
    let next = "/tasks?state=RUNNING&page=2";
    let r = post_login_as(&anon, PASSWORD, next, &[]).await;
    assert_eq!(r.headers()["location"], next);
}

#[tokio::test]
async fn parallel_wrong_passwords_get_no_more_guesses_than_a_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let web = hashed_web(dir.path(), &[]).await;
    let anon = Http::anonymous(&web);
    // Twenty posts at once: each argon2 check takes a while, so all of them are under way
    // before the first ends. Five are checked; the rest are refused unchecked.
    let statuses = burst(&anon, 20, |_| Vec::new()).await;
    assert_eq!(count(&statuses, 401), 5, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 15, "{statuses:?}");
    // The right password is refused too now, and never more than two checks ran at once.
    let r = post_login_as(&anon, PASSWORD, "/", &[]).await;
    assert_eq!(r.status(), 429);
    assert!(
        r.text().await.unwrap().contains("Too many failed attempts"),
        "the throttled page"
    );
    let peak = metric(&web, "gitflock_web_password_checks_peak").await;
    assert!((1..=2).contains(&peak), "peak {peak}");
    assert_eq!(metric(&web, "gitflock_web_password_checks").await, 0);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let proxied = hashed_web(dir.path(), &[("GITFLOCK_WEB_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let via_proxy = Http::anonymous(&proxied);
    let from = |client: &'static str| vec![("x-forwarded-for".to_string(), client.to_string())];
    // An attacker behind the proxy uses up its attempts…
    let statuses = burst(&via_proxy, 8, |_| from("203.0.113.7")).await;
    assert_eq!(count(&statuses, 401), 5, "{statuses:?}");
    let r = post_login_as(
        &via_proxy,
        PASSWORD,
        "/",
        &[("x-forwarded-for", "203.0.113.7")],
    )
    .await;
    assert_eq!(r.status(), 429);
    // …and locks out nobody else behind the same proxy (nor through X-Real-IP).
    let r = post_login_as(
        &via_proxy,
        PASSWORD,
        "/",
        &[("x-forwarded-for", "203.0.113.8")],
    )
    .await;
    assert_eq!(r.status(), 303, "another client of the proxy logs in");
    let r = post_login_as(&via_proxy, PASSWORD, "/", &[("x-real-ip", "198.51.100.2")]).await;
    assert_eq!(r.status(), 303);
    // A hop forged by the client does not move it: the proxy's own hop counts.
    let r = post_login_as(
        &via_proxy,
        PASSWORD,
        "/",
        &[("x-forwarded-for", "198.51.100.9, 203.0.113.7")],
    )
    .await;
    assert_eq!(r.status(), 429);
    // A dozen clients at once: each is checked (or, on a very slow machine, told to come
    // back), never more than two at a time.
    let statuses = burst(&via_proxy, 12, |i| {
        vec![("x-forwarded-for".into(), format!("192.0.2.{}", i + 1))]
    })
    .await;
    assert_eq!(
        count(&statuses, 401) + count(&statuses, 429),
        12,
        "{statuses:?}"
    );
    assert!(count(&statuses, 401) >= 2, "{statuses:?}");
    let peak = metric(&proxied, "gitflock_web_password_checks_peak").await;
    assert!((1..=2).contains(&peak), "peak {peak}");

    // Without trusted proxies, a forwarding header changes nothing: the peer is the client.
    let direct = start_web(
        dir.path(),
        &[format!("http://127.0.0.1:{}", free_port())],
        &[],
    )
    .await;
    let anon = Http::anonymous(&direct);
    for i in 0..5 {
        let ip = format!("203.0.113.{}", 10 + i);
        let r = post_login_as(&anon, "a wrong guess", "/", &[("x-forwarded-for", &ip)]).await;
        assert_eq!(r.status(), 401);
    }
    let r = post_login_as(&anon, PASSWORD, "/", &[("x-forwarded-for", "203.0.113.99")]).await;
    assert_eq!(r.status(), 429, "a forged header does not escape the limit");
}
