//! The JSON API under `/api/v1`, the seed-compatible routes (`/create_task`, `/del_task`,
//! `/write`, `/make_block`), `/events` (server-sent events) and the push webhook — plus the
//! operations the pages share with them (create with field errors, bulk kill/delete,
//! recent chain entries).
// Handlers return early with the response to send (`Err(HttpResponse)`): it is built once per
// request and returned at once, so boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use crate::app::{AppState, api_error, http_status, json_error, status_message};
use crate::pages::{self, Outcome, WriteForm, list_request};
use crate::views::{self, api_task_json};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_web_lab::sse;
use futures_util::StreamExt;
use gitflock_core::task::{MAX_INTERVAL_SECS, check_id, check_text, check_type_name};
use gitflock_proto::v1::{
    CreateTaskRequest, Empty, GetTaskRequest, ListBlocksRequest, ListMirrorsRequest,
    MakeBlockRequest, ReadLogsRequest, StoredEntry, SyncMirrorsRequest, Task, TaskIds,
    WebhookRequest,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use tonic::{Code, Status};

// ---- creating a task (form and API) ----

/// The create form (also the seed's `/create_task` form and the API's JSON body).
#[derive(serde::Deserialize, Default, Clone, Debug)]
pub struct TaskForm {
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub target: String,
    /// Text in forms, a number or text in JSON.
    #[serde(default, deserialize_with = "number_or_text")]
    pub interval_secs: String,
    #[serde(default)]
    pub request_id: String,
}

fn number_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => String::new(),
        Value::String(s) => s,
        other => other.to_string(),
    })
}
use serde::Deserialize;

/// Per-field messages for the create form (empty: no problem).
#[derive(Default, Debug)]
pub struct FieldErrors {
    pub name: String,
    pub kind: String,
    pub target: String,
    pub interval: String,
    /// A problem not tied to one field (e.g. no node answered).
    pub form: String,
    pub status: StatusCode,
}

impl FieldErrors {
    fn any(&self) -> bool {
        !(self.name.is_empty()
            && self.kind.is_empty()
            && self.target.is_empty()
            && self.interval.is_empty()
            && self.form.is_empty())
    }

    pub fn json(&self) -> Value {
        let mut fields = serde_json::Map::new();
        for (k, v) in [
            ("name", &self.name),
            ("type", &self.kind),
            ("target", &self.target),
            ("interval_secs", &self.interval),
        ] {
            if !v.is_empty() {
                fields.insert(k.into(), Value::String(v.clone()));
            }
        }
        let first = [
            &self.form,
            &self.kind,
            &self.target,
            &self.name,
            &self.interval,
        ]
        .into_iter()
        .find(|s| !s.is_empty())
        .cloned()
        .unwrap_or_default();
        json!({ "error": first, "fields": fields })
    }
}

/// Checks the form locally, then creates the task; a node's INVALID_ARGUMENT is put on the
/// field it is about.
pub async fn create(st: &AppState, f: &TaskForm) -> Result<Task, FieldErrors> {
    let mut errs = FieldErrors {
        status: StatusCode::BAD_REQUEST,
        ..Default::default()
    };
    let kind = f.kind.trim();
    if kind.is_empty() {
        errs.kind = format!("choose a type: {}", pages::KNOWN_TYPES.join(", "));
    } else if let Err(e) = check_type_name(kind) {
        errs.kind = e;
    }
    if let Err(e) = check_text("name", &f.name, gitflock_core::task::MAX_NAME_BYTES, true) {
        errs.name = e;
    }
    if let Err(e) = check_text(
        "target",
        &f.target,
        gitflock_core::task::MAX_TARGET_BYTES,
        true,
    ) {
        errs.target = e;
    }
    let interval = match f.interval_secs.trim() {
        "" => 0,
        t => match t.parse::<u64>() {
            Ok(n) if n <= MAX_INTERVAL_SECS => n,
            Ok(_) => {
                errs.interval = format!("at most {MAX_INTERVAL_SECS} seconds (a year)");
                0
            }
            Err(_) => {
                errs.interval = "a whole number of seconds (0: run once)".into();
                0
            }
        },
    };
    if f.request_id.len() > 64 || f.request_id.chars().any(|c| !c.is_ascii_graphic()) {
        errs.form = "request_id: at most 64 printable characters".into();
    }
    if errs.any() {
        return Err(errs);
    }
    let req = CreateTaskRequest {
        name: f.name.trim().to_string(),
        r#type: kind.to_string(),
        target: f.target.trim().to_string(),
        interval_secs: interval,
        request_id: if f.request_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            f.request_id.clone()
        },
        ..Default::default()
    };
    let res = st
        .pool
        .call("CreateTask", |mut c| {
            let r = req.clone();
            async move { c.tasks.create_task(r).await }
        })
        .await;
    res.map_err(|s| {
        let msg = status_message(st, &s);
        errs.status = http_status(s.code());
        if s.code() == Code::InvalidArgument {
            let m = msg.to_ascii_lowercase();
            if m.contains("type") {
                errs.kind = msg;
            } else if m.contains("interval") {
                errs.interval = msg;
            } else if m.starts_with("name") {
                errs.name = msg;
            } else {
                errs.target = msg;
            }
        } else {
            errs.form = msg;
        }
        errs
    })
}

pub async fn create_task(st: web::Data<AppState>, body: web::Json<TaskForm>) -> HttpResponse {
    match create(&st, &body).await {
        Ok(t) => HttpResponse::Created().json(api_task_json(&t)),
        Err(e) => HttpResponse::build(e.status).json(e.json()),
    }
}

/// The seed's `POST /create_task` (form name, target, type): the created task as JSON.
pub async fn seed_create_task(st: web::Data<AppState>, form: web::Form<TaskForm>) -> HttpResponse {
    match create(&st, &form).await {
        Ok(t) => HttpResponse::Ok().json(api_task_json(&t)),
        Err(e) => HttpResponse::build(e.status).json(e.json()),
    }
}

// ---- kill / delete ----

/// Kills or deletes `ids`; malformed ids get their own outcome instead of failing the rest.
pub async fn bulk(
    st: &AppState,
    action: &'static str,
    ids: Vec<String>,
) -> Result<Vec<Outcome>, HttpResponse> {
    if ids.len() > 1000 {
        return Err(json_error(
            StatusCode::BAD_REQUEST,
            "at most 1000 ids per request",
        ));
    }
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut good = Vec::new();
    for id in ids {
        match check_id(&id) {
            Ok(()) => {
                if !good.contains(&id) {
                    good.push(id)
                }
            }
            Err(e) => outcomes.push(Outcome {
                id: gitflock_core::task::shorten(&id, 64).to_string(),
                ok: false,
                error: e,
            }),
        }
    }
    if !good.is_empty() {
        let res = st
            .pool
            .call(
                if action == "kill" {
                    "KillTasks"
                } else {
                    "DeleteTasks"
                },
                |mut c| {
                    let ids = TaskIds { ids: good.clone() };
                    async move {
                        if action == "kill" {
                            c.tasks.kill_tasks(ids).await
                        } else {
                            c.tasks.delete_tasks(ids).await
                        }
                    }
                },
            )
            .await
            .map_err(|s| api_error(st, &s))?;
        for id in good {
            let ok = res.results.get(&id).copied().unwrap_or(false);
            let error = if ok {
                String::new()
            } else {
                res.errors
                    .get(&id)
                    .map(|e| st.scrub(e))
                    .unwrap_or_else(|| "no effect".into())
            };
            outcomes.push(Outcome { id, ok, error });
        }
    }
    Ok(outcomes)
}

#[derive(serde::Deserialize)]
pub struct Ids {
    ids: Vec<String>,
}

fn outcomes_json(o: &[Outcome]) -> Value {
    let results: BTreeMap<&str, bool> = o.iter().map(|x| (x.id.as_str(), x.ok)).collect();
    let errors: BTreeMap<&str, &str> = o
        .iter()
        .filter(|x| !x.ok)
        .map(|x| (x.id.as_str(), x.error.as_str()))
        .collect();
    json!({ "results": results, "errors": errors })
}

async fn bulk_json(st: &AppState, action: &'static str, ids: Vec<String>) -> HttpResponse {
    if ids.is_empty() {
        return json_error(StatusCode::BAD_REQUEST, "ids is empty");
    }
    match bulk(st, action, ids).await {
        Ok(o) => HttpResponse::Ok().json(outcomes_json(&o)),
        Err(r) => r,
    }
}

pub async fn kill_tasks(st: web::Data<AppState>, body: web::Json<Ids>) -> HttpResponse {
    bulk_json(&st, "kill", body.into_inner().ids).await
}

pub async fn delete_tasks(st: web::Data<AppState>, body: web::Json<Ids>) -> HttpResponse {
    bulk_json(&st, "delete", body.into_inner().ids).await
}

pub async fn kill_task(st: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    bulk_json(&st, "kill", vec![id.into_inner()]).await
}

pub async fn delete_task(st: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    bulk_json(&st, "delete", vec![id.into_inner()]).await
}

/// The seed's `POST /del_task` (`{"ids":[..]}`): a map id → whether it was deleted.
pub async fn seed_del_task(st: web::Data<AppState>, body: web::Json<Ids>) -> HttpResponse {
    let ids = body.into_inner().ids;
    if ids.is_empty() {
        return json_error(StatusCode::BAD_REQUEST, "ids is empty");
    }
    match bulk(&st, "delete", ids).await {
        Ok(o) => {
            let map: BTreeMap<String, bool> = o.into_iter().map(|x| (x.id, x.ok)).collect();
            HttpResponse::Ok().json(map)
        }
        Err(r) => r,
    }
}

// ---- reads ----

pub async fn status(st: web::Data<AppState>) -> HttpResponse {
    match st
        .pool
        .call(
            "Status",
            |mut c| async move { c.nodes.status(Empty {}).await },
        )
        .await
    {
        Ok(s) => HttpResponse::Ok().json(views::status_json(&s)),
        Err(e) => api_error(&st, &e),
    }
}

pub async fn nodes(st: web::Data<AppState>) -> HttpResponse {
    match st
        .pool
        .call("ListNodes", |mut c| async move {
            c.nodes.list_nodes(Empty {}).await
        })
        .await
    {
        Ok(l) => HttpResponse::Ok().json(l.nodes.iter().map(views::node_json).collect::<Vec<_>>()),
        Err(e) => api_error(&st, &e),
    }
}

pub async fn list_tasks(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    let q: Vec<(String, String)> = match serde_urlencoded::from_str(req.query_string()) {
        Ok(q) => q,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("bad query: {e}")),
    };
    let lr = match list_request(&q) {
        Ok(r) => r,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, e),
    };
    let res = st
        .pool
        .call("ListTasks", |mut c| {
            let lr = lr.clone();
            async move { c.tasks.list_tasks(lr).await }
        })
        .await;
    match res {
        Ok(r) => HttpResponse::Ok().json(json!({
            "tasks": r.tasks.iter().map(api_task_json).collect::<Vec<_>>(),
            "next_page_token": r.next_page_token,
            "total": r.total,
        })),
        Err(e) => api_error(&st, &e),
    }
}

pub async fn get_task(st: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    let id = id.into_inner();
    if let Err(e) = check_id(&id) {
        return json_error(StatusCode::BAD_REQUEST, e);
    }
    match st
        .pool
        .call("GetTask", |mut c| {
            let id = id.clone();
            async move { c.tasks.get_task(GetTaskRequest { id }).await }
        })
        .await
    {
        Ok(t) => HttpResponse::Ok().json(api_task_json(&t)),
        Err(e) => api_error(&st, &e),
    }
}

pub async fn mirrors(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    let q: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let find = |k: &str| {
        q.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (text, page_token) = (find("q"), find("page"));
    let page_size = match find("size").as_str() {
        "" => 100,
        s => match s.parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => return json_error(StatusCode::BAD_REQUEST, "size: a number from 1 to 1000"),
        },
    };
    if text.len() > 256 || page_token.len() > 512 {
        return json_error(StatusCode::BAD_REQUEST, "q or page too long");
    }
    let res = st
        .pool
        .call("Mirrors.List", |mut c| {
            let r = ListMirrorsRequest {
                text: text.clone(),
                page_size,
                page_token: page_token.clone(),
            };
            async move { c.mirrors.list_mirrors(r).await }
        })
        .await;
    match res {
        Ok(m) => HttpResponse::Ok().json(json!({
            "mirrors": m.mirrors.iter().map(views::mirror_json).collect::<Vec<_>>(),
            "next_page_token": m.next_page_token,
            "total": m.total,
            "list": m.list.map(|l| json!({
                "url": st.scrub(&l.url), "last_sync": gitflock_core::task::rfc3339(l.last_sync),
                "commit": l.commit, "entries": l.entries, "last_error": st.scrub(&l.last_error),
            })),
        })),
        Err(e) if e.code() == Code::Unimplemented => json_error(
            StatusCode::NOT_IMPLEMENTED,
            "mirrors not available: the nodes do not serve the Mirrors API yet",
        ),
        Err(e) => api_error(&st, &e),
    }
}

#[derive(serde::Deserialize)]
pub struct Urls {
    urls: Vec<String>,
}

pub async fn sync_mirrors(st: web::Data<AppState>, body: web::Json<Urls>) -> HttpResponse {
    let urls = body.into_inner().urls;
    if urls.is_empty() || urls.len() > 1000 {
        return json_error(StatusCode::BAD_REQUEST, "urls: 1 to 1000 upstream URLs");
    }
    match st
        .pool
        .call("Mirrors.Sync", |mut c| {
            let urls = urls.clone();
            async move { c.mirrors.sync_mirrors(SyncMirrorsRequest { urls }).await }
        })
        .await
    {
        Ok(r) => HttpResponse::Ok().json(json!({ "synced": r.synced, "unknown": r.unknown })),
        Err(e) => api_error(&st, &e),
    }
}

// ---- chain ----

async fn read_range(st: &AppState, since: u64, limit: u64) -> Result<Vec<StoredEntry>, Status> {
    st.pool
        .call("ReadLogs", |mut c| async move {
            let resp = c
                .chain
                .read_logs(ReadLogsRequest {
                    since,
                    since_time: String::new(),
                    follow: false,
                    limit,
                    tail: 0,
                })
                .await?;
            let (meta, mut stream, ext) = resp.into_parts();
            let mut out = Vec::new();
            while let Some(e) = stream.message().await? {
                out.push(e);
            }
            Ok(tonic::Response::from_parts(meta, out, ext))
        })
        .await
}

/// The newest `n` entries (oldest first) and the chain's height, in one `tail` read.
pub async fn recent_entries(st: &AppState, n: u64) -> Result<(u64, Vec<StoredEntry>), Status> {
    let entries = st
        .pool
        .call("ReadLogs", |mut c| async move {
            let resp = c
                .chain
                .read_logs(ReadLogsRequest {
                    tail: n.max(1),
                    ..Default::default()
                })
                .await?;
            let (meta, mut stream, ext) = resp.into_parts();
            let mut out = Vec::new();
            while let Some(e) = stream.message().await? {
                out.push(e);
            }
            Ok(tonic::Response::from_parts(meta, out, ext))
        })
        .await?;
    let height = entries.last().map_or(0, |e| e.height);
    Ok((height, entries))
}

pub async fn read_logs(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    let q: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let num = |k: &str, default: u64, max: u64| -> Result<u64, String> {
        match q.iter().find(|(n, _)| n == k) {
            None => Ok(default),
            Some((_, v)) => v
                .parse::<u64>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| format!("{k} {v:?}: a number up to {max}")),
        }
    };
    let (since, limit) = match (num("since", 0, u64::MAX / 2), num("limit", 100, 1000)) {
        (Ok(s), Ok(l)) => (s, l.max(1)),
        (Err(e), _) | (_, Err(e)) => return json_error(StatusCode::BAD_REQUEST, e),
    };
    let res = if since == 0 {
        recent_entries(&st, limit).await.map(|(_, e)| e)
    } else {
        read_range(&st, since, limit).await
    };
    match res {
        Ok(e) => HttpResponse::Ok().json(e.iter().map(views::entry_json).collect::<Vec<_>>()),
        Err(e) => api_error(&st, &e),
    }
}

async fn write_entry(st: &AppState, form: WriteForm) -> HttpResponse {
    let entry = match pages::log_entry(&form) {
        Ok(e) => e,
        Err(msg) => return json_error(StatusCode::BAD_REQUEST, msg),
    };
    match st
        .pool
        .call("WriteLog", |mut c| {
            let e = entry.clone();
            async move { c.chain.write_log(e).await }
        })
        .await
    {
        Ok(r) => HttpResponse::Ok().json(json!({
            "first_height": r.first_height, "last_height": r.last_height, "count": r.count,
        })),
        Err(e) => api_error(st, &e),
    }
}

pub async fn write_log(st: web::Data<AppState>, body: web::Json<WriteFormJson>) -> HttpResponse {
    let b = body.into_inner();
    write_entry(
        &st,
        WriteForm {
            level: b.level,
            content: b.content,
            create_at: b.create_at,
        },
    )
    .await
}

#[derive(serde::Deserialize)]
pub struct WriteFormJson {
    #[serde(default)]
    level: String,
    #[serde(default)]
    content: String,
    #[serde(default)]
    create_at: String,
}

/// The seed's `POST /write` (form create_at, level, content).
pub async fn seed_write(st: web::Data<AppState>, form: web::Form<WriteForm>) -> HttpResponse {
    write_entry(&st, form.into_inner()).await
}

pub async fn blocks(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    let q: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let node = q
        .iter()
        .find(|(k, _)| k == "node")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    if !node.is_empty()
        && let Err(e) = gitflock_core::config::check_node_name(&node)
    {
        return json_error(StatusCode::BAD_REQUEST, format!("node: {e}"));
    }
    match st
        .pool
        .call("ListBlocks", |mut c| {
            let node = node.clone();
            async move {
                c.chain
                    .list_blocks(ListBlocksRequest { node, limit: 0 })
                    .await
            }
        })
        .await
    {
        Ok(b) => {
            HttpResponse::Ok().json(b.blocks.iter().map(views::block_json).collect::<Vec<_>>())
        }
        Err(e) => api_error(&st, &e),
    }
}

#[derive(serde::Deserialize, Default)]
pub struct NodeArg {
    #[serde(default)]
    node: String,
}

async fn block(st: &AppState, node: String) -> HttpResponse {
    if !node.is_empty()
        && let Err(e) = gitflock_core::config::check_node_name(&node)
    {
        return json_error(StatusCode::BAD_REQUEST, format!("node: {e}"));
    }
    match st
        .pool
        .call("MakeBlock", |mut c| {
            let node = node.clone();
            async move { c.chain.make_block(MakeBlockRequest { node }).await }
        })
        .await
    {
        Ok(t) => HttpResponse::Ok().json(api_task_json(&t)),
        Err(e) => api_error(st, &e),
    }
}

pub async fn make_block(st: web::Data<AppState>, body: Option<web::Json<NodeArg>>) -> HttpResponse {
    block(&st, body.map(|b| b.into_inner().node).unwrap_or_default()).await
}

/// The seed's `POST /make_block` (optional form or query field `node`).
pub async fn seed_make_block(
    req: HttpRequest,
    st: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    let mut pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    pairs.extend(serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body).unwrap_or_default());
    let node = pairs
        .into_iter()
        .find(|(k, _)| k == "node")
        .map(|(_, v)| v)
        .unwrap_or_default();
    block(&st, node).await
}

// ---- live events ----

pub async fn events(st: web::Data<AppState>) -> impl actix_web::Responder {
    let rx = st.hub.subscribe();
    let gauge = st.metrics.sse_clients.clone();
    gauge.inc();
    /// Lowers the gauge when the browser goes away and the stream is dropped.
    struct Leave(prometheus::IntGauge);
    impl Drop for Leave {
        fn drop(&mut self) {
            self.0.dec();
        }
    }
    let leave = Leave(gauge);
    let hello = futures_util::stream::once(async {
        Ok::<_, std::convert::Infallible>(sse::Event::Data(sse::Data::new("{}").event("hello")))
    });
    let live = tokio_stream::wrappers::BroadcastStream::new(rx).map(move |item| {
        let _keep = &leave;
        Ok::<_, std::convert::Infallible>(match item {
            Ok(ev) => sse::Event::Data(sse::Data::new(ev.data.to_string()).event(ev.name)),
            Err(_) => sse::Event::Data(sse::Data::new("{}").event("resync")),
        })
    });
    sse::Sse::from_stream(hello.chain(live)).with_keep_alive(Duration::from_secs(15))
}

// ---- webhook ----

/// `POST /hooks/push`: a forge's push notification, handed verbatim to `Mirrors.Webhook`
/// (which checks the webhook secret). Open route: no login, no CSRF; body capped at 1 MiB.
pub async fn webhook(req: HttpRequest, st: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let mut headers = std::collections::HashMap::new();
    for (name, value) in req.headers() {
        if let Ok(v) = value.to_str() {
            headers
                .entry(name.as_str().to_ascii_lowercase())
                .and_modify(|e: &mut String| {
                    e.push_str(", ");
                    e.push_str(v)
                })
                .or_insert_with(|| v.to_string());
        }
    }
    let res = st
        .pool
        .call("Mirrors.Webhook", |mut c| {
            let r = WebhookRequest {
                headers: headers.clone(),
                body: body.to_vec(),
            };
            async move { c.mirrors.webhook(r).await }
        })
        .await;
    match res {
        Ok(r) => HttpResponse::Ok().json(json!({ "synced": r.synced, "unknown": r.unknown })),
        Err(e) if e.code() == Code::Unauthenticated => json_error(
            StatusCode::UNAUTHORIZED,
            "webhook signature or token does not match",
        ),
        Err(e) => api_error(&st, &e),
    }
}
