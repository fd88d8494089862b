//! `gitflock task …`: create, list, get, result, kill, delete, watch.

use crate::args::TaskCommand;
use crate::output::{clean, print_json, print_table, when};
use crate::{CliError, Result};
use gitflock_client::Client;
use gitflock_core::task::{self, task_json};
use gitflock_proto::v1::{
    CreateTaskRequest, GetTaskRequest, ListTasksRequest, Task, TaskIds, WatchTasksRequest,
    task_event,
};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

pub async fn run(cmd: TaskCommand, c: &mut Client, as_json: bool) -> Result<()> {
    match cmd {
        TaskCommand::Create {
            kind,
            target,
            name,
            interval,
            max_attempts,
            timeout,
        } => {
            // 0 asks the node for its default.
            let req = CreateTaskRequest {
                name,
                r#type: kind,
                target,
                interval_secs: interval.unwrap_or(0),
                max_attempts: max_attempts.unwrap_or(0),
                timeout_secs: timeout.unwrap_or(0),
                // Retries of this one command create one task.
                request_id: task::new_id(),
            };
            let mut tries = 0;
            let t = loop {
                match c.tasks.create_task(req.clone()).await {
                    Ok(r) => break r.into_inner(),
                    Err(s) if s.code() == tonic::Code::Unavailable && tries < 3 => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(300 * tries)).await;
                    }
                    Err(s) => return Err(s.into()),
                }
            };
            if as_json {
                print_json(&task_json(&t));
            } else {
                println!("{}", t.id);
            }
            Ok(())
        }
        TaskCommand::List {
            states,
            kind,
            text,
            limit,
        } => {
            // clap checked the names (any case).
            let state_nums: Vec<i32> = states
                .iter()
                .filter_map(|s| task::parse_state(s))
                .map(|s| s as i32)
                .collect();
            let kind = kind.unwrap_or_default();
            let mut all: Vec<Task> = Vec::new();
            let mut token = String::new();
            let cap = limit.unwrap_or(usize::MAX);
            loop {
                let page = c
                    .tasks
                    .list_tasks(ListTasksRequest {
                        states: state_nums.clone(),
                        r#type: kind.clone(),
                        text: text.clone(),
                        page_size: (cap - all.len()).min(1000) as u32,
                        page_token: token,
                        with_results: as_json,
                    })
                    .await?
                    .into_inner();
                all.extend(page.tasks);
                token = page.next_page_token;
                if token.is_empty() || all.len() >= cap {
                    break;
                }
            }
            all.truncate(cap);
            if as_json {
                print_json(&Value::Array(all.iter().map(task_json).collect()));
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.clone(),
                            t.state().as_str_name().to_string(),
                            t.r#type.clone(),
                            or_dash(&t.node).to_string(),
                            t.runs.to_string(),
                            when(t.updated_at),
                            t.name.clone(),
                        ]
                    })
                    .collect();
                print_table(
                    &["ID", "STATE", "TYPE", "NODE", "RUNS", "UPDATED", "NAME"],
                    &rows,
                );
            }
            Ok(())
        }
        TaskCommand::Get { id } => {
            let t = c.tasks.get_task(GetTaskRequest { id }).await?.into_inner();
            if as_json {
                print_json(&task_json(&t));
            } else {
                print_task(&t);
            }
            Ok(())
        }
        TaskCommand::Result { id } => {
            let r = c
                .tasks
                .get_task_result(GetTaskRequest { id })
                .await?
                .into_inner();
            if as_json {
                print_json(&json!({
                    "id": r.id, "state": r.state().as_str_name(),
                    "results": r.results.iter().map(task::result_json).collect::<Vec<_>>(),
                }));
            } else {
                println!("{} {}", clean(&r.id), r.state().as_str_name());
                for res in &r.results {
                    print_result(res);
                }
            }
            Ok(())
        }
        TaskCommand::Kill { ids } => {
            let r = c
                .tasks
                .kill_tasks(TaskIds { ids: ids.clone() })
                .await?
                .into_inner();
            per_id(&ids, &r, as_json, "killed")
        }
        TaskCommand::Delete { ids } => {
            let r = c
                .tasks
                .delete_tasks(TaskIds { ids: ids.clone() })
                .await?
                .into_inner();
            per_id(&ids, &r, as_json, "deleted")
        }
        TaskCommand::Watch { ids } => watch(c, ids, as_json).await,
    }
}

/// What `task watch` has shown of a task: a change prints only when one of these moved.
/// (Events are read when they are delivered, so two events of one quick move — dispatched,
/// then claimed — both show RUNNING: shown once.)
#[derive(PartialEq, Eq)]
struct Shown {
    state: i32,
    node: String,
    attempts: u32,
    runs: u64,
}

/// `task watch`: the current state of each id, then every change once, each with its time;
/// ends when every watched task is final or deleted (with no ids: never).
async fn watch(c: &mut Client, ids: Vec<String>, as_json: bool) -> Result<()> {
    for id in &ids {
        task::check_id(id).map_err(CliError)?;
    }
    // Subscribed before the first look, so no change falls between the two.
    let mut stream = c
        .tasks
        .watch_tasks(WatchTasksRequest { ids: ids.clone() })
        .await?
        .into_inner();
    let mut shown: HashMap<String, Shown> = HashMap::new();
    let mut open: HashSet<String> = HashSet::new();
    for id in &ids {
        if shown.contains_key(id) {
            continue;
        }
        let t = c
            .tasks
            .get_task(GetTaskRequest { id: id.clone() })
            .await?
            .into_inner();
        if !task::is_final(t.state()) {
            open.insert(t.id.clone());
        }
        print_change(&t, "current", as_json, &mut shown);
    }
    if !ids.is_empty() && open.is_empty() {
        return Ok(());
    }
    while let Some(ev) = stream.message().await? {
        let Some(t) = ev.task else { continue };
        if ev.kind == task_event::Kind::Deleted as i32 {
            if as_json {
                println!("{}", json!({"id": t.id, "event": "deleted"}));
            } else {
                let now = gitflock_core::clock::now_ms();
                println!("{}  {}  DELETED", when(now), clean(&t.id));
            }
            shown.remove(&t.id);
            open.remove(&t.id);
        } else {
            if task::is_final(t.state()) {
                open.remove(&t.id);
            }
            print_change(&t, "changed", as_json, &mut shown);
        }
        if !ids.is_empty() && open.is_empty() {
            return Ok(());
        }
    }
    Err(CliError(
        "the node ended the watch (it is shutting down?): watch again to go on".into(),
    ))
}

/// Prints `t` unless nothing shown of it moved since it was last printed.
fn print_change(t: &Task, event: &str, as_json: bool, shown: &mut HashMap<String, Shown>) {
    let now = Shown {
        state: t.state,
        node: t.node.clone(),
        attempts: t.attempts,
        runs: t.runs,
    };
    if shown.get(&t.id) == Some(&now) {
        return;
    }
    shown.insert(t.id.clone(), now);
    if as_json {
        let mut v = task_json(t);
        v["event"] = json!(event);
        println!("{v}");
    } else {
        println!(
            "{}  {}  {:<13} {:<8} {:<16} {}",
            when(t.updated_at),
            clean(&t.id),
            t.state().as_str_name(),
            clean(&t.r#type),
            clean(or_dash(&t.node)),
            clean(&t.name)
        );
    }
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

fn per_id(
    ids: &[String],
    r: &gitflock_proto::v1::OptResult,
    as_json: bool,
    verb: &str,
) -> Result<()> {
    if as_json {
        print_json(&json!({"results": r.results, "errors": r.errors}));
    } else {
        for id in ids {
            match r.results.get(id) {
                Some(true) => println!("{}: {verb}", clean(id)),
                _ => println!(
                    "{}: {}",
                    clean(id),
                    clean(r.errors.get(id).map(String::as_str).unwrap_or("failed"))
                ),
            }
        }
    }
    let failed = ids
        .iter()
        .filter(|id| r.results.get(*id) != Some(&true))
        .count();
    if failed > 0 {
        return Err(CliError(format!("{failed} of {} not {verb}", ids.len())));
    }
    Ok(())
}

fn print_task(t: &Task) {
    println!("id:           {}", clean(&t.id));
    println!("name:         {}", clean(&t.name));
    println!("type:         {}", clean(&t.r#type));
    println!("target:       {}", clean(&t.target));
    println!("state:        {}", t.state().as_str_name());
    println!("node:         {}", clean(or_dash(&t.node)));
    println!("attempts:     {} of {}", t.attempts, t.max_attempts);
    println!(
        "interval:     {}",
        if t.interval_secs > 0 {
            format!("{}s", t.interval_secs)
        } else {
            "once".into()
        }
    );
    println!("timeout:      {}s", t.timeout_secs);
    println!("runs:         {}", t.runs);
    println!("created_at:   {}", when(t.created_at));
    println!("updated_at:   {}", when(t.updated_at));
    if t.due_at > 0 {
        println!("due_at:       {}", when(t.due_at));
    }
    if !t.results.is_empty() {
        println!("results (newest first):");
    }
    for r in &t.results {
        print_result(r);
    }
}

/// One result on one line: `[finished] attempt N on NODE (outcome): message`.
fn print_result(r: &gitflock_proto::v1::TaskResult) {
    let code = match r.code {
        task::code::OK => "ok",
        task::code::TIMEOUT => "timeout",
        task::code::KILLED => "killed",
        _ => "error",
    };
    println!(
        "  [{}] attempt {} on {} ({code}): {}",
        when(r.finished_at),
        r.attempt,
        clean(or_dash(&r.node)),
        clean(&r.message)
    );
}
