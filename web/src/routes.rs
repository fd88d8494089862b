//! The route table — every URL the dashboard answers, in [`configure`] — and what is said about
//! the routes as a whole: which are open ([`is_open`]), which answer HTML and which JSON
//! ([`format`]), and the middleware around them all: [`observe`] (metrics), the security
//! headers, and [`access`] (login and CSRF, by [`crate::guard`]).

use crate::respond::{Format, json_error, refusal};
use crate::state::AppState;
use crate::{api, assets, guard, pages};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::{Error, HttpRequest, web};
use std::time::Instant;

/// The route table (shared by the binary and the tests).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(1 << 20))
        .app_data(
            web::JsonConfig::default()
                .limit(1 << 20)
                .error_handler(|e, req| bad_input(req, format!("bad JSON body: {e}"))),
        )
        .app_data(
            web::FormConfig::default()
                .limit(1 << 20)
                .error_handler(|e, req| bad_input(req, format!("bad form: {e}"))),
        )
        .app_data(
            web::PathConfig::default()
                .error_handler(|e, req| bad_input(req, format!("bad path: {e}"))),
        )
        .route("/healthz", web::get().to(api::cluster::healthz))
        .route("/metrics", web::get().to(api::cluster::metrics))
        .route("/favicon.ico", web::get().to(assets::favicon))
        .route("/static/{file}", web::get().to(assets::static_file))
        .route("/events", web::get().to(api::events::events))
        .route("/hooks/push", web::post().to(api::mirrors::webhook))
        // pages and their forms
        .route("/login", web::get().to(pages::login::login_form))
        .route("/login", web::post().to(pages::login::login))
        .route("/logout", web::post().to(pages::login::logout))
        .route("/", web::get().to(pages::overview::overview))
        .route("/tasks", web::get().to(pages::tasks::tasks))
        .route("/tasks/new", web::get().to(pages::tasks::new_task_form))
        .route("/tasks/new", web::post().to(pages::tasks::create_task))
        .route("/tasks/bulk", web::post().to(pages::tasks::bulk))
        .route("/tasks/{id}", web::get().to(pages::tasks::task))
        .route("/tasks/{id}/kill", web::post().to(pages::tasks::kill_task))
        .route(
            "/tasks/{id}/delete",
            web::post().to(pages::tasks::delete_task),
        )
        .route("/nodes", web::get().to(pages::nodes::nodes))
        .route("/mirrors", web::get().to(pages::mirrors::mirrors))
        .route("/mirrors/sync", web::post().to(pages::mirrors::sync_mirror))
        .route("/chain", web::get().to(pages::chain::chain))
        .route("/chain/write", web::post().to(pages::chain::write_log))
        .route("/chain/block", web::post().to(pages::chain::make_block))
        // the seed's routes (see `SEED_ROUTES`)
        .route("/create_task", web::post().to(api::tasks::seed_create_task))
        .route("/del_task", web::post().to(api::tasks::seed_del_task))
        .route("/write", web::post().to(api::chain::seed_write))
        .route("/make_block", web::post().to(api::chain::seed_make_block))
        // the JSON API
        .service(
            web::scope("/api/v1")
                .route("/status", web::get().to(api::cluster::status))
                .route("/nodes", web::get().to(api::cluster::nodes))
                .route("/tasks", web::get().to(api::tasks::list_tasks))
                .route("/tasks", web::post().to(api::tasks::create_task))
                .route("/tasks/kill", web::post().to(api::tasks::kill_tasks))
                .route("/tasks/delete", web::post().to(api::tasks::delete_tasks))
                .route("/tasks/{id}", web::get().to(api::tasks::get_task))
                .route("/tasks/{id}", web::delete().to(api::tasks::delete_task))
                .route("/tasks/{id}/kill", web::post().to(api::tasks::kill_task))
                .route("/mirrors", web::get().to(api::mirrors::mirrors))
                .route("/mirrors/sync", web::post().to(api::mirrors::sync_mirrors))
                .route("/chain/logs", web::get().to(api::chain::read_logs))
                .route("/chain/logs", web::post().to(api::chain::write_log))
                .route("/chain/blocks", web::get().to(api::chain::blocks))
                .route("/chain/blocks", web::post().to(api::chain::make_block))
                .default_service(web::to(|| async {
                    json_error(StatusCode::NOT_FOUND, "no such API route")
                })),
        )
        .default_service(web::to(pages::not_found));
}

/// The seed's routes: posted like forms (or JSON, `/del_task`), answered in JSON by contract.
const SEED_ROUTES: [&str; 4] = ["/create_task", "/del_task", "/write", "/make_block"];

/// Routes anyone may call: the login form, the health check, the assets, and the webhook
/// (whose own secret the node checks).
pub fn is_open(path: &str) -> bool {
    matches!(path, "/login" | "/healthz" | "/hooks/push" | "/favicon.ico")
        || path.starts_with("/static/")
}

/// What the route at `path` answers in, its refusals included: pages and the forms they post
/// answer HTML; the API, the seed's routes, the event stream, the metrics, the health check
/// and the webhook answer JSON.
pub fn format(method: &Method, path: &str) -> Format {
    let json = path.starts_with("/api/")
        || matches!(path, "/events" | "/metrics" | "/healthz" | "/hooks/push")
        || method == Method::POST && SEED_ROUTES.contains(&path);
    if json { Format::Json } else { Format::Html }
}

/// A request whose body, path or query cannot be read: 400, in the route's format.
fn bad_input(req: &HttpRequest, msg: String) -> Error {
    let resp = refusal(
        req,
        format(req.method(), req.path()),
        StatusCode::BAD_REQUEST,
        msg.clone(),
    );
    actix_web::error::InternalError::from_response(msg, resp).into()
}

/// The login and CSRF middleware ([`crate::guard`]), told which routes are open and how each
/// answers.
pub async fn access(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let open = is_open(req.path());
    let format = format(req.method(), req.path());
    guard::check(req, next, open, format).await
}

/// Counts and times every request by its route pattern.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let res = next.call(req).await;
    if let Some(m) = metrics {
        let status = match &res {
            Ok(r) => r.status().as_u16(),
            Err(e) => e.as_response_error().status_code().as_u16(),
        };
        m.requests
            .with_label_values(&[&route, &method, &status.to_string()])
            .inc();
        m.latency
            .with_label_values(&[&route])
            .observe(started.elapsed().as_secs_f64());
    }
    res
}

/// Headers on every response: no framing (clickjacking), no MIME sniffing, no referrer to
/// other sites, and a content security policy that only runs this dashboard's own script
/// (inline `style` attributes are allowed: the bars and meters are sized with them).
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
             form-action 'self'; base-uri 'none'; object-src 'none'",
        ))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "same-origin"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_their_forms_answer_html_and_programs_json() {
        let (get, post) = (Method::GET, Method::POST);
        for (m, p) in [
            (&get, "/"),
            (&get, "/tasks"),
            (&get, "/no-such-page"),
            (&post, "/login"),
            (&post, "/logout"),
            (&post, "/tasks/new"),
            (&post, "/tasks/bulk"),
            (&post, "/tasks/0f8fad5b-d9cb-469f-a165-70867728950e/kill"),
            (&post, "/mirrors/sync"),
            (&post, "/chain/write"),
            (&post, "/chain/block"),
            // Only posted are the seed's routes JSON: anything else there is a page's 404/405.
            (&get, "/create_task"),
        ] {
            assert_eq!(format(m, p), Format::Html, "{m} {p}");
        }
        for (m, p) in [
            (&get, "/api/v1/tasks"),
            (&post, "/api/v1/tasks"),
            (&get, "/api/v1/no-such-route"),
            (&post, "/create_task"),
            (&post, "/del_task"),
            (&post, "/write"),
            (&post, "/make_block"),
            (&get, "/events"),
            (&get, "/metrics"),
            (&get, "/healthz"),
            (&post, "/hooks/push"),
        ] {
            assert_eq!(format(m, p), Format::Json, "{m} {p}");
        }
    }

    #[test]
    fn only_the_login_health_assets_and_webhook_are_open() {
        for p in [
            "/login",
            "/healthz",
            "/favicon.ico",
            "/static/app.js",
            "/hooks/push",
        ] {
            assert!(is_open(p), "{p}");
        }
        for p in [
            "/",
            "/logout",
            "/metrics",
            "/events",
            "/api/v1/status",
            "/write",
        ] {
            assert!(!is_open(p), "{p}");
        }
    }
}

/// The whole middleware and route stack in process, with every node out of reach: what a
/// refusal or a failure looks like on each kind of route.
#[cfg(test)]
mod answers {
    use super::*;
    use crate::config::{Password, WebConfig};
    use actix_web::middleware::from_fn;
    use actix_web::{App, test};
    use std::time::Duration;

    fn state() -> web::Data<AppState> {
        let cfg = WebConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            // Port 1: refused at once, so every call fails over to nothing (503).
            nodes: vec!["http://127.0.0.1:1".into()],
            tls: Default::default(),
            token: "0123456789abcdef0123".into(),
            password: Password::Plain("correct horse".into()),
            session: Duration::from_secs(60),
            trusted_proxies: Vec::new(),
        };
        web::Data::new(AppState::new(&cfg).unwrap())
    }

    fn kind(resp: &ServiceResponse<impl MessageBody>) -> &str {
        resp.headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[actix_web::test]
    async fn forms_are_answered_with_pages_and_programs_with_json() {
        let st = state();
        let session = st.auth.new_session();
        let csrf = st.auth.csrf_for(&st.auth.check_session(&session).unwrap());
        let cookie = format!("{}={session}", crate::auth::COOKIE);
        let app = test::init_service(
            App::new()
                .app_data(st.clone())
                .wrap(from_fn(access))
                .configure(configure),
        )
        .await;
        let form = |path: &str, body: String| {
            test::TestRequest::post()
                .uri(path)
                .insert_header((header::COOKIE, cookie.clone()))
                .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
                .set_payload(body)
                .to_request()
        };
        const HTML: &str = "text/html";
        const JSON: &str = "application/json";
        let id = "0f8fad5b-d9cb-469f-a165-70867728950e";
        let too_many = format!("action=kill{}", format!("&ids={id}").repeat(1001));
        let (bulk, kill) = (
            format!("action=delete&ids={id}"),
            format!("/tasks/{id}/kill"),
        );
        // Posted with the session's token: (path, the other fields, status, answered in).
        let posts: [(&str, &str, u16, &str); 7] = [
            // Refused by the action before any node is asked.
            ("/tasks/bulk", &too_many, 400, HTML),
            ("/chain/block", "node=..%2Fx", 400, HTML),
            ("/write", "level=loud&content=x", 400, JSON),
            // Failed at the cluster (no node answers).
            ("/tasks/bulk", &bulk, 503, HTML),
            (&kill, "", 503, HTML),
            ("/mirrors/sync", "url=https://example.com/a.git", 503, HTML),
            ("/make_block", "", 503, JSON),
        ];
        for (path, fields, status, want) in posts {
            let resp = test::call_service(&app, form(path, format!("csrf={csrf}&{fields}"))).await;
            assert_eq!(resp.status().as_u16(), status, "{path} {fields:.40}");
            assert!(kind(&resp).starts_with(want), "{path}: {}", kind(&resp));
        }
        // (what, request, status, answered in)
        let cases = [
            (
                "a page form without its CSRF token",
                form("/tasks/new", "type=echo&target=x".into()),
                403,
                HTML,
            ),
            (
                "a seed form without its CSRF token",
                form("/write", "content=x".into()),
                403,
                JSON,
            ),
            (
                "a page form without a session",
                test::TestRequest::post()
                    .uri("/chain/write")
                    .set_form([("content", "x")])
                    .to_request(),
                401,
                HTML,
            ),
            (
                "a page form the handler cannot read",
                test::TestRequest::post()
                    .uri("/chain/block")
                    .insert_header((header::COOKIE, cookie.clone()))
                    .insert_header((crate::auth::CSRF_HEADER, csrf.clone()))
                    .insert_header((header::CONTENT_TYPE, "application/json"))
                    .set_payload("{}")
                    .to_request(),
                400,
                HTML,
            ),
        ];
        for (what, req, status, want) in cases {
            let resp = test::call_service(&app, req).await;
            assert_eq!(resp.status().as_u16(), status, "{what}");
            assert!(kind(&resp).starts_with(want), "{what}: {}", kind(&resp));
        }
    }
}
