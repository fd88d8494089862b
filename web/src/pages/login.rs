//! `/login` (the form, and logging in) and `POST /logout`. The rules — the password, the
//! rate limit, the form's own token and cookie — are [`crate::auth`]'s.

use super::{get, query_pairs};
use crate::auth;
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

/// Only local paths: a `next` pointing elsewhere would make the login an open redirect.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.into(),
        _ => "/".into(),
    }
}

/// The request's address, for the login rate limit (the TCP peer: a proxy in front must be
/// trusted to limit by itself, since forwarded headers can be forged by anyone).
fn peer_ip(req: &HttpRequest) -> std::net::IpAddr {
    req.peer_addr()
        .map(|a| a.ip())
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]))
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
    let ip = peer_ip(&req);
    let next = safe_next(Some(&form.next));
    if !st.auth.login_allowed(ip) {
        st.metrics.logins_throttled.inc();
        return login_page(
            &req,
            &st,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed attempts from your address: wait a minute and try again.",
            next,
        );
    }
    // Before the password: a post from another site (or a stale form) is no failed guess.
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
    if form.password.is_empty() || !st.auth.check_password(form.password.clone()).await {
        st.auth.login_failed(ip);
        st.metrics.login_failures.inc();
        tracing::warn!(%ip, "failed login");
        return login_page(&req, &st, StatusCode::UNAUTHORIZED, "Wrong password.", next);
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
