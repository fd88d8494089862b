//! `/api/v1/status` and `/api/v1/nodes`; the process's own `/healthz` (open) and `/metrics`
//! (Prometheus text, behind the same login as the API).

use crate::actions::cluster;
use crate::respond::failure_json;
use crate::state::AppState;
use crate::views;
use actix_web::http::header;
use actix_web::{HttpResponse, web};

pub async fn status(st: web::Data<AppState>) -> HttpResponse {
    match cluster::status(&st).await {
        Ok(s) => HttpResponse::Ok().json(views::status_json(&s)),
        Err(e) => failure_json(&e),
    }
}

pub async fn nodes(st: web::Data<AppState>) -> HttpResponse {
    match cluster::nodes(&st).await {
        Ok(n) => HttpResponse::Ok().json(n.iter().map(views::node_json).collect::<Vec<_>>()),
        Err(e) => failure_json(&e),
    }
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "ok": true }))
}

pub async fn metrics(st: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/plain; version=0.0.4"))
        .body(st.metrics.render())
}
