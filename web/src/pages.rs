//! The HTML pages (askama templates in `templates/`) and the forms they post.
//!
//! Every form carries the session's CSRF token (checked by [`crate::auth::guard`]); every
//! value is escaped by askama; every failure is a page that says what happened and what to
//! do, with the status code that matches it.
// Handlers return early with the response to send (`Err(HttpResponse)`): it is built once per
// request and returned at once, so boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use crate::api::{self, FieldErrors, TaskForm};
use crate::app::{AppState, http_status, peer_ip, status_message};
use crate::auth::{self, Viewer};
use crate::views::{self, BlockView, MirrorView, NodeView, TaskView, now_ms};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use askama::Template;
use gitflock_core::task::{STATES, parse_state, state_name};
use gitflock_proto::v1::{
    Empty, GetTaskRequest, ListBlocksRequest, ListMirrorsRequest, ListTasksRequest, LogEntry,
    MakeBlockRequest, StoredEntry, SyncMirrorsRequest, TaskState,
};
use tonic::Code;

/// Types offered by the create form and the filter (the node has the final word).
pub const KNOWN_TYPES: [&str; 4] = ["echo", "sleep", "mirror", "block"];

/// What the base template needs on every page.
pub struct Layout {
    pub title: String,
    pub active: &'static str,
    pub csrf: String,
}

fn layout(req: &HttpRequest, title: impl Into<String>, active: &'static str) -> Layout {
    Layout {
        title: title.into(),
        active,
        csrf: req
            .extensions()
            .get::<Viewer>()
            .map(|v| v.csrf.clone())
            .unwrap_or_default(),
    }
}

pub fn html(status: StatusCode, t: &impl Template) -> HttpResponse {
    match t.render() {
        Ok(body) => HttpResponse::build(status)
            .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            HttpResponse::InternalServerError().body("the page could not be rendered")
        }
    }
}

fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_string()))
        .finish()
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    l: Layout,
    status: u16,
    message: String,
}

fn error_page(req: &HttpRequest, status: StatusCode, message: String) -> HttpResponse {
    let l = layout(req, format!("{}", status.as_u16()), "");
    html(
        status,
        &ErrorPage {
            l,
            status: status.as_u16(),
            message,
        },
    )
}

fn grpc_page(req: &HttpRequest, st: &AppState, s: &tonic::Status) -> HttpResponse {
    error_page(req, http_status(s.code()), status_message(st, s))
}

pub async fn not_found(req: HttpRequest) -> HttpResponse {
    error_page(
        &req,
        StatusCode::NOT_FOUND,
        format!("there is no page at {}", req.path()),
    )
}

fn query_pairs(req: &HttpRequest) -> Vec<(String, String)> {
    serde_urlencoded::from_str(req.query_string()).unwrap_or_default()
}

fn get<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

// ---- login ----

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
    let secure = req.connection_info().scheme() == "https";
    let mut resp = html(
        status,
        &LoginPage {
            l: layout(req, "Log in", "login"),
            error: error.into(),
            next,
            token: token.clone(),
        },
    );
    if let Ok(v) = header::HeaderValue::from_str(&auth::login_cookie(&token, secure)) {
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
    let secure = req.connection_info().scheme() == "https";
    let cookie = auth::session_cookie(Some(&st.auth.new_session()), st.auth.session_ttl(), secure);
    HttpResponse::SeeOther()
        .insert_header((header::SET_COOKIE, cookie))
        .insert_header((header::LOCATION, next))
        .finish()
}

pub async fn logout(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    let secure = req.connection_info().scheme() == "https";
    HttpResponse::SeeOther()
        .insert_header((
            header::SET_COOKIE,
            auth::session_cookie(None, st.auth.session_ttl(), secure),
        ))
        .insert_header((header::LOCATION, "/login"))
        .finish()
}

// ---- overview ----

pub struct Count {
    pub name: &'static str,
    pub class: &'static str,
    pub n: u64,
}

fn state_counts(counts: &std::collections::HashMap<String, u64>) -> Vec<Count> {
    STATES
        .iter()
        .map(|s| Count {
            name: state_name(*s),
            class: views::state_class(*s),
            n: counts.get(state_name(*s)).copied().unwrap_or(0),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    l: Layout,
    master: String,
    epoch: u64,
    nodes: Vec<NodeView>,
    alive: usize,
    counts: Vec<Count>,
    total: u64,
    types: Vec<(String, u64)>,
    failures: Vec<TaskView>,
}

pub async fn overview(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    let status = st.pool.call(
        "Status",
        |mut c| async move { c.nodes.status(Empty {}).await },
    );
    let fails = st.pool.call("ListTasks", |mut c| async move {
        c.tasks
            .list_tasks(ListTasksRequest {
                states: vec![TaskState::RuntimeError as i32],
                page_size: 8,
                with_results: true,
                ..Default::default()
            })
            .await
    });
    let (status, fails) = futures_util::future::join(status, fails).await;
    let s = match status {
        Ok(s) => s,
        Err(e) => return grpc_page(&req, &st, &e),
    };
    let now = now_ms();
    let mut types: Vec<(String, u64)> =
        s.type_counts.iter().map(|(k, v)| (k.clone(), *v)).collect();
    types.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let counts = state_counts(&s.counts);
    html(
        StatusCode::OK,
        &OverviewPage {
            l: layout(&req, "Overview", "overview"),
            master: s.master.clone(),
            epoch: s.epoch,
            alive: s.nodes.iter().filter(|n| n.state == "alive").count(),
            nodes: s.nodes.iter().map(|n| views::node_view(n, now)).collect(),
            total: counts.iter().map(|c| c.n).sum(),
            counts,
            types,
            failures: fails
                .map(|r| r.tasks.iter().map(|t| views::task_view(t, now)).collect())
                .unwrap_or_default(),
        },
    )
}

// ---- tasks ----

pub struct StateOpt {
    pub name: &'static str,
    pub class: &'static str,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "tasks.html")]
struct TasksPage {
    l: Layout,
    tasks: Vec<TaskView>,
    total: u64,
    states: Vec<StateOpt>,
    kind: String,
    q: String,
    size: u32,
    filtered: bool,
    first_page: bool,
    first_url: String,
    next_url: String,
    types: [&'static str; 4],
    flash: String,
}

/// The task list query of `/tasks` and `/api/v1/tasks`: `state` (repeatable), `type`, `q`,
/// `size` (1–500), `page` (the token of the page to show).
pub fn list_request(q: &[(String, String)]) -> Result<ListTasksRequest, String> {
    let mut r = ListTasksRequest {
        page_size: 50,
        ..Default::default()
    };
    for (k, v) in q {
        match k.as_str() {
            "state" if !v.is_empty() => {
                for part in v.split(',') {
                    let s = parse_state(part.trim()).ok_or_else(|| {
                        format!(
                            "unknown state {:?}: one of {}",
                            gitflock_core::task::shorten(part, 40),
                            STATES.map(state_name).join(", ")
                        )
                    })?;
                    if !r.states.contains(&(s as i32)) {
                        r.states.push(s as i32);
                    }
                }
            }
            "type" => {
                if !v.is_empty() {
                    gitflock_core::task::check_type_name(v)?;
                }
                r.r#type = v.clone();
            }
            "q" => {
                gitflock_core::task::check_text("search text", v, 256, true)?;
                r.text = v.trim().to_string();
            }
            "size" | "page_size" => {
                r.page_size = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=500).contains(n))
                    .ok_or_else(|| format!("{k} {v:?}: a number from 1 to 500"))?;
            }
            "page" | "page_token" => {
                if v.len() > 512 || v.chars().any(char::is_control) {
                    return Err("page: not a page token".into());
                }
                r.page_token = v.clone();
            }
            "results" => r.with_results = v == "1" || v == "true",
            _ => {}
        }
    }
    Ok(r)
}

fn tasks_url(r: &ListTasksRequest, page: &str) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    for s in &r.states {
        if let Ok(s) = TaskState::try_from(*s) {
            pairs.push(("state", state_name(s).to_string()));
        }
    }
    if !r.r#type.is_empty() {
        pairs.push(("type", r.r#type.clone()));
    }
    if !r.text.is_empty() {
        pairs.push(("q", r.text.clone()));
    }
    if r.page_size != 50 {
        pairs.push(("size", r.page_size.to_string()));
    }
    if !page.is_empty() {
        pairs.push(("page", page.to_string()));
    }
    let qs = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    if qs.is_empty() {
        "/tasks".into()
    } else {
        format!("/tasks?{qs}")
    }
}

pub async fn tasks(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    let q = query_pairs(&req);
    let lr = match list_request(&q) {
        Ok(r) => r,
        Err(e) => return error_page(&req, StatusCode::BAD_REQUEST, e),
    };
    let resp = {
        let lr = lr.clone();
        st.pool
            .call("ListTasks", move |mut c| {
                let lr = lr.clone();
                async move { c.tasks.list_tasks(lr).await }
            })
            .await
    };
    let resp = match resp {
        Ok(r) => r,
        Err(e) => return grpc_page(&req, &st, &e),
    };
    let now = now_ms();
    let flash = match get(&q, "done") {
        Some("deleted") => "Task deleted.".to_string(),
        _ => String::new(),
    };
    html(
        StatusCode::OK,
        &TasksPage {
            l: layout(&req, "Tasks", "tasks"),
            tasks: resp
                .tasks
                .iter()
                .map(|t| views::task_view(t, now))
                .collect(),
            total: resp.total,
            states: STATES
                .iter()
                .map(|s| StateOpt {
                    name: state_name(*s),
                    class: views::state_class(*s),
                    selected: lr.states.contains(&(*s as i32)),
                })
                .collect(),
            kind: lr.r#type.clone(),
            q: lr.text.clone(),
            size: lr.page_size,
            filtered: !lr.states.is_empty() || !lr.r#type.is_empty() || !lr.text.is_empty(),
            first_page: lr.page_token.is_empty(),
            first_url: tasks_url(&lr, ""),
            next_url: if resp.next_page_token.is_empty() {
                String::new()
            } else {
                tasks_url(&lr, &resp.next_page_token)
            },
            types: KNOWN_TYPES,
            flash,
        },
    )
}

#[derive(Template)]
#[template(path = "new_task.html")]
struct NewTaskPage {
    l: Layout,
    form: TaskForm,
    errors: FieldErrors,
    types: [&'static str; 4],
}

pub async fn new_task_form(req: HttpRequest) -> HttpResponse {
    let q = query_pairs(&req);
    let form = TaskForm {
        kind: get(&q, "type").unwrap_or("echo").to_string(),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    };
    html(
        StatusCode::OK,
        &NewTaskPage {
            l: layout(&req, "New task", "tasks"),
            form,
            errors: FieldErrors::default(),
            types: KNOWN_TYPES,
        },
    )
}

pub async fn create_task(
    req: HttpRequest,
    st: web::Data<AppState>,
    form: web::Form<TaskForm>,
) -> HttpResponse {
    let mut form = form.into_inner();
    if form.request_id.is_empty() {
        form.request_id = uuid::Uuid::new_v4().to_string();
    }
    match api::create(&st, &form).await {
        Ok(t) => see_other(&format!("/tasks/{}", t.id)),
        Err(errors) => {
            let status = errors.status;
            html(
                status,
                &NewTaskPage {
                    l: layout(&req, "New task", "tasks"),
                    form,
                    errors,
                    types: KNOWN_TYPES,
                },
            )
        }
    }
}

pub struct Outcome {
    pub id: String,
    pub ok: bool,
    pub error: String,
}

#[derive(Template)]
#[template(path = "bulk.html")]
struct BulkPage {
    l: Layout,
    action: &'static str,
    outcomes: Vec<Outcome>,
    ok_count: usize,
}

pub async fn bulk(req: HttpRequest, st: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let pairs: Vec<(String, String)> = match serde_urlencoded::from_bytes(&body) {
        Ok(p) => p,
        Err(e) => return error_page(&req, StatusCode::BAD_REQUEST, format!("bad form: {e}")),
    };
    let action = match get(&pairs, "action") {
        Some("kill") => "kill",
        Some("delete") => "delete",
        _ => {
            return error_page(
                &req,
                StatusCode::BAD_REQUEST,
                "choose an action: kill or delete".into(),
            );
        }
    };
    let ids: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "ids")
        .map(|(_, v)| v.clone())
        .collect();
    if ids.is_empty() {
        return error_page(
            &req,
            StatusCode::BAD_REQUEST,
            "no task selected: tick the tasks to act on first".into(),
        );
    }
    let outcomes = match api::bulk(&st, action, ids).await {
        Ok(o) => o,
        Err(resp) => return resp,
    };
    let ok_count = outcomes.iter().filter(|o| o.ok).count();
    html(
        StatusCode::OK,
        &BulkPage {
            l: layout(&req, format!("Bulk {action}"), "tasks"),
            action,
            outcomes,
            ok_count,
        },
    )
}

#[derive(Template)]
#[template(path = "task.html")]
struct TaskPage {
    l: Layout,
    t: TaskView,
}

fn check_id_page(req: &HttpRequest, id: &str) -> Result<(), HttpResponse> {
    gitflock_core::task::check_id(id).map_err(|e| error_page(req, StatusCode::BAD_REQUEST, e))
}

pub async fn task(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    let id = id.into_inner();
    if let Err(r) = check_id_page(&req, &id) {
        return r;
    }
    let got = st
        .pool
        .call("GetTask", |mut c| {
            let id = id.clone();
            async move { c.tasks.get_task(GetTaskRequest { id }).await }
        })
        .await;
    match got {
        Ok(t) => {
            let view = views::task_view(&t, now_ms());
            html(
                StatusCode::OK,
                &TaskPage {
                    l: layout(&req, format!("Task {}", view.name), "tasks"),
                    t: view,
                },
            )
        }
        Err(e) if e.code() == Code::NotFound => error_page(
            &req,
            StatusCode::NOT_FOUND,
            format!("there is no task {id} (it may have been deleted)"),
        ),
        Err(e) => grpc_page(&req, &st, &e),
    }
}

async fn one_task_op(
    req: &HttpRequest,
    st: &AppState,
    id: String,
    action: &'static str,
) -> Result<(), HttpResponse> {
    check_id_page(req, &id)?;
    let out = api::bulk(st, action, vec![id.clone()]).await?;
    match out.into_iter().next() {
        Some(o) if o.ok => Ok(()),
        Some(o) => Err(error_page(
            req,
            StatusCode::CONFLICT,
            format!("could not {action} task {id}: {}", o.error),
        )),
        None => Err(error_page(
            req,
            StatusCode::BAD_GATEWAY,
            "the node gave no answer for this task".into(),
        )),
    }
}

pub async fn kill_task(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    let id = id.into_inner();
    match one_task_op(&req, &st, id.clone(), "kill").await {
        Ok(()) => see_other(&format!("/tasks/{id}")),
        Err(r) => r,
    }
}

pub async fn delete_task(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    match one_task_op(&req, &st, id.into_inner(), "delete").await {
        Ok(()) => see_other("/tasks?done=deleted"),
        Err(r) => r,
    }
}

// ---- nodes ----

#[derive(Template)]
#[template(path = "nodes.html")]
struct NodesPage {
    l: Layout,
    master: String,
    epoch: u64,
    nodes: Vec<NodeView>,
    endpoints: Vec<String>,
}

pub async fn nodes(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    let s = match st
        .pool
        .call(
            "Status",
            |mut c| async move { c.nodes.status(Empty {}).await },
        )
        .await
    {
        Ok(s) => s,
        Err(e) => return grpc_page(&req, &st, &e),
    };
    let now = now_ms();
    html(
        StatusCode::OK,
        &NodesPage {
            l: layout(&req, "Nodes", "nodes"),
            master: s.master.clone(),
            epoch: s.epoch,
            nodes: s.nodes.iter().map(|n| views::node_view(n, now)).collect(),
            endpoints: (0..st.pool.len())
                .map(|i| st.pool.url(i).to_string())
                .collect(),
        },
    )
}

// ---- mirrors ----

pub struct UpstreamView {
    pub url: String,
    pub last_sync: views::When,
    pub commit: String,
    pub entries: u32,
    pub last_error: String,
}

#[derive(Template)]
#[template(path = "mirrors.html")]
struct MirrorsPage {
    l: Layout,
    available: bool,
    unavailable: String,
    mirrors: Vec<MirrorView>,
    total: u64,
    list: Option<UpstreamView>,
    q: String,
    next_url: String,
    flash: String,
}

pub async fn mirrors(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    let q = query_pairs(&req);
    let text = get(&q, "q").unwrap_or("").trim().to_string();
    let page_token = get(&q, "page").unwrap_or("").to_string();
    if text.len() > 256 || page_token.len() > 512 {
        return error_page(
            &req,
            StatusCode::BAD_REQUEST,
            "search text or page too long".into(),
        );
    }
    let l = layout(&req, "Mirrors", "mirrors");
    let flash = match get(&q, "synced") {
        Some(n) => format!(
            "{} mirror(s) will be checked now.",
            n.parse::<u32>().unwrap_or(0)
        ),
        None => String::new(),
    };
    let res = st
        .pool
        .call("Mirrors.List", |mut c| {
            let (text, page_token) = (text.clone(), page_token.clone());
            async move {
                c.mirrors
                    .list_mirrors(ListMirrorsRequest {
                        text,
                        page_size: 100,
                        page_token,
                    })
                    .await
            }
        })
        .await;
    let now = now_ms();
    let page = match res {
        Ok(m) => MirrorsPage {
            l,
            available: true,
            unavailable: String::new(),
            mirrors: m
                .mirrors
                .iter()
                .map(|x| views::mirror_view(x, now))
                .collect(),
            total: m.total,
            list: m
                .list
                .as_ref()
                .filter(|u| !u.url.is_empty())
                .map(|u| UpstreamView {
                    url: st.scrub(&u.url),
                    last_sync: views::when(u.last_sync, now),
                    commit: u.commit.chars().take(10).collect(),
                    entries: u.entries,
                    last_error: st.scrub(&u.last_error),
                }),
            next_url: if m.next_page_token.is_empty() {
                String::new()
            } else {
                format!(
                    "/mirrors?{}",
                    serde_urlencoded::to_string([("q", &text), ("page", &m.next_page_token)])
                        .unwrap_or_default()
                )
            },
            q: text,
            flash,
        },
        Err(e) if e.code() == Code::Unimplemented => MirrorsPage {
            l,
            available: false,
            unavailable:
                "mirrors not available: the nodes do not serve the Mirrors API yet (upgrade them)"
                    .into(),
            mirrors: Vec::new(),
            total: 0,
            list: None,
            q: text,
            next_url: String::new(),
            flash,
        },
        Err(e) => return grpc_page(&req, &st, &e),
    };
    html(StatusCode::OK, &page)
}

#[derive(serde::Deserialize)]
pub struct SyncForm {
    #[serde(default)]
    url: String,
}

pub async fn sync_mirror(
    req: HttpRequest,
    st: web::Data<AppState>,
    form: web::Form<SyncForm>,
) -> HttpResponse {
    let url = form.url.trim().to_string();
    if url.is_empty() || url.len() > 4096 {
        return error_page(
            &req,
            StatusCode::BAD_REQUEST,
            "which mirror? (url is empty)".into(),
        );
    }
    let res = st
        .pool
        .call("Mirrors.Sync", |mut c| {
            let urls = vec![url.clone()];
            async move { c.mirrors.sync_mirrors(SyncMirrorsRequest { urls }).await }
        })
        .await;
    match res {
        Ok(r) => see_other(&format!("/mirrors?synced={}", r.synced.len())),
        Err(e) => grpc_page(&req, &st, &e),
    }
}

// ---- chain ----

pub struct EntryView {
    pub height: u64,
    pub commit: String,
    pub short_commit: String,
    pub create_at: String,
    pub level: String,
    pub content: String,
}

#[derive(Template)]
#[template(path = "chain.html")]
struct ChainPage {
    l: Layout,
    entries: Vec<EntryView>,
    height: u64,
    /// Whose chain the entries are (the node that answered).
    chain_node: String,
    blocks: Vec<BlockView>,
    nodes: Vec<String>,
    levels: [&'static str; 6],
    form_level: String,
    form_content: String,
    form_at: String,
    form_error: String,
    flash: String,
    error: String,
}

pub const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "fatal"];

#[derive(serde::Deserialize, Default)]
pub struct WriteForm {
    #[serde(default)]
    pub level: String,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub create_at: String,
}

async fn chain_page(
    req: &HttpRequest,
    st: &AppState,
    form: WriteForm,
    form_error: String,
    flash: String,
) -> HttpResponse {
    let now = now_ms();
    let recent = api::recent_entries(st, 30);
    let blocks = st.pool.call("ListBlocks", |mut c| async move {
        c.chain
            .list_blocks(ListBlocksRequest {
                node: String::new(),
                limit: 10,
            })
            .await
    });
    let status = st.pool.call(
        "Status",
        |mut c| async move { c.nodes.status(Empty {}).await },
    );
    let (recent, blocks, status) = futures_util::future::join3(recent, blocks, status).await;
    let mut error = String::new();
    let (height, entries): (u64, Vec<StoredEntry>) = match recent {
        Ok(r) => r,
        Err(e) => {
            error = status_message(st, &e);
            (0, Vec::new())
        }
    };
    let blocks = match blocks {
        Ok(b) => b.blocks.iter().map(|b| views::block_view(b, now)).collect(),
        Err(e) => {
            if error.is_empty() {
                error = status_message(st, &e);
            }
            Vec::new()
        }
    };
    let chain_node = entries.first().map(|e| e.node.clone()).unwrap_or_default();
    let ok_status = if form_error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    html(
        ok_status,
        &ChainPage {
            l: layout(req, "Chain", "chain"),
            entries: entries
                .into_iter()
                .rev()
                .map(|e| EntryView {
                    short_commit: e.commit.chars().take(10).collect(),
                    height: e.height,
                    commit: e.commit,
                    create_at: e.create_at,
                    level: e.level,
                    content: e.content,
                })
                .collect(),
            height,
            chain_node,
            blocks,
            nodes: status
                .map(|s| s.nodes.iter().map(|n| n.name.clone()).collect())
                .unwrap_or_default(),
            levels: LEVELS,
            form_level: if form.level.is_empty() {
                "info".into()
            } else {
                form.level
            },
            form_content: form.content,
            form_at: form.create_at,
            form_error,
            flash,
            error,
        },
    )
}

pub async fn chain(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    let q = query_pairs(&req);
    let flash = match (get(&q, "written"), get(&q, "block")) {
        (Some(h), _) => format!("Entry written at height {}.", h.parse::<u64>().unwrap_or(0)),
        (_, Some(_)) => "Block task created: the chain tip is being pushed.".into(),
        _ => String::new(),
    };
    chain_page(&req, &st, WriteForm::default(), String::new(), flash).await
}

pub fn log_entry(form: &WriteForm) -> Result<LogEntry, String> {
    let level = if form.level.is_empty() {
        "info"
    } else {
        form.level.as_str()
    };
    if !LEVELS.contains(&level) {
        return Err(format!(
            "level {:?}: one of {}",
            gitflock_core::task::shorten(level, 20),
            LEVELS.join(", ")
        ));
    }
    if form.content.trim().is_empty() {
        return Err("content is empty: write what happened".into());
    }
    if form.content.len() > 64 * 1024 {
        return Err("content is longer than 64 KiB".into());
    }
    if form
        .content
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err("content holds a control character".into());
    }
    let at = form.create_at.trim();
    if !at.is_empty()
        && time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).is_err()
    {
        return Err(format!(
            "create_at {:?}: an RFC 3339 time like 2026-01-02T03:04:05Z, or empty for now",
            gitflock_core::task::shorten(at, 40)
        ));
    }
    Ok(LogEntry {
        level: level.to_string(),
        content: form.content.replace("\r\n", "\n"),
        create_at: at.to_string(),
    })
}

pub async fn write_log(
    req: HttpRequest,
    st: web::Data<AppState>,
    form: web::Form<WriteForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let entry = match log_entry(&form) {
        Ok(e) => e,
        Err(msg) => return chain_page(&req, &st, form, msg, String::new()).await,
    };
    let res = st
        .pool
        .call("WriteLog", |mut c| {
            let e = entry.clone();
            async move { c.chain.write_log(e).await }
        })
        .await;
    match res {
        Ok(r) => see_other(&format!("/chain?written={}", r.last_height)),
        Err(e) if e.code() == Code::InvalidArgument => {
            let msg = status_message(&st, &e);
            chain_page(&req, &st, form, msg, String::new()).await
        }
        Err(e) => grpc_page(&req, &st, &e),
    }
}

#[derive(serde::Deserialize)]
pub struct BlockForm {
    #[serde(default)]
    node: String,
}

pub async fn make_block(
    req: HttpRequest,
    st: web::Data<AppState>,
    form: web::Form<BlockForm>,
) -> HttpResponse {
    let node = form.node.trim().to_string();
    if !node.is_empty()
        && let Err(e) = gitflock_core::config::check_node_name(&node)
    {
        return error_page(&req, StatusCode::BAD_REQUEST, format!("node {node:?}: {e}"));
    }
    let res = st
        .pool
        .call("MakeBlock", |mut c| {
            let node = node.clone();
            async move { c.chain.make_block(MakeBlockRequest { node }).await }
        })
        .await;
    match res {
        Ok(_) => see_other("/chain?block=1"),
        Err(e) => grpc_page(&req, &st, &e),
    }
}
