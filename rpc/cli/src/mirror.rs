//! `gitflock mirror …`: add, list, sync.

use crate::args::MirrorCommand;
use crate::output::{clean, plural, print_json, print_table, when};
use crate::{CliError, Result};
use gitflock_client::Client;
use gitflock_core::task::{self, rfc3339, task_json};
use gitflock_proto::v1::{GetTaskRequest, Mirror};
use serde_json::{Value, json};

/// A mirror's JSON form (`mirror list --json`).
pub fn mirror_json(m: &Mirror) -> Value {
    json!({
        "url": m.url, "node": m.node, "path": m.path, "clone_url": m.clone_url, "head": m.head,
        "last_fetch": rfc3339(m.last_fetch), "last_change": rfc3339(m.last_change),
        "last_error": m.last_error, "task_id": m.task_id, "state": task::state_name(m.state()),
        "interval_secs": m.interval_secs, "refs": m.refs, "failures": m.failures,
        "next_run": rfc3339(m.next_run),
    })
}

/// `head` with its commit cut to 10 characters ("main 1a2b3c4d5e").
fn short_head(head: &str) -> String {
    match head.split_once(' ') {
        Some((branch, commit)) if commit.len() > 10 => {
            format!("{branch} {}", commit.chars().take(10).collect::<String>())
        }
        _ => head.to_string(),
    }
}

pub async fn run(cmd: MirrorCommand, c: &mut Client, as_json: bool) -> Result<()> {
    use gitflock_proto::v1::{CreateTaskRequest, ListMirrorsRequest, SyncMirrorsRequest};
    match cmd {
        MirrorCommand::Add { url, interval } => {
            let r = c
                .tasks
                .create_task(CreateTaskRequest {
                    name: String::new(),
                    r#type: "mirror".into(),
                    target: url.clone(),
                    interval_secs: interval.unwrap_or(0),
                    request_id: task::new_id(),
                    ..Default::default()
                })
                .await
                .map_err(|s| {
                    // The node checks the URL as a task's target; the user gave a URL.
                    match s.message().strip_prefix("target: ") {
                        Some(why) if s.code() == tonic::Code::InvalidArgument => CliError(format!(
                            "cannot mirror {}: {why}",
                            gitflock_core::redact::redact(&url)
                        )),
                        _ => CliError::from(s),
                    }
                })?;
            let found = r
                .metadata()
                .get("gitflock-created")
                .is_some_and(|v| v.as_bytes() == b"0");
            let t = r.into_inner();
            if as_json {
                print_json(&task_json(&t));
            } else {
                println!("{}", t.id);
            }
            if found && !as_json {
                eprintln!(
                    "gitflock: already mirrored as {} (task {}); nothing added",
                    clean(&gitflock_core::redact::redact(&t.target)),
                    t.id
                );
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
            // A mirror that never synced has no copy, so no node of its own: show the node
            // that runs it, as the task page does.
            for m in all.iter_mut().filter(|m| m.node.is_empty()) {
                if let Ok(t) = c
                    .tasks
                    .get_task(GetTaskRequest {
                        id: m.task_id.clone(),
                    })
                    .await
                {
                    m.node = t.into_inner().node;
                }
            }
            if as_json {
                print_json(&Value::Array(all.iter().map(mirror_json).collect()));
                return Ok(());
            }
            if let Some(l) = list.filter(|l| !l.url.is_empty()) {
                println!(
                    "upstream list {}: {} at {} (synced {}){}",
                    clean(&l.url),
                    plural(l.entries, "entry", "entries"),
                    if l.commit.is_empty() {
                        "-"
                    } else {
                        &l.commit[..l.commit.len().min(12)]
                    },
                    when(l.last_sync),
                    if l.last_error.is_empty() {
                        String::new()
                    } else {
                        format!("; {}", clean(&l.last_error))
                    }
                );
            }
            if all.is_empty() {
                if text.is_empty() {
                    println!("no mirrors yet: gitflock mirror add URL");
                } else {
                    println!("no mirror URL contains {text:?}");
                }
                return Ok(());
            }
            let dash = |s: &str| {
                if s.is_empty() {
                    "-".to_string()
                } else {
                    s.to_string()
                }
            };
            let rows: Vec<Vec<String>> = all
                .iter()
                .map(|m| {
                    let error = if m.last_error.is_empty() {
                        String::new()
                    } else if m.failures > 1 {
                        format!("{} ({} failures in a row)", m.last_error, m.failures)
                    } else {
                        m.last_error.clone()
                    };
                    vec![
                        m.url.clone(),
                        task::state_name(m.state()).to_string(),
                        dash(&m.node),
                        dash(&short_head(&m.head)),
                        m.refs.to_string(),
                        when(m.last_fetch),
                        when(m.last_change),
                        dash(&m.clone_url),
                        error,
                    ]
                })
                .collect();
            print_table(
                &[
                    "URL",
                    "STATE",
                    "NODE",
                    "HEAD",
                    "REFS",
                    "LAST_FETCH",
                    "LAST_CHANGE",
                    "CLONE_URL",
                    "LAST_ERROR",
                ],
                &rows,
            );
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
                    println!("syncing {}", clean(id));
                }
            }
            if !r.unknown.is_empty() {
                let unknown: Vec<String> =
                    r.unknown.iter().map(|u| clean(u).into_owned()).collect();
                return Err(CliError(format!("no mirror of {}", unknown.join(", "))));
            }
        }
    }
    Ok(())
}
