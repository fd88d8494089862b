//! The foundation, end to end: real redis-server, real node processes, real signals.
//!
//! One test binary; the scenarios are in the submodules.

#[path = "../common/mod.rs"]
mod common;
mod failover;
mod faults;
mod history;
mod hostile;
mod lifecycle;
mod metrics;
mod requests;
mod retention;
mod sentinel;
mod tls;
