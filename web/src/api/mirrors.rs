//! `/api/v1/mirrors`, `/api/v1/mirrors/sync`, and `POST /hooks/push` (a forge's webhook).

use super::{param, query_pairs};
use crate::actions::{ActionError, mirrors};
use crate::respond::{failure_json, json_error};
use crate::state::AppState;
use crate::views;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use gitflock_proto::v1::SyncMirrorsResponse;
use serde_json::json;
use std::collections::HashMap;
use tonic::Code;

/// `GET /api/v1/mirrors` (`q`, `size` 1–1000, `page`).
pub async fn mirrors(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    let q = query_pairs(&req);
    let page_size = match param(&q, "size").as_str() {
        "" => 100,
        s => match s.parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => return json_error(StatusCode::BAD_REQUEST, "size: a number from 1 to 1000"),
        },
    };
    match mirrors::list(&st, &param(&q, "q"), page_size, &param(&q, "page")).await {
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
        Err(e) => failure_json(&e),
    }
}

fn synced_json(res: Result<SyncMirrorsResponse, ActionError>) -> HttpResponse {
    match res {
        Ok(r) => HttpResponse::Ok().json(json!({ "synced": r.synced, "unknown": r.unknown })),
        Err(e) => failure_json(&e),
    }
}

#[derive(serde::Deserialize)]
pub struct Urls {
    urls: Vec<String>,
}

/// `POST /api/v1/mirrors/sync` (`{"urls": [..]}`).
pub async fn sync_mirrors(st: web::Data<AppState>, body: web::Json<Urls>) -> HttpResponse {
    synced_json(mirrors::sync(&st, body.into_inner().urls).await)
}

/// `POST /hooks/push`: a forge's push notification, handed verbatim to `Mirrors.Webhook`
/// (which checks the webhook secret). Open route: no login, no CSRF; body capped at 1 MiB.
pub async fn webhook(req: HttpRequest, st: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let mut headers = HashMap::new();
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
    match mirrors::webhook(&st, headers, body.to_vec()).await {
        Err(e) if e.code() == Code::Unauthenticated => json_error(
            StatusCode::UNAUTHORIZED,
            "webhook signature or token does not match",
        ),
        res => synced_json(res),
    }
}
