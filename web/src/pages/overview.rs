//! `/`: the master, the nodes, the task counts by state and type, the latest failures.

use crate::actions::{cluster, tasks};
use crate::respond::{Layout, failure_page, html, layout};
use crate::state::AppState;
use crate::views::{self, NodeView, TaskView};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use gitflock_core::clock::now_ms;
use gitflock_core::task::{STATES, state_name};
use gitflock_proto::v1::{ListTasksRequest, TaskState};
use std::collections::HashMap;

pub struct Count {
    pub name: &'static str,
    pub class: &'static str,
    pub n: u64,
}

fn state_counts(counts: &HashMap<String, u64>) -> Vec<Count> {
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
    let failures = ListTasksRequest {
        states: vec![TaskState::RuntimeError as i32],
        page_size: 8,
        with_results: true,
        ..Default::default()
    };
    let (status, fails) =
        futures_util::future::join(cluster::status(&st), tasks::list(&st, &failures)).await;
    let s = match status {
        Ok(s) => s,
        Err(e) => return failure_page(&req, &e),
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
            // The failures are a bonus: the page stands without them.
            failures: fails
                .map(|r| r.tasks.iter().map(|t| views::task_view(t, now)).collect())
                .unwrap_or_default(),
        },
    )
}
