//! Listing and counting tasks without KEYS or SCAN: keyset pagination over the creation-order
//! indexes (`all`, `state:<STATE>`, `type:<type>`, scored by `seq`), ZCARD / ZINTERCARD counts.

use gitflock_proto::v1::{Task, TaskState};
use redis::AsyncCommands;
use std::collections::BTreeMap;

use super::conn::Conn;
use super::{Result, Store, StoreError};
use gitflock_core::task::{self, STATES};

#[derive(Clone, Debug, Default)]
pub struct TaskQuery {
    pub states: Vec<TaskState>,
    pub kind: String,
    pub text: String,
    pub page_size: usize,
    pub page_token: String,
    pub with_results: bool,
}

#[derive(Clone, Debug, Default)]
pub struct TaskPage {
    pub tasks: Vec<Task>,
    pub next_page_token: String,
    pub total: u64,
}

/// How many index entries one ListTasks call may look at when a text filter drops most of
/// them; past that it returns what it has and a page token to go on. Tasks are looked at
/// without their results (up to `RESULTS_KEPT` messages of up to 4 KiB each): those are read
/// for the page's tasks only.
const SCAN_BUDGET: usize = 20_000;

impl Store {
    /// Lists tasks newest first, by keyset pagination over the creation-order indexes.
    pub async fn list_tasks(&self, q: &TaskQuery) -> Result<TaskPage> {
        let page_size = q.page_size.clamp(1, 1000);
        let mut cursor: Option<f64> = if q.page_token.is_empty() {
            None
        } else {
            let seq: u64 = q
                .page_token
                .strip_prefix('s')
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| {
                    StoreError::Invalid(format!(
                        "malformed page token {:?}",
                        task::shorten(&q.page_token, 40)
                    ))
                })?;
            Some(seq as f64)
        };
        // The indexes to walk, and what is left to check per task.
        let indexes: Vec<String> = if !q.states.is_empty() {
            q.states.iter().map(|s| self.keys.state(*s)).collect()
        } else if !q.kind.is_empty() {
            vec![self.keys.by_type(&q.kind)]
        } else {
            vec![self.keys.all()]
        };
        let check_type = !q.states.is_empty() && !q.kind.is_empty();
        let text = q.text.to_lowercase();

        let mut c = self.conn.clone();
        let total = self.count_matching(&mut c, q, &indexes).await?;
        let mut page = TaskPage {
            total,
            ..Default::default()
        };
        let mut scanned = 0usize;
        let chunk = (page_size + 1).max(if text.is_empty() && !check_type {
            0
        } else {
            500
        });
        loop {
            // One chunk from every index below the cursor, merged newest first. Items below the
            // highest "last score" of a truncated index may be missing from this round; they are
            // read in the next one, so only items at or above that floor are used now.
            let max = cursor
                .map(|s| format!("({s}"))
                .unwrap_or_else(|| "+inf".into());
            let mut pipe = redis::pipe();
            for idx in &indexes {
                pipe.cmd("ZRANGE")
                    .arg(idx)
                    .arg(&max)
                    .arg("-inf")
                    .arg("BYSCORE")
                    .arg("REV")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(chunk)
                    .arg("WITHSCORES");
            }
            let lists: Vec<Vec<(String, f64)>> = pipe.query_async(&mut c).await?;
            let mut floor = f64::NEG_INFINITY;
            let mut exhausted = true;
            for l in &lists {
                if l.len() == chunk {
                    exhausted = false;
                    floor = floor.max(l.last().map(|x| x.1).unwrap_or(f64::NEG_INFINITY));
                }
            }
            let mut merged: Vec<(String, f64)> = lists
                .into_iter()
                .flatten()
                .filter(|x| x.1 >= floor)
                .collect();
            merged.sort_by(|a, b| b.1.total_cmp(&a.1));
            if merged.is_empty() {
                break;
            }
            let ids: Vec<String> = merged.iter().map(|x| x.0.clone()).collect();
            let tasks = self.get_tasks(&ids, false).await?;
            for ((_, score), t) in merged.iter().zip(tasks) {
                scanned += 1;
                cursor = Some(*score);
                let Some(t) = t else { continue };
                if check_type && t.r#type != q.kind {
                    continue;
                }
                if !text.is_empty()
                    && !t.name.to_lowercase().contains(&text)
                    && !t.target.to_lowercase().contains(&text)
                {
                    continue;
                }
                page.tasks.push(t);
                if page.tasks.len() == page_size {
                    break;
                }
            }
            if page.tasks.len() == page_size || scanned >= SCAN_BUDGET {
                // More may follow (the next page can come back empty at the very end).
                page.next_page_token = format!("s{}", cursor.unwrap_or(0.0) as u64);
                break;
            }
            if exhausted {
                break;
            }
        }
        if q.with_results && !page.tasks.is_empty() {
            let ids: Vec<String> = page.tasks.iter().map(|t| t.id.clone()).collect();
            // A task deleted meanwhile drops out of the page.
            page.tasks = self
                .get_tasks(&ids, true)
                .await?
                .into_iter()
                .flatten()
                .collect();
        }
        Ok(page)
    }

    async fn count_matching(&self, c: &mut Conn, q: &TaskQuery, indexes: &[String]) -> Result<u64> {
        if !q.states.is_empty() && !q.kind.is_empty() {
            let mut pipe = redis::pipe();
            for idx in indexes {
                pipe.cmd("ZINTERCARD")
                    .arg(2)
                    .arg(idx)
                    .arg(self.keys.by_type(&q.kind));
            }
            let counts: Vec<u64> = pipe.query_async(c).await?;
            return Ok(counts.iter().sum());
        }
        let mut pipe = redis::pipe();
        for idx in indexes {
            pipe.zcard(idx);
        }
        let counts: Vec<u64> = pipe.query_async(c).await?;
        Ok(counts.iter().sum())
    }

    /// Tasks per state, and per type.
    pub async fn counts(&self) -> Result<(BTreeMap<String, u64>, BTreeMap<String, u64>)> {
        let mut c = self.conn.clone();
        let types: Vec<String> = c.smembers(self.keys.types()).await?;
        let mut pipe = redis::pipe();
        for s in STATES {
            pipe.zcard(self.keys.state(s));
        }
        for t in &types {
            pipe.zcard(self.keys.by_type(t));
        }
        let n: Vec<u64> = pipe.query_async(&mut c).await?;
        let states = STATES
            .iter()
            .zip(&n)
            .map(|(s, n)| (s.as_str_name().to_string(), *n))
            .collect();
        let types = types
            .into_iter()
            .zip(n[STATES.len()..].iter().copied())
            .collect();
        Ok((states, types))
    }
}
