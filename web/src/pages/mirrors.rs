//! `/mirrors`: every mirrored upstream (state, owner, head, clone URL), the upstream list, a
//! search, and the "sync now" form.

use super::{get, query_pairs};
use crate::actions::mirrors;
use crate::respond::{Layout, error_page, failure_page, html, layout, see_other};
use crate::state::AppState;
use crate::views::{self, MirrorView};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use gitflock_core::clock::now_ms;
use tonic::Code;

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
    let page_token = get(&q, "page").unwrap_or("");
    let flash = match get(&q, "synced") {
        Some(n) => match n.parse::<u64>().unwrap_or(0) {
            1 => "The mirror will be checked now.".to_string(),
            n => format!("{n} mirrors will be checked now."),
        },
        None => String::new(),
    };
    let mut page = MirrorsPage {
        l: layout(&req, "Mirrors", "mirrors"),
        available: true,
        unavailable: String::new(),
        mirrors: Vec::new(),
        total: 0,
        list: None,
        q: String::new(),
        next_url: String::new(),
        flash,
    };
    match mirrors::list(&st, &text, 100, page_token).await {
        Ok(mut m) => {
            let now = now_ms();
            // A mirror that never synced has no copy and so no owner yet: show the node that
            // runs it, as its task page does.
            let unowned: Vec<usize> = (0..m.mirrors.len())
                .filter(|&i| m.mirrors[i].node.is_empty())
                .collect();
            let runs_on = futures_util::future::join_all(
                unowned
                    .iter()
                    .map(|&i| crate::actions::tasks::get(&st, &m.mirrors[i].task_id)),
            )
            .await;
            for (i, t) in unowned.into_iter().zip(runs_on) {
                if let Ok(t) = t {
                    m.mirrors[i].node = t.node;
                }
            }
            page.mirrors = m
                .mirrors
                .iter()
                .map(|x| views::mirror_view(x, now))
                .collect();
            page.total = m.total;
            page.list = m
                .list
                .as_ref()
                .filter(|u| !u.url.is_empty())
                .map(|u| UpstreamView {
                    url: st.scrub(&u.url),
                    last_sync: views::when(u.last_sync, now),
                    commit: u.commit.chars().take(10).collect(),
                    entries: u.entries,
                    last_error: st.scrub(&u.last_error),
                });
            if !m.next_page_token.is_empty() {
                page.next_url = format!(
                    "/mirrors?{}",
                    serde_urlencoded::to_string([("q", &text), ("page", &m.next_page_token)])
                        .unwrap_or_default()
                );
            }
        }
        Err(e) if e.code() == Code::Unimplemented => {
            page.available = false;
            page.unavailable =
                "mirrors not available: the nodes do not serve the Mirrors API yet (upgrade them)"
                    .into();
        }
        Err(e) => return failure_page(&req, &e),
    }
    page.q = text;
    html(StatusCode::OK, &page)
}

#[derive(serde::Deserialize)]
pub struct SyncForm {
    #[serde(default)]
    url: String,
}

/// `POST /mirrors/sync` (`url`): that mirror is checked now.
pub async fn sync_mirror(
    req: HttpRequest,
    st: web::Data<AppState>,
    form: web::Form<SyncForm>,
) -> HttpResponse {
    let url = form.url.trim();
    if url.is_empty() || url.len() > 4096 {
        return error_page(
            &req,
            StatusCode::BAD_REQUEST,
            "which mirror? (url is empty)",
        );
    }
    match mirrors::sync(&st, vec![url.to_string()]).await {
        Ok(r) => see_other(&format!("/mirrors?synced={}", r.synced.len())),
        Err(e) => failure_page(&req, &e),
    }
}
