//! gitflock-web: the dashboard, an actix-web server that is a gRPC client of the nodes.
//!
//! The request path, one module per step:
//! HTTP request → [`metrics`] (counted, timed) → [`auth`] (session cookie or Bearer, CSRF,
//! login rate limit) → a handler in [`pages`] (askama HTML), [`api`] (`/api/v1` JSON and the
//! seed-compatible routes) → `gitflock_client::Pool` (one gRPC call, failing over between the
//! configured nodes) → the cluster. Live updates: [`live`] keeps one `WatchTasks` stream and a 1 s
//! cluster snapshot per process and fans both out to every `/events` subscriber.
//!
//! - [`config`]: the `[web]` section of the shared config file (and its env overrides).
//! - [`views`]: proto messages turned into what templates and JSON show (times, states).
//! - [`app`]: the wiring — routes, shared state, the server, readiness and the watchdog.

pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod live;
pub mod metrics;
pub mod pages;
pub mod views;
