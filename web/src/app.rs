//! The server: the shared state, the middleware and the route table of [`crate::routes`] on
//! every worker, systemd readiness and watchdog, and a graceful stop on SIGTERM / Ctrl-C.

use crate::config::WebConfig;
use crate::routes;
use crate::state::AppState;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};

/// Serves until SIGTERM / Ctrl-C (actix drains in-flight requests first).
pub async fn serve(cfg: WebConfig) -> std::io::Result<()> {
    let state = web::Data::new(AppState::new(&cfg).map_err(std::io::Error::other)?);
    let listen = cfg.listen;
    let server = HttpServer::new(move || {
        // The last wrapped runs first: observe (every request counted, refusals included),
        // then the security headers, then the login and CSRF check.
        App::new()
            .app_data(state.clone())
            .wrap(from_fn(routes::access))
            .wrap(routes::security_headers())
            .wrap(from_fn(routes::observe))
            .configure(routes::configure)
    })
    .bind(listen)?
    .shutdown_timeout(10)
    .run();
    tracing::info!(%listen, nodes = ?cfg.nodes, "gitflock-web listening");
    gitflock_core::systemd::ready();
    if let Some(every) = gitflock_core::systemd::watchdog_every() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                gitflock_core::systemd::watchdog();
            }
        });
    }
    let res = server.await;
    gitflock_core::systemd::stopping();
    tracing::info!("gitflock-web stopped");
    res
}
