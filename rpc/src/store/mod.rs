//! The store: the only module that talks to Redis.
//!
//! Every key is built here (`Keys`), every state transition is one Lua script
//! (`scripts.rs`, which documents the key layout and each script's invariant), and every
//! other module sees typed methods. Reads that need no atomicity use pipelines.

mod scripts;

use gitflock_proto::v1::{Task, TaskResult, TaskState};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncCommands, Script};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use gitflock_core::task::{self, STATES};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis could not be reached or failed; the caller may retry.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A fenced master write was refused: this node does not hold the lease (any more).
    #[error("not the master")]
    NotMaster,
    /// A page token that this store did not make.
    #[error("{0}")]
    Invalid(String),
}

impl StoreError {
    /// What kind of failure this is, in words safe to show anyone: a Redis error's own text
    /// could in principle echo a URL with credentials, so only its category leaves the store.
    pub fn category(&self) -> String {
        match self {
            StoreError::Redis(e) if e.is_timeout() => "timed out".into(),
            StoreError::Redis(e)
                if e.is_connection_refusal() || e.is_io_error() || e.is_connection_dropped() =>
            {
                "connection failed".into()
            }
            StoreError::Redis(e) => format!("{:?}", e.kind()),
            StoreError::NotMaster => "not the master".into(),
            StoreError::Invalid(_) => "invalid request".into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Builds the keys and channel names under the configured prefix.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
        }
    }
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    pub fn task(&self, id: &str) -> String {
        format!("{}:task:{id}", self.prefix)
    }
    pub fn results(&self, id: &str) -> String {
        format!("{}:results:{id}", self.prefix)
    }
    pub fn all(&self) -> String {
        format!("{}:all", self.prefix)
    }
    pub fn state(&self, s: TaskState) -> String {
        format!("{}:state:{}", self.prefix, s.as_str_name())
    }
    pub fn by_type(&self, t: &str) -> String {
        format!("{}:type:{t}", self.prefix)
    }
    pub fn types(&self) -> String {
        format!("{}:types", self.prefix)
    }
    pub fn inbox(&self, node: &str) -> String {
        format!("{}:inbox:{node}", self.prefix)
    }
    pub fn inflight(&self, node: &str) -> String {
        format!("{}:inflight:{node}", self.prefix)
    }
    pub fn due(&self) -> String {
        format!("{}:due", self.prefix)
    }
    pub fn lease(&self) -> String {
        format!("{}:lease", self.prefix)
    }
    pub fn epoch(&self) -> String {
        format!("{}:epoch", self.prefix)
    }
    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }
    pub fn node_info(&self, node: &str) -> String {
        format!("{}:nodeinfo:{node}", self.prefix)
    }
    pub fn events(&self) -> String {
        format!("{}:events", self.prefix)
    }
    /// The per-node wake-up channel.
    pub fn node_channel(&self, node: &str) -> String {
        format!("{}:node:{node}", self.prefix)
    }
    /// What a mirror task's runs found.
    pub fn mirror(&self, id: &str) -> String {
        format!("{}:mirror:{id}", self.prefix)
    }
    /// Mirror task ids the upstream list made.
    pub fn listed(&self) -> String {
        format!("{}:listed", self.prefix)
    }
    /// The upstream list's last sync.
    pub fn list(&self) -> String {
        format!("{}:list", self.prefix)
    }
    /// The cluster-wide channel of heartbeats and elections.
    pub fn public_channel(&self) -> String {
        format!("{}:Public", self.prefix)
    }
}

struct Scripts {
    create: Script,
    dispatch: Script,
    claim: Script,
    finish: Script,
    kill: Script,
    delete: Script,
    recover: Script,
    handback: Script,
    heartbeat: Script,
    lease_acquire: Script,
    lease_renew: Script,
    lease_release: Script,
    reassign: Script,
    admit: Script,
    sync_now: Script,
    mirror_report: Script,
}

impl Scripts {
    fn new() -> Scripts {
        let s = |body: &str| Script::new(&scripts::source(body));
        Scripts {
            create: s(scripts::CREATE),
            dispatch: s(scripts::DISPATCH),
            claim: s(scripts::CLAIM),
            finish: s(scripts::FINISH),
            kill: s(scripts::KILL),
            delete: s(scripts::DELETE),
            recover: s(scripts::RECOVER),
            handback: s(scripts::HANDBACK),
            heartbeat: s(scripts::HEARTBEAT),
            lease_acquire: s(scripts::LEASE_ACQUIRE),
            lease_renew: s(scripts::LEASE_RENEW),
            lease_release: s(scripts::LEASE_RELEASE),
            reassign: s(scripts::REASSIGN),
            admit: s(scripts::ADMIT),
            sync_now: s(scripts::SYNC_NOW),
            mirror_report: s(scripts::MIRROR_REPORT),
        }
    }
}

/// A validated request to create a task.
#[derive(Clone, Debug)]
pub struct NewTask {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub target: String,
    pub interval_secs: u64,
    pub max_attempts: u32,
    pub timeout_secs: u64,
    pub request_id: String,
    /// The only node that may run it ('' for any).
    pub pin: String,
}

/// A task a node claimed from its inbox.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub id: String,
    pub kind: String,
    pub target: String,
    pub attempt: u32,
    pub timeout: Duration,
    /// The claim number FINISH must present.
    pub claim: u64,
    pub max_attempts: u32,
    /// When it became due (Redis clock, ms).
    pub due: i64,
    /// 0: runs once.
    pub interval: Duration,
}

/// How a run ended, as the FINISH script knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Error,
    Timeout,
    Killed,
    /// The node stopped before the run ended: the task goes back, the attempt not counted.
    HandBack,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::Killed => "killed",
            Outcome::HandBack => "handback",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Finished {
    pub id: String,
    pub claim: u64,
    pub attempt: u32,
    pub outcome: Outcome,
    pub message: String,
    pub started_at: i64,
    pub finished_at: i64,
    pub retry_delay: Duration,
    /// A recurring task's next cycle, as its runner asked (None: the task's interval).
    pub next_cycle: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DispatchReport {
    pub moved: u64,
    /// Tasks due now still WAITING (no room in the inboxes, or no live worker).
    pub left: u64,
    /// The earliest due time (Redis clock, ms) of any WAITING task, if any.
    pub next_due: Option<i64>,
    /// The Redis clock (ms) when the script ran.
    pub now: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillOutcome {
    Killed,
    Killing,
    Finished,
    Missing,
}

#[derive(Clone, Debug)]
pub enum LeaseAcquire {
    Taken(u64),
    /// Not taken: who holds it (nobody during a hold-off after data loss), and how long until
    /// it may be free.
    Held {
        holder: Option<(String, u64)>,
        free_in: Duration,
    },
}

/// What a node publishes about itself at each heartbeat.
#[derive(Clone, Debug)]
pub struct Beat<'a> {
    pub node: &'a str,
    pub addr: &'a str,
    pub concurrency: usize,
    pub running: usize,
    pub version: &'a str,
    pub epoch: u64,
    /// Shutting down: the master gives it no more work.
    pub leaving: bool,
}

#[derive(Clone, Debug)]
pub struct NodeRecord {
    pub name: String,
    pub addr: String,
    pub last_heartbeat: i64,
    pub concurrency: u32,
    pub running: u32,
    pub version: String,
    pub epoch: u64,
    pub leaving: bool,
    /// Declared dead by the master (until it admits the node again).
    pub dead: bool,
}

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

/// A raw stream entry: its id and fields.
type StreamEntry = (String, HashMap<String, String>);

/// One entry of the task change stream.
#[derive(Clone, Debug)]
pub struct TaskChange {
    pub id: String,
    pub deleted: bool,
}

/// How many index entries one ListTasks call may look at when a text filter drops most of
/// them; past that it returns what it has and a page token to go on.
const SCAN_BUDGET: usize = 20_000;

#[derive(Clone)]
pub struct Store {
    client: redis::Client,
    conn: ConnectionManager,
    keys: Keys,
    scripts: Arc<Scripts>,
}

impl Store {
    /// Connects (the connection manager reconnects by itself, without limit).
    pub async fn connect(url: &str, prefix: &str) -> Result<Store> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(usize::MAX)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_with_config(client.clone(), config).await?;
        Ok(Store {
            client,
            conn,
            keys: Keys::new(prefix),
            scripts: Arc::new(Scripts::new()),
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// A connection of its own without a response timeout, for blocking reads.
    pub async fn blocking_connection(&self) -> Result<MultiplexedConnection> {
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(None)
            .set_connection_timeout(Some(Duration::from_secs(2)));
        Ok(self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?)
    }

    pub async fn pubsub(&self) -> Result<redis::aio::PubSub> {
        Ok(self.client.get_async_pubsub().await?)
    }

    pub async fn ping(&self) -> Result<()> {
        let mut c = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut c).await?;
        Ok(())
    }

    pub async fn publish(&self, channel: &str, message: &str) -> Result<()> {
        let mut c = self.conn.clone();
        let _: i64 = c.publish(channel, message).await?;
        Ok(())
    }

    fn invoke<'a>(&self, script: &'a Script) -> redis::ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
        inv.arg(self.keys.prefix());
        inv
    }

    // ---- tasks ----

    /// Creates a task; `(false, id)` when the request id was seen before.
    pub async fn create(&self, t: &NewTask) -> Result<(bool, String)> {
        let mut c = self.conn.clone();
        let (created, id): (i64, String) = self
            .invoke(&self.scripts.create)
            .arg(&t.id)
            .arg(&t.name)
            .arg(&t.kind)
            .arg(&t.target)
            .arg(t.interval_secs)
            .arg(t.max_attempts)
            .arg(t.timeout_secs)
            .arg(&t.request_id)
            .arg(&t.pin)
            .invoke_async(&mut c)
            .await?;
        Ok((created == 1, id))
    }

    pub async fn get_task(&self, id: &str, with_results: bool) -> Result<Option<Task>> {
        Ok(self
            .get_tasks(&[id.to_string()], with_results)
            .await?
            .pop()
            .flatten())
    }

    /// Reads tasks by id in one round trip; `None` for ids that do not exist.
    pub async fn get_tasks(&self, ids: &[String], with_results: bool) -> Result<Vec<Option<Task>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(self.keys.task(id));
            if with_results {
                pipe.lrange(self.keys.results(id), 0, -1);
            }
        }
        let mut c = self.conn.clone();
        let replies: Vec<redis::Value> = pipe.query_async(&mut c).await?;
        let mut out = Vec::with_capacity(ids.len());
        let mut it = replies.into_iter();
        for _ in ids {
            let fields: HashMap<String, String> =
                redis::from_redis_value(it.next().unwrap_or(redis::Value::Nil)).unwrap_or_default();
            let results: Vec<String> = if with_results {
                redis::from_redis_value(it.next().unwrap_or(redis::Value::Nil)).unwrap_or_default()
            } else {
                Vec::new()
            };
            out.push(task_from_fields(&fields, &results));
        }
        Ok(out)
    }

    pub async fn kill(&self, id: &str) -> Result<KillOutcome> {
        let mut c = self.conn.clone();
        let r: String = self
            .invoke(&self.scripts.kill)
            .arg(id)
            .invoke_async(&mut c)
            .await?;
        Ok(match r.as_str() {
            "killed" => KillOutcome::Killed,
            "killing" => KillOutcome::Killing,
            "finished" => KillOutcome::Finished,
            _ => KillOutcome::Missing,
        })
    }

    /// Deletes a task; false if there was none.
    pub async fn delete(&self, id: &str) -> Result<bool> {
        let mut c = self.conn.clone();
        let r: String = self
            .invoke(&self.scripts.delete)
            .arg(id)
            .invoke_async(&mut c)
            .await?;
        Ok(r == "deleted")
    }

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
            let tasks = self.get_tasks(&ids, q.with_results).await?;
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
        Ok(page)
    }

    async fn count_matching(
        &self,
        c: &mut ConnectionManager,
        q: &TaskQuery,
        indexes: &[String],
    ) -> Result<u64> {
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

    // ---- blocks of the log chain ----

    /// Records a pushed block (newest first, the last 1000 per node kept).
    pub async fn add_block(&self, node: &str, record: &serde_json::Value) -> Result<()> {
        let key = format!("{}:blocks:{node}", self.keys.prefix());
        let mut c = self.conn.clone();
        let _: () = redis::pipe()
            .lpush(&key, record.to_string())
            .ltrim(&key, 0, 999)
            .sadd(format!("{}:blocknodes", self.keys.prefix()), node)
            .query_async(&mut c)
            .await?;
        Ok(())
    }

    /// Block records of `node` (or of every node), newest first, up to `limit` per node.
    pub async fn blocks(&self, node: Option<&str>, limit: usize) -> Result<Vec<serde_json::Value>> {
        let mut c = self.conn.clone();
        let nodes: Vec<String> = match node {
            Some(n) => vec![n.to_string()],
            None => {
                c.smembers(format!("{}:blocknodes", self.keys.prefix()))
                    .await?
            }
        };
        let mut out = Vec::new();
        for n in nodes {
            let items: Vec<String> = c
                .lrange(
                    format!("{}:blocks:{n}", self.keys.prefix()),
                    0,
                    limit.max(1) as isize - 1,
                )
                .await?;
            out.extend(items.iter().filter_map(|i| serde_json::from_str(i).ok()));
        }
        Ok(out)
    }

    // ---- mirrors ----

    /// Asks tasks to run now (see SYNC_NOW): per id 'queued', 'again', 'ended' or 'missing'.
    pub async fn sync_now(&self, ids: &[String]) -> Result<Vec<String>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = self.conn.clone();
        let mut inv = self.invoke(&self.scripts.sync_now);
        for id in ids {
            inv.arg(id);
        }
        Ok(inv.invoke_async(&mut c).await?)
    }

    /// Records a mirror run's findings; returns (consecutive failures, when the upstream last
    /// moved (ms, 0: never since the clone)), or None when the task is gone.
    pub async fn mirror_report(
        &self,
        id: &str,
        ok: bool,
        fields: &[(&str, String)],
    ) -> Result<Option<(u32, i64)>> {
        let mut c = self.conn.clone();
        let mut inv = self.invoke(&self.scripts.mirror_report);
        inv.arg(id).arg(if ok { 1 } else { 0 });
        for (k, v) in fields {
            inv.arg(*k).arg(v);
        }
        let r: Vec<i64> = inv.invoke_async(&mut c).await?;
        Ok(match r.as_slice() {
            [1, failures, last_change] => Some((*failures as u32, *last_change)),
            _ => None,
        })
    }

    /// Mirror findings per task id (an empty map for a mirror that never ran), in one round trip.
    pub async fn mirror_statuses(&self, ids: &[String]) -> Result<Vec<HashMap<String, String>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(self.keys.mirror(id));
        }
        let mut c = self.conn.clone();
        Ok(pipe.query_async(&mut c).await?)
    }

    /// Ids of the mirror tasks the upstream list made.
    pub async fn listed(&self) -> Result<std::collections::HashSet<String>> {
        let mut c = self.conn.clone();
        Ok(c.smembers(self.keys.listed()).await?)
    }

    pub async fn add_listed(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut c = self.conn.clone();
        let _: i64 = c.sadd(self.keys.listed(), ids).await?;
        Ok(())
    }

    pub async fn remove_listed(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut c = self.conn.clone();
        let _: i64 = c.srem(self.keys.listed(), ids).await?;
        Ok(())
    }

    /// Which of these task ids exist.
    pub async fn existing(&self, ids: &[String]) -> Result<std::collections::HashSet<String>> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.exists(self.keys.task(id));
        }
        let mut c = self.conn.clone();
        let there: Vec<bool> = pipe.query_async(&mut c).await?;
        Ok(ids
            .iter()
            .zip(there)
            .filter(|(_, t)| *t)
            .map(|(id, _)| id.clone())
            .collect())
    }

    pub async fn set_list_status(&self, fields: &[(&str, &str)]) -> Result<()> {
        let mut c = self.conn.clone();
        let _: () = c.hset_multiple(self.keys.list(), fields).await?;
        Ok(())
    }

    pub async fn list_status(&self) -> Result<HashMap<String, String>> {
        let mut c = self.conn.clone();
        Ok(c.hgetall(self.keys.list()).await?)
    }

    // ---- master ----

    /// Fenced: refused with `NotMaster` unless `holder` is the current lease value. Gives work
    /// only to `nodes` (the ones the master's membership admits as alive).
    pub async fn dispatch(
        &self,
        holder: &str,
        epoch: u64,
        max: usize,
        dead_after: Duration,
        nodes: &[String],
        ring: &[(u32, String)],
    ) -> Result<DispatchReport> {
        let mut c = self.conn.clone();
        let mut inv = self.invoke(&self.scripts.dispatch);
        inv.arg(holder)
            .arg(max)
            .arg(dead_after.as_millis() as u64)
            .arg(epoch)
            .arg(nodes.len());
        for n in nodes {
            inv.arg(n);
        }
        for (point, n) in ring {
            inv.arg(point).arg(n);
        }
        let (moved, left, next, now): (i64, i64, i64, i64) =
            fenced(inv.invoke_async(&mut c).await)?;
        Ok(DispatchReport {
            moved: moved as u64,
            left: left as u64,
            next_due: (next >= 0).then_some(next),
            now,
        })
    }

    /// Takes the lease if it is free. `known_epoch` is the highest epoch this node has seen
    /// (how Redis data loss is noticed).
    pub async fn lease_acquire(
        &self,
        node: &str,
        ttl: Duration,
        known_epoch: u64,
    ) -> Result<LeaseAcquire> {
        let mut c = self.conn.clone();
        let (taken, value, ms): (i64, String, i64) = self
            .invoke(&self.scripts.lease_acquire)
            .arg(node)
            .arg(ttl.as_millis() as u64)
            .arg(known_epoch)
            .invoke_async(&mut c)
            .await?;
        if taken == 1 {
            return Ok(LeaseAcquire::Taken(value.parse().unwrap_or(0)));
        }
        Ok(LeaseAcquire::Held {
            holder: (!value.is_empty()).then(|| parse_holder(&value)),
            free_in: Duration::from_millis(ms.max(0) as u64),
        })
    }

    /// Fenced: a node was declared dead; its inbox and in-flight tasks go back.
    /// Returns (requeued, ended).
    pub async fn reassign(&self, holder: &str, node: &str) -> Result<(u64, u64)> {
        let mut c = self.conn.clone();
        let mut inv = self.invoke(&self.scripts.reassign);
        inv.arg(holder).arg(node).arg(task::RESULTS_KEPT);
        fenced(inv.invoke_async(&mut c).await)
    }

    /// Fenced: a node declared dead may take work again.
    pub async fn admit(&self, holder: &str, node: &str) -> Result<()> {
        let mut c = self.conn.clone();
        let mut inv = self.invoke(&self.scripts.admit);
        inv.arg(holder).arg(node);
        fenced::<i64>(inv.invoke_async(&mut c).await).map(|_| ())
    }

    pub async fn lease_renew(&self, holder: &str, ttl: Duration) -> Result<bool> {
        let mut c = self.conn.clone();
        let r: i64 = self
            .invoke(&self.scripts.lease_renew)
            .arg(holder)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut c)
            .await?;
        Ok(r == 1)
    }

    pub async fn lease_release(&self, holder: &str, announcement: &str) -> Result<bool> {
        let mut c = self.conn.clone();
        let r: i64 = self
            .invoke(&self.scripts.lease_release)
            .arg(holder)
            .arg(announcement)
            .invoke_async(&mut c)
            .await?;
        Ok(r == 1)
    }

    /// The current master and epoch, if any node holds the lease.
    pub async fn lease_holder(&self) -> Result<Option<(String, u64)>> {
        let mut c = self.conn.clone();
        let v: Option<String> = c.get(self.keys.lease()).await?;
        Ok(v.map(|v| parse_holder(&v)))
    }

    /// The newest epoch handed out (0 before any master).
    pub async fn epoch(&self) -> Result<u64> {
        let mut c = self.conn.clone();
        let v: Option<u64> = c.get(self.keys.epoch()).await?;
        Ok(v.unwrap_or(0))
    }

    // ---- node ----

    pub async fn claim(&self, node: &str, n: usize) -> Result<Vec<Claimed>> {
        let mut c = self.conn.clone();
        let flat: Vec<String> = self
            .invoke(&self.scripts.claim)
            .arg(node)
            .arg(n)
            .invoke_async(&mut c)
            .await?;
        Ok(flat
            .chunks_exact(9)
            .map(|f| Claimed {
                id: f[0].clone(),
                kind: f[1].clone(),
                target: f[2].clone(),
                attempt: f[3].parse().unwrap_or(1),
                timeout: Duration::from_secs(f[4].parse().unwrap_or(3600)),
                claim: f[5].parse().unwrap_or(0),
                max_attempts: f[6].parse().unwrap_or(1),
                due: f[7].parse().unwrap_or(0),
                interval: Duration::from_secs(f[8].parse().unwrap_or(0)),
            })
            .collect())
    }

    /// Records finished runs; returns how many were still this node's to record.
    pub async fn finish(&self, node: &str, runs: &[Finished]) -> Result<u64> {
        if runs.is_empty() {
            return Ok(0);
        }
        let mut c = self.conn.clone();
        let mut inv = self.invoke(&self.scripts.finish);
        inv.arg(node).arg(task::RESULTS_KEPT);
        for r in runs {
            inv.arg(&r.id)
                .arg(r.claim)
                .arg(r.attempt)
                .arg(r.outcome.as_str())
                .arg(task::shorten(&r.message, task::MAX_MESSAGE_BYTES))
                .arg(r.started_at)
                .arg(r.finished_at)
                .arg(r.retry_delay.as_millis() as u64)
                .arg(r.next_cycle.map_or(0, |d| d.as_millis().max(1) as u64));
        }
        Ok(inv.invoke_async(&mut c).await?)
    }

    /// Puts back in-flight runs this node is not running: `ids`, or (empty) all of them, as
    /// at start. Returns (requeued, ended).
    pub async fn recover(&self, node: &str, ids: &[String]) -> Result<(u64, u64)> {
        let mut c = self.conn.clone();
        let mut inv = self.invoke(&self.scripts.recover);
        inv.arg(node).arg(task::RESULTS_KEPT);
        for id in ids {
            inv.arg(id);
        }
        Ok(inv.invoke_async(&mut c).await?)
    }

    /// The ids in this node's in-flight list.
    pub async fn inflight(&self, node: &str) -> Result<Vec<String>> {
        let mut c = self.conn.clone();
        Ok(c.lrange(self.keys.inflight(node), 0, -1).await?)
    }

    /// Marks the node leaving and gives its unclaimed inbox back; returns how many.
    pub async fn handback(&self, node: &str) -> Result<u64> {
        let mut c = self.conn.clone();
        Ok(self
            .invoke(&self.scripts.handback)
            .arg(node)
            .invoke_async(&mut c)
            .await?)
    }

    /// Presence, and `signed` (the `0:` heartbeat) published on the Public channel; returns
    /// the Redis server time (ms).
    pub async fn heartbeat(&self, b: &Beat<'_>, signed: &str) -> Result<i64> {
        let mut c = self.conn.clone();
        Ok(self
            .invoke(&self.scripts.heartbeat)
            .arg(b.node)
            .arg(b.addr)
            .arg(b.concurrency)
            .arg(b.running)
            .arg(b.version)
            .arg(b.epoch)
            .arg(if b.leaving { 1 } else { 0 })
            .arg(signed)
            .invoke_async(&mut c)
            .await?)
    }

    /// Every node that ever heartbeated and was not forgotten, with the server time (ms).
    pub async fn nodes(&self) -> Result<(Vec<NodeRecord>, i64)> {
        let mut c = self.conn.clone();
        let (names, time): (Vec<(String, f64)>, (String, String)) = redis::pipe()
            .zrange_withscores(self.keys.nodes(), 0, -1)
            .cmd("TIME")
            .query_async(&mut c)
            .await?;
        let now =
            time.0.parse::<i64>().unwrap_or(0) * 1000 + time.1.parse::<i64>().unwrap_or(0) / 1000;
        let mut pipe = redis::pipe();
        for (name, _) in &names {
            pipe.hgetall(self.keys.node_info(name));
        }
        let infos: Vec<HashMap<String, String>> = pipe.query_async(&mut c).await?;
        let nodes = names
            .into_iter()
            .zip(infos)
            .map(|((name, last), info)| {
                let get = |k: &str| info.get(k).cloned().unwrap_or_default();
                NodeRecord {
                    addr: get("addr"),
                    last_heartbeat: last as i64,
                    concurrency: get("concurrency").parse().unwrap_or(0),
                    running: get("running").parse().unwrap_or(0),
                    version: get("version"),
                    epoch: get("epoch").parse().unwrap_or(0),
                    leaving: get("leaving") == "1",
                    dead: get("dead") == "1",
                    name,
                }
            })
            .collect();
        Ok((nodes, now))
    }

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

/// Maps a fenced script's refusal to `NotMaster`.
fn fenced<T>(r: redis::RedisResult<T>) -> Result<T> {
    match r {
        Ok(v) => Ok(v),
        Err(e) if e.to_string().contains("NOTMASTER") => Err(StoreError::NotMaster),
        Err(e) => Err(e.into()),
    }
}

pub fn parse_holder(v: &str) -> (String, u64) {
    let mut it = v.splitn(2, ' ');
    let name = it.next().unwrap_or_default().to_string();
    let epoch = it.next().and_then(|e| e.parse().ok()).unwrap_or(0);
    (name, epoch)
}

fn task_from_fields(f: &HashMap<String, String>, results: &[String]) -> Option<Task> {
    let id = f.get("id")?.clone();
    let s = |k: &str| f.get(k).cloned().unwrap_or_default();
    let n = |k: &str| f.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let state = task::parse_state(&s("state")).unwrap_or(TaskState::Waiting);
    let mut t = Task {
        id,
        name: s("name"),
        r#type: s("type"),
        // Credentials inside a target URL never leave through the API (runs get the raw
        // target from CLAIM).
        target: gitflock_core::redact::redact(&s("target")),
        node: s("node"),
        attempts: n("attempts") as u32,
        max_attempts: n("max_attempts") as u32,
        interval_secs: n("interval") as u64,
        timeout_secs: n("timeout") as u64,
        created_at: n("created"),
        updated_at: n("updated"),
        due_at: if state == TaskState::Waiting {
            n("due")
        } else {
            0
        },
        runs: n("runs") as u64,
        results: results.iter().filter_map(|r| result_from_json(r)).collect(),
        ..Default::default()
    };
    t.set_state(state);
    Some(t)
}

fn result_from_json(text: &str) -> Option<TaskResult> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let i = |k: &str| v.get(k).and_then(|x| x.as_i64()).unwrap_or(0);
    Some(TaskResult {
        code: i("code") as i32,
        message: v
            .get("message")
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string(),
        node: v
            .get("node")
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string(),
        started_at: i("started_at"),
        finished_at: i("finished_at"),
        attempt: i("attempt") as u32,
    })
}
