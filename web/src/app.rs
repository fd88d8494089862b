//! The wiring: shared state, the route table, the HTTP server with readiness and the
//! systemd watchdog, and the small responses every module shares (errors, static files).

use crate::auth::{self, Auth};
use crate::config::WebConfig;
use crate::live::Hub;
use crate::metrics::Metrics;
use crate::{api, pages};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, Error, HttpRequest, HttpResponse, HttpServer, web};
use gitflock_client::Pool;
use std::sync::Arc;
use std::time::Instant;
use tonic::{Code, Status};

/// Everything a handler needs; one per process, shared by the workers.
pub struct AppState {
    pub pool: Arc<Pool>,
    pub auth: Auth,
    pub metrics: Arc<Metrics>,
    pub hub: Arc<Hub>,
    /// Scrubbed from every message a node sends back before it is shown (defence in depth:
    /// the nodes never echo the token, but a page must not be the place where it leaks).
    token: String,
}

impl AppState {
    /// Builds the state and starts the live followers (needs a running tokio runtime).
    pub fn new(cfg: &WebConfig) -> Result<AppState, String> {
        let metrics = Arc::new(Metrics::new());
        let pool = Arc::new(Pool::new(&cfg.nodes, &cfg.token, metrics.clone()).map_err(|e| e.0)?);
        let hub = Hub::start(pool.clone(), metrics.clone());
        Ok(AppState {
            pool,
            auth: Auth::new(cfg.password.clone(), cfg.token.clone(), cfg.session),
            metrics,
            hub,
            token: cfg.token.clone(),
        })
    }

    /// A node's message, safe to show: URL credentials and the cluster token masked.
    pub fn scrub(&self, text: &str) -> String {
        let t = gitflock_core::redact::redact(text);
        if !self.token.is_empty() && t.contains(&self.token) {
            t.replace(&self.token, "***")
        } else {
            t
        }
    }
}

/// The HTTP status for a node's gRPC answer.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted | Code::FailedPrecondition => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// What a user reads when a call failed.
pub fn status_message(st: &AppState, s: &Status) -> String {
    match s.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => format!(
            "no node answered ({}): is the cluster up? The dashboard tries every node in [web] nodes.",
            st.scrub(s.message())
        ),
        Code::Unauthenticated => {
            "the nodes refused the dashboard's token: check [cluster] token".into()
        }
        _ => st.scrub(s.message()),
    }
}

pub fn json_error(status: StatusCode, msg: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({ "error": msg.into() }))
}

pub fn api_error(st: &AppState, s: &Status) -> HttpResponse {
    json_error(http_status(s.code()), status_message(st, s))
}

const APP_CSS: &str = include_str!("../../static/app.css");
const APP_JS: &str = include_str!("../../static/app.js");
const FAVICON: &str = include_str!("../../static/favicon.svg");

/// The assets are compiled in: the dashboard works offline and from any directory.
async fn static_file(path: web::Path<String>) -> HttpResponse {
    let (body, mime) = match path.as_str() {
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "favicon.svg" => (FAVICON, "image/svg+xml"),
        _ => return HttpResponse::NotFound().body("no such file"),
    };
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, mime))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body)
}

async fn favicon() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "image/svg+xml"))
        .body(FAVICON)
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "ok": true }))
}

async fn metrics_text(st: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/plain; version=0.0.4"))
        .body(st.metrics.render())
}

/// Counts and times every request by its route pattern.
async fn observe(
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

fn bad_request_json(msg: String) -> actix_web::Error {
    actix_web::error::InternalError::from_response(
        msg.clone(),
        json_error(StatusCode::BAD_REQUEST, msg),
    )
    .into()
}

/// The route table (shared by the binary and the tests).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(1 << 20))
        .app_data(
            web::JsonConfig::default()
                .limit(1 << 20)
                .error_handler(|e, _| bad_request_json(format!("bad JSON body: {e}"))),
        )
        .app_data(
            web::FormConfig::default()
                .limit(1 << 20)
                .error_handler(|e, _| bad_request_json(format!("bad form: {e}"))),
        )
        .app_data(
            web::PathConfig::default()
                .error_handler(|e, _| bad_request_json(format!("bad path: {e}"))),
        )
        .route("/healthz", web::get().to(healthz))
        .route("/metrics", web::get().to(metrics_text))
        .route("/favicon.ico", web::get().to(favicon))
        .route("/static/{file}", web::get().to(static_file))
        .route("/events", web::get().to(api::events))
        .route("/hooks/push", web::post().to(api::webhook))
        // pages and their forms
        .route("/login", web::get().to(pages::login_form))
        .route("/login", web::post().to(pages::login))
        .route("/logout", web::post().to(pages::logout))
        .route("/", web::get().to(pages::overview))
        .route("/tasks", web::get().to(pages::tasks))
        .route("/tasks/new", web::get().to(pages::new_task_form))
        .route("/tasks/new", web::post().to(pages::create_task))
        .route("/tasks/bulk", web::post().to(pages::bulk))
        .route("/tasks/{id}", web::get().to(pages::task))
        .route("/tasks/{id}/kill", web::post().to(pages::kill_task))
        .route("/tasks/{id}/delete", web::post().to(pages::delete_task))
        .route("/nodes", web::get().to(pages::nodes))
        .route("/mirrors", web::get().to(pages::mirrors))
        .route("/mirrors/sync", web::post().to(pages::sync_mirror))
        .route("/chain", web::get().to(pages::chain))
        .route("/chain/write", web::post().to(pages::write_log))
        .route("/chain/block", web::post().to(pages::make_block))
        // the seed's routes
        .route("/create_task", web::post().to(api::seed_create_task))
        .route("/del_task", web::post().to(api::seed_del_task))
        .route("/write", web::post().to(api::seed_write))
        .route("/make_block", web::post().to(api::seed_make_block))
        // the JSON API
        .service(
            web::scope("/api/v1")
                .route("/status", web::get().to(api::status))
                .route("/nodes", web::get().to(api::nodes))
                .route("/tasks", web::get().to(api::list_tasks))
                .route("/tasks", web::post().to(api::create_task))
                .route("/tasks/kill", web::post().to(api::kill_tasks))
                .route("/tasks/delete", web::post().to(api::delete_tasks))
                .route("/tasks/{id}", web::get().to(api::get_task))
                .route("/tasks/{id}", web::delete().to(api::delete_task))
                .route("/tasks/{id}/kill", web::post().to(api::kill_task))
                .route("/mirrors", web::get().to(api::mirrors))
                .route("/mirrors/sync", web::post().to(api::sync_mirrors))
                .route("/chain/logs", web::get().to(api::read_logs))
                .route("/chain/logs", web::post().to(api::write_log))
                .route("/chain/blocks", web::get().to(api::blocks))
                .route("/chain/blocks", web::post().to(api::make_block))
                .default_service(web::to(|| async {
                    json_error(StatusCode::NOT_FOUND, "no such API route")
                })),
        )
        .default_service(web::to(pages::not_found));
}

/// Headers on every response: no framing (clickjacking), no MIME sniffing, no referrer to
/// other sites, and a content security policy that only runs this dashboard's own script
/// (inline `style` attributes are allowed: the bars and meters are sized with them).
pub fn security_headers() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new()
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

/// Serves until SIGTERM / Ctrl-C (actix drains in-flight requests first).
pub async fn serve(cfg: WebConfig) -> std::io::Result<()> {
    let state = web::Data::new(AppState::new(&cfg).map_err(std::io::Error::other)?);
    let listen = cfg.listen;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(from_fn(auth::guard))
            .wrap(security_headers())
            .wrap(from_fn(observe))
            .configure(configure)
    })
    .bind(listen)?
    .shutdown_timeout(10)
    .run();
    tracing::info!(%listen, nodes = ?cfg.nodes, "gitflock-web listening");
    gitflock_core::systemd::ready();
    if let Some(every) = gitflock_core::systemd::watchdog_every() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                gitflock_core::systemd::watchdog();
            }
        });
    }
    let res = server.await;
    gitflock_core::systemd::stopping();
    tracing::info!("gitflock-web stopped");
    res
}

/// The request's address, for the login rate limit (the TCP peer: a proxy in front must be
/// trusted to limit by itself, since forwarded headers can be forged by anyone).
pub fn peer_ip(req: &HttpRequest) -> std::net::IpAddr {
    req.peer_addr()
        .map(|a| a.ip())
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]))
}
