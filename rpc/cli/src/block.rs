//! `gitflock block …`: make (and wait for) blocks, list them.

use crate::args::BlockCommand;
use crate::output::{clean, print_json, print_table, when};
use crate::{CliError, Result};
use gitflock_client::Client;
use gitflock_core::task::{self, rfc3339, task_json};
use gitflock_proto::v1::{Block, Empty, GetTaskRequest, Task, TaskState};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// How long `block make` waits for its pushes.
const WAIT: Duration = Duration::from_secs(120);

pub async fn run(cmd: BlockCommand, c: &mut Client, as_json: bool) -> Result<()> {
    use gitflock_proto::v1::{ListBlocksRequest, MakeBlockRequest};
    match cmd {
        BlockCommand::Make { node } => {
            // One block task per node, each waited for here: the API's "every node" task
            // only asks the nodes, and would end before any push did.
            let one = node.is_some();
            let nodes = match node {
                Some(n) => vec![n],
                None => {
                    let all = c.nodes.list_nodes(Empty {}).await?.into_inner().nodes;
                    let alive: Vec<String> = all
                        .into_iter()
                        .filter(|n| n.state == "alive")
                        .map(|n| n.name)
                        .collect();
                    if alive.is_empty() {
                        return Err(CliError("no live node to make a block".into()));
                    }
                    alive
                }
            };
            let mut tasks = Vec::new();
            for node in &nodes {
                let t = c
                    .chain
                    .make_block(MakeBlockRequest { node: node.clone() })
                    .await?
                    .into_inner();
                tasks.push((node.clone(), t.id));
            }
            let deadline = Instant::now() + WAIT;
            let mut done: Vec<Task> = Vec::new();
            for (node, id) in tasks {
                done.push(wait_final(c, &node, &id, deadline).await?);
            }
            if as_json {
                if one {
                    print_json(&task_json(&done[0]));
                } else {
                    print_json(&Value::Array(done.iter().map(task_json).collect()));
                }
            }
            let mut failed = 0;
            for (node, t) in nodes.iter().zip(&done) {
                let msg = t.results.first().map_or("", |r| r.message.as_str());
                let ok = t.state() == TaskState::Succeed;
                if !ok {
                    failed += 1;
                }
                if !as_json {
                    if ok {
                        println!("{}: {}", clean(node), clean(msg));
                    } else {
                        println!("{}: failed: {}", clean(node), clean(msg));
                    }
                }
            }
            match (failed, one) {
                (0, _) => Ok(()),
                (_, true) => Err(CliError(format!(
                    "the block of {} failed: {}",
                    clean(&nodes[0]),
                    clean(done[0].results.first().map_or("", |r| r.message.as_str()))
                ))),
                _ => Err(CliError(format!(
                    "{failed} of {} blocks failed",
                    nodes.len()
                ))),
            }
        }
        BlockCommand::List { node } => {
            let blocks = c
                .chain
                .list_blocks(ListBlocksRequest {
                    node: node.unwrap_or_default(),
                    limit: 0,
                })
                .await?
                .into_inner()
                .blocks;
            let blocks = distinct(blocks);
            if as_json {
                print_json(&Value::Array(
                    blocks
                        .iter()
                        .map(|b| json!({"node": b.node, "branch": b.branch, "tip": b.tip, "height": b.height, "pushed_at": rfc3339(b.pushed_at)}))
                        .collect(),
                ));
            } else {
                let rows: Vec<Vec<String>> = blocks
                    .iter()
                    .map(|b| {
                        vec![
                            b.node.clone(),
                            b.branch.clone(),
                            b.height.to_string(),
                            b.tip.clone(),
                            when(b.pushed_at),
                        ]
                    })
                    .collect();
                print_table(&["NODE", "BRANCH", "HEIGHT", "TIP", "PUSHED_AT"], &rows);
            }
            Ok(())
        }
    }
}

/// Waits for the block task `id` of `node` to end.
async fn wait_final(c: &mut Client, node: &str, id: &str, deadline: Instant) -> Result<Task> {
    loop {
        let t = c
            .tasks
            .get_task(GetTaskRequest { id: id.to_string() })
            .await?
            .into_inner();
        if task::is_final(t.state()) {
            return Ok(t);
        }
        if Instant::now() > deadline {
            return Err(CliError(format!(
                "the block of {} did not finish within {}s (task {id}, {})",
                clean(node),
                WAIT.as_secs(),
                t.state().as_str_name()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The blocks (newest first) with a tip pushed again to the same branch shown once, at its
/// newest push: a push that moved nothing is no new block.
pub fn distinct(blocks: Vec<Block>) -> Vec<Block> {
    let mut seen = HashSet::new();
    blocks
        .into_iter()
        .filter(|b| seen.insert((b.node.clone(), b.branch.clone(), b.tip.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(node: &str, tip: &str, at: i64) -> Block {
        Block {
            node: node.into(),
            branch: format!("{node}-20261202"),
            tip: tip.into(),
            height: 1,
            pushed_at: at,
        }
    }

    #[test]
    fn a_tip_pushed_again_is_one_block() {
        let got = distinct(vec![
            block("n1", "aaa", 3),
            block("n2", "aaa", 3),
            block("n1", "aaa", 2),
            block("n1", "bbb", 1),
        ]);
        let at: Vec<(String, i64)> = got.iter().map(|b| (b.node.clone(), b.pushed_at)).collect();
        assert_eq!(at, [("n1".into(), 3), ("n2".into(), 3), ("n1".into(), 1)]);
    }
}
