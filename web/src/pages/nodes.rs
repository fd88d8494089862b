//! `/nodes`: every node's role, state, heartbeat and load, and the endpoints the dashboard
//! tries.

use crate::actions::cluster;
use crate::respond::{Layout, failure_page, html, layout};
use crate::state::AppState;
use crate::views::{self, NodeView};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use gitflock_core::clock::now_ms;

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
    let s = match cluster::status(&st).await {
        Ok(s) => s,
        Err(e) => return failure_page(&req, &e),
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
