//! `/api/v1/tasks…` and the seed's `POST /create_task` and `POST /del_task`.

use crate::actions::tasks::{self as act, Bulk, CreateError, FieldErrors, Outcome, TaskForm};
use crate::respond::{failure_json, json_error};
use crate::state::AppState;
use crate::views::api_task_json;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// `{"error": <the first message>, "fields": {<field>: <message>}}`, the fields named as the
/// form and the JSON body name them.
fn field_errors_json(e: &FieldErrors) -> Value {
    let mut fields = Map::new();
    for (k, v) in [
        ("name", &e.name),
        ("type", &e.kind),
        ("target", &e.target),
        ("interval_secs", &e.interval),
    ] {
        if !v.is_empty() {
            fields.insert(k.into(), Value::String(v.clone()));
        }
    }
    json!({ "error": e.first(), "fields": fields })
}

/// The created task with `created`'s status, or what was wrong (in the same shape whatever
/// the failure, so a client reads `fields` without asking first).
async fn create(st: &AppState, form: &TaskForm, mut created: HttpResponseBuilder) -> HttpResponse {
    match act::create(st, form).await {
        Ok(t) => created.json(api_task_json(&t)),
        Err(CreateError::Fields(f)) => HttpResponse::BadRequest().json(field_errors_json(&f)),
        Err(CreateError::Failed(e)) => {
            HttpResponse::build(e.status()).json(json!({ "error": e.to_string(), "fields": {} }))
        }
    }
}

/// `POST /api/v1/tasks` (JSON): 201 and the task.
pub async fn create_task(st: web::Data<AppState>, body: web::Json<TaskForm>) -> HttpResponse {
    create(&st, &body, HttpResponse::Created()).await
}

/// The seed's `POST /create_task` (form name, target, type): 200 and the task.
pub async fn seed_create_task(st: web::Data<AppState>, form: web::Form<TaskForm>) -> HttpResponse {
    create(&st, &form, HttpResponse::Ok()).await
}

#[derive(serde::Deserialize)]
pub struct Ids {
    ids: Vec<String>,
}

/// `{"results": {id: bool}, "errors": {id: why}}`.
fn outcomes_json(o: &[Outcome]) -> Value {
    let results: BTreeMap<&str, bool> = o.iter().map(|x| (x.id.as_str(), x.ok)).collect();
    let errors: BTreeMap<&str, &str> = o
        .iter()
        .filter(|x| !x.ok)
        .map(|x| (x.id.as_str(), x.error.as_str()))
        .collect();
    json!({ "results": results, "errors": errors })
}

async fn bulk_json(st: &AppState, action: Bulk, ids: Vec<String>) -> HttpResponse {
    match act::kill_or_delete(st, action, ids).await {
        Ok(o) => HttpResponse::Ok().json(outcomes_json(&o)),
        Err(e) => failure_json(&e),
    }
}

pub async fn kill_tasks(st: web::Data<AppState>, body: web::Json<Ids>) -> HttpResponse {
    bulk_json(&st, Bulk::Kill, body.into_inner().ids).await
}

pub async fn delete_tasks(st: web::Data<AppState>, body: web::Json<Ids>) -> HttpResponse {
    bulk_json(&st, Bulk::Delete, body.into_inner().ids).await
}

pub async fn kill_task(st: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    bulk_json(&st, Bulk::Kill, vec![id.into_inner()]).await
}

pub async fn delete_task(st: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    bulk_json(&st, Bulk::Delete, vec![id.into_inner()]).await
}

/// The seed's `POST /del_task` (`{"ids":[..]}`): a map id → whether it was deleted.
pub async fn seed_del_task(st: web::Data<AppState>, body: web::Json<Ids>) -> HttpResponse {
    match act::kill_or_delete(&st, Bulk::Delete, body.into_inner().ids).await {
        Ok(o) => {
            let map: BTreeMap<String, bool> = o.into_iter().map(|x| (x.id, x.ok)).collect();
            HttpResponse::Ok().json(map)
        }
        Err(e) => failure_json(&e),
    }
}

/// `GET /api/v1/tasks` (the filters of [`act::list_request`]): a page of tasks.
pub async fn list_tasks(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    let q: Vec<(String, String)> = match serde_urlencoded::from_str(req.query_string()) {
        Ok(q) => q,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("bad query: {e}")),
    };
    let res = match act::list_request(&q) {
        Ok(lr) => act::list(&st, &lr).await,
        Err(e) => Err(e),
    };
    match res {
        Ok(r) => HttpResponse::Ok().json(json!({
            "tasks": r.tasks.iter().map(api_task_json).collect::<Vec<_>>(),
            "next_page_token": r.next_page_token,
            "total": r.total,
        })),
        Err(e) => failure_json(&e),
    }
}

pub async fn get_task(st: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    match act::get(&st, &id).await {
        Ok(t) => HttpResponse::Ok().json(api_task_json(&t)),
        Err(e) => failure_json(&e),
    }
}
