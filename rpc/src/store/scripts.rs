//! Every Lua script gitflock runs, one per state transition.
//!
//! All scripts take the key prefix as `ARGV[1]` and build their keys with `k(...)` from it (the
//! same layout as `super::keys`), because most keys depend on values read inside the script
//! (the node a task sits on, its state). gitflock therefore needs a single Redis (or a primary
//! with replicas), not Redis Cluster. Times come from the Redis server's `TIME`, so every node
//! agrees on "now" whatever their own clocks say.
//!
//! Key layout, `P` = prefix:
//! - `P:task:<id>` hash: id name type target state node attempts max_attempts interval timeout
//!   created updated due seq runs kill
//! - `P:results:<id>` list of JSON results, newest first, capped
//! - `P:all`, `P:state:<STATE>`, `P:type:<type>` sorted sets of ids scored by `seq`
//!   (creation order, unique), for listing and counting without KEYS or SCAN; `P:types` set
//! - `P:due` sorted set of WAITING ids scored by due time (ms)
//! - `P:inbox:<node>` list (master LPUSHes, node LMOVEs from the right) and
//!   `P:inflight:<node>` list (claimed, not yet finished)
//! - `P:seq` (creation order) and `P:claims` (claim numbers) counters
//! - `P:req:<request id>` → task id, for idempotent CreateTask retries (1 day)
//! - `P:lease` = "<node> <epoch>" with PX; `P:epoch` counter; `P:holdoff` (after data loss);
//!   `P:dispatched` hash epoch → tasks dispatched under it
//! - `P:nodes` sorted set node → last heartbeat (ms); `P:nodeinfo:<node>` hash
//! - `P:events` stream of task changes (id, kind c|d), capped ~10k
//! - `P:mirror:<id>` hash: what the mirror task's runs found (node path head refs last_fetch
//!   last_change last_error failures); `P:listed` set of mirror task ids the upstream list
//!   made; `P:list` hash: the list's last sync (url commit entries last_sync last_error)
//! - channels `P:node:<node>` (wake-ups: `inbox`, `due`, `kill <id>`) and `P:Public`

/// Shared helpers prepended to every script.
const PRELUDE: &str = r#"
local P = ARGV[1]
local function k(...) return P .. ':' .. table.concat({...}, ':') end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function move_state(id, old, new, seq)
  if old then redis.call('ZREM', k('state', old), id) end
  redis.call('ZADD', k('state', new), seq, id)
end
local function event(id, kind)
  redis.call('XADD', k('events'), 'MAXLEN', '~', 10000, '*', 'id', id, 'kind', kind)
end
local function push_result(id, keep, result)
  redis.call('LPUSH', k('results', id), cjson.encode(result))
  redis.call('LTRIM', k('results', id), 0, keep - 1)
end
local function wake_master(msg)
  local lease = redis.call('GET', k('lease'))
  if lease then
    local master = string.match(lease, '^(%S+)')
    redis.call('PUBLISH', k('node', master), msg)
  end
end
"#;

pub(super) fn source(body: &str) -> String {
    format!("{PRELUDE}{body}")
}

/// CREATE: a new task, WAITING and due now.
/// ARGV: 2 id, 3 name, 4 type, 5 target, 6 interval_secs, 7 max_attempts, 8 timeout_secs,
///       9 request id ('' for none), 10 pin (the only node that may run it; '' for any)
/// Returns {1, id} when created, {0, id} when the request id was seen before or a task with
/// this id exists (then nothing is written: a client's retry never makes a second task, and a
/// node's standing recurring task is made once).
pub(super) const CREATE: &str = r#"
local id, rid = ARGV[2], ARGV[9]
if redis.call('EXISTS', k('task', id)) == 1 then return {0, id} end
if rid ~= '' then
  local seen = redis.call('GET', k('req', rid))
  if seen then return {0, seen} end
end
local now = now_ms()
local seq = redis.call('INCR', k('seq'))
redis.call('HSET', k('task', id), 'id', id, 'name', ARGV[3], 'type', ARGV[4], 'target', ARGV[5],
  'state', 'WAITING', 'node', '', 'attempts', 0, 'max_attempts', ARGV[7], 'interval', ARGV[6],
  'timeout', ARGV[8], 'created', now, 'updated', now, 'due', now, 'seq', seq, 'runs', 0, 'kill', 0,
  'pin', ARGV[10])
redis.call('ZADD', k('all'), seq, id)
redis.call('ZADD', k('type', ARGV[4]), seq, id)
redis.call('SADD', k('types'), ARGV[4])
move_state(id, nil, 'WAITING', seq)
redis.call('ZADD', k('due'), now, id)
if rid ~= '' then redis.call('SET', k('req', rid), id, 'EX', 86400) end
event(id, 'c')
wake_master('due')
return {1, id}
"#;

/// DISPATCH (master only, fenced): moves due WAITING tasks into live nodes' inboxes.
/// ARGV: 2 lease holder "<node> <epoch>", 3 max tasks, 4 dead_after_ms, 5 epoch,
///       6 N, 7…6+N the nodes the master's membership admits as alive, then the placement
///       ring as (point, node) pairs sorted by point
/// Refuses with NOTMASTER unless the lease is held by exactly this holder, so a master that
/// lost its lease can never dispatch. Counts what each epoch moved in `P:dispatched` (the
/// evidence that a deposed master wrote nothing) and stamps the epoch on each task. Among the
/// admitted nodes that also heartbeated within dead_after, work and are not leaving or
/// declared dead, picks, per task, the one with the lowest
/// (inbox + in-flight) / concurrency, and never fills an inbox past 5 × concurrency + 32, so
/// work stays movable. A pinned task goes only to its node; a task pinned `#<hash>` (a mirror)
/// goes to the ring's owner of that hash (the first point at or after it, wrapping). While
/// that node is not live its due time moves 1 s on, and while its inbox is full the task
/// steps 50 ms back in the due set, so it never blocks the tasks behind it. Wakes each node it
/// gave work to.
/// Returns {moved, due tasks left, next due time (ms) or -1, server time (ms)}.
pub(super) const DISPATCH: &str = r#"
if redis.call('GET', k('lease')) ~= ARGV[2] then return redis.error_reply('NOTMASTER lease lost') end
local now = now_ms()
local limit = tonumber(ARGV[3])
local fresh = now - tonumber(ARGV[4])
local nodes = {}
local n_nodes = tonumber(ARGV[6])
local ring_pts, ring_node = {}, {}
for i = 7 + n_nodes, #ARGV, 2 do
  table.insert(ring_pts, tonumber(ARGV[i])); table.insert(ring_node, ARGV[i + 1])
end
local function ring_owner(h)
  local lo, hi = 1, #ring_pts
  if hi == 0 then return nil end
  if h > ring_pts[hi] then return ring_node[1] end
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if ring_pts[mid] < h then lo = mid + 1 else hi = mid end
  end
  return ring_node[lo]
end
for i = 7, 6 + n_nodes do
  local name = ARGV[i]
  local seen = tonumber(redis.call('ZSCORE', k('nodes'), name) or '0')
  local info = redis.call('HMGET', k('nodeinfo', name), 'concurrency', 'leaving', 'dead')
  local conc = tonumber(info[1]) or 0
  if seen >= fresh and conc > 0 and info[2] ~= '1' and info[3] ~= '1' then
    local load = redis.call('LLEN', k('inbox', name)) + redis.call('LLEN', k('inflight', name))
    table.insert(nodes, {name = name, load = load, conc = conc, cap = conc * 5 + 32, woken = false})
  end
end
local moved = 0
if #nodes > 0 then
  local byname = {}
  for _, n in ipairs(nodes) do byname[n.name] = n end
  local ids = redis.call('ZRANGEBYSCORE', k('due'), '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    local t = redis.call('HMGET', k('task', id), 'state', 'seq', 'pin')
    local best = nil
    if t[3] and t[3] ~= '' then
      local owner = t[3]
      if string.sub(owner, 1, 1) == '#' then owner = ring_owner(tonumber(string.sub(owner, 2)) or 0) end
      local n = owner and byname[owner]
      if n and n.load < n.cap then best = n end
      if best == nil and t[1] == 'WAITING' then
        if n then
          -- Its node is up but its inbox is full: step aside for 50 ms (a FINISH wakes the
          -- master sooner), keeping the task's due time.
          redis.call('ZADD', k('due'), now + 50, id)
        else
          redis.call('ZADD', k('due'), now + 1000, id)
          redis.call('HSET', k('task', id), 'due', now + 1000)
        end
      end
    else
      for _, n in ipairs(nodes) do
        if n.load < n.cap and (best == nil or n.load / n.conc < best.load / best.conc) then best = n end
      end
      if best == nil then break end
    end
    if best ~= nil then redis.call('ZREM', k('due'), id) end
    if t[1] ~= 'WAITING' then redis.call('ZREM', k('due'), id) end
    if best ~= nil and t[1] == 'WAITING' then
      redis.call('HSET', k('task', id), 'state', 'INQUEUE', 'node', best.name, 'epoch', ARGV[5], 'updated', now)
      move_state(id, 'WAITING', 'INQUEUE', t[2])
      redis.call('LPUSH', k('inbox', best.name), id)
      best.load = best.load + 1
      best.woken = true
      moved = moved + 1
      event(id, 'c')
    end
  end
  for _, n in ipairs(nodes) do
    if n.woken then redis.call('PUBLISH', k('node', n.name), 'inbox') end
  end
  if moved > 0 then redis.call('HINCRBY', k('dispatched'), ARGV[5], moved) end
end
local left = redis.call('ZCOUNT', k('due'), '-inf', now)
local first = redis.call('ZRANGE', k('due'), 0, 0, 'WITHSCORES')
local next_due = -1
if first[2] then next_due = tonumber(first[2]) end
return {moved, left, next_due, now}
"#;

/// CLAIM (node): takes up to n tasks from the node's inbox into its in-flight list, RUNNING.
/// ARGV: 2 node, 3 n
/// An id whose task was deleted, killed or given to another node meanwhile is dropped.
/// Each claim gets a cluster-unique claim number (`P:claims`), stored in the task: FINISH must
/// present it, so a late or retried FINISH can never be taken for a later run of the task.
/// Returns a flat list: id, type, target, attempt, timeout_secs, claim, max_attempts, due (ms),
/// interval_secs, … per claimed task.
pub(super) const CLAIM: &str = r#"
local node, n = ARGV[2], tonumber(ARGV[3])
local inbox, inflight = k('inbox', node), k('inflight', node)
local now = now_ms()
local out = {}
for _ = 1, n do
  local id = redis.call('LMOVE', inbox, inflight, 'RIGHT', 'LEFT')
  if not id then break end
  local t = redis.call('HMGET', k('task', id), 'state', 'node', 'type', 'target', 'attempts', 'timeout', 'seq',
    'max_attempts', 'due', 'interval')
  if t[1] == 'INQUEUE' and t[2] == node then
    local attempt = tonumber(t[5]) + 1
    local claim = redis.call('INCR', k('claims'))
    redis.call('HSET', k('task', id), 'state', 'RUNNING', 'attempts', attempt, 'claim', claim, 'updated', now)
    move_state(id, 'INQUEUE', 'RUNNING', t[7])
    event(id, 'c')
    table.insert(out, id); table.insert(out, t[3]); table.insert(out, t[4])
    table.insert(out, tostring(attempt)); table.insert(out, t[6]); table.insert(out, tostring(claim))
    table.insert(out, t[8]); table.insert(out, t[9]); table.insert(out, t[10])
  else
    redis.call('LREM', inflight, 1, id)
  end
end
return out
"#;

/// FINISH (node): records the end of runs, in a batch.
/// ARGV: 2 node, 3 results kept, then per run 9 values: id, claim, attempt, outcome
///       (ok|error|timeout|killed|handback), message, started_at, finished_at, retry delay ms,
///       next run in ms (a recurring task's next cycle as its runner asks; 0: the interval).
/// A run is recorded only if the task is still RUNNING on this node under this claim: a node
/// that lost a task (deleted, or handed to another node) can never overwrite it, and a
/// FINISH retried after a timeout is recorded at most once.
/// ok → SUCCEED (recurring: WAITING at now + interval); error/timeout → WAITING after the retry
/// delay while attempts remain, else RUNTIME_ERROR (recurring: back on schedule); killed, or a
/// kill requested → KILLED; handback → WAITING now, the attempt not counted, no result.
/// A task asked to run again while it ran (`again`, set by SYNC_NOW) is due at once.
/// Returns the number of runs recorded.
pub(super) const FINISH: &str = r#"
local node, keep = ARGV[2], tonumber(ARGV[3])
local inflight = k('inflight', node)
local now = now_ms()
local recorded = 0
local codes = {ok = 0, error = 1, timeout = 2, killed = 3}
for i = 4, #ARGV, 9 do
  local id, claim, attempt, outcome = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  redis.call('LREM', inflight, 1, id)
  local tk = k('task', id)
  local t = redis.call('HMGET', tk, 'state', 'node', 'attempts', 'max_attempts', 'interval', 'seq', 'kill', 'claim',
    'again')
  if t[1] == 'RUNNING' and t[2] == node and t[8] == claim then
    local new, due = nil, nil
    local interval = tonumber(t[5])
    local cycle = tonumber(ARGV[i + 8]) or 0
    if cycle <= 0 then cycle = interval * 1000 end
    if outcome == 'handback' then
      new, due = 'WAITING', now
      redis.call('HSET', tk, 'attempts', tonumber(attempt) - 1)
    else
      push_result(id, keep, {code = codes[outcome] or 1, message = ARGV[i + 4], node = node,
        started_at = tonumber(ARGV[i + 5]), finished_at = tonumber(ARGV[i + 6]), attempt = tonumber(attempt)})
      redis.call('HINCRBY', tk, 'runs', 1)
      if outcome == 'killed' or t[7] == '1' then
        new = 'KILLED'
      elseif outcome == 'ok' then
        if interval > 0 then new, due = 'WAITING', now + cycle else new = 'SUCCEED' end
      elseif tonumber(attempt) < tonumber(t[4]) then
        new, due = 'WAITING', now + tonumber(ARGV[i + 7])
      elseif interval > 0 then
        new, due = 'WAITING', now + cycle
      else
        new = 'RUNTIME_ERROR'
      end
      if due and interval > 0 and (outcome == 'ok' or tonumber(attempt) >= tonumber(t[4])) then
        redis.call('HSET', tk, 'attempts', 0)
      end
    end
    if t[9] == '1' then
      redis.call('HDEL', tk, 'again')
      if new == 'WAITING' then due = now end
    end
    redis.call('HSET', tk, 'state', new, 'updated', now)
    if due then
      redis.call('HSET', tk, 'due', due)
      redis.call('ZADD', k('due'), due, id)
    end
    move_state(id, 'RUNNING', new, t[6])
    event(id, 'c')
    recorded = recorded + 1
  end
end
if recorded > 0 then wake_master('due') end
return recorded
"#;

/// KILL: stops a task. ARGV: 2 id
/// WAITING/INQUEUE → KILLED at once (out of the due set or the inbox); RUNNING → the kill
/// flag is set and the node is told (`kill <id>` on its channel); FINISH then makes it KILLED.
/// Returns 'killed', 'killing', 'finished' (already ended) or 'missing'.
pub(super) const KILL: &str = r#"
local id = ARGV[2]
local tk = k('task', id)
local t = redis.call('HMGET', tk, 'state', 'node', 'seq')
if not t[1] then return 'missing' end
local now = now_ms()
if t[1] == 'WAITING' or t[1] == 'INQUEUE' then
  redis.call('ZREM', k('due'), id)
  if t[1] == 'INQUEUE' then redis.call('LREM', k('inbox', t[2]), 0, id) end
  redis.call('HSET', tk, 'state', 'KILLED', 'kill', 1, 'updated', now)
  move_state(id, t[1], 'KILLED', t[3])
  event(id, 'c')
  return 'killed'
elseif t[1] == 'RUNNING' then
  redis.call('HSET', tk, 'kill', 1, 'updated', now)
  redis.call('PUBLISH', k('node', t[2]), 'kill ' .. id)
  return 'killing'
end
return 'finished'
"#;

/// DELETE: removes a task and every index entry; a RUNNING one is also killed on its node
/// (its FINISH then finds nothing and records nothing). ARGV: 2 id
/// Returns 'deleted' or 'missing'.
pub(super) const DELETE: &str = r#"
local id = ARGV[2]
local tk = k('task', id)
local t = redis.call('HMGET', tk, 'state', 'node', 'type')
if not t[1] then return 'missing' end
redis.call('ZREM', k('all'), id)
redis.call('ZREM', k('state', t[1]), id)
redis.call('ZREM', k('type', t[3]), id)
redis.call('ZREM', k('due'), id)
if t[1] == 'INQUEUE' then redis.call('LREM', k('inbox', t[2]), 0, id) end
if t[1] == 'RUNNING' then redis.call('PUBLISH', k('node', t[2]), 'kill ' .. id) end
redis.call('DEL', tk, k('results', id), k('mirror', id))
redis.call('SREM', k('listed'), id)
event(id, 'd')
return 'deleted'
"#;

/// RECOVER (node): runs the node has in flight but is not running. At start that is everything
/// it had (it restarted); later, a claim whose reply was lost (Redis restarted mid-call).
/// ARGV: 2 node, 3 results kept, 4… the ids (none: the whole in-flight list)
/// Each task still RUNNING on this node goes back to the front of its inbox (INQUEUE), or
/// ends KILLED if a kill was asked, or RUNTIME_ERROR if it had no attempts left (a task
/// that kills its node every time must not loop forever).
/// Returns {requeued, ended}.
pub(super) const RECOVER: &str = r#"
local node, keep = ARGV[2], tonumber(ARGV[3])
local inflight, inbox = k('inflight', node), k('inbox', node)
local now = now_ms()
local requeued, ended = 0, 0
local ids = {}
for i = 4, #ARGV do table.insert(ids, ARGV[i]) end
local all = #ids == 0
if all then ids = redis.call('LRANGE', inflight, 0, -1) end
for _, id in ipairs(ids) do
  if not all then redis.call('LREM', inflight, 0, id) end
  local tk = k('task', id)
  local t = redis.call('HMGET', tk, 'state', 'node', 'attempts', 'max_attempts', 'seq', 'kill')
  if t[1] == 'RUNNING' and t[2] == node then
    local new = 'INQUEUE'
    if t[6] == '1' then new = 'KILLED'
    elseif tonumber(t[3]) >= tonumber(t[4]) then new = 'RUNTIME_ERROR' end
    if new == 'INQUEUE' then
      redis.call('RPUSH', inbox, id)
      requeued = requeued + 1
    else
      push_result(id, keep, {code = 1, message = 'the run on node ' .. node .. ' was lost (the node stopped)',
        node = node, started_at = 0, finished_at = now, attempt = tonumber(t[3])})
      ended = ended + 1
    end
    redis.call('HSET', tk, 'state', new, 'updated', now)
    move_state(id, 'RUNNING', new, t[5])
    event(id, 'c')
  end
end
if all then redis.call('DEL', inflight) end
return {requeued, ended}
"#;

/// HANDBACK (node, at graceful shutdown): marks the node as leaving (no more dispatch to it)
/// and gives every task still in its inbox back to the master, WAITING and due now.
/// ARGV: 2 node. Returns the number handed back.
pub(super) const HANDBACK: &str = r#"
local node = ARGV[2]
local inbox = k('inbox', node)
local now = now_ms()
redis.call('HSET', k('nodeinfo', node), 'leaving', 1)
local n = 0
local id = redis.call('RPOP', inbox)
while id do
  local tk = k('task', id)
  local t = redis.call('HMGET', tk, 'state', 'node', 'seq')
  if t[1] == 'INQUEUE' and t[2] == node then
    redis.call('HSET', tk, 'state', 'WAITING', 'due', now, 'updated', now)
    redis.call('ZADD', k('due'), now, id)
    move_state(id, 'INQUEUE', 'WAITING', t[3])
    event(id, 'c')
    n = n + 1
  end
  id = redis.call('RPOP', inbox)
end
if n > 0 then wake_master('due') end
return n
"#;

/// HEARTBEAT (node): presence in Redis, and the signed heartbeat on the Public channel in the
/// same round trip. ARGV: 2 node, 3 addr, 4 concurrency, 5 running, 6 version, 7 epoch seen,
/// 8 leaving (1 while shutting down: no new work for it), 9 the signed `0:` message.
/// Returns the server time (ms).
pub(super) const HEARTBEAT: &str = r#"
local now = now_ms()
redis.call('ZADD', k('nodes'), now, ARGV[2])
redis.call('HSET', k('nodeinfo', ARGV[2]), 'addr', ARGV[3], 'concurrency', ARGV[4], 'running', ARGV[5],
  'version', ARGV[6], 'epoch', ARGV[7], 'last', now, 'leaving', ARGV[8])
redis.call('PUBLISH', k('Public'), ARGV[9])
return now
"#;

/// LEASE_ACQUIRE: takes the master lease if nobody holds it, with a new epoch.
/// ARGV: 2 node, 3 lease ms, 4 the highest epoch this node has seen.
/// Returns {1, epoch, ttl} when taken, {0, holder, ms until it may be free} otherwise.
/// The epoch rises with every new master: it is the fencing token. If a node has seen a
/// higher epoch than Redis holds, Redis lost data (restarted empty, or from an old file):
/// the epoch is raised past what was seen, and nobody may take the lease for a whole lease
/// time (`P:holdoff`), so any master of before the loss has passed its own deadline.
pub(super) const LEASE_ACQUIRE: &str = r#"
local holder = redis.call('GET', k('lease'))
if holder then return {0, holder, redis.call('PTTL', k('lease'))} end
if redis.call('EXISTS', k('holdoff')) == 1 then return {0, '', redis.call('PTTL', k('holdoff'))} end
local known = tonumber(ARGV[4])
local cur = tonumber(redis.call('GET', k('epoch')) or '0')
if known > cur then
  redis.call('SET', k('epoch'), known)
  redis.call('SET', k('holdoff'), 1, 'PX', ARGV[3])
  return {0, '', tonumber(ARGV[3])}
end
local epoch = redis.call('INCR', k('epoch'))
redis.call('SET', k('lease'), ARGV[2] .. ' ' .. epoch, 'PX', ARGV[3])
return {1, tostring(epoch), tonumber(ARGV[3])}
"#;

/// LEASE_RENEW: extends the lease only if this exact holder still has it.
/// ARGV: 2 holder "<node> <epoch>", 3 lease ms. Returns 1 if renewed, 0 if lost.
pub(super) const LEASE_RENEW: &str = r#"
if redis.call('GET', k('lease')) == ARGV[2] then
  redis.call('PEXPIRE', k('lease'), ARGV[3])
  return 1
end
return 0
"#;

/// LEASE_RELEASE: gives the lease up (resign, shutdown) if this holder has it, and publishes
/// the signed announcement on the Public channel so the others take over at once.
/// ARGV: 2 holder, 3 the signed `2:` announcement. Returns 1 if released.
pub(super) const LEASE_RELEASE: &str = r#"
if redis.call('GET', k('lease')) == ARGV[2] then
  redis.call('DEL', k('lease'))
  redis.call('PUBLISH', k('Public'), ARGV[3])
  return 1
end
return 0
"#;

/// REASSIGN (master only, fenced): a node was declared dead; its work goes back.
/// ARGV: 2 lease holder, 3 node, 4 results kept
/// Every task in its inbox (INQUEUE there) goes back to WAITING, due now. Every task in its
/// in-flight list still RUNNING there goes back to WAITING due now (its started attempt
/// counts), or ends KILLED if a kill was asked, or RUNTIME_ERROR if no attempts are left.
/// Finished tasks are not in these lists, so they are never re-run; recurring tasks keep
/// their due time; the node's claim numbers die with it, so if it comes back it cannot
/// record a run of a task it lost. The node is marked dead until the master admits it again.
/// Returns {requeued, ended}.
pub(super) const REASSIGN: &str = r#"
if redis.call('GET', k('lease')) ~= ARGV[2] then return redis.error_reply('NOTMASTER lease lost') end
local node, keep = ARGV[3], tonumber(ARGV[4])
local now = now_ms()
local requeued, ended = 0, 0
redis.call('HSET', k('nodeinfo', node), 'dead', 1)
for _, list in ipairs({k('inbox', node), k('inflight', node)}) do
  for _, id in ipairs(redis.call('LRANGE', list, 0, -1)) do
    local tk = k('task', id)
    local t = redis.call('HMGET', tk, 'state', 'node', 'attempts', 'max_attempts', 'seq', 'kill')
    if (t[1] == 'INQUEUE' or t[1] == 'RUNNING') and t[2] == node then
      local new = 'WAITING'
      if t[6] == '1' then new = 'KILLED'
      elseif t[1] == 'RUNNING' and tonumber(t[3]) >= tonumber(t[4]) then new = 'RUNTIME_ERROR' end
      if new == 'WAITING' then
        redis.call('HSET', tk, 'due', now)
        redis.call('ZADD', k('due'), now, id)
        requeued = requeued + 1
      else
        push_result(id, keep, {code = 1, message = 'node ' .. node .. ' died while the task ran',
          node = node, started_at = 0, finished_at = now, attempt = tonumber(t[3])})
        ended = ended + 1
      end
      redis.call('HSET', tk, 'state', new, 'updated', now)
      move_state(id, t[1], new, t[5])
      event(id, 'c')
    end
  end
  redis.call('DEL', list)
end
return {requeued, ended}
"#;

/// ADMIT (master only, fenced): a node declared dead answered a probe again; it may take
/// work. ARGV: 2 lease holder, 3 node. Returns 1.
pub(super) const ADMIT: &str = r#"
if redis.call('GET', k('lease')) ~= ARGV[2] then return redis.error_reply('NOTMASTER lease lost') end
redis.call('HSET', k('nodeinfo', ARGV[3]), 'dead', 0)
return 1
"#;

/// SYNC_NOW (any node): asks tasks to run as soon as possible (a webhook saw their upstream
/// move). ARGV: 2… ids
/// WAITING → due now (the master is woken once); INQUEUE → nothing to do; RUNNING → `again`,
/// so FINISH makes it due at once; a task that ended (killed, failed) is left alone.
/// Returns per id 'queued', 'again', 'ended' or 'missing'.
pub(super) const SYNC_NOW: &str = r#"
local now = now_ms()
local out, woken = {}, false
for i = 2, #ARGV do
  local id = ARGV[i]
  local tk = k('task', id)
  local state = redis.call('HGET', tk, 'state')
  local r = 'ended'
  if not state then
    r = 'missing'
  elseif state == 'WAITING' then
    redis.call('HSET', tk, 'due', now)
    redis.call('ZADD', k('due'), now, id)
    woken = true
    r = 'queued'
  elseif state == 'INQUEUE' then
    r = 'queued'
  elseif state == 'RUNNING' then
    redis.call('HSET', tk, 'again', 1)
    r = 'again'
  end
  table.insert(out, r)
end
if woken then wake_master('due') end
return out
"#;

/// MIRROR_REPORT (node): records what a mirror run found, if the task still exists (a run
/// that outlives a delete must not leave a status behind).
/// ARGV: 2 id, 3 ok (1|0), then field/value pairs to set. ok=1 resets `failures`, ok=0 adds one.
/// Returns {1, failures, moved (ms: the last run that saw the upstream move, a first clone
/// not counted)} when recorded, {0} when the task is gone.
pub(super) const MIRROR_REPORT: &str = r#"
local id = ARGV[2]
if redis.call('EXISTS', k('task', id)) == 0 then return 0 end
local mk = k('mirror', id)
for i = 4, #ARGV, 2 do redis.call('HSET', mk, ARGV[i], ARGV[i + 1]) end
if ARGV[3] == '1' then redis.call('HSET', mk, 'failures', 0) else redis.call('HINCRBY', mk, 'failures', 1) end
local r = redis.call('HMGET', mk, 'failures', 'moved')
return {1, tonumber(r[1]) or 0, tonumber(r[2]) or 0}
"#;
