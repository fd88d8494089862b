//! The dashboard over HTTP, against a real cluster (redis-server + gitflock-node processes)
//! and the real gitflock-web binary.
//!
//! One test binary; the scenarios are in the submodules.

mod api;
mod auth;
#[path = "../common/mod.rs"]
mod common;
mod ops;
mod pages;
