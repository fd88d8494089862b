//! The log chain: write an entry (checked with the node's rules, `gitflock_core::log_entry`),
//! make a block, read entries, list blocks.

use super::{ActionError, call};
use crate::state::AppState;
use gitflock_core::config::check_node_name;
use gitflock_core::log_entry::{check_content, check_level, parse_time};
use gitflock_core::task::shorten;
use gitflock_proto::v1::{
    Block, ListBlocksRequest, LogEntry, MakeBlockRequest, ReadLogsRequest, StoredEntry, Task,
    WriteLogResponse,
};
use serde::Deserialize;

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
