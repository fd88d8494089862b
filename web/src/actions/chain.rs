//! The log chain: write an entry (checked with the node's rules, `gitflock_core::log_entry`),
//! make a block, read entries, list blocks. Each node keeps its own chain: reads and writes
//! go to the node that answers, or (`*_on`) to one node by name, found among the dashboard's
//! endpoints by its advertised address.

use super::{ActionError, call};
use crate::state::AppState;
use gitflock_client::Client;
use gitflock_core::config::check_node_name;
use gitflock_core::log_entry::{check_content, check_level, parse_time};
use gitflock_core::task::shorten;
use gitflock_proto::v1::{
    Block, ListBlocksRequest, LogEntry, MakeBlockRequest, ReadLogsRequest, StoredEntry, Task,
    WriteLogResponse,
};
use serde::Deserialize;
use std::time::Duration;
use tonic::{Code, Status};

/// An entry to write, as the chain page's form, the seed's `/write` form and the API's JSON
/// body send it.
#[derive(Deserialize, Default, Clone, Debug)]
pub struct NewEntry {
    /// Empty: `info`.
    #[serde(default)]
    pub level: String,
    #[serde(default)]
    pub content: String,
    /// RFC 3339; empty: the node stamps it with now.
    #[serde(default)]
    pub create_at: String,
}

/// The entry to send, checked as the node checks it. A browser sends a textarea's line ends
/// as CRLF: they become LF, which is what the chain keeps (any other CR is refused).
pub fn log_entry(e: &NewEntry) -> Result<LogEntry, ActionError> {
    let level = check_level(if e.level.is_empty() { "info" } else { &e.level })
        .map_err(ActionError::Invalid)?;
    let content = e.content.replace("\r\n", "\n");
    check_content(&content).map_err(ActionError::Invalid)?;
    let at = e.create_at.trim();
    if !at.is_empty() {
        parse_time(at).map_err(ActionError::Invalid)?;
    }
    Ok(LogEntry {
        level,
        content,
        create_at: at.to_string(),
    })
}

/// Writes one entry to the answering node's chain; acknowledged once durable.
pub async fn write(st: &AppState, e: &NewEntry) -> Result<WriteLogResponse, ActionError> {
    let entry = log_entry(e)?;
    call(st, "WriteLog", |mut c| {
        let e = entry.clone();
        async move { c.chain.write_log(e).await }
    })
    .await
}

/// Whose block to make, as the chain page's form and the API's JSON body send it.
#[derive(Deserialize, Default, Clone, Debug)]
pub struct BlockOf {
    /// Empty: every live node.
    #[serde(default)]
    pub node: String,
}

/// A node name as a form or a query gives it: empty means every node.
fn check_node(node: &str) -> Result<(), ActionError> {
    if node.is_empty() {
        return Ok(());
    }
    check_node_name(node)
        .map_err(|e| ActionError::Invalid(format!("node {:?}: {e}", shorten(node, 64))))
}

/// Creates the block task of `node` (empty: every live node's).
pub async fn make_block(st: &AppState, node: &str) -> Result<Task, ActionError> {
    check_node(node)?;
    call(st, "MakeBlock", |mut c| {
        let node = node.to_string();
        async move { c.chain.make_block(MakeBlockRequest { node }).await }
    })
    .await
}

/// The blocks pushed by `node` (empty: every node), newest first; `limit` 0: the node's
/// default.
pub async fn blocks(st: &AppState, node: &str, limit: u32) -> Result<Vec<Block>, ActionError> {
    check_node(node)?;
    call(st, "ListBlocks", |mut c| {
        let node = node.to_string();
        async move { c.chain.list_blocks(ListBlocksRequest { node, limit }).await }
    })
    .await
    .map(|b| b.blocks)
}

/// How long a call to one named node may take.
const ON_NODE: Duration = Duration::from_secs(10);

/// `host:port` of an address or URL (what a node advertises and a pool endpoint share).
fn authority(addr: &str) -> &str {
    addr.split_once("://")
        .map_or(addr, |(_, rest)| rest)
        .trim_end_matches('/')
}

/// The clients of node `name`, if it is one of the dashboard's endpoints.
async fn node_client(st: &AppState, name: &str) -> Result<Client, ActionError> {
    check_node(name)?;
    let nodes = super::cluster::nodes(st).await?;
    let Some(n) = nodes.iter().find(|n| n.name == name) else {
        return Err(ActionError::Invalid(format!(
            "there is no node {:?}",
            shorten(name, 64)
        )));
    };
    let want = authority(&n.addr);
    (0..st.pool.len())
        .find(|&i| authority(st.pool.url(i)) == want)
        .map(|i| st.pool.watch_clients(i))
        .ok_or_else(|| ActionError::Node {
            code: Code::FailedPrecondition,
            message: format!(
                "the dashboard does not talk to {name} ({}): add that address to [web] nodes",
                st.scrub(&n.addr)
            ),
        })
}

/// One call to node `name`, bounded by [`ON_NODE`].
async fn on_node<T, Fut>(st: &AppState, name: &str, call: Fut) -> Result<T, ActionError>
where
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    match tokio::time::timeout(ON_NODE, call).await {
        Ok(r) => r.map_err(|s| ActionError::from_status(st, &s)),
        Err(_) => Err(ActionError::Node {
            code: Code::DeadlineExceeded,
            message: format!("{name} did not answer within {}s", ON_NODE.as_secs()),
        }),
    }
}

/// The newest `n` entries (oldest first) of node `name`'s chain, and its height.
pub async fn recent_on(
    st: &AppState,
    name: &str,
    n: u64,
) -> Result<(u64, Vec<StoredEntry>), ActionError> {
    let mut c = node_client(st, name).await?;
    let read = async move {
        let r = ReadLogsRequest {
            tail: n.max(1),
            ..Default::default()
        };
        let mut stream = c.chain.read_logs(r).await?.into_inner();
        let mut out = Vec::new();
        while let Some(e) = stream.message().await? {
            out.push(e);
        }
        Ok(out)
    };
    let entries = on_node(st, name, read).await?;
    let height = entries.last().map_or(0, |e| e.height);
    Ok((height, entries))
}

/// Writes one entry to node `name`'s chain.
pub async fn write_on(
    st: &AppState,
    name: &str,
    e: &NewEntry,
) -> Result<WriteLogResponse, ActionError> {
    let entry = log_entry(e)?;
    let mut c = node_client(st, name).await?;
    on_node(st, name, async move {
        c.chain.write_log(entry).await.map(|r| r.into_inner())
    })
    .await
}

/// One `ReadLogs` call (never following), its stream collected.
async fn read_logs(st: &AppState, r: ReadLogsRequest) -> Result<Vec<StoredEntry>, ActionError> {
    call(st, "ReadLogs", |mut c| {
        let r = r.clone();
        async move {
            let (meta, mut stream, ext) = c.chain.read_logs(r).await?.into_parts();
            let mut out = Vec::new();
            while let Some(e) = stream.message().await? {
                out.push(e);
            }
            Ok(tonic::Response::from_parts(meta, out, ext))
        }
    })
    .await
}

/// The newest `n` entries (oldest first) and the chain's height, in one `tail` read.
pub async fn recent(st: &AppState, n: u64) -> Result<(u64, Vec<StoredEntry>), ActionError> {
    let entries = read_logs(
        st,
        ReadLogsRequest {
            tail: n.max(1),
            ..Default::default()
        },
    )
    .await?;
    let height = entries.last().map_or(0, |e| e.height);
    Ok((height, entries))
}

/// Up to `limit` entries from height `since` on (0: the newest `limit`), oldest first.
pub async fn read(st: &AppState, since: u64, limit: u64) -> Result<Vec<StoredEntry>, ActionError> {
    if since == 0 {
        return recent(st, limit).await.map(|(_, e)| e);
    }
    read_logs(
        st,
        ReadLogsRequest {
            since,
            limit,
            ..Default::default()
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(level: &str, content: &str, create_at: &str) -> NewEntry {
        NewEntry {
            level: level.into(),
            content: content.into(),
            create_at: create_at.into(),
        }
    }

    #[test]
    fn an_entry_is_checked_with_the_nodes_rules() {
        let e = log_entry(&entry("", "line one\r\nline two", "")).unwrap();
        assert_eq!(
            (e.level.as_str(), e.content.as_str(), e.create_at.as_str()),
            ("info", "line one\nline two", "")
        );
        let e = log_entry(&entry("WARN", "x", " 2026-01-02T03:04:05Z ")).unwrap();
        assert_eq!(
            (e.level.as_str(), e.create_at.as_str()),
            ("warn", "2026-01-02T03:04:05Z")
        );
        for bad in [
            entry("loud", "x", ""),
            entry("info", "  ", ""),
            entry("info", "a\rb", ""),
            entry("info", "a\0b", ""),
            entry("info", "x", "yesterday"),
        ] {
            assert!(
                matches!(log_entry(&bad), Err(ActionError::Invalid(_))),
                "{bad:?}"
            );
        }
    }
}
