//! `gitflock nodes` and `gitflock status`.

use crate::Result;
use crate::output::{clean, node_json, print_json, print_table, when};
use gitflock_client::Client;
use gitflock_core::task as model;
use gitflock_proto::v1::Empty;
use serde_json::{Value, json};

/// The nodes, sorted by name (the node sorts them), so the rows keep their order.
pub async fn nodes(c: &mut Client, as_json: bool) -> Result<()> {
    let nodes = c.nodes.list_nodes(Empty {}).await?.into_inner().nodes;
    if as_json {
        print_json(&Value::Array(nodes.iter().map(node_json).collect()));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.addr.clone(),
                n.role.clone(),
                n.state.clone(),
                n.epoch.to_string(),
                format!("{}/{}", n.running, n.concurrency),
                if n.metrics.is_empty() {
                    "-".into()
                } else {
                    format!("http://{}/metrics", n.metrics)
                },
                when(n.last_heartbeat),
            ]
        })
        .collect();
    print_table(
        &[
            "NAME",
            "ADDR",
            "ROLE",
            "STATE",
            "EPOCH",
            "LOAD",
            "METRICS",
            "LAST_HEARTBEAT",
        ],
        &rows,
    );
    Ok(())
}

pub async fn status(c: &mut Client, as_json: bool) -> Result<()> {
    let s = c.nodes.status(Empty {}).await?.into_inner();
    let mut counts = serde_json::Map::new();
    for st in model::STATES {
        let name = st.as_str_name();
        counts.insert(name.into(), json!(s.counts.get(name).copied().unwrap_or(0)));
    }
    if as_json {
        print_json(&json!({
            "master": s.master, "epoch": s.epoch,
            "nodes": s.nodes.iter().map(node_json).collect::<Vec<_>>(),
            "counts": counts, "type_counts": s.type_counts,
        }));
        return Ok(());
    }
    let master = if s.master.is_empty() {
        "(none)".into()
    } else {
        clean(&s.master)
    };
    println!("master: {master} (epoch {})", s.epoch);
    let alive = s.nodes.iter().filter(|n| n.state == "alive").count();
    println!("nodes:  {} ({alive} alive)", s.nodes.len());
    let line: Vec<String> = model::STATES
        .iter()
        .map(|st| format!("{}={}", st.as_str_name(), counts[st.as_str_name()]))
        .collect();
    println!("tasks:  {}", line.join(" "));
    Ok(())
}
