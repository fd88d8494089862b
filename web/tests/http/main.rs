//! The dashboard over HTTP, against a real cluster (redis-server + gitflock-node processes)
//! and the real gitflock-web binary.
//!
//! One test binary; the scenarios are in the submodules.

mod api;
mod auth;
#[path = "../common/mod.rs"]
mod common;
mod faults;
mod future_entries;
mod login;
mod ops;
mod pages;
mod tls;
