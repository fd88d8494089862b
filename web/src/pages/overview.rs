//! `/`: the master, the nodes, the task counts by state and type, the latest failures: tasks
//! that ended RUNTIME_ERROR, and mirrors whose last run failed (a mirror never ends: it
//! stays WAITING however often it fails).

use crate::actions::{cluster, tasks};
use crate::respond::{Layout, failure_page, html, layout};
use crate::state::AppState;
use crate::views::{self, NodeView};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use gitflock_core::clock::now_ms;
use gitflock_core::task::{STATES, state_name};
use gitflock_proto::v1::{ListTasksRequest, Task, TaskState};
use std::collections::HashMap;

/// Failures shown at most.
const FAILURES: usize = 8;
/// Mirror tasks (newest first) looked at for failing ones.
const MIRRORS_LOOKED_AT: u32 = 200;

/// One row of "Recent failures".
pub struct Failure {
    pub id: String,
    pub short_id: String,
    pub name: String,
    pub kind: String,
    pub error: String,
    /// "3 failures in a row" for a task that keeps failing; empty otherwise.
    pub streak: String,
    pub node: String,
    pub when: views::When,
}

/// `t` as a failure row if its last run failed (`ended`: it is RUNTIME_ERROR).
fn failure(t: &Task, ended: bool, now: i64) -> Option<Failure> {
    let last = t.results.first();
    if !ended && last.is_none_or(|r| r.code == 0) {
        return None;
    }
    let streak = t.results.iter().take_while(|r| r.code != 0).count() as u64;
    let v = views::task_view(t, now);
    Some(Failure {
        id: v.id,
        short_id: v.short_id,
        name: v.name,
        kind: v.kind,
        error: v
            .results
            .first()
            .map(|r| r.message.clone())
            .unwrap_or_default(),
        streak: if !ended && streak > 1 {
            views::plural(streak, "failure", "failures") + " in a row"
        } else {
            String::new()
        },
        node: last.map_or(v.node, |r| r.node.clone()),
        when: views::when(last.map_or(t.updated_at, |r| r.finished_at), now),
    })
}

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
    failures: Vec<Failure>,
    /// When a node found that Redis had lost its data, and which node (None: not since this
    /// data began). The nodes made their standing tasks again; other tasks and history of
    /// before are gone.
    data_lost: Option<(views::When, String)>,
}

pub async fn overview(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    let failures = ListTasksRequest {
        states: vec![TaskState::RuntimeError as i32],
        page_size: FAILURES as u32,
        with_results: true,
        ..Default::default()
    };
    let mirrors = ListTasksRequest {
        states: vec![
            TaskState::Waiting as i32,
            TaskState::Inqueue as i32,
            TaskState::Running as i32,
        ],
        r#type: "mirror".into(),
        page_size: MIRRORS_LOOKED_AT,
        with_results: true,
        ..Default::default()
    };
    let (status, fails, mirrors) = futures_util::future::join3(
        cluster::status(&st),
        tasks::list(&st, &failures),
        tasks::list(&st, &mirrors),
    )
    .await;
    let s = match status {
        Ok(s) => s,
        Err(e) => return failure_page(&req, &e),
    };
    let now = now_ms();
    let mut types: Vec<(String, u64)> =
        s.type_counts.iter().map(|(k, v)| (k.clone(), *v)).collect();
    types.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let counts = state_counts(&s.counts);
    // The failures are a bonus: the page stands without them.
    let mut failures: Vec<Failure> = fails
        .map(|r| {
            r.tasks
                .iter()
                .filter_map(|t| failure(t, true, now))
                .collect()
        })
        .unwrap_or_default();
    if let Ok(m) = mirrors {
        failures.extend(m.tasks.iter().filter_map(|t| failure(t, false, now)));
    }
    failures.sort_by_key(|f| std::cmp::Reverse(f.when.ms));
    failures.truncate(FAILURES);
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
            failures,
            data_lost: (s.data_lost_at > 0).then(|| {
                (
                    views::when(s.data_lost_at, now),
                    s.data_lost_noticed_by.clone(),
                )
            }),
        },
    )
}
