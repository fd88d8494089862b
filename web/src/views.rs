//! Proto messages as the pages and the JSON show them: for pages (`*_view`), times both
//! absolute and relative, states with the CSS class of their colour, result codes by name; for
//! the API and the live events (`*_json`), the JSON shapes, credentials in URLs masked. Pure
//! functions of the message and "now".

use gitflock_core::task::{state_name, task_json};
use gitflock_proto::v1::{
    Block, Mirror, NodeInfo, StatusResponse, StoredEntry, Task, TaskEvent, TaskResult, TaskState,
    task_event,
};
use serde_json::{Value, json};

/// A point in time: `iso` for `<time datetime>`, `rel` as first shown (JS keeps it fresh).
#[derive(Clone, Debug, Default)]
pub struct When {
    pub ms: i64,
    pub iso: String,
    pub rel: String,
}

pub fn when(ms: i64, now: i64) -> When {
    if ms <= 0 {
        return When {
            ms: 0,
            iso: String::new(),
            rel: "never".into(),
        };
    }
    let iso = match gitflock_core::task::rfc3339(ms) {
        Value::String(s) => s,
        _ => String::new(),
    };
    When {
        ms,
        iso,
        rel: relative(now - ms),
    }
}

/// "5s ago", "3m ago", "in 2h"…
pub fn relative(delta_ms: i64) -> String {
    let (future, d) = if delta_ms < 0 {
        (true, (-delta_ms) / 1000)
    } else {
        (false, delta_ms / 1000)
    };
    let s = if d < 1 {
        return "just now".into();
    } else if d < 60 {
        format!("{d}s")
    } else if d < 3600 {
        format!("{}m", d / 60)
    } else if d < 86400 {
        format!("{}h", d / 3600)
    } else {
        format!("{}d", d / 86400)
    };
    if future {
        format!("in {s}")
    } else {
        format!("{s} ago")
    }
}

/// `1 ref`, `2 refs`: a count with its noun.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A URL cut after each `/`, so a page can let it wrap there (`<wbr>`) and nowhere else.
pub fn url_parts(url: &str) -> Vec<String> {
    url.split_inclusive('/').map(str::to_string).collect()
}

pub fn duration_text(ms: i64) -> String {
    if ms < 0 {
        return String::new();
    }
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{}m {}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

pub fn state_class(s: TaskState) -> &'static str {
    match s {
        TaskState::Waiting => "waiting",
        TaskState::Inqueue => "inqueue",
        TaskState::Running => "running",
        TaskState::RuntimeError => "error",
        TaskState::Succeed => "succeed",
        TaskState::Killed => "killed",
    }
}

pub fn code_name(code: i32) -> &'static str {
    match code {
        0 => "ok",
        1 => "error",
        2 => "timeout",
        3 => "killed",
        4 => "handed back",
        _ => "other",
    }
}

#[derive(Clone, Debug)]
pub struct ResultView {
    pub code: i32,
    pub code_name: &'static str,
    pub ok: bool,
    pub message: String,
    pub node: String,
    pub started: When,
    pub finished: When,
    pub took: String,
    pub attempt: u32,
}

#[derive(Clone, Debug)]
pub struct TaskView {
    pub id: String,
    pub short_id: String,
    pub name: String,
    pub kind: String,
    pub target: String,
    pub state: &'static str,
    pub state_class: &'static str,
    pub is_final: bool,
    pub node: String,
    pub attempts: u32,
    pub max_attempts: u32,
    pub interval_secs: u64,
    pub timeout_secs: u64,
    pub runs: u64,
    pub created: When,
    pub updated: When,
    pub due: When,
    pub results: Vec<ResultView>,
}

pub fn task_view(t: &Task, now: i64) -> TaskView {
    let s = t.state();
    TaskView {
        id: t.id.clone(),
        short_id: t.id.chars().take(8).collect(),
        name: t.name.clone(),
        kind: t.r#type.clone(),
        target: gitflock_core::redact::redact(&t.target),
        state: state_name(s),
        state_class: state_class(s),
        is_final: gitflock_core::task::is_final(s),
        node: t.node.clone(),
        attempts: t.attempts,
        max_attempts: t.max_attempts,
        interval_secs: t.interval_secs,
        timeout_secs: t.timeout_secs,
        runs: t.runs,
        created: when(t.created_at, now),
        updated: when(t.updated_at, now),
        due: when(t.due_at, now),
        results: t.results.iter().map(|r| result_view(r, now)).collect(),
    }
}

pub fn result_view(r: &TaskResult, now: i64) -> ResultView {
    ResultView {
        code: r.code,
        code_name: code_name(r.code),
        ok: r.code == 0,
        message: gitflock_core::redact::redact(&r.message),
        node: r.node.clone(),
        started: when(r.started_at, now),
        finished: when(r.finished_at, now),
        took: if r.finished_at > 0 && r.started_at > 0 {
            duration_text(r.finished_at - r.started_at)
        } else {
            String::new()
        },
        attempt: r.attempt,
    }
}

#[derive(Clone, Debug)]
pub struct NodeView {
    pub name: String,
    pub addr: String,
    pub role: String,
    pub state: String,
    pub epoch: u64,
    pub last_heartbeat: When,
    pub running: u32,
    pub concurrency: u32,
    pub load_pct: u32,
    /// `running/concurrency`, or `—` for a dead node (its last report means nothing now).
    pub load: String,
    pub version: String,
    /// Where it serves `/metrics` (`host:port`; empty: not served).
    pub metrics: String,
}

pub fn node_view(n: &NodeInfo, now: i64) -> NodeView {
    NodeView {
        name: n.name.clone(),
        addr: n.addr.clone(),
        role: n.role.clone(),
        state: n.state.clone(),
        epoch: n.epoch,
        last_heartbeat: when(n.last_heartbeat, now),
        running: n.running,
        concurrency: n.concurrency,
        load_pct: if n.state == "dead" {
            0
        } else {
            n.running
                .saturating_mul(100)
                .checked_div(n.concurrency)
                .unwrap_or(0)
                .min(100)
        },
        load: load_text(n),
        version: n.version.clone(),
        metrics: n.metrics.clone(),
    }
}

/// What the Load column shows (the script computes the same from the live JSON).
fn load_text(n: &NodeInfo) -> String {
    if n.state == "dead" {
        "—".into()
    } else {
        format!("{}/{}", n.running, n.concurrency)
    }
}

pub fn node_json(n: &NodeInfo) -> Value {
    json!({
        "name": n.name, "addr": n.addr, "role": n.role, "state": n.state, "epoch": n.epoch,
        "last_heartbeat": gitflock_core::task::rfc3339(n.last_heartbeat),
        "running": n.running, "concurrency": n.concurrency, "version": n.version,
        "metrics": n.metrics,
    })
}

pub fn status_json(s: &StatusResponse) -> Value {
    json!({
        "master": s.master,
        "epoch": s.epoch,
        "nodes": s.nodes.iter().map(node_json).collect::<Vec<_>>(),
        "counts": s.counts,
        "type_counts": s.type_counts,
    })
}

pub fn task_event_json(ev: &TaskEvent) -> Value {
    let kind = match ev.kind() {
        task_event::Kind::Changed => "changed",
        task_event::Kind::Deleted => "deleted",
    };
    match &ev.task {
        Some(t) if kind == "changed" => {
            let mut v = task_json(t);
            v["target"] = Value::String(gitflock_core::redact::redact(&t.target));
            json!({ "kind": kind, "task": v })
        }
        Some(t) => json!({ "kind": kind, "task": { "id": t.id } }),
        None => json!({ "kind": kind, "task": null }),
    }
}

/// The task JSON of the API: PRODUCT.md's form, with credentials in the target masked.
pub fn api_task_json(t: &Task) -> Value {
    let mut v = task_json(t);
    v["target"] = Value::String(gitflock_core::redact::redact(&t.target));
    v
}

#[derive(Clone, Debug)]
pub struct MirrorView {
    pub url: String,
    pub node: String,
    pub path: String,
    pub clone_url: String,
    pub head: String,
    /// `head` with the commit cut to 10 characters (the full one is the tooltip).
    pub head_short: String,
    pub last_fetch: When,
    pub last_change: When,
    pub last_error: String,
    pub task_id: String,
    pub state: &'static str,
    pub state_class: &'static str,
    pub refs: u32,
    /// "1 ref", "12 refs".
    pub refs_text: String,
    pub failures: u32,
    pub next_run: When,
    /// `url` and `clone_url` cut after each `/` (see [`url_parts`]).
    pub url_parts: Vec<String>,
    pub clone_parts: Vec<String>,
}

pub fn mirror_view(m: &Mirror, now: i64) -> MirrorView {
    MirrorView {
        url: gitflock_core::redact::redact(&m.url),
        node: m.node.clone(),
        path: m.path.clone(),
        clone_url: gitflock_core::redact::redact(&m.clone_url),
        head: m.head.clone(),
        head_short: match m.head.split_once(' ') {
            Some((branch, commit)) if commit.len() > 10 => {
                format!("{branch} {}", commit.chars().take(10).collect::<String>())
            }
            _ => m.head.clone(),
        },
        last_fetch: when(m.last_fetch, now),
        last_change: when(m.last_change, now),
        last_error: gitflock_core::redact::redact(&m.last_error),
        task_id: m.task_id.clone(),
        state: state_name(m.state()),
        state_class: state_class(m.state()),
        refs: m.refs,
        refs_text: plural(m.refs.into(), "ref", "refs"),
        failures: m.failures,
        next_run: when(m.next_run, now),
        url_parts: url_parts(&gitflock_core::redact::redact(&m.url)),
        clone_parts: url_parts(&gitflock_core::redact::redact(&m.clone_url)),
    }
}

pub fn mirror_json(m: &Mirror) -> Value {
    use gitflock_core::task::rfc3339;
    json!({
        "url": gitflock_core::redact::redact(&m.url), "node": m.node, "path": m.path,
        "clone_url": gitflock_core::redact::redact(&m.clone_url), "head": m.head,
        "last_fetch": rfc3339(m.last_fetch), "last_change": rfc3339(m.last_change),
        "last_error": gitflock_core::redact::redact(&m.last_error), "task_id": m.task_id,
        "state": state_name(m.state()), "interval_secs": m.interval_secs, "refs": m.refs,
        "failures": m.failures, "next_run": rfc3339(m.next_run),
    })
}

#[derive(Clone, Debug)]
pub struct BlockView {
    pub node: String,
    pub branch: String,
    pub tip: String,
    pub short_tip: String,
    pub height: u64,
    pub pushed: When,
}

pub fn block_view(b: &Block, now: i64) -> BlockView {
    BlockView {
        node: b.node.clone(),
        branch: b.branch.clone(),
        tip: b.tip.clone(),
        short_tip: b.tip.chars().take(10).collect(),
        height: b.height,
        pushed: when(b.pushed_at, now),
    }
}

pub fn block_json(b: &Block) -> Value {
    json!({
        "node": b.node, "branch": b.branch, "tip": b.tip, "height": b.height,
        "pushed_at": gitflock_core::task::rfc3339(b.pushed_at),
    })
}

pub fn entry_json(e: &StoredEntry) -> Value {
    json!({
        "height": e.height, "commit": e.commit, "create_at": e.create_at,
        "level": e.level, "content": e.content,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        assert_eq!(relative(0), "just now");
        assert_eq!(relative(5_000), "5s ago");
        assert_eq!(relative(125_000), "2m ago");
        assert_eq!(relative(-7_200_000), "in 2h");
        assert_eq!(relative(3 * 86_400_000), "3d ago");
        assert_eq!(when(0, 1).rel, "never");
    }

    #[test]
    fn counts_and_urls_read_naturally() {
        assert_eq!(plural(1, "ref", "refs"), "1 ref");
        assert_eq!(plural(0, "ref", "refs"), "0 refs");
        assert_eq!(
            url_parts("git://h:1/a/b.git"),
            ["git:/", "/", "h:1/", "a/", "b.git"]
        );
        assert_eq!(url_parts("").len(), 0);
    }

    #[test]
    fn a_dead_nodes_load_is_not_shown() {
        let n = NodeInfo {
            state: "dead".into(),
            running: 3,
            concurrency: 8,
            ..Default::default()
        };
        let v = node_view(&n, 1);
        assert_eq!((v.load.as_str(), v.load_pct), ("—", 0));
        let alive = NodeInfo {
            state: "alive".into(),
            ..n
        };
        assert_eq!(node_view(&alive, 1).load, "3/8");
    }
}
