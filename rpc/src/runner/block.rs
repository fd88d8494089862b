//! `block`: pushes a node's log chain to `[chain] remote` as the day's branch
//! (`{node}-{date}` by default, UTC), never forced, and records the block (node, branch, tip,
//! height, pushed_at). Target: a node name — the task is placed on that node, since only it
//! has its chain — or empty: then it asks for a block from every live node (one `block` task
//! placed on each). A block of a node the cluster does not know, or has declared dead, is
//! refused ([`pinned_node`]): it could never run.

use std::sync::Arc;

use super::{Context, Plan, RunFuture, Runner};
use crate::store::{BlockRecord, NewTask, Placement, Store, StoreError};
use gitflock_core::config::check_node_name;
use gitflock_core::task;

pub struct Block {
    pub ctx: Arc<Context>,
}

/// The branch name from the pattern: `{node}` and `{date}` (YYYYMMDD, UTC).
pub fn branch_name(pattern: &str, node: &str, at_ms: i64) -> String {
    let date = time::OffsetDateTime::from_unix_timestamp(at_ms.div_euclid(1000))
        .map(|t| format!("{:04}{:02}{:02}", t.year(), t.month() as u8, t.day()))
        .unwrap_or_default();
    pattern.replace("{node}", node).replace("{date}", &date)
}

impl Runner for Block {
    fn kind(&self) -> &'static str {
        "block"
    }

    fn plan(&self, target: &str) -> Result<Plan, String> {
        if !target.is_empty() {
            check_node_name(target).map_err(|e| format!("node name {e}"))?;
        }
        Ok(Plan {
            placement: placement(target),
            ..Plan::fresh(self.kind())
        })
    }

    fn run(&self, target: String, _cancel: tokio_util::sync::CancellationToken) -> RunFuture {
        let ctx = self.ctx.clone();
        Box::pin(async move {
            if target.is_empty() {
                return request_all(&ctx).await;
            }
            if target != ctx.node {
                return Err(format!(
                    "the block of node {target} ran on node {}",
                    ctx.node
                ));
            }
            let chain = ctx.chain.as_ref().ok_or("this node keeps no log chain")?;
            let remote = ctx
                .chain_remote
                .as_deref()
                .ok_or("no [chain] remote is configured")?;
            let branch = branch_name(&ctx.branch_pattern, &ctx.node, chain.clock.now_ms());
            let pushes = &crate::metrics::METRICS.block_pushes;
            let tip = chain.push(remote, &branch).await.map_err(|e| {
                pushes.with_label_values(&["error"]).inc();
                e.to_string()
            })?;
            pushes.with_label_values(&["ok"]).inc();
            let pushed_at = chain.clock.now_ms();
            let message = format!("pushed {} (height {}) to {branch}", tip.commit, tip.height);
            let record = BlockRecord {
                node: ctx.node.clone(),
                branch,
                tip: tip.commit,
                height: tip.height,
                pushed_at,
            };
            ctx.store
                .add_block(&record)
                .await
                .map_err(|e| e.to_string())?;
            Ok(message)
        })
    }
}

/// Why a task cannot be placed on a node.
#[derive(Debug)]
pub enum PinRefused {
    /// No node of that name ever joined the cluster (the message lists some that did).
    Unknown(String),
    /// The master declared it dead: it cannot run anything until it is back.
    Dead(String),
    Store(StoreError),
}

/// Whether a task placed on `placement` can ever run: a node placement must name a node of the
/// cluster that is not declared dead. Any other placement is always fine.
pub async fn pinned_node(store: &Store, placement: &Placement) -> Result<(), PinRefused> {
    let Placement::Node(node) = placement else {
        return Ok(());
    };
    let (nodes, _) = store.nodes().await.map_err(PinRefused::Store)?;
    match nodes.iter().find(|n| &n.name == node) {
        Some(n) if n.dead => Err(PinRefused::Dead(format!(
            "node {node} is declared dead: nothing can run there until it is back"
        ))),
        Some(_) => Ok(()),
        None => {
            let mut names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
            names.sort_unstable();
            let shown = names
                .iter()
                .take(10)
                .copied()
                .collect::<Vec<_>>()
                .join(", ");
            let more = if names.len() > 10 { ", …" } else { "" };
            Err(PinRefused::Unknown(format!(
                "node {node:?} is not a node of this cluster (nodes: {shown}{more})"
            )))
        }
    }
}

/// A block of `node` runs only there (its chain is there); one of every node (`""`) anywhere.
fn placement(node: &str) -> Placement {
    if node.is_empty() {
        Placement::Any
    } else {
        Placement::Node(node.to_string())
    }
}

/// A one-off block task: of `node` (placed there), or of every live node (`""`).
pub fn one_off(node: &str) -> NewTask {
    NewTask {
        id: task::new_id(),
        name: if node.is_empty() {
            "block (all nodes)".into()
        } else {
            format!("block {node}")
        },
        kind: "block".into(),
        target: node.to_string(),
        interval_secs: 0,
        max_attempts: 3,
        timeout_secs: 300,
        request_id: String::new(),
        placement: placement(node),
    }
}

/// `node`'s standing recurring block task. Its id is derived from the node name, so creating
/// it at every start makes it once.
pub fn standing(node: &str, interval: std::time::Duration) -> NewTask {
    let id = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("gitflock-block:{node}").as_bytes(),
    );
    NewTask {
        id: id.hyphenated().to_string(),
        interval_secs: interval.as_secs(),
        ..one_off(node)
    }
}

/// One block task per live node, placed there.
async fn request_all(ctx: &Context) -> Result<String, String> {
    let (nodes, now) = ctx.store.nodes().await.map_err(|e| e.to_string())?;
    let mut asked = Vec::new();
    for n in nodes {
        if n.dead || n.leaving || now - n.last_heartbeat > 10_000 {
            continue;
        }
        ctx.store
            .create(&one_off(&n.name))
            .await
            .map_err(|e| e.to_string())?;
        asked.push(n.name);
    }
    if asked.is_empty() {
        return Err("no live node to make a block".into());
    }
    Ok(format!("blocks requested from {}", asked.join(", ")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn branches_are_named_by_node_and_utc_day() {
        // 2026-11-22T23:59:59Z and one second later.
        assert_eq!(
            super::branch_name("{node}-{date}", "n1", 1_795_391_999_000),
            "n1-20261122"
        );
        assert_eq!(
            super::branch_name("{node}-{date}", "n1", 1_795_392_000_000),
            "n1-20261123"
        );
        assert_eq!(
            super::branch_name("logs/{date}/{node}", "n1", 1_795_392_000_000),
            "logs/20261123/n1"
        );
    }
}
