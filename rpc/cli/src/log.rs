//! `gitflock log …`: write, read (and follow), verify the log chain.
//!
//! One rule for writing, whatever the source: **each line is one entry**. `log write TEXT`
//! and `log write -` (standard input) split their text the same way; empty lines are skipped
//! and counted; all the entries of one command are written as one unit (all or none). An
//! entry with a newline inside can still be written through the API or the dashboard; `log
//! read` shows it on one line, its newline as `\n`.

use crate::args::LogCommand;
use crate::output::{clean, plural, print_json};
use crate::{CliError, Result};
use gitflock_client::Client;
use gitflock_proto::v1::LogEntry;
use serde_json::{Value, json};

/// The entries of `text`, one per line, and how many empty lines were skipped.
pub fn entries_of(text: &str, level: &str, at: &str) -> (Vec<LogEntry>, usize) {
    let mut entries = Vec::new();
    let mut empty = 0;
    for line in text.lines() {
        if line.trim().is_empty() {
            empty += 1;
        } else {
            entries.push(LogEntry {
                level: level.to_string(),
                content: line.to_string(),
                create_at: at.to_string(),
            });
        }
    }
    (entries, empty)
}

pub async fn run(cmd: LogCommand, c: &mut Client, as_json: bool) -> Result<()> {
    use gitflock_proto::v1::{ReadLogsRequest, VerifyRequest};
    match cmd {
        LogCommand::Write { level, at, content } => {
            let from_stdin = content == "-";
            let text = if from_stdin {
                std::io::read_to_string(std::io::stdin())
                    .map_err(|e| CliError(format!("cannot read standard input: {e}")))?
            } else {
                content
            };
            let level = level.to_ascii_lowercase();
            let (entries, empty) = entries_of(&text, &level, at.as_deref().unwrap_or(""));
            if entries.is_empty() {
                let source = if from_stdin {
                    "standard input"
                } else {
                    "CONTENT"
                };
                return Err(CliError(format!(
                    "nothing to write: {source} has no text ({})",
                    plural(empty as u64, "empty line", "empty lines")
                )));
            }
            let r = if entries.len() == 1 {
                let e = entries.into_iter().next().unwrap_or_default();
                c.chain.write_log(e).await?.into_inner()
            } else {
                c.chain
                    .write_logs(tokio_stream::iter(entries))
                    .await?
                    .into_inner()
            };
            if as_json {
                print_json(&json!({
                    "first_height": r.first_height, "last_height": r.last_height,
                    "count": r.count, "empty_lines_skipped": empty,
                }));
            } else if r.count == 1 {
                println!("{}", r.first_height);
            } else {
                println!(
                    "{}..{} ({})",
                    r.first_height,
                    r.last_height,
                    plural(r.count, "entry", "entries")
                );
            }
            if empty > 0 && !as_json {
                eprintln!(
                    "gitflock: {} skipped",
                    plural(empty as u64, "empty line", "empty lines")
                );
            }
            Ok(())
        }
        LogCommand::Read { since, follow } => {
            let mut s = c
                .chain
                .read_logs(ReadLogsRequest {
                    // 0 would mean "from since_time" to the API; here it is the start.
                    since: since.max(1),
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
                        e.height,
                        clean(&e.create_at),
                        clean(&e.level),
                        clean(&e.content)
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
                    "chain of {} is intact: {}, {} checked",
                    clean(&v.node),
                    plural(v.height, "entry", "entries"),
                    plural(v.blocks_checked, "block", "blocks")
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
                    clean(&v.node),
                    clean(&v.bad_commit),
                    clean(&v.problem)
                )));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::entries_of;

    #[test]
    fn every_line_is_one_entry_and_empty_lines_are_counted() {
        let (e, empty) = entries_of("a\n\nb\r\n  \nc\n", "info", "");
        let contents: Vec<&str> = e.iter().map(|e| e.content.as_str()).collect();
        assert_eq!(contents, ["a", "b", "c"]);
        assert_eq!(empty, 2);
        let (e, empty) = entries_of("", "info", "");
        assert!(e.is_empty());
        assert_eq!(empty, 0);
    }
}
