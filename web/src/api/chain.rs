//! `/api/v1/chain/logs` and `/api/v1/chain/blocks` (read and write), and the seed's
//! `POST /write` and `POST /make_block`.

use super::{param, query_pairs};
use crate::actions::chain::{self, BlockOf, NewEntry};
use crate::respond::{failure_json, json_error};
use crate::state::AppState;
use crate::views::{self, api_task_json};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

/// `GET /api/v1/chain/logs` (`since` a height, 0: the newest; `limit` up to 1000).
pub async fn read_logs(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    let q = query_pairs(&req);
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
    match chain::read(&st, since, limit).await {
        Ok(e) => HttpResponse::Ok().json(e.iter().map(views::entry_json).collect::<Vec<_>>()),
        Err(e) => failure_json(&e),
    }
}

async fn write(st: &AppState, e: &NewEntry) -> HttpResponse {
    match chain::write(st, e).await {
        Ok(r) => HttpResponse::Ok().json(json!({
            "first_height": r.first_height, "last_height": r.last_height, "count": r.count,
        })),
        Err(e) => failure_json(&e),
    }
}

/// `POST /api/v1/chain/logs` (JSON `level`, `content`, `create_at`): the heights written.
pub async fn write_log(st: web::Data<AppState>, body: web::Json<NewEntry>) -> HttpResponse {
    write(&st, &body).await
}

/// The seed's `POST /write` (form `create_at`, `level`, `content`): the heights written.
pub async fn seed_write(st: web::Data<AppState>, form: web::Form<NewEntry>) -> HttpResponse {
    write(&st, &form).await
}

/// `GET /api/v1/chain/blocks` (`node`, empty: every node).
pub async fn blocks(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    let node = param(&query_pairs(&req), "node");
    match chain::blocks(&st, &node, 0).await {
        Ok(b) => HttpResponse::Ok().json(b.iter().map(views::block_json).collect::<Vec<_>>()),
        Err(e) => failure_json(&e),
    }
}

async fn block(st: &AppState, node: &str) -> HttpResponse {
    match chain::make_block(st, node).await {
        Ok(t) => HttpResponse::Ok().json(api_task_json(&t)),
        Err(e) => failure_json(&e),
    }
}

/// `POST /api/v1/chain/blocks` (optional JSON `{"node": ..}`): the block task.
pub async fn make_block(st: web::Data<AppState>, body: Option<web::Json<BlockOf>>) -> HttpResponse {
    block(&st, &body.map(|b| b.into_inner().node).unwrap_or_default()).await
}

/// The seed's `POST /make_block` (optional form or query field `node`): the block task.
pub async fn seed_make_block(
    req: HttpRequest,
    st: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    let mut pairs = query_pairs(&req);
    pairs.extend(serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body).unwrap_or_default());
    block(&st, &param(&pairs, "node")).await
}
