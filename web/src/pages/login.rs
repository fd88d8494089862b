//! `/login` (the form, and logging in) and `POST /logout`. The rules — the password, the
//! rate limit, the client behind a proxy, the form's own token and cookie — are
//! [`crate::auth`]'s; where a login may lead next is [`safe_next`]'s.

use super::{get, query_pairs};
use crate::auth::{self, Checked, ClientKey};
use crate::respond::{Layout, html, layout};
use crate::state::AppState;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    l: Layout,
    error: String,
    next: String,
    /// The form's token (also in the `gitflock_login` cookie; see [`crate::auth`]).
    token: String,
}

/// Only paths of this dashboard: a `next` that a browser could resolve to another origin would
/// make the login an open redirect. Browsers drop tabs and newlines anywhere in a URL, read
/// `\` as `/`, and take `//host` (so also `/\host` and `/<tab>/host`) as another host; so a
/// `next` must be visible ASCII without a backslash and start with exactly one `/`, and its
/// percent-decoded form must not start with two slashes either (`/%2f%2fhost`, `/%5chost`), in
/// case something on the way decodes it. Anything else goes to `/`.
fn safe_next(next: Option<&str>) -> String {
    let local = |n: &str| {
        n.starts_with('/')
            && !n.starts_with("//")
            && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
    };
    let local_decoded = |n: &str| {
        let n: String = n
            .chars()
            .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
            .collect();
        n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\")
    };
    match next {
        Some(n) if local(n) && local_decoded(&percent_decoded(n)) => n.into(),
        _ => "/".into(),
    }
}

/// `%XX` escapes decoded once (bytes that are not UTF-8 become U+FFFD).
fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_https(req: &HttpRequest) -> bool {
    req.connection_info().scheme() == "https"
}

/// The login page with a form token: the browser's own while it is valid, else a new one.
fn login_page(
    req: &HttpRequest,
    st: &AppState,
    status: StatusCode,
    error: &str,
    next: String,
) -> HttpResponse {
    let token = auth::cookie_value(req, auth::LOGIN_COOKIE)
        .filter(|c| st.auth.valid_login_token(c))
        .map(str::to_string)
        .unwrap_or_else(|| st.auth.new_login_token());
    let mut resp = html(
        status,
        &LoginPage {
            l: layout(req, "Log in", "login"),
            error: error.into(),
            next,
            token: token.clone(),
        },
    );
    if let Ok(v) = header::HeaderValue::from_str(&auth::login_cookie(&token, is_https(req))) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

pub async fn login_form(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    let q = query_pairs(&req);
    let next = safe_next(get(&q, "next"));
    login_page(&req, &st, StatusCode::OK, "", next)
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    csrf: String,
}

pub async fn login(
    req: HttpRequest,
    st: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    let next = safe_next(Some(&form.next));
    // Before anything is counted: a post from another site (or a stale form) is no guess.
    let cookie = auth::cookie_value(&req, auth::LOGIN_COOKIE);
    if !st.auth.check_login_token(cookie, &form.csrf) {
        return login_page(
            &req,
            &st,
            StatusCode::FORBIDDEN,
            "This login form has expired or was not sent by this dashboard: try again.",
            next,
        );
    }
    let client = ClientKey::of(st.auth.client(&req));
    // Counted before the check: parallel posts cannot all pass a check made before any ended.
    let Some(attempt) = st.auth.record_attempt(client) else {
        st.metrics.logins_throttled.inc();
        return login_page(
            &req,
            &st,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed attempts from your address: wait a minute and try again.",
            next,
        );
    };
    let checked = if form.password.is_empty() {
        Checked::Wrong
    } else {
        st.auth.check_password(form.password.clone()).await
    };
    match checked {
        Checked::Right => st.auth.forget_attempt(attempt),
        Checked::Busy => {
            st.auth.forget_attempt(attempt);
            st.metrics.logins_throttled.inc();
            let mut resp = login_page(
                &req,
                &st,
                StatusCode::TOO_MANY_REQUESTS,
                "The dashboard is checking too many logins at once: try again in a moment.",
                next,
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            return resp;
        }
        Checked::Wrong => {
            drop(attempt); // stays counted
            st.metrics.login_failures.inc();
            tracing::warn!(%client, "failed login");
            return login_page(&req, &st, StatusCode::UNAUTHORIZED, "Wrong password.", next);
        }
    }
    let session = st.auth.new_session();
    let cookie = auth::session_cookie(Some(&session), st.auth.session_ttl(), is_https(&req));
    HttpResponse::SeeOther()
        .insert_header((header::SET_COOKIE, cookie))
        .insert_header((header::LOCATION, next))
        .finish()
}

pub async fn logout(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    let cookie = auth::session_cookie(None, st.auth.session_ttl(), is_https(&req));
    HttpResponse::SeeOther()
        .insert_header((header::SET_COOKIE, cookie))
        .insert_header((header::LOCATION, "/login"))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_this_origin_however_a_browser_reads_it() {
        for ok in [
            "/",
            "/tasks?state=RUNNING&page=2",
            "/tasks/0f8f#x",
            "/chain?since=%20",
        ] {
            assert_eq!(safe_next(Some(ok)), ok);
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r/evil.example",
            " //evil.example",
            "/%2f%2fevil.example",
            "/%2F/evil.example",
            "/%5cevil.example",
            "/%09/evil.example",
            "https://evil.example",
            "javascript:alert(1)",
            "evil.example",
            "/t\u{e2}ches",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
