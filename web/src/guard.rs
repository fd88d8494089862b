//! The authentication and CSRF check in front of every route (the rules are [`crate::auth`]'s):
//!
//! - an open route passes as it is;
//! - `Authorization: Bearer <cluster token>` passes (a wrong one is 401), with no CSRF token;
//! - otherwise a valid session cookie is needed: without one, a page (an HTML GET) sends the
//!   browser to `/login?next=<where it was>`, anything else is 401;
//! - a state-changing request of a session carries the session's CSRF token (header
//!   `X-CSRF-Token`, or form field `csrf`), else 403.
//!
//! Refusals are written in the route's [`Format`]: the error page for pages and their forms,
//! `{"error": ...}` for the rest. The route table says which route is open and which format
//! it answers in, and wires [`check`] with them (`routes::access`).

use crate::auth::{COOKIE, CSRF_FIELD, CSRF_HEADER, Viewer, cookie_value};
use crate::respond::{Format, json_error, refusal};
use crate::state::AppState;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpResponse, web};

fn bearer(req: &ServiceRequest) -> Option<&str> {
    let h = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    h.strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("bearer "))
        .map(str::trim)
}

/// `/login?next=<path and query>`: back where the browser was, once logged in.
fn login_redirect(req: &ServiceRequest) -> HttpResponse {
    let next_path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let target = format!(
        "/login?next={}",
        serde_urlencoded::to_string([("", next_path)])
            .unwrap_or_default()
            .trim_start_matches('=')
    );
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, target))
        .finish()
}

/// The CSRF token the request carries: its header, else (in a form) its `csrf` field. The
/// form is read to find it, then the same bytes are handed on to the handler.
async fn presented_csrf(req: &mut ServiceRequest) -> Result<Option<String>, Error> {
    if let Some(h) = req.headers().get(CSRF_HEADER).and_then(|h| h.to_str().ok()) {
        return Ok(Some(h.to_string()));
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok(None);
    }
    let body = req.extract::<web::Bytes>().await?;
    let field = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
        .ok()
        .and_then(|kv| kv.into_iter().find(|(k, _)| k == CSRF_FIELD))
        .map(|(_, v)| v);
    req.set_payload(actix_web::dev::Payload::from(body));
    Ok(field)
}

/// The middleware's work (see the module doc); `open` and `format` are the route's.
pub async fn check(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    open: bool,
    format: Format,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    if open {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Err(actix_web::error::ErrorInternalServerError("no app state"));
    };
    let auth = &state.auth;

    if let Some(presented) = bearer(&req) {
        if !auth.check_bearer(presented) {
            // Only programs send a Bearer header: the answer is JSON whatever the route.
            let resp = json_error(StatusCode::UNAUTHORIZED, "bad bearer token");
            return Ok(req.into_response(resp).map_into_right_body());
        }
        req.extensions_mut().insert(Viewer {
            csrf: String::new(),
        });
        return Ok(next.call(req).await?.map_into_left_body());
    }

    let sid = cookie_value(req.request(), COOKIE).and_then(|v| auth.check_session(v));
    let Some(sid) = sid else {
        let resp = if format == Format::Html && req.method() == Method::GET {
            login_redirect(&req)
        } else {
            refusal(
                req.request(),
                format,
                StatusCode::UNAUTHORIZED,
                "login required (session cookie or Authorization: Bearer)".into(),
            )
        };
        return Ok(req.into_response(resp).map_into_right_body());
    };
    let csrf = auth.csrf_for(&sid);
    req.extensions_mut().insert(Viewer { csrf });

    if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        let presented = presented_csrf(&mut req).await?;
        if !presented.is_some_and(|p| auth.check_csrf(&sid, &p)) {
            let resp = refusal(
                req.request(),
                format,
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token: reload the page and try again".into(),
            );
            return Ok(req.into_response(resp).map_into_right_body());
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}
