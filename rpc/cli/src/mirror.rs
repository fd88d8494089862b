//! `gitflock mirror …`: add, list, sync.

use crate::args::MirrorCommand;
use crate::output::{print_json, when};
use crate::{CliError, Result};
use gitflock_client::Client;
use gitflock_core::task::{self, rfc3339, task_json};
use serde_json::{Value, json};

/// A mirror's JSON form (`mirror list --json`).
pub fn mirror_json(m: &gitflock_proto::v1::Mirror) -> Value {
    json!({
        "url": m.url, "node": m.node, "path": m.path, "clone_url": m.clone_url, "head": m.head,
        "last_fetch": rfc3339(m.last_fetch), "last_change": rfc3339(m.last_change),
        "last_error": m.last_error, "task_id": m.task_id, "state": task::state_name(m.state()),
        "interval_secs": m.interval_secs, "refs": m.refs, "failures": m.failures,
        "next_run": rfc3339(m.next_run),
    })
}

pub async fn run(cmd: MirrorCommand, c: &mut Client, as_json: bool) -> Result<()> {
    use gitflock_proto::v1::{CreateTaskRequest, ListMirrorsRequest, SyncMirrorsRequest};
    match cmd {
        MirrorCommand::Add { url, interval } => {
            let t = c
                .tasks
                .create_task(CreateTaskRequest {
                    name: String::new(),
                    r#type: "mirror".into(),
                    target: url,
                    interval_secs: interval,
                    request_id: task::new_id(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            if as_json {
                print_json(&task_json(&t));
            } else {
                println!("{}", t.id);
            }
        }
        MirrorCommand::List { text } => {
            let mut all = Vec::new();
            let mut token = String::new();
            let mut list = None;
            loop {
                let page = c
                    .mirrors
                    .list_mirrors(ListMirrorsRequest {
                        text: text.clone(),
                        page_size: 1000,
                        page_token: token,
                    })
                    .await?
                    .into_inner();
                all.extend(page.mirrors);
                list = list.or(page.list);
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            if as_json {
                print_json(&Value::Array(all.iter().map(mirror_json).collect()));
                return Ok(());
            }
            if let Some(l) = list {
                println!(
                    "upstream list {}: {} entries at {} (synced {}){}",
                    l.url,
                    l.entries,
                    if l.commit.is_empty() {
                        "-"
                    } else {
                        &l.commit[..l.commit.len().min(12)]
                    },
                    when(l.last_sync),
                    if l.last_error.is_empty() {
                        String::new()
                    } else {
                        format!("; {}", l.last_error)
                    }
                );
            }
            if all.is_empty() {
                println!("no mirrors yet: gitflock mirror add URL");
            }
            for m in &all {
                println!(
                    "{}  {}  node={}  head={}  fetched={}  changed={}{}\n    {}",
                    m.url,
                    task::state_name(m.state()),
                    if m.node.is_empty() { "-" } else { &m.node },
                    if m.head.is_empty() { "-" } else { &m.head },
                    when(m.last_fetch),
                    when(m.last_change),
                    if m.last_error.is_empty() {
                        String::new()
                    } else {
                        format!("  error: {}", m.last_error)
                    },
                    if m.clone_url.is_empty() {
                        "(not cloned yet)"
                    } else {
                        &m.clone_url
                    },
                );
            }
        }
        MirrorCommand::Sync { urls } => {
            let r = c
                .mirrors
                .sync_mirrors(SyncMirrorsRequest { urls })
                .await?
                .into_inner();
            if as_json {
                print_json(&json!({"synced": r.synced, "unknown": r.unknown}));
            } else {
                for id in &r.synced {
                    println!("syncing {id}");
                }
                for u in &r.unknown {
                    eprintln!("no mirror of {u}");
                }
            }
            if !r.unknown.is_empty() {
                return Err(CliError(format!(
                    "{} URL(s) match no mirror",
                    r.unknown.len()
                )));
            }
        }
    }
    Ok(())
}
