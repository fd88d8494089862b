//! The gitflock node (`gitflock-node`): a master/slave task cluster coordinated through Redis.
//!
//! The data flow, one folder per stage:
//! gRPC request ([`api`]) → [`store`] (Redis; the only module that talks to it) →
//! [`engine::dispatch`] (the master, under the [`cluster::lease`]) → node inbox →
//! [`engine::worker`] → [`runner`] (echo, sleep, block, mirror) → result → [`store`] →
//! watchers ([`engine::changes`]).
//!
//! - [`cluster`]: the lease, the signed Public channel, presence and membership.
//! - [`runner`]: one file per task type behind one trait; [`mirror`] and [`chain`] hold the git
//!   work they call (blocking, off the async workers).
//! - [`daemon`]: start-up, the wake-up listener and ordered shutdown, as one type.
//! - [`metrics`]: Prometheus `gitflock_*` and the `/metrics` endpoint.
//!
//! What the CLI and the dashboard share with the node (config, task model, log-entry rules,
//! mirror URLs) is in `gitflock-core`; the gRPC client is `gitflock-client`.

pub mod api;
pub mod chain;
pub mod cluster;
pub mod daemon;
pub mod engine;
pub mod metrics;
pub mod mirror;
pub mod runner;
pub mod store;
