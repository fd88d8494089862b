//! `/chain`: the newest log entries of the answering node's chain, the blocks pushed, and the
//! two forms — write an entry (shown again with its error when refused), make a block.

use super::{get, query_pairs};
use crate::actions::chain::{self, BlockOf, NewEntry};
use crate::actions::cluster;
use crate::respond::{Layout, failure_page, html, layout, see_other};
use crate::state::AppState;
use crate::views::{self, BlockView};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use gitflock_core::clock::now_ms;
use gitflock_core::log_entry::LEVELS;
use gitflock_proto::v1::StoredEntry;
use tonic::Code;

pub struct EntryView {
    pub height: u64,
    pub commit: String,
    pub short_commit: String,
    pub create_at: String,
    pub level: String,
    pub content: String,
}

impl From<StoredEntry> for EntryView {
    fn from(e: StoredEntry) -> EntryView {
        EntryView {
            short_commit: e.commit.chars().take(10).collect(),
            height: e.height,
            commit: e.commit,
            create_at: e.create_at,
            level: e.level,
            content: e.content,
        }
    }
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

/// The page, with the write form holding `form` and, when refused, `form_error` (then 400).
async fn chain_page(
    req: &HttpRequest,
    st: &AppState,
    form: NewEntry,
    form_error: String,
    flash: String,
) -> HttpResponse {
    let (recent, blocks, cluster) = futures_util::future::join3(
        chain::recent(st, 30),
        chain::blocks(st, "", 10),
        cluster::status(st),
    )
    .await;
    // What could be read is shown; the first failure is said above it.
    let mut error = String::new();
    let (height, entries): (u64, Vec<StoredEntry>) = recent.unwrap_or_else(|e| {
        error = e.to_string();
        (0, Vec::new())
    });
    let now = now_ms();
    let blocks = match blocks {
        Ok(b) => b.iter().map(|b| views::block_view(b, now)).collect(),
        Err(e) => {
            if error.is_empty() {
                error = e.to_string();
            }
            Vec::new()
        }
    };
    let chain_node = entries.first().map(|e| e.node.clone()).unwrap_or_default();
    let status = if form_error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    html(
        status,
        &ChainPage {
            l: layout(req, "Chain", "chain"),
            entries: entries.into_iter().rev().map(EntryView::from).collect(),
            height,
            chain_node,
            blocks,
            nodes: cluster
                .map(|s| s.nodes.iter().map(|n| n.name.clone()).collect())
                .unwrap_or_default(),
            levels: LEVELS,
            // As the node reads it (`WARN ` is `warn`), so the select shows what was chosen.
            form_level: match form.level.trim().to_ascii_lowercase() {
                l if l.is_empty() => "info".into(),
                l => l,
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
    chain_page(&req, &st, NewEntry::default(), String::new(), flash).await
}

/// `POST /chain/write` (`level`, `content`, `create_at`).
pub async fn write_log(
    req: HttpRequest,
    st: web::Data<AppState>,
    form: web::Form<NewEntry>,
) -> HttpResponse {
    let form = form.into_inner();
    match chain::write(&st, &form).await {
        Ok(r) => see_other(&format!("/chain?written={}", r.last_height)),
        // Refused here or by the node: the form again, with what is wrong.
        Err(e) if e.code() == Code::InvalidArgument => {
            chain_page(&req, &st, form, e.to_string(), String::new()).await
        }
        Err(e) => failure_page(&req, &e),
    }
}

/// `POST /chain/block` (`node`, empty for every live node).
pub async fn make_block(
    req: HttpRequest,
    st: web::Data<AppState>,
    form: web::Form<BlockOf>,
) -> HttpResponse {
    match chain::make_block(&st, form.node.trim()).await {
        Ok(_) => see_other("/chain?block=1"),
        Err(e) => failure_page(&req, &e),
    }
}
