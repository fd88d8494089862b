//! `gitflock task …`: create, list, get, result, kill, delete, watch.

use crate::args::TaskCommand;
use crate::output::{print_json, when};
use crate::{CliError, Result};
use gitflock_client::Client;
use gitflock_core::task::{self, task_json};
use gitflock_proto::v1::{
    CreateTaskRequest, GetTaskRequest, ListTasksRequest, Task, TaskIds, WatchTasksRequest,
};
use serde_json::{Value, json};
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
            let req = CreateTaskRequest {
                name,
                r#type: kind,
                target,
                interval_secs: interval,
                max_attempts,
                timeout_secs: timeout,
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
            let mut state_nums = Vec::new();
            for s in &states {
                let st = task::parse_state(s).ok_or_else(|| {
                    CliError(format!(
                        "unknown state {s:?}; states: {}",
                        task::STATES.map(|s| s.as_str_name()).join(", ")
                    ))
                })?;
                state_nums.push(st as i32);
            }
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
                println!(
                    "{:<36} {:<13} {:<8} {:<16} {:>5}  {:<24} NAME",
                    "ID", "STATE", "TYPE", "NODE", "RUNS", "UPDATED"
                );
                for t in &all {
                    println!(
                        "{:<36} {:<13} {:<8} {:<16} {:>5}  {:<24} {}",
                        t.id,
                        t.state().as_str_name(),
                        t.r#type,
                        t.node,
                        t.runs,
                        when(t.updated_at),
                        t.name
                    );
                }
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
                println!("{} {}", r.id, r.state().as_str_name());
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
        TaskCommand::Watch { ids } => {
            let mut stream = c
                .tasks
                .watch_tasks(WatchTasksRequest { ids })
                .await?
                .into_inner();
            while let Some(ev) = stream.message().await? {
                let Some(t) = ev.task else { continue };
                let deleted = ev.kind == gitflock_proto::v1::task_event::Kind::Deleted as i32;
                if as_json {
                    let mut v = if deleted {
                        json!({"id": t.id})
                    } else {
                        task_json(&t)
                    };
                    v["event"] = json!(if deleted { "deleted" } else { "changed" });
                    println!("{v}");
                } else if deleted {
                    println!("{} DELETED", t.id);
                } else {
                    println!(
                        "{} {:<13} {:<8} {:<16} {}",
                        t.id,
                        t.state().as_str_name(),
                        t.r#type,
                        t.node,
                        t.name
                    );
                }
            }
            Ok(())
        }
    }
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
                Some(true) => println!("{id}: {verb}"),
                _ => println!(
                    "{id}: {}",
                    r.errors.get(id).map(String::as_str).unwrap_or("failed")
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
    println!("id:           {}", t.id);
    println!("name:         {}", t.name);
    println!("type:         {}", t.r#type);
    println!("target:       {}", t.target);
    println!("state:        {}", t.state().as_str_name());
    println!(
        "node:         {}",
        if t.node.is_empty() { "-" } else { &t.node }
    );
    println!("attempts:     {} of {}", t.attempts, t.max_attempts);
    println!(
        "interval:     {}",
        if t.interval_secs > 0 {
            format!("{}s", t.interval_secs)
        } else {
            "once".into()
        }
    );
    println!("runs:         {}", t.runs);
    println!("created_at:   {}", when(t.created_at));
    println!("updated_at:   {}", when(t.updated_at));
    if t.due_at > 0 {
        println!("due_at:       {}", when(t.due_at));
    }
    for r in &t.results {
        print_result(r);
    }
}

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
        r.node,
        r.message.replace('\n', " ")
    );
}
