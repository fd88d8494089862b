//! The HTML pages (askama templates in `templates/`) and the forms they post, one module per
//! page. Every page reads the cluster through [`crate::actions`] and answers in HTML only:
//! a refused form is shown again with its errors, any other failure is the error page
//! ([`crate::respond::error_page`]) with the status code that matches it, never JSON.
//!
//! Every form carries the session's CSRF token (checked by [`crate::guard`]); every value is
//! escaped by askama.
//!
//! - [`login`]: the login form, logging in and out.
//! - [`overview`]: `/`, the cluster at a glance.
//! - [`tasks`]: the task list, one task, the create form, kill, delete and bulk actions.
//! - [`nodes`], [`mirrors`], [`chain`]: those pages and their forms.

pub mod chain;
pub mod login;
pub mod mirrors;
pub mod nodes;
pub mod overview;
pub mod tasks;

use crate::respond::error_page;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

/// The query string's pairs (an unreadable query reads as none).
fn query_pairs(req: &HttpRequest) -> Vec<(String, String)> {
    serde_urlencoded::from_str(req.query_string()).unwrap_or_default()
}

/// The first non-empty value of `k`.
fn get<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Any path no route matches (outside `/api/`).
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    error_page(
        &req,
        StatusCode::NOT_FOUND,
        format!("there is no page at {}", req.path()),
    )
}
