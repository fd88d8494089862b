//! Tasks: create, read, kill, delete, sync-now; and a run's way on its node (claim, finish,
//! recover, handback). The scripts are in `scripts/task.rs` and `scripts/work.rs`.

use gitflock_proto::v1::{Task, TaskResult, TaskState};
use redis::{AsyncCommands, Value};
use std::collections::HashMap;
use std::time::Duration;

use super::reply::{self, Fields, Items, malformed};
use super::{Result, Store};
use gitflock_core::task;

/// Where a task may run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Any live node with room (the least loaded).
    Any,
    /// Only this node (a `block` must run where its chain is).
    Node(String),
    /// The owner of this point on the master's placement ring (a mirror: its repository's
    /// hash), so a repository stays on one node while the set of nodes holds.
    Ring(u32),
}

impl Placement {
    /// The stored form (the task's `pin` field, which DISPATCH reads): '' any node, a node
    /// name, or `#<hash>` (node names never start with `#`).
    fn encode(&self) -> String {
        match self {
            Placement::Any => String::new(),
            Placement::Node(n) => n.clone(),
            Placement::Ring(h) => format!("#{h}"),
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
    pub placement: Placement,
}

/// What CREATE did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    /// False when the request id was seen before or a task with this id exists.
    pub created: bool,
    /// The task's id (the first task's, when the request was a retry).
    pub id: String,
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
    /// The name FINISH reads, also the `outcome` label of the run metrics.
    pub fn as_str(self) -> &'static str {
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

/// How a node's run stands in Redis (see [`Store::run_checks`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunCheck {
    /// Still this run's, and nobody asked to kill it.
    Running,
    /// A kill was asked (the task's kill flag).
    Kill,
    /// The task was deleted, or is no longer RUNNING on this node under this claim.
    Gone,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillOutcome {
    Killed,
    Killing,
    Finished,
    Missing,
}

/// What SYNC_NOW did with one task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncNow {
    /// Due now (or already in an inbox).
    Queued,
    /// Running: it runs again as soon as this run ends.
    Again,
    /// A webhook's sync of a mirror that is failing: its back-off stands.
    BackingOff,
    /// It ended (killed, failed) and is left alone.
    Ended,
    Missing,
}

impl Store {
    /// Creates a task; `created` is false when the request id was seen before (or the id
    /// exists), and `id` is then the first task's.
    pub async fn create(&self, t: &NewTask) -> Result<Created> {
        let k = &self.keys;
        let mut c = self.acked();
        let v: Value = self
            .scripts
            .create
            .key(k.task(&t.id))
            .key(k.request(&t.request_id))
            .key(k.seq())
            .key(k.all())
            .key(k.by_type(&t.kind))
            .key(k.types())
            .key(k.state_family())
            .key(k.due())
            .key(k.events())
            .key(k.lease())
            .key(k.node_channel_family())
            .arg(&t.id)
            .arg(&t.name)
            .arg(&t.kind)
            .arg(&t.target)
            .arg(t.interval_secs)
            .arg(t.max_attempts)
            .arg(t.timeout_secs)
            .arg(&t.request_id)
            .arg(t.placement.encode())
            .invoke_async(&mut c)
            .await?;
        let mut r = Items::exactly("CREATE", v, 2)?;
        let created = match r.int("created")? {
            0 => false,
            1 => true,
            _ => return Err(malformed("CREATE created: expected 0 or 1")),
        };
        Ok(Created {
            created,
            id: r.text("id")?,
        })
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
        let replies: Vec<Value> = pipe.query_async(&mut c).await?;
        let per_task = if with_results { 2 } else { 1 };
        if replies.len() != ids.len() * per_task {
            return Err(malformed("task reads: one reply per command expected"));
        }
        let mut out = Vec::with_capacity(ids.len());
        let mut it = replies.into_iter();
        while let Some(fields) = it.next() {
            let fields: HashMap<String, String> = redis::from_redis_value(fields)
                .map_err(|_| malformed("task hash: expected field/value pairs"))?;
            let results: Vec<String> = if with_results {
                redis::from_redis_value(it.next().unwrap_or_default())
                    .map_err(|_| malformed("task results: expected a list of text"))?
            } else {
                Vec::new()
            };
            out.push(task_from_fields(&fields, &results)?);
        }
        Ok(out)
    }

    pub async fn kill(&self, id: &str) -> Result<KillOutcome> {
        let k = &self.keys;
        let mut c = self.acked();
        let v: Value = self
            .scripts
            .kill
            .key(k.task(id))
            .key(k.due())
            .key(k.inbox_family())
            .key(k.state_family())
            .key(k.events())
            .key(k.node_channel_family())
            .key(k.ended_family())
            .arg(id)
            .invoke_async(&mut c)
            .await?;
        match reply::text("KILL", v)?.as_str() {
            "killed" => Ok(KillOutcome::Killed),
            "killing" => Ok(KillOutcome::Killing),
            "finished" => Ok(KillOutcome::Finished),
            "missing" => Ok(KillOutcome::Missing),
            _ => Err(malformed("KILL: unknown outcome")),
        }
    }

    /// Deletes a task; false if there was none.
    pub async fn delete(&self, id: &str) -> Result<bool> {
        let k = &self.keys;
        let mut c = self.acked();
        let v: Value = self
            .scripts
            .delete
            .key(k.task(id))
            .key(k.results(id))
            .key(k.mirror(id))
            .key(k.all())
            .key(k.state_family())
            .key(k.type_family())
            .key(k.due())
            .key(k.inbox_family())
            .key(k.node_channel_family())
            .key(k.listed())
            .key(k.events())
            .key(k.ended_family())
            .arg(id)
            .invoke_async(&mut c)
            .await?;
        match reply::text("DELETE", v)?.as_str() {
            "deleted" => Ok(true),
            "missing" => Ok(false),
            _ => Err(malformed("DELETE: unknown outcome")),
        }
    }

    /// Asks tasks to run now (see SYNC_NOW); one answer per id, in order. With a `window` (a
    /// webhook's request), at most one sync per task per window, and none that would cut a
    /// failing mirror's back-off.
    pub async fn sync_now(&self, ids: &[String], window: Option<Duration>) -> Result<Vec<SyncNow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let k = &self.keys;
        let mut c = self.conn.clone();
        let mut inv = self.scripts.sync_now.prepare_invoke();
        inv.key(k.task_family())
            .key(k.due())
            .key(k.lease())
            .key(k.node_channel_family())
            .key(k.mirror_family())
            .arg(window.map_or(0, |w| w.as_millis().max(1) as u64));
        for id in ids {
            inv.arg(id);
        }
        let v: Value = inv.invoke_async(&mut c).await?;
        let items = reply::array("SYNC_NOW", v)?;
        if items.len() != ids.len() {
            return Err(malformed("SYNC_NOW: one answer per id expected"));
        }
        items
            .into_iter()
            .map(|v| match reply::text("SYNC_NOW", v)?.as_str() {
                "queued" => Ok(SyncNow::Queued),
                "again" => Ok(SyncNow::Again),
                "backoff" => Ok(SyncNow::BackingOff),
                "ended" => Ok(SyncNow::Ended),
                "missing" => Ok(SyncNow::Missing),
                _ => Err(malformed("SYNC_NOW: unknown answer")),
            })
            .collect()
    }

    // ---- a run's way on its node ----

    pub async fn claim(&self, node: &str, n: usize) -> Result<Vec<Claimed>> {
        let k = &self.keys;
        let mut c = self.acked();
        let v: Value = self
            .scripts
            .claim
            .key(k.inbox(node))
            .key(k.inflight(node))
            .key(k.task_family())
            .key(k.claims())
            .key(k.state_family())
            .key(k.events())
            .key(k.incarnation())
            .arg(node)
            .arg(n)
            .arg(super::incarnation::new_id())
            .arg(self.claims_seen())
            .invoke_async(&mut c)
            .await?;
        let claimed: Vec<Claimed> = reply::array("CLAIM", v)?
            .into_iter()
            .map(claimed)
            .collect::<Result<_>>()?;
        for t in &claimed {
            self.saw_claim(t.claim);
        }
        Ok(claimed)
    }

    /// Records finished runs; returns how many were still this node's to record.
    pub async fn finish(&self, node: &str, runs: &[Finished]) -> Result<u64> {
        if runs.is_empty() {
            return Ok(0);
        }
        let k = &self.keys;
        let mut c = self.acked();
        let mut inv = self.scripts.finish.prepare_invoke();
        inv.key(k.inflight(node))
            .key(k.task_family())
            .key(k.results_family())
            .key(k.due())
            .key(k.state_family())
            .key(k.events())
            .key(k.lease())
            .key(k.node_channel_family())
            .key(k.ended_family())
            .arg(node)
            .arg(task::RESULTS_KEPT);
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
        let v: Value = inv.invoke_async(&mut c).await?;
        count("FINISH", v)
    }

    /// Puts back in-flight runs this node is not running: `ids`, or (empty) all of them, as
    /// at start. Returns (requeued, ended).
    pub async fn recover(&self, node: &str, ids: &[String]) -> Result<(u64, u64)> {
        let k = &self.keys;
        let mut c = self.acked();
        let mut inv = self.scripts.recover.prepare_invoke();
        inv.key(k.inflight(node))
            .key(k.inbox(node))
            .key(k.task_family())
            .key(k.results_family())
            .key(k.state_family())
            .key(k.events())
            .key(k.ended_family())
            .arg(node)
            .arg(task::RESULTS_KEPT);
        for id in ids {
            inv.arg(id);
        }
        let v: Value = inv.invoke_async(&mut c).await?;
        let p = PutBack::read("RECOVER", v)?;
        Ok((p.requeued, p.ended))
    }

    /// The ids in this node's in-flight list.
    pub async fn inflight(&self, node: &str) -> Result<Vec<String>> {
        let mut c = self.conn.clone();
        Ok(c.lrange(self.keys.inflight(node), 0, -1).await?)
    }

    /// How this node's runs stand in Redis (`runs`: id and claim number), in one round trip:
    /// the kill flag is the only authority to kill a run (a `kill <id>` wake-up only asks the
    /// node to look), and a run whose task is gone or no longer this run's is stopped too.
    pub async fn run_checks(&self, node: &str, runs: &[(String, u64)]) -> Result<Vec<RunCheck>> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (id, _) in runs {
            pipe.cmd("HMGET")
                .arg(self.keys.task(id))
                .arg(&["state", "node", "claim", "kill"]);
        }
        let mut c = self.conn.clone();
        let replies: Vec<Vec<Option<String>>> = pipe.query_async(&mut c).await?;
        if replies.len() != runs.len() {
            return Err(malformed("run checks: one reply per task expected"));
        }
        Ok(runs
            .iter()
            .zip(replies)
            .map(|((_, claim), f)| {
                let field = |i: usize| f.get(i).cloned().flatten().unwrap_or_default();
                let ours =
                    field(0) == "RUNNING" && field(1) == node && field(2) == claim.to_string();
                if !ours {
                    RunCheck::Gone
                } else if field(3) == "1" {
                    RunCheck::Kill
                } else {
                    RunCheck::Running
                }
            })
            .collect())
    }

    /// Marks the node leaving and gives its unclaimed inbox back; returns how many.
    pub async fn handback(&self, node: &str) -> Result<u64> {
        let k = &self.keys;
        let mut c = self.acked();
        let v: Value = self
            .scripts
            .handback
            .key(k.inbox(node))
            .key(k.node_info(node))
            .key(k.task_family())
            .key(k.due())
            .key(k.state_family())
            .key(k.events())
            .key(k.lease())
            .key(k.node_channel_family())
            .arg(node)
            .invoke_async(&mut c)
            .await?;
        count("HANDBACK", v)
    }
}

/// A count a script returns.
pub(super) fn count(script: &str, v: Value) -> Result<u64> {
    u64::try_from(reply::int(script, v)?)
        .map_err(|_| malformed(format!("{script}: negative count")))
}

/// What RECOVER and REASSIGN put back: {requeued, ended}.
pub(super) struct PutBack {
    pub requeued: u64,
    pub ended: u64,
}

impl PutBack {
    pub fn read(script: &'static str, v: Value) -> Result<PutBack> {
        let mut r = Items::exactly(script, v, 2)?;
        let mut n = |name: &'static str| {
            r.int(name).and_then(|x| {
                u64::try_from(x).map_err(|_| malformed(format!("{script} {name}: negative")))
            })
        };
        Ok(PutBack {
            requeued: n("requeued")?,
            ended: n("ended")?,
        })
    }
}

/// One task of a CLAIM reply. The fields a script makes must be there; the ones it relays
/// from the task's hash default as the hash's would when missing.
fn claimed(v: Value) -> Result<Claimed> {
    let mut f = Items::exactly("CLAIM task", v, 9)?;
    Ok(Claimed {
        id: f.text("id")?,
        kind: f.text("type")?,
        target: f.text("target")?,
        attempt: f.parsed("attempt")?,
        timeout: Duration::from_secs(f.parsed_or("timeout", 3600)?),
        claim: f.parsed("claim")?,
        max_attempts: f.parsed_or("max_attempts", 1)?,
        due: f.parsed_or("due", 0)?,
        interval: Duration::from_secs(f.parsed_or("interval", 0)?),
    })
}

/// A task from its hash (None: no such task) and its results (JSON, newest first).
fn task_from_fields(f: &HashMap<String, String>, results: &[String]) -> Result<Option<Task>> {
    let Some(id) = f.get("id") else {
        return Ok(None);
    };
    let h = Fields::of("task", f);
    let state = match f.get("state") {
        None => TaskState::Waiting,
        Some(s) => task::parse_state(s).ok_or_else(|| malformed("task field state: unknown"))?,
    };
    let mut t = Task {
        id: id.clone(),
        name: h.text("name"),
        r#type: h.text("type"),
        // Credentials inside a target URL never leave through the API (runs get the raw
        // target from CLAIM).
        target: gitflock_core::redact::redact(&h.text("target")),
        node: h.text("node"),
        attempts: h.number("attempts")?,
        max_attempts: h.number("max_attempts")?,
        interval_secs: h.number("interval")?,
        timeout_secs: h.number("timeout")?,
        created_at: h.number("created")?,
        updated_at: h.number("updated")?,
        due_at: if state == TaskState::Waiting {
            h.number("due")?
        } else {
            0
        },
        runs: h.number("runs")?,
        results: results
            .iter()
            .map(|r| result_from_json(r))
            .collect::<Result<_>>()?,
        ..Default::default()
    };
    t.set_state(state);
    Ok(Some(t))
}

/// A run's result as FINISH, RECOVER and REASSIGN store it.
#[derive(serde::Deserialize)]
struct StoredResult {
    code: i32,
    message: String,
    node: String,
    started_at: i64,
    finished_at: i64,
    attempt: u32,
}

fn result_from_json(text: &str) -> Result<TaskResult> {
    let r: StoredResult =
        serde_json::from_str(text).map_err(|_| malformed("task result: not a stored result"))?;
    Ok(TaskResult {
        code: r.code,
        message: r.message,
        node: r.node,
        started_at: r.started_at,
        finished_at: r.finished_at,
        attempt: r.attempt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placements_are_stored_as_dispatch_reads_them() {
        assert_eq!(Placement::Any.encode(), "");
        assert_eq!(Placement::Node("n1".into()).encode(), "n1");
        assert_eq!(Placement::Ring(42).encode(), "#42");
    }

    #[test]
    fn a_stored_result_reads_back_and_garbage_is_an_error() {
        let r = result_from_json(
            r#"{"code":1,"message":"m","node":"n","started_at":0,"finished_at":1733000000123,"attempt":2}"#,
        )
        .unwrap();
        assert_eq!(
            (r.code, r.finished_at, r.attempt),
            (1, 1_733_000_000_123, 2)
        );
        assert!(result_from_json("{}").is_err());
        assert!(result_from_json("nope").is_err());
    }

    #[test]
    fn a_task_hash_may_lack_fields_but_not_hold_garbage() {
        let mut f: HashMap<String, String> = [("id", "i"), ("state", "RUNNING")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let t = task_from_fields(&f, &[]).unwrap().unwrap();
        assert_eq!((t.state(), t.attempts), (TaskState::Running, 0));
        f.insert("attempts".into(), "x".into());
        assert!(task_from_fields(&f, &[]).is_err());
        assert!(task_from_fields(&HashMap::new(), &[]).unwrap().is_none());
    }
}
