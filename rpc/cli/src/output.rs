//! How the CLI prints: pretty JSON, RFC 3339 times, a node's JSON form.

use gitflock_core::task::rfc3339;
use gitflock_proto::v1::NodeInfo;
use serde_json::{Value, json};

pub fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub fn node_json(n: &NodeInfo) -> Value {
    json!({
        "name": n.name, "addr": n.addr, "role": n.role, "state": n.state, "epoch": n.epoch,
        "last_heartbeat": rfc3339(n.last_heartbeat), "running": n.running,
        "concurrency": n.concurrency, "version": n.version,
    })
}

pub fn when(ms: i64) -> String {
    match rfc3339(ms) {
        Value::String(s) => s,
        _ => "-".into(),
    }
}
