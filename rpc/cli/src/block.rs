//! `gitflock block …`: make (and wait for) blocks, list them.

use crate::args::BlockCommand;
use crate::output::{print_json, when};
use crate::{CliError, Result};
use gitflock_client::Client;
use gitflock_core::task::{self, rfc3339, task_json};
use gitflock_proto::v1::GetTaskRequest;
use serde_json::{Value, json};
use std::time::Duration;

pub async fn run(cmd: BlockCommand, c: &mut Client, as_json: bool) -> Result<()> {
    use gitflock_proto::v1::{ListBlocksRequest, MakeBlockRequest};
    match cmd {
        BlockCommand::Make { node } => {
            let t = c
                .chain
                .make_block(MakeBlockRequest {
                    node: node.unwrap_or_default(),
                })
                .await?
                .into_inner();
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            loop {
                let cur = c
                    .tasks
                    .get_task(GetTaskRequest { id: t.id.clone() })
                    .await?
                    .into_inner();
                if task::is_final(cur.state()) {
                    if as_json {
                        print_json(&task_json(&cur));
                    } else if let Some(r) = cur.results.first() {
                        println!("{}", r.message);
                    }
                    if cur.state() != gitflock_proto::v1::TaskState::Succeed {
                        let why = cur
                            .results
                            .first()
                            .map(|r| r.message.clone())
                            .unwrap_or_default();
                        return Err(CliError(format!("block failed: {why}")));
                    }
                    return Ok(());
                }
                if std::time::Instant::now() > deadline {
                    return Err(CliError(format!(
                        "block task {} did not finish within 120s",
                        t.id
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
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
            if as_json {
                print_json(&Value::Array(
                    blocks
                        .iter()
                        .map(|b| json!({"node": b.node, "branch": b.branch, "tip": b.tip, "height": b.height, "pushed_at": rfc3339(b.pushed_at)}))
                        .collect(),
                ));
            } else {
                println!(
                    "{:<16} {:<28} {:>8}  {:<40} PUSHED_AT",
                    "NODE", "BRANCH", "HEIGHT", "TIP"
                );
                for b in blocks {
                    println!(
                        "{:<16} {:<28} {:>8}  {:<40} {}",
                        b.node,
                        b.branch,
                        b.height,
                        b.tip,
                        when(b.pushed_at)
                    );
                }
            }
            Ok(())
        }
    }
}
