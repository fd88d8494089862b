//! The small responses every handler (and the guard) shares: a page from its template, the
//! error page, a JSON error, a redirect, and the HTTP status of a failed action.
//!
//! A route answers in one [`Format`], refusals included: a person's browser gets an HTML page
//! for every answer of a page or one of its forms, a program gets JSON. Which route is which
//! is said once, next to the route table (`routes::format`).

use crate::actions::ActionError;
use crate::auth::Viewer;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use askama::Template;
use tonic::Code;

/// What a route's answers are written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Pages and the forms they post (`templates/`).
    Html,
    /// `/api/v1`, the seed-compatible routes, `/events`, `/metrics`, `/healthz`, the webhook.
    Json,
}

/// What the base template needs on every page.
pub struct Layout {
    pub title: String,
    /// The navigation entry to highlight; `login` shows the bare layout (no navigation, no
    /// logout form, no live stream), which is also what a request without a login gets.
    pub active: &'static str,
    pub csrf: String,
}

pub fn layout(req: &HttpRequest, title: impl Into<String>, active: &'static str) -> Layout {
    let viewer = req.extensions().get::<Viewer>().cloned();
    Layout {
        title: title.into(),
        active: if viewer.is_some() { active } else { "login" },
        csrf: viewer.map(|v| v.csrf).unwrap_or_default(),
    }
}

/// A rendered template, never cached (pages show live data and carry the CSRF token).
pub fn html(status: StatusCode, t: &impl Template) -> HttpResponse {
    match t.render() {
        Ok(body) => HttpResponse::build(status)
            .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            HttpResponse::InternalServerError().body("the page could not be rendered")
        }
    }
}

/// Where a form sends the browser once it did its work.
pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_string()))
        .finish()
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    l: Layout,
    status: u16,
    message: String,
}

/// The page that says what went wrong, with the status code that matches it.
pub fn error_page(
    req: &HttpRequest,
    status: StatusCode,
    message: impl Into<String>,
) -> HttpResponse {
    html(
        status,
        &ErrorPage {
            l: layout(req, status.as_u16().to_string(), ""),
            status: status.as_u16(),
            message: message.into(),
        },
    )
}

/// `{"error": "..."}` with `status`.
pub fn json_error(status: StatusCode, msg: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({ "error": msg.into() }))
}

/// A refusal in the route's format.
pub fn refusal(req: &HttpRequest, format: Format, status: StatusCode, msg: String) -> HttpResponse {
    match format {
        Format::Html => error_page(req, status, msg),
        Format::Json => json_error(status, msg),
    }
}

/// The HTTP status for a node's gRPC answer.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted | Code::FailedPrecondition => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::BAD_GATEWAY,
    }
}

impl ActionError {
    /// 400 for a refused input, else the status of the node's answer.
    pub fn status(&self) -> StatusCode {
        http_status(self.code())
    }
}

/// A failed action as the error page.
pub fn failure_page(req: &HttpRequest, e: &ActionError) -> HttpResponse {
    error_page(req, e.status(), e.to_string())
}

/// A failed action as `{"error": "..."}`.
pub fn failure_json(e: &ActionError) -> HttpResponse {
    json_error(e.status(), e.to_string())
}
