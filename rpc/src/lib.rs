//! gitflock: a master/slave task cluster coordinated through Redis.
//!
//! The data flow, one module per arrow:
//! gRPC request ([`service`]) → [`store`] (Redis, the only module that talks to it) →
//! [`dispatch`] (the master, under the [`lease`]) → node inbox → [`worker`] → [`runner`]
//! (echo, sleep, …) → result → [`store`] → watchers ([`changes`]).
//!
//! - [`config`]: the TOML file and `GITFLOCK_<SECTION>_<KEY>` overrides.
//! - [`task`]: states, limits, validation, the JSON form.
//! - [`membership`]: presence, signed heartbeats, probes, verdicts and failover of work;
//!   [`public`]: the signed Public channel protocol; [`listener`]: pub/sub wake-ups.
//! - [`node`]: the daemon's wiring and ordered shutdown; [`systemd`]: readiness and watchdog; [`cli`]: the `gitflock` commands,
//!   with [`cli::dev`], a whole local cluster in one command.

pub mod chain;
pub mod chain_service;
pub mod changes;
pub mod cli;
pub mod config;
pub mod dispatch;
pub mod lease;
pub mod listener;
pub mod membership;
pub mod metrics;
pub mod mirror;
pub mod mirror_service;
pub mod node;
pub mod public;
pub mod redact;
pub mod runner;
pub mod service;
pub mod store;
pub mod systemd;
pub mod task;
pub mod worker;
