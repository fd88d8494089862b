//! The JSON side: `/api/v1`, the seed-compatible routes (`POST /create_task`, `/del_task`,
//! `/write`, `/make_block`: form or JSON in, JSON out, as the seed documented them), `/events`
//! (server-sent events), the push webhook, `/healthz` and `/metrics`. Every handler reads
//! or changes the cluster through [`crate::actions`] and answers JSON only, its failures as
//! `{"error": "..."}` ([`crate::respond::failure_json`]).
//!
//! - [`tasks`]: list, get, create, kill and delete (one or many), and the seed's two task
//!   routes.
//! - [`chain`]: read and write log entries, list and make blocks, and the seed's two chain
//!   routes.
//! - [`mirrors`]: list, sync now, and `POST /hooks/push`.
//! - [`cluster`]: the status and the nodes; the process's own `/healthz` and `/metrics`.
//! - [`events`]: `/events`, the live stream of [`crate::live`].

pub mod chain;
pub mod cluster;
pub mod events;
pub mod mirrors;
pub mod tasks;

use actix_web::HttpRequest;

/// The query string's pairs (an unreadable query reads as none).
fn query_pairs(req: &HttpRequest) -> Vec<(String, String)> {
    serde_urlencoded::from_str(req.query_string()).unwrap_or_default()
}

/// The first value of `k`, or empty.
fn param(q: &[(String, String)], k: &str) -> String {
    q.iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}
