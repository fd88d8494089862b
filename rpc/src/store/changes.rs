//! The task change stream (`events`): every transition script XADDs the task's id there;
//! one follower per node reads it for WatchTasks.

use redis::aio::MultiplexedConnection;
use std::collections::HashMap;
use std::time::Duration;

use super::{Result, Store};

/// A raw stream entry: its id and fields.
type StreamEntry = (String, HashMap<String, String>);

/// One entry of the task change stream.
#[derive(Clone, Debug)]
pub struct TaskChange {
    pub id: String,
    pub deleted: bool,
}

impl Store {
    /// Reads the task change stream after `last` (a stream id; "$" for "from now"), blocking up
    /// to `block`. Returns the new last id and the changes.
    pub async fn read_changes(
        &self,
        conn: &mut MultiplexedConnection,
        last: &str,
        block: Duration,
    ) -> Result<(String, Vec<TaskChange>)> {
        let reply: Option<Vec<(String, Vec<StreamEntry>)>> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(1000)
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(self.keys.events())
            .arg(last)
            .query_async(conn)
            .await?;
        let mut new_last = last.to_string();
        let mut out = Vec::new();
        for (_, entries) in reply.unwrap_or_default() {
            for (sid, fields) in entries {
                new_last = sid;
                if let Some(id) = fields.get("id") {
                    out.push(TaskChange {
                        id: id.clone(),
                        deleted: fields.get("kind").map(String::as_str) == Some("d"),
                    });
                }
            }
        }
        if new_last == "$" {
            // Nothing arrived: pin "from now" to a concrete id so nothing is skipped next time.
            let info: Option<Vec<StreamEntry>> = redis::cmd("XREVRANGE")
                .arg(self.keys.events())
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query_async(conn)
                .await?;
            new_last = info
                .and_then(|v| v.into_iter().next().map(|e| e.0))
                .unwrap_or_else(|| "0-0".to_string());
        }
        Ok((new_last, out))
    }
}
