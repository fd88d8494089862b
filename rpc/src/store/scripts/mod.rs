//! Every Lua script gitflock runs, one per state transition: [`task`] (what API requests
//! ask: CREATE, KILL, DELETE, SYNC_NOW, MIRROR_REPORT), [`work`] (a task's way through the
//! cluster: DISPATCH, CLAIM, FINISH, RECOVER, HANDBACK), [`cluster`] (HEARTBEAT, the lease,
//! REASSIGN, ADMIT, INCARNATION) and [`retention`] (EXPIRE, TRIM_EVENTS).
//!
//! Each script's doc lists its `KEYS[i]` (by the [`Keys`](super::Keys) method that builds it;
//! a `…_family` is a prefix the script appends an id, a node or a state name to), its
//! `ARGV[i]`, its reply and the invariant it keeps. No key layout is written in Lua: the
//! layout is in `keys.rs`. Most keys depend on values read inside the script (the node a task
//! sits on, its state), so gitflock needs a single Redis (or a primary with replicas), not
//! Redis Cluster. Times come from the Redis server's `TIME`, so every node agrees on "now"
//! whatever their own clocks say.

pub(super) mod cluster;
pub(super) mod retention;
pub(super) mod task;
pub(super) mod work;

use redis::Script;

/// Shared helpers prepended to every script. They take the keys they touch as arguments.
const PRELUDE: &str = r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Moves id from the index of state `old` (nil: none) to that of `new` (`state_of`: the family).
local function move_state(state_of, id, old, new, seq)
  if old then redis.call('ZREM', state_of .. old, id) end
  redis.call('ZADD', state_of .. new, seq, id)
end
local function event(events_key, id, kind)
  redis.call('XADD', events_key, 'MAXLEN', '~', 10000, '*', 'id', id, 'kind', kind)
end
-- A task that reached a final state is indexed by when (`ended_of`: the family), for retention.
local function mark_ended(ended_of, id, state, now)
  if state == 'SUCCEED' or state == 'RUNTIME_ERROR' or state == 'KILLED' then
    redis.call('ZADD', ended_of .. state, now, id)
  end
end
local function push_result(results_key, keep, result)
  redis.call('LPUSH', results_key, cjson.encode(result))
  redis.call('LTRIM', results_key, 0, keep - 1)
end
-- This Redis's incarnation (`inc_key`, a hash), made from `candidate` when Redis has none (it
-- lost its data, or never had any). A new incarnation's claim numbers (`claims_key`) start at
-- its creation time × 1000 and above `seen` (the highest the caller was given): above every
-- number an earlier incarnation gave out, so no claim of before a loss matches one of after.
-- Returns the id and whether it was made now.
local function incarnation(inc_key, claims_key, candidate, seen, now)
  local id = redis.call('HGET', inc_key, 'id')
  if id then return id, false end
  redis.call('HSET', inc_key, 'id', candidate, 'since', now)
  redis.call('SET', claims_key, string.format('%.0f', math.max(now * 1000, seen)))
  return candidate, true
end
-- Publishes msg on the master's channel (`channel_of`: the family), if there is a master.
local function wake_master(lease_key, channel_of, msg)
  local lease = redis.call('GET', lease_key)
  if lease then
    local master = string.match(lease, '^(%S+)')
    if master then redis.call('PUBLISH', channel_of .. master, msg) end
  end
end
"#;

/// The scripts, loaded once per store (EVALSHA, reloaded on NOSCRIPT after a Redis restart).
pub(super) struct Scripts {
    pub create: Script,
    pub kill: Script,
    pub delete: Script,
    pub sync_now: Script,
    pub mirror_report: Script,
    pub dispatch: Script,
    pub claim: Script,
    pub finish: Script,
    pub recover: Script,
    pub handback: Script,
    pub heartbeat: Script,
    pub lease_acquire: Script,
    pub lease_renew: Script,
    pub lease_release: Script,
    pub reassign: Script,
    pub admit: Script,
    pub incarnation: Script,
    pub expire: Script,
    pub trim_events: Script,
}

impl Scripts {
    pub fn new() -> Scripts {
        let s = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Scripts {
            create: s(task::CREATE),
            kill: s(task::KILL),
            delete: s(task::DELETE),
            sync_now: s(task::SYNC_NOW),
            mirror_report: s(task::MIRROR_REPORT),
            dispatch: s(work::DISPATCH),
            claim: s(work::CLAIM),
            finish: s(work::FINISH),
            recover: s(work::RECOVER),
            handback: s(work::HANDBACK),
            heartbeat: s(cluster::HEARTBEAT),
            lease_acquire: s(cluster::LEASE_ACQUIRE),
            lease_renew: s(cluster::LEASE_RENEW),
            lease_release: s(cluster::LEASE_RELEASE),
            reassign: s(cluster::REASSIGN),
            admit: s(cluster::ADMIT),
            incarnation: s(cluster::INCARNATION),
            expire: s(retention::EXPIRE),
            trim_events: s(retention::TRIM_EVENTS),
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every script, for checks that read their text.
    fn all() -> Vec<(&'static str, &'static str)> {
        vec![
            ("CREATE", super::task::CREATE),
            ("KILL", super::task::KILL),
            ("DELETE", super::task::DELETE),
            ("SYNC_NOW", super::task::SYNC_NOW),
            ("MIRROR_REPORT", super::task::MIRROR_REPORT),
            ("DISPATCH", super::work::DISPATCH),
            ("CLAIM", super::work::CLAIM),
            ("FINISH", super::work::FINISH),
            ("RECOVER", super::work::RECOVER),
            ("HANDBACK", super::work::HANDBACK),
            ("HEARTBEAT", super::cluster::HEARTBEAT),
            ("LEASE_ACQUIRE", super::cluster::LEASE_ACQUIRE),
            ("LEASE_RENEW", super::cluster::LEASE_RENEW),
            ("LEASE_RELEASE", super::cluster::LEASE_RELEASE),
            ("REASSIGN", super::cluster::REASSIGN),
            ("ADMIT", super::cluster::ADMIT),
            ("INCARNATION", super::cluster::INCARNATION),
            ("EXPIRE", super::retention::EXPIRE),
            ("TRIM_EVENTS", super::retention::TRIM_EVENTS),
        ]
    }

    #[test]
    fn every_move_into_a_final_state_is_indexed_for_retention() {
        // A move_state whose new state is not a literal WAITING/INQUEUE/RUNNING may end a task;
        // the script must then index it (mark_ended), or retention never removes the task.
        let alive = ["'WAITING'", "'INQUEUE'", "'RUNNING'"];
        for (name, body) in all() {
            let may_end = body.match_indices("move_state(").any(|(i, _)| {
                let args = &body[i..i + body[i..].find(')').unwrap_or(0)];
                let new = args.split(',').nth(3).unwrap_or("").trim();
                !alive.contains(&new)
            });
            if may_end {
                assert!(body.contains("mark_ended("), "{name} ends tasks unindexed");
            }
        }
    }

    #[test]
    fn no_script_builds_a_key_from_a_layout_string() {
        // The layout lives in keys.rs; a script only appends members to families it was given.
        let layout = [
            "':task",
            "'task'",
            "':state",
            "':inbox",
            "':inflight",
            "':nodeinfo",
            "':node:",
            "':results",
            "':mirror",
            "':lease",
            "':due",
            "':ended",
            "':events",
            "'Public'",
            "k(",
        ];
        for (name, body) in all().into_iter().chain([("PRELUDE", super::PRELUDE)]) {
            for l in layout {
                assert!(!body.contains(l), "{name} holds {l}");
            }
        }
    }
}
