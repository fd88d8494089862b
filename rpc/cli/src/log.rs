//! `gitflock log …`: write, read (and follow), verify the log chain.

use crate::args::LogCommand;
use crate::output::print_json;
use crate::{CliError, Result};
use gitflock_client::Client;
use serde_json::{Value, json};

pub async fn run(cmd: LogCommand, c: &mut Client, as_json: bool) -> Result<()> {
    use gitflock_proto::v1::{LogEntry, ReadLogsRequest, VerifyRequest};
    match cmd {
        LogCommand::Write { level, at, content } => {
            let at = at.unwrap_or_default();
            let r = if content == "-" {
                use std::io::BufRead;
                let mut entries = Vec::new();
                for line in std::io::stdin().lock().lines() {
                    let line =
                        line.map_err(|e| CliError(format!("cannot read standard input: {e}")))?;
                    if !line.trim().is_empty() {
                        entries.push(LogEntry {
                            level: level.clone(),
                            content: line,
                            create_at: at.clone(),
                        });
                    }
                }
                if entries.is_empty() {
                    return Err(CliError("no entries on standard input".into()));
                }
                c.chain
                    .write_logs(tokio_stream::iter(entries))
                    .await?
                    .into_inner()
            } else {
                c.chain
                    .write_log(LogEntry {
                        level,
                        content,
                        create_at: at,
                    })
                    .await?
                    .into_inner()
            };
            if as_json {
                print_json(
                    &json!({"first_height": r.first_height, "last_height": r.last_height, "count": r.count}),
                );
            } else if r.count == 1 {
                println!("{}", r.first_height);
            } else {
                println!(
                    "{}..{} ({} entries)",
                    r.first_height, r.last_height, r.count
                );
            }
            Ok(())
        }
        LogCommand::Read { since, follow } => {
            let mut s = c
                .chain
                .read_logs(ReadLogsRequest {
                    since,
                    since_time: String::new(),
                    follow,
                    limit: 0,
                    tail: 0,
                })
                .await?
                .into_inner();
            while let Some(e) = s.message().await? {
                if as_json {
                    println!(
                        "{}",
                        json!({"height": e.height, "commit": e.commit, "create_at": e.create_at, "level": e.level, "content": e.content})
                    );
                } else {
                    println!(
                        "{:>8} {} [{}] {}",
                        e.height, e.create_at, e.level, e.content
                    );
                }
            }
            Ok(())
        }
        LogCommand::Verify => {
            let v = c.chain.verify_chain(VerifyRequest {}).await?.into_inner();
            if as_json {
                print_json(&json!({
                    "ok": v.ok, "node": v.node, "height": v.height, "blocks_checked": v.blocks_checked,
                    "bad_height": if v.has_bad_height { json!(v.bad_height) } else { Value::Null },
                    "bad_commit": v.bad_commit, "problem": v.problem,
                }));
            } else if v.ok {
                println!(
                    "chain of {} is intact: {} entries, {} blocks checked",
                    v.node, v.height, v.blocks_checked
                );
            }
            if !v.ok {
                let at = if v.has_bad_height {
                    format!(" at height {}", v.bad_height)
                } else {
                    String::new()
                };
                return Err(CliError(format!(
                    "chain of {} is broken{at} ({}): {}",
                    v.node, v.bad_commit, v.problem
                )));
            }
            Ok(())
        }
    }
}
