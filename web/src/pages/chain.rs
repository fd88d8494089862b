//! `/chain`: the newest log entries of one node's chain (`?node=`, chosen with a selector;
//! by default the node that answers), the blocks pushed, and the two forms — write an entry
//! to that chain (shown again with its error when refused), make a block.

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
    /// The node chosen with `?node=` (empty: the one that answers).
    chosen: String,
    levels: [&'static str; 6],
    form_level: String,
    form_content: String,
    form_at: String,
    form_error: String,
    flash: String,
    error: String,
}

/// The write form: an entry, and whose chain it goes to (empty: the answering node's).
#[derive(serde::Deserialize)]
pub struct WriteForm {
    #[serde(default)]
    level: String,
    #[serde(default)]
    content: String,
    #[serde(default)]
    create_at: String,
    #[serde(default)]
    node: String,
}

/// The page of `chosen`'s chain (empty: the answering node's), with the write form holding
/// `form` and, when refused, `form_error` (then 400).
async fn chain_page(
    req: &HttpRequest,
    st: &AppState,
    chosen: &str,
    form: NewEntry,
    form_error: String,
    flash: String,
) -> HttpResponse {
    let recent = async {
        if chosen.is_empty() {
            chain::recent(st, 30).await
        } else {
            chain::recent_on(st, chosen, 30).await
        }
    };
    let (recent, blocks, cluster) =
        futures_util::future::join3(recent, chain::blocks(st, chosen, 10), cluster::status(st))
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
    let chain_node = entries
        .first()
        .map(|e| e.node.clone())
        .unwrap_or_else(|| chosen.to_string());
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
            chosen: chosen.to_string(),
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

/// `/chain`, or `/chain?node=N` for node N's chain.
pub async fn chain(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    let q = query_pairs(&req);
    let flash = match (get(&q, "written"), get(&q, "block")) {
        (Some(h), _) => format!("Entry written at height {}.", h.parse::<u64>().unwrap_or(0)),
        (_, Some(_)) => "Block task created: the chain tip is being pushed.".into(),
        _ => String::new(),
    };
    let chosen = get(&q, "node").unwrap_or("").trim().to_string();
    chain_page(
        &req,
        &st,
        &chosen,
        NewEntry::default(),
        String::new(),
        flash,
    )
    .await
}

/// `/chain` (or `/chain?node=N`) with `more` query pairs.
fn chain_url(node: &str, more: &[(&str, String)]) -> String {
    let mut pairs: Vec<(&str, String)> = more.to_vec();
    if !node.is_empty() {
        pairs.push(("node", node.to_string()));
    }
    format!(
        "/chain?{}",
        serde_urlencoded::to_string(&pairs).unwrap_or_default()
    )
}

/// `POST /chain/write` (`level`, `content`, `create_at`; `node`: whose chain, empty for the
/// answering node's).
pub async fn write_log(
    req: HttpRequest,
    st: web::Data<AppState>,
    form: web::Form<WriteForm>,
) -> HttpResponse {
    let f = form.into_inner();
    let node = f.node.trim().to_string();
    let entry = NewEntry {
        level: f.level,
        content: f.content,
        create_at: f.create_at,
    };
    let written = if node.is_empty() {
        chain::write(&st, &entry).await
    } else {
        chain::write_on(&st, &node, &entry).await
    };
    match written {
        Ok(r) => see_other(&chain_url(&node, &[("written", r.last_height.to_string())])),
        // Refused here or by the node: the form again, with what is wrong.
        Err(e) if e.code() == Code::InvalidArgument => {
            chain_page(&req, &st, &node, entry, e.to_string(), String::new()).await
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
    let node = form.node.trim();
    match chain::make_block(&st, node).await {
        Ok(_) => see_other(&chain_url(node, &[("block", "1".to_string())])),
        Err(e) => failure_page(&req, &e),
    }
}
