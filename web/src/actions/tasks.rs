//! Tasks: create (with an error per field), kill or delete many (an outcome per id), list with
//! the filters of `/tasks` and `/api/v1/tasks`, get one.

use super::{ActionError, call};
use crate::state::AppState;
use gitflock_core::task::{
    KNOWN_TYPES, MAX_INTERVAL_SECS, MAX_NAME_BYTES, MAX_TARGET_BYTES, STATES, check_id, check_text,
    check_type_name, parse_state, shorten, state_name,
};
use gitflock_proto::v1::{
    CreateTaskRequest, GetTaskRequest, ListTasksRequest, ListTasksResponse, Task, TaskIds,
};
use serde::Deserialize;
use serde_json::Value;
use tonic::Code;

/// At most this many ids in one kill or delete.
pub const MAX_IDS: usize = 1000;

/// A task to create, as the create form, the seed's `/create_task` form and the API's JSON
/// body send it.
#[derive(Deserialize, Default, Clone, Debug)]
pub struct TaskForm {
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub target: String,
    /// Text in forms, a number or text in JSON.
    #[serde(default, deserialize_with = "number_or_text")]
    pub interval_secs: String,
    #[serde(default)]
    pub request_id: String,
}

fn number_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => String::new(),
        Value::String(s) => s,
        other => other.to_string(),
    })
}

/// What is wrong with a [`TaskForm`], field by field (empty: nothing).
#[derive(Default, Debug, Clone)]
pub struct FieldErrors {
    pub name: String,
    pub kind: String,
    pub target: String,
    pub interval: String,
    /// A problem not tied to a field the form shows (`request_id`, or no node answered).
    pub form: String,
}

impl FieldErrors {
    pub fn any(&self) -> bool {
        !self.first().is_empty()
    }

    /// The message to lead with: the form's own problem first, then the fields'.
    pub fn first(&self) -> &str {
        [
            &self.form,
            &self.kind,
            &self.target,
            &self.name,
            &self.interval,
        ]
        .into_iter()
        .find(|s| !s.is_empty())
        .map_or("", |s| s.as_str())
    }
}

/// Why [`create`] made no task.
#[derive(Debug, Clone)]
pub enum CreateError {
    /// The input was refused: by the local checks, or by a node (`InvalidArgument`, put on
    /// the field its message names).
    Fields(FieldErrors),
    /// Refused or unanswered for another reason (no node answered, a conflict…).
    Failed(ActionError),
}

/// What is wrong with `target` for a task of type `kind`, checked as that type's runner
/// checks it (a node may still refuse what only it knows, e.g. `file://` when not allowed).
fn check_target(kind: &str, target: &str) -> Result<(), String> {
    match kind {
        "sleep" => gitflock_core::duration::parse(target)
            .map(|_| ())
            .map_err(|_| "sleep takes a duration: 500ms, 30s, 5m (at most 1h)".into()),
        "block" if !target.is_empty() => gitflock_core::config::check_node_name(target)
            .map_err(|e| format!("block takes a node name (or nothing, for every node): {e}")),
        "mirror" => gitflock_core::mirror_url::MirrorUrl::parse(target, true).map(|_| ()),
        _ => Ok(()),
    }
}

/// The interval field: a duration (`30s`, `5m`, `2h`) or bare seconds; empty or 0: once.
fn parse_interval(text: &str) -> Result<u64, String> {
    const WHAT: &str =
        "a duration such as 30s, 5m or 2h, or a number of seconds (0 or empty: run once)";
    if text.is_empty() {
        return Ok(0);
    }
    let d = gitflock_core::duration::parse(text).map_err(|_| WHAT.to_string())?;
    if d.subsec_nanos() != 0 {
        return Err(format!("whole seconds only: {WHAT}"));
    }
    if d.as_secs() > MAX_INTERVAL_SECS {
        return Err(format!("at most {MAX_INTERVAL_SECS} seconds (a year)"));
    }
    Ok(d.as_secs())
}

/// Checks the form with the node's rules — every field, so the form shows every error at
/// once — then creates the task (idempotent: a form without a `request_id` gets a new one).
pub async fn create(st: &AppState, f: &TaskForm) -> Result<Task, CreateError> {
    let mut errs = FieldErrors::default();
    let kind = f.kind.trim();
    if kind.is_empty() {
        errs.kind = format!("choose a type: {}", KNOWN_TYPES.join(", "));
    } else if let Err(e) = check_type_name(kind) {
        errs.kind = e;
    } else if !KNOWN_TYPES.contains(&kind) {
        errs.kind = format!(
            "unknown task type {:?}; known types: {}",
            shorten(kind, 40),
            KNOWN_TYPES.join(", ")
        );
    }
    if let Err(e) = check_text("name", &f.name, MAX_NAME_BYTES, true) {
        errs.name = e;
    }
    if let Err(e) = check_text("target", &f.target, MAX_TARGET_BYTES, true)
        .and_then(|()| check_target(kind, f.target.trim()))
    {
        errs.target = e;
    }
    let interval = parse_interval(f.interval_secs.trim()).unwrap_or_else(|e| {
        errs.interval = e;
        0
    });
    if f.request_id.len() > 64 || f.request_id.chars().any(|c| !c.is_ascii_graphic()) {
        errs.form = "request_id: at most 64 printable characters".into();
    }
    if errs.any() {
        return Err(CreateError::Fields(errs));
    }
    let req = CreateTaskRequest {
        name: f.name.trim().to_string(),
        r#type: kind.to_string(),
        target: f.target.trim().to_string(),
        interval_secs: interval,
        request_id: if f.request_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            f.request_id.clone()
        },
        ..Default::default()
    };
    let res = call(st, "CreateTask", |mut c| {
        let r = req.clone();
        async move { c.tasks.create_task(r).await }
    })
    .await;
    res.map_err(|e| match e {
        ActionError::Node {
            code: Code::InvalidArgument,
            message,
        } => {
            let m = message.to_ascii_lowercase();
            if m.contains("type") {
                errs.kind = message;
            } else if m.contains("interval") {
                errs.interval = message;
            } else if m.starts_with("name") {
                errs.name = message;
            } else {
                errs.target = message;
            }
            CreateError::Fields(errs)
        }
        other => CreateError::Failed(other),
    })
}

/// What [`kill_or_delete`] does to each task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bulk {
    Kill,
    Delete,
}

impl Bulk {
    pub fn verb(self) -> &'static str {
        match self {
            Bulk::Kill => "kill",
            Bulk::Delete => "delete",
        }
    }
}

/// What happened to one task of a kill or delete.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub id: String,
    pub ok: bool,
    /// Why not, when not `ok`.
    pub error: String,
}

/// Kills or deletes `ids` (1 to [`MAX_IDS`]); a malformed id gets its own outcome instead of
/// failing the rest, a repeated one is acted on once.
pub async fn kill_or_delete(
    st: &AppState,
    action: Bulk,
    ids: Vec<String>,
) -> Result<Vec<Outcome>, ActionError> {
    if ids.is_empty() {
        return Err(ActionError::Invalid("ids is empty".into()));
    }
    if ids.len() > MAX_IDS {
        return Err(ActionError::Invalid(format!(
            "at most {MAX_IDS} ids per request"
        )));
    }
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut good = Vec::new();
    for id in ids {
        match check_id(&id) {
            Ok(()) => {
                if !good.contains(&id) {
                    good.push(id)
                }
            }
            Err(e) => outcomes.push(Outcome {
                id: shorten(&id, 64).to_string(),
                ok: false,
                error: e,
            }),
        }
    }
    if good.is_empty() {
        return Ok(outcomes);
    }
    let what = match action {
        Bulk::Kill => "KillTasks",
        Bulk::Delete => "DeleteTasks",
    };
    let res = call(st, what, |mut c| {
        let ids = TaskIds { ids: good.clone() };
        async move {
            match action {
                Bulk::Kill => c.tasks.kill_tasks(ids).await,
                Bulk::Delete => c.tasks.delete_tasks(ids).await,
            }
        }
    })
    .await?;
    for id in good {
        let ok = res.results.get(&id).copied().unwrap_or(false);
        let error = if ok {
            String::new()
        } else {
            res.errors
                .get(&id)
                .map(|e| st.scrub(e))
                .unwrap_or_else(|| "no effect".into())
        };
        outcomes.push(Outcome { id, ok, error });
    }
    Ok(outcomes)
}

/// The task list query of `/tasks` and `/api/v1/tasks`: `state` (repeatable, or
/// comma-separated), `type`, `q`, `size` (1–500), `page` (the token of the page to show),
/// `results`.
pub fn list_request(q: &[(String, String)]) -> Result<ListTasksRequest, ActionError> {
    let mut r = ListTasksRequest {
        page_size: 50,
        ..Default::default()
    };
    for (k, v) in q {
        match k.as_str() {
            "state" if !v.is_empty() => {
                for part in v.split(',') {
                    let s = parse_state(part.trim()).ok_or_else(|| {
                        ActionError::Invalid(format!(
                            "unknown state {:?}: one of {}",
                            shorten(part, 40),
                            STATES.map(state_name).join(", ")
                        ))
                    })?;
                    if !r.states.contains(&(s as i32)) {
                        r.states.push(s as i32);
                    }
                }
            }
            "type" => {
                if !v.is_empty() {
                    check_type_name(v).map_err(ActionError::Invalid)?;
                }
                r.r#type = v.clone();
            }
            "q" => {
                check_text("search text", v, 256, true).map_err(ActionError::Invalid)?;
                r.text = v.trim().to_string();
            }
            "size" | "page_size" => {
                r.page_size = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=500).contains(n))
                    .ok_or_else(|| {
                        ActionError::Invalid(format!("{k} {v:?}: a number from 1 to 500"))
                    })?;
            }
            "page" | "page_token" => {
                if v.len() > 512 || v.chars().any(char::is_control) {
                    return Err(ActionError::Invalid("page: not a page token".into()));
                }
                r.page_token = v.clone();
            }
            "results" => r.with_results = v == "1" || v == "true",
            _ => {}
        }
    }
    Ok(r)
}

/// One page of tasks, newest first.
pub async fn list(st: &AppState, r: &ListTasksRequest) -> Result<ListTasksResponse, ActionError> {
    call(st, "ListTasks", |mut c| {
        let r = r.clone();
        async move { c.tasks.list_tasks(r).await }
    })
    .await
}

/// One task, with its recent results.
pub async fn get(st: &AppState, id: &str) -> Result<Task, ActionError> {
    check_id(id).map_err(ActionError::Invalid)?;
    call(st, "GetTask", |mut c| {
        let id = id.to_string();
        async move { c.tasks.get_task(GetTaskRequest { id }).await }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitflock_proto::v1::TaskState;

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_list_query_reads_filters_and_refuses_nonsense() {
        let r = list_request(&query(&[
            ("state", "running,waiting"),
            ("state", "RUNNING"),
            ("type", "echo"),
            ("q", "  needle "),
            ("size", "3"),
        ]))
        .unwrap();
        assert_eq!(
            r.states,
            [TaskState::Running as i32, TaskState::Waiting as i32]
        );
        assert_eq!((r.r#type.as_str(), r.text.as_str()), ("echo", "needle"));
        assert_eq!(r.page_size, 3);
        assert_eq!(list_request(&[]).unwrap().page_size, 50);
        for bad in [
            ("state", "NOPE"),
            ("size", "0"),
            ("size", "x"),
            ("type", "Not A Type"),
            ("page", "a\nb"),
        ] {
            assert!(
                matches!(list_request(&query(&[bad])), Err(ActionError::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn targets_and_intervals_are_checked_as_the_nodes_check_them() {
        assert!(check_target("sleep", "2s").is_ok());
        assert!(check_target("sleep", "forever").is_err());
        assert!(check_target("block", "").is_ok());
        assert!(check_target("block", "no such/name").is_err());
        assert!(check_target("mirror", "https://example.com/a/b.git").is_ok());
        assert!(check_target("mirror", "").is_err());
        assert!(check_target("echo", "anything").is_ok());
        assert_eq!(parse_interval(""), Ok(0));
        assert_eq!(parse_interval("90"), Ok(90));
        assert_eq!(parse_interval("5m"), Ok(300));
        assert!(parse_interval("1500ms").is_err());
        assert!(parse_interval("soon").is_err());
    }

    #[test]
    fn the_first_field_error_is_the_forms_own_then_type_target_name_interval() {
        let mut e = FieldErrors {
            interval: "i".into(),
            name: "n".into(),
            ..Default::default()
        };
        assert_eq!(e.first(), "n");
        e.kind = "k".into();
        assert_eq!(e.first(), "k");
        e.form = "f".into();
        assert_eq!(e.first(), "f");
        assert!(!FieldErrors::default().any());
    }
}
