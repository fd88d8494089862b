//! What API requests ask of a task: CREATE, KILL, DELETE, SYNC_NOW; and MIRROR_REPORT, a
//! mirror run's findings kept beside its task.

/// CREATE: a new task, WAITING and due now.
/// KEYS: 1 `task(id)`, 2 `request(request id)`, 3 `seq`, 4 `all`, 5 `by_type(type)`, 6 `types`,
///       7 `state_family`, 8 `due`, 9 `events`, 10 `lease`, 11 `node_channel_family`
/// ARGV: 1 id, 2 name, 3 type, 4 target, 5 interval_secs, 6 max_attempts, 7 timeout_secs,
///       8 request id ('' for none), 9 placement (stored as `pin`: '' any node, a node name,
///       or `#<ring hash>`; see `Placement`)
/// Returns {1, id} when created, {0, id} when the request id was seen before or a task with
/// this id exists (then nothing is written: a client's retry never makes a second task, and a
/// node's standing recurring task is made once).
pub(in crate::store) const CREATE: &str = r#"
local task_key, request_key, seq_key, all_key, type_key, types_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local state_of, due_key, events_key, lease_key, channel_of = KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local id, rid = ARGV[1], ARGV[8]
if redis.call('EXISTS', task_key) == 1 then return {0, id} end
if rid ~= '' then
  local seen = redis.call('GET', request_key)
  if seen then return {0, seen} end
end
local now = now_ms()
local seq = redis.call('INCR', seq_key)
redis.call('HSET', task_key, 'id', id, 'name', ARGV[2], 'type', ARGV[3], 'target', ARGV[4],
  'state', 'WAITING', 'node', '', 'attempts', 0, 'max_attempts', ARGV[6], 'interval', ARGV[5],
  'timeout', ARGV[7], 'created', now, 'updated', now, 'due', now, 'seq', seq, 'runs', 0, 'kill', 0,
  'pin', ARGV[9])
redis.call('ZADD', all_key, seq, id)
redis.call('ZADD', type_key, seq, id)
redis.call('SADD', types_key, ARGV[3])
move_state(state_of, id, nil, 'WAITING', seq)
redis.call('ZADD', due_key, now, id)
if rid ~= '' then redis.call('SET', request_key, id, 'EX', 86400) end
event(events_key, id, 'c')
wake_master(lease_key, channel_of, 'due')
return {1, id}
"#;

/// KILL: stops a task.
/// KEYS: 1 `task(id)`, 2 `due`, 3 `inbox_family`, 4 `state_family`, 5 `events`,
///       6 `node_channel_family`, 7 `ended_family`
/// ARGV: 1 id
/// WAITING/INQUEUE → KILLED at once (out of the due set or the inbox); RUNNING → the kill
/// flag is set and the node is told (`kill <id>` on its channel); FINISH then makes it KILLED.
/// Returns 'killed', 'killing', 'finished' (already ended) or 'missing'.
pub(in crate::store) const KILL: &str = r#"
local task_key, due_key, inbox_of, state_of, events_key, channel_of = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local ended_of = KEYS[7]
local id = ARGV[1]
local t = redis.call('HMGET', task_key, 'state', 'node', 'seq')
if not t[1] then return 'missing' end
local now = now_ms()
if t[1] == 'WAITING' or t[1] == 'INQUEUE' then
  redis.call('ZREM', due_key, id)
  if t[1] == 'INQUEUE' then redis.call('LREM', inbox_of .. t[2], 0, id) end
  redis.call('HSET', task_key, 'state', 'KILLED', 'kill', 1, 'updated', now)
  move_state(state_of, id, t[1], 'KILLED', t[3])
  mark_ended(ended_of, id, 'KILLED', now)
  event(events_key, id, 'c')
  return 'killed'
elseif t[1] == 'RUNNING' then
  redis.call('HSET', task_key, 'kill', 1, 'updated', now)
  redis.call('PUBLISH', channel_of .. t[2], 'kill ' .. id)
  return 'killing'
end
return 'finished'
"#;

/// DELETE: removes a task and every index entry; a RUNNING one is also killed on its node
/// (its FINISH then finds nothing and records nothing).
/// KEYS: 1 `task(id)`, 2 `results(id)`, 3 `mirror(id)`, 4 `all`, 5 `state_family`,
///       6 `type_family`, 7 `due`, 8 `inbox_family`, 9 `node_channel_family`, 10 `listed`,
///       11 `events`, 12 `ended_family`
/// ARGV: 1 id
/// Returns 'deleted' or 'missing'.
pub(in crate::store) const DELETE: &str = r#"
local task_key, results_key, mirror_key, all_key, state_of, type_of = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local due_key, inbox_of, channel_of, listed_key, events_key = KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local ended_of = KEYS[12]
local id = ARGV[1]
local t = redis.call('HMGET', task_key, 'state', 'node', 'type')
if not t[1] then return 'missing' end
redis.call('ZREM', all_key, id)
redis.call('ZREM', state_of .. t[1], id)
redis.call('ZREM', ended_of .. t[1], id)
redis.call('ZREM', type_of .. t[3], id)
redis.call('ZREM', due_key, id)
if t[1] == 'INQUEUE' then redis.call('LREM', inbox_of .. t[2], 0, id) end
if t[1] == 'RUNNING' then redis.call('PUBLISH', channel_of .. t[2], 'kill ' .. id) end
redis.call('DEL', task_key, results_key, mirror_key)
redis.call('SREM', listed_key, id)
event(events_key, id, 'd')
return 'deleted'
"#;

/// SYNC_NOW (any node): asks tasks to run soon: an operator's request (window 0) at once, a
/// webhook's (a forge saw their upstream move; window > 0 ms) at most once per task per window.
/// KEYS: 1 `task_family`, 2 `due`, 3 `lease`, 4 `node_channel_family`, 5 `mirror_family`
/// ARGV: 1 window ms, 2… ids
/// At once: WAITING → due now (the master is woken once); INQUEUE → nothing to do; RUNNING →
/// `again`, so FINISH makes it due at once; a task that ended (killed, failed) is left alone.
/// A webhook's sync comes at its slot, max(now, the task's last slot (`hooked`) + window):
/// WAITING → due at the slot if due later, unless its mirror is failing (`failures` > 0: its
/// back-off stands, 'backoff'); RUNNING → `again_at` the slot (FINISH honours it after a run
/// that went well). A slot asked for is recorded as `hooked`. So a push delivered a thousand
/// times makes at most one sync per window, and never cuts a failing mirror's back-off.
/// Returns per id, in order, 'queued', 'again', 'backoff', 'ended' or 'missing'.
pub(in crate::store) const SYNC_NOW: &str = r#"
local task_of, due_key, lease_key, channel_of, mirror_of = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local window = tonumber(ARGV[1]) or 0
local now = now_ms()
local out, woken = {}, false
for i = 2, #ARGV do
  local id = ARGV[i]
  local task_key = task_of .. id
  local t = redis.call('HMGET', task_key, 'state', 'due', 'hooked', 'again_at')
  local state = t[1]
  local slot = math.max(now, (tonumber(t[3]) or 0) + window)
  local r = 'ended'
  if not state then
    r = 'missing'
  elseif state == 'WAITING' and window == 0 then
    redis.call('HSET', task_key, 'due', now)
    redis.call('ZADD', due_key, now, id)
    woken = true
    r = 'queued'
  elseif state == 'WAITING' then
    r = 'queued'
    if (tonumber(redis.call('HGET', mirror_of .. id, 'failures')) or 0) > 0 then
      r = 'backoff'
    elseif (tonumber(t[2]) or 0) > slot then
      redis.call('HSET', task_key, 'due', slot, 'hooked', slot)
      redis.call('ZADD', due_key, slot, id)
      woken = true
    end
  elseif state == 'INQUEUE' then
    r = 'queued'
  elseif state == 'RUNNING' and window == 0 then
    redis.call('HSET', task_key, 'again', 1)
    r = 'again'
  elseif state == 'RUNNING' then
    if not t[4] then redis.call('HSET', task_key, 'again_at', slot, 'hooked', slot) end
    r = 'again'
  end
  table.insert(out, r)
end
if woken then wake_master(lease_key, channel_of, 'due') end
return out
"#;

/// MIRROR_REPORT (node): records what a mirror run found, only while that run is its task's
/// current one: RUNNING on this node under this claim (the fence FINISH has). A run that
/// outlived a delete must not leave a status behind, and one whose task was given to another
/// node meanwhile (its node declared dead while it hung), or claimed again since, must never
/// overwrite what the newer run recorded.
/// KEYS: 1 `task(id)`, 2 `mirror(id)`
/// ARGV: 1 node, 2 claim, 3 ok (1|0), 4… field/value pairs to set. ok=1 resets `failures`,
///       ok=0 adds one.
/// Returns {1, failures, moved (ms: the last run that saw the upstream move, a first clone
/// not counted; 0: never)} when recorded, {0} when the task is gone or not this run's.
pub(in crate::store) const MIRROR_REPORT: &str = r#"
local task_key, mirror_key = KEYS[1], KEYS[2]
local t = redis.call('HMGET', task_key, 'state', 'node', 'claim')
if t[1] ~= 'RUNNING' or t[2] ~= ARGV[1] or t[3] ~= ARGV[2] then return {0} end
for i = 4, #ARGV, 2 do redis.call('HSET', mirror_key, ARGV[i], ARGV[i + 1]) end
if ARGV[3] == '1' then redis.call('HSET', mirror_key, 'failures', 0) else redis.call('HINCRBY', mirror_key, 'failures', 1) end
local r = redis.call('HMGET', mirror_key, 'failures', 'moved')
return {1, tonumber(r[1]) or 0, tonumber(r[2]) or 0}
"#;
