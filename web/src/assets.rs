//! The stylesheet, the script and the icon (`static/`), compiled in: the dashboard works
//! offline and from any directory, with no CDN.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

const APP_CSS: &str = include_str!("../../static/app.css");
const APP_JS: &str = include_str!("../../static/app.js");
const FAVICON: &str = include_str!("../../static/favicon.svg");

/// `/static/{file}`.
pub async fn static_file(path: web::Path<String>) -> HttpResponse {
    let (body, mime) = match path.as_str() {
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "favicon.svg" => (FAVICON, "image/svg+xml"),
        _ => return HttpResponse::NotFound().body("no such file"),
    };
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, mime))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body)
}

/// `/favicon.ico`, for browsers that ask before reading the page's icon link.
pub async fn favicon() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "image/svg+xml"))
        .body(FAVICON)
}
