//! gitflock-web: the dashboard, an actix-web server that is a gRPC client of the nodes.
//!
//! The request path, one module per step:
//! HTTP request → [`routes`] (the one route table; [`routes::observe`] counts and times it) →
//! [`guard`] (session cookie or Bearer, CSRF; the rules are [`auth`]'s) → a handler in
//! [`pages`] (askama HTML) or [`api`] (`/api/v1` and seed-compatible JSON) → an operation in
//! [`actions`] (checked with the node's rules, typed results or a typed error) →
//! `gitflock_client::Pool` (one gRPC call, failing over between the configured nodes) → the
//! cluster. Live updates: [`live`] keeps one `WatchTasks` stream and a 1 s cluster snapshot
//! per process and fans both out to every `/events` subscriber ([`api::events`]).
//!
//! The modules in layers; each uses only those listed before it (no circles):
//!
//! 1. [`config`]: the `[web]` section of the shared config file (and its env overrides).
//! 2. [`metrics`]: the `gitflock_web_*` Prometheus metrics.
//! 3. [`views`]: proto messages turned into what templates and JSON show (times, states).
//! 4. [`live`]: the live followers and their broadcast hub (metrics, views).
//! 5. [`auth`]: password, signed sessions, CSRF and login-form tokens, login rate limit,
//!    cookies, the [`auth::Viewer`] (config).
//! 6. [`state`]: [`state::AppState`], one per process, and `scrub` (config, auth, metrics, live).
//! 7. [`actions`]: the typed operations on the cluster, the only request-path code that calls
//!    the nodes (state).
//! 8. [`respond`]: the shared small responses — page rendering and layout, the error page,
//!    JSON errors, the HTTP status of a failed action (auth, actions).
//! 9. [`guard`]: the login and CSRF middleware's work (auth, state, respond).
//! 10. [`assets`] (the compiled-in static files), [`pages`] (HTML) and [`api`] (JSON), side by
//!     side and never using each other (views, auth, state, actions, respond).
//! 11. [`routes`]: the route table, open routes, HTML or JSON per route, the middleware
//!     (pages, api, assets, guard, respond, state).
//! 12. [`app`]: the server, readiness and the watchdog (config, state, routes).

pub mod actions;
pub mod api;
pub mod app;
pub mod assets;
pub mod auth;
pub mod config;
pub mod guard;
pub mod live;
pub mod metrics;
pub mod pages;
pub mod respond;
pub mod routes;
pub mod state;
pub mod views;
