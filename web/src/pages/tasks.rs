//! The task pages: the list with its filters (`/tasks`), one task (`/tasks/{id}`), the create
//! form (`/tasks/new`, with an error on each field it is about), and the kill, delete and bulk
//! forms.

use super::{get, query_pairs};
use crate::actions::ActionError;
use crate::actions::tasks::{self as act, Bulk, CreateError, FieldErrors, Outcome, TaskForm};
use crate::respond::{Layout, error_page, failure_page, html, layout, see_other};
use crate::state::AppState;
use crate::views::{self, TaskView};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use gitflock_core::clock::now_ms;
use gitflock_core::task::{KNOWN_TYPES, STATES, state_name};
use gitflock_proto::v1::{ListTasksRequest, TaskState};
use tonic::Code;

pub struct StateOpt {
    pub name: &'static str,
    pub class: &'static str,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "tasks.html")]
struct TasksPage {
    l: Layout,
    tasks: Vec<TaskView>,
    total: u64,
    states: Vec<StateOpt>,
    kind: String,
    q: String,
    size: u32,
    filtered: bool,
    first_page: bool,
    first_url: String,
    next_url: String,
    types: [&'static str; 4],
    flash: String,
}

/// `/tasks` with the filters of `r` and page `page` (the defaults left out).
fn tasks_url(r: &ListTasksRequest, page: &str) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    for s in &r.states {
        if let Ok(s) = TaskState::try_from(*s) {
            pairs.push(("state", state_name(s).to_string()));
        }
    }
    if !r.r#type.is_empty() {
        pairs.push(("type", r.r#type.clone()));
    }
    if !r.text.is_empty() {
        pairs.push(("q", r.text.clone()));
    }
    if r.page_size != 50 {
        pairs.push(("size", r.page_size.to_string()));
    }
    if !page.is_empty() {
        pairs.push(("page", page.to_string()));
    }
    let qs = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    if qs.is_empty() {
        "/tasks".into()
    } else {
        format!("/tasks?{qs}")
    }
}

pub async fn tasks(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    let q = query_pairs(&req);
    let lr = match act::list_request(&q) {
        Ok(r) => r,
        Err(e) => return failure_page(&req, &e),
    };
    let resp = match act::list(&st, &lr).await {
        Ok(r) => r,
        Err(e) => return failure_page(&req, &e),
    };
    let now = now_ms();
    let flash = match get(&q, "done") {
        Some("deleted") => "Task deleted.".to_string(),
        _ => String::new(),
    };
    html(
        StatusCode::OK,
        &TasksPage {
            l: layout(&req, "Tasks", "tasks"),
            tasks: resp
                .tasks
                .iter()
                .map(|t| views::task_view(t, now))
                .collect(),
            total: resp.total,
            states: STATES
                .iter()
                .map(|s| StateOpt {
                    name: state_name(*s),
                    class: views::state_class(*s),
                    selected: lr.states.contains(&(*s as i32)),
                })
                .collect(),
            kind: lr.r#type.clone(),
            q: lr.text.clone(),
            size: lr.page_size,
            filtered: !lr.states.is_empty() || !lr.r#type.is_empty() || !lr.text.is_empty(),
            first_page: lr.page_token.is_empty(),
            first_url: tasks_url(&lr, ""),
            next_url: if resp.next_page_token.is_empty() {
                String::new()
            } else {
                tasks_url(&lr, &resp.next_page_token)
            },
            types: KNOWN_TYPES,
            flash,
        },
    )
}

#[derive(Template)]
#[template(path = "new_task.html")]
struct NewTaskPage {
    l: Layout,
    form: TaskForm,
    errors: FieldErrors,
    types: [&'static str; 4],
}

fn new_task_page(
    req: &HttpRequest,
    status: StatusCode,
    form: TaskForm,
    errors: FieldErrors,
) -> HttpResponse {
    html(
        status,
        &NewTaskPage {
            l: layout(req, "New task", "tasks"),
            form,
            errors,
            types: KNOWN_TYPES,
        },
    )
}

pub async fn new_task_form(req: HttpRequest) -> HttpResponse {
    let q = query_pairs(&req);
    let form = TaskForm {
        kind: get(&q, "type").unwrap_or("echo").to_string(),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    };
    new_task_page(&req, StatusCode::OK, form, FieldErrors::default())
}

pub async fn create_task(
    req: HttpRequest,
    st: web::Data<AppState>,
    form: web::Form<TaskForm>,
) -> HttpResponse {
    let mut form = form.into_inner();
    // Kept in the form shown again: sending it twice creates one task.
    if form.request_id.is_empty() {
        form.request_id = uuid::Uuid::new_v4().to_string();
    }
    match act::create(&st, &form).await {
        Ok(t) => see_other(&format!("/tasks/{}", t.id)),
        Err(CreateError::Fields(errors)) => {
            new_task_page(&req, StatusCode::BAD_REQUEST, form, errors)
        }
        Err(CreateError::Failed(e)) => {
            let errors = FieldErrors {
                form: e.to_string(),
                ..Default::default()
            };
            new_task_page(&req, e.status(), form, errors)
        }
    }
}

#[derive(Template)]
#[template(path = "bulk.html")]
struct BulkPage {
    l: Layout,
    action: &'static str,
    outcomes: Vec<Outcome>,
    ok_count: usize,
}

/// `POST /tasks/bulk` (`action` kill or delete, `ids` repeated): an outcome per task.
pub async fn bulk(req: HttpRequest, st: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let pairs: Vec<(String, String)> = match serde_urlencoded::from_bytes(&body) {
        Ok(p) => p,
        Err(e) => return error_page(&req, StatusCode::BAD_REQUEST, format!("bad form: {e}")),
    };
    let action = match get(&pairs, "action") {
        Some("kill") => Bulk::Kill,
        Some("delete") => Bulk::Delete,
        _ => {
            return error_page(
                &req,
                StatusCode::BAD_REQUEST,
                "choose an action: kill or delete",
            );
        }
    };
    let ids: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "ids")
        .map(|(_, v)| v.clone())
        .collect();
    if ids.is_empty() {
        return error_page(
            &req,
            StatusCode::BAD_REQUEST,
            "no task selected: tick the tasks to act on first",
        );
    }
    let outcomes = match act::kill_or_delete(&st, action, ids).await {
        Ok(o) => o,
        Err(e) => return failure_page(&req, &e),
    };
    let ok_count = outcomes.iter().filter(|o| o.ok).count();
    html(
        StatusCode::OK,
        &BulkPage {
            l: layout(&req, format!("Bulk {}", action.verb()), "tasks"),
            action: action.verb(),
            outcomes,
            ok_count,
        },
    )
}

#[derive(Template)]
#[template(path = "task.html")]
struct TaskPage {
    l: Layout,
    t: TaskView,
}

pub async fn task(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    let id = id.into_inner();
    match act::get(&st, &id).await {
        Ok(t) => {
            let view = views::task_view(&t, now_ms());
            html(
                StatusCode::OK,
                &TaskPage {
                    l: layout(&req, format!("Task {}", view.name), "tasks"),
                    t: view,
                },
            )
        }
        Err(e) if e.code() == Code::NotFound => error_page(
            &req,
            StatusCode::NOT_FOUND,
            format!("there is no task {id} (it may have been deleted)"),
        ),
        Err(e) => failure_page(&req, &e),
    }
}

/// Kills or deletes task `id`: `None` once done, else the error page.
async fn act_on_one(
    req: &HttpRequest,
    st: &AppState,
    id: &str,
    action: Bulk,
) -> Option<HttpResponse> {
    if let Err(e) = gitflock_core::task::check_id(id) {
        return Some(failure_page(req, &ActionError::Invalid(e)));
    }
    let outcomes = match act::kill_or_delete(st, action, vec![id.to_string()]).await {
        Ok(o) => o,
        Err(e) => return Some(failure_page(req, &e)),
    };
    match outcomes.into_iter().next() {
        Some(o) if o.ok => None,
        Some(o) => Some(error_page(
            req,
            StatusCode::CONFLICT,
            format!("could not {} task {id}: {}", action.verb(), o.error),
        )),
        None => Some(error_page(
            req,
            StatusCode::BAD_GATEWAY,
            "the node gave no answer for this task",
        )),
    }
}

pub async fn kill_task(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    let id = id.into_inner();
    act_on_one(&req, &st, &id, Bulk::Kill)
        .await
        .unwrap_or_else(|| see_other(&format!("/tasks/{id}")))
}

pub async fn delete_task(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    act_on_one(&req, &st, &id, Bulk::Delete)
        .await
        .unwrap_or_else(|| see_other("/tasks?done=deleted"))
}
