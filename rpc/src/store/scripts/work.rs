//! A task's way through the cluster: DISPATCH (the master), CLAIM and FINISH (the node that
//! runs it), RECOVER and HANDBACK (a node that restarted or stops).

/// DISPATCH (master only, fenced): moves due WAITING tasks into live nodes' inboxes.
/// KEYS: 1 `lease`, 2 `nodes`, 3 `node_info_family`, 4 `inbox_family`, 5 `inflight_family`,
///       6 `due`, 7 `task_family`, 8 `state_family`, 9 `events`, 10 `node_channel_family`,
///       11 `dispatched`, 12 `results_family`, 13 `ended_family`
/// ARGV: 1 lease holder "<node> <epoch>", 2 max tasks, 3 dead_after_ms, 4 epoch,
///       5 results kept, 6 N, 7…6+N the nodes the master's membership admits as alive, then
///       the placement ring as (point, node) pairs sorted by point
/// Refuses with NOTMASTER unless the lease is held by exactly this holder, so a master that
/// lost its lease can never dispatch. Counts what each epoch moved in `dispatched` (the
/// evidence that a deposed master wrote nothing) and stamps the epoch on each task. Among the
/// admitted nodes that also heartbeated within dead_after, work and are not leaving or
/// declared dead, picks, per task, the one with the lowest
/// (inbox + in-flight) / concurrency, and never fills an inbox past 5 × concurrency + 32, so
/// work stays movable. A task placed on a node (`pin` a node name) goes only to that node; a
/// task placed on the ring (`pin` `#<hash>`, a mirror) goes to the ring's owner of that hash
/// (the first point at or after it, wrapping). While that node is not live its due time moves
/// 1 s on, and while its inbox is full the task steps 50 ms back in the due set, so it never
/// blocks the tasks behind it. A task placed on a node that is gone ends RUNTIME_ERROR with a
/// result saying so: a node no heartbeat ever named, once the task is a minute old (a node
/// makes its standing tasks just before its first heartbeat), or, for a one-off task, a node
/// declared dead (a recurring one waits for its node to come back). Wakes each node it gave
/// work to.
/// Returns {moved, due tasks left, next due time (ms) or -1, server time (ms)}.
pub(in crate::store) const DISPATCH: &str = r#"
local lease_key, nodes_key, info_of, inbox_of, inflight_of, due_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local task_of, state_of, events_key, channel_of, dispatched_key = KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local results_of, ended_of = KEYS[12], KEYS[13]
if redis.call('GET', lease_key) ~= ARGV[1] then return redis.error_reply('NOTMASTER lease lost') end
local now = now_ms()
local limit = tonumber(ARGV[2])
local fresh = now - tonumber(ARGV[3])
local epoch = ARGV[4]
local keep = tonumber(ARGV[5])
local nodes = {}
local n_nodes = tonumber(ARGV[6])
local ring_pts, ring_node = {}, {}
-- Why a task pinned to `name` can never run, or nil while it may.
local function pinned_gone(name, created, interval)
  if not redis.call('ZSCORE', nodes_key, name) then
    if now - created > 60000 then return 'node ' .. name .. ' is not a node of this cluster' end
  elseif interval == 0 and redis.call('HGET', info_of .. name, 'dead') == '1' then
    return 'node ' .. name .. ' was declared dead'
  end
  return nil
end
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
  local seen = tonumber(redis.call('ZSCORE', nodes_key, name) or '0')
  local info = redis.call('HMGET', info_of .. name, 'concurrency', 'leaving', 'dead')
  local conc = tonumber(info[1]) or 0
  if seen >= fresh and conc > 0 and info[2] ~= '1' and info[3] ~= '1' then
    local load = redis.call('LLEN', inbox_of .. name) + redis.call('LLEN', inflight_of .. name)
    table.insert(nodes, {name = name, load = load, conc = conc, cap = conc * 5 + 32, woken = false})
  end
end
local moved = 0
if #nodes > 0 then
  local byname = {}
  for _, n in ipairs(nodes) do byname[n.name] = n end
  local ids = redis.call('ZRANGEBYSCORE', due_key, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    local task_key = task_of .. id
    local t = redis.call('HMGET', task_key, 'state', 'seq', 'pin', 'created', 'interval')
    local best = nil
    if t[3] and t[3] ~= '' then
      local owner = t[3]
      if string.sub(owner, 1, 1) == '#' then owner = ring_owner(tonumber(string.sub(owner, 2)) or 0) end
      local n = owner and byname[owner]
      if n and n.load < n.cap then best = n end
      if best == nil and t[1] == 'WAITING' then
        local gone = nil
        if not n and string.sub(t[3], 1, 1) ~= '#' then
          gone = pinned_gone(t[3], tonumber(t[4]) or now, tonumber(t[5]) or 0)
        end
        if n then
          -- Its node is up but its inbox is full: step aside for 50 ms (a FINISH wakes the
          -- master sooner), keeping the task's due time.
          redis.call('ZADD', due_key, now + 50, id)
        elseif gone then
          redis.call('ZREM', due_key, id)
          redis.call('HSET', task_key, 'state', 'RUNTIME_ERROR', 'updated', now)
          move_state(state_of, id, 'WAITING', 'RUNTIME_ERROR', t[2])
          mark_ended(ended_of, id, 'RUNTIME_ERROR', now)
          push_result(results_of .. id, keep, {code = 1, message = gone .. '; the task could run only there',
            node = '', started_at = 0, finished_at = now, attempt = 0})
          event(events_key, id, 'c')
        else
          redis.call('ZADD', due_key, now + 1000, id)
          redis.call('HSET', task_key, 'due', now + 1000)
        end
      end
    else
      for _, n in ipairs(nodes) do
        if n.load < n.cap and (best == nil or n.load / n.conc < best.load / best.conc) then best = n end
      end
      if best == nil then break end
    end
    if best ~= nil then redis.call('ZREM', due_key, id) end
    if t[1] ~= 'WAITING' then redis.call('ZREM', due_key, id) end
    if best ~= nil and t[1] == 'WAITING' then
      redis.call('HSET', task_key, 'state', 'INQUEUE', 'node', best.name, 'epoch', epoch, 'updated', now)
      move_state(state_of, id, 'WAITING', 'INQUEUE', t[2])
      redis.call('LPUSH', inbox_of .. best.name, id)
      best.load = best.load + 1
      best.woken = true
      moved = moved + 1
      event(events_key, id, 'c')
    end
  end
  for _, n in ipairs(nodes) do
    if n.woken then redis.call('PUBLISH', channel_of .. n.name, 'inbox') end
  end
  if moved > 0 then redis.call('HINCRBY', dispatched_key, epoch, moved) end
end
local left = redis.call('ZCOUNT', due_key, '-inf', now)
local first = redis.call('ZRANGE', due_key, 0, 0, 'WITHSCORES')
local next_due = -1
if first[2] then next_due = tonumber(first[2]) end
return {moved, left, next_due, now}
"#;

/// CLAIM (node): takes up to n tasks from the node's inbox into its in-flight list, RUNNING.
/// KEYS: 1 `inbox(node)`, 2 `inflight(node)`, 3 `task_family`, 4 `claims`, 5 `state_family`,
///       6 `events`, 7 `incarnation`
/// ARGV: 1 node, 2 n, 3 a new incarnation id (taken if Redis has none: it lost its data), 4 the
///       highest claim number this node was given (0 none)
/// An id whose task was deleted, killed or given to another node meanwhile is dropped.
/// Each claim gets a cluster-unique claim number (`claims`), stored in the task: FINISH must
/// present it, so a late or retried FINISH can never be taken for a later run of the task.
/// Numbers are scoped by incarnation (each starts above the one before, see INCARNATION); a
/// counter below a number this node was given (Redis restored from an older snapshot) makes
/// a new incarnation too. So a FINISH retried from before Redis lost its data can never match
/// a claim made after.
/// Returns one array per claimed task: {id, type, target, attempt, timeout_secs, claim,
/// max_attempts, due (ms), interval_secs}, the numbers as decimal text.
pub(in crate::store) const CLAIM: &str = r#"
local inbox_key, inflight_key, task_of, claims_key, state_of, events_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local inc_key = KEYS[7]
local node, n, seen = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4]) or 0
local now = now_ms()
if (tonumber(redis.call('GET', claims_key)) or 0) < seen then
  -- Redis went back in time (an older snapshot): a new incarnation, whose numbers start above
  -- every number this node was given, and which every node notices as a loss.
  redis.call('DEL', inc_key)
end
incarnation(inc_key, claims_key, ARGV[3], seen, now)
local out = {}
for _ = 1, n do
  local id = redis.call('LMOVE', inbox_key, inflight_key, 'RIGHT', 'LEFT')
  if not id then break end
  local task_key = task_of .. id
  local t = redis.call('HMGET', task_key, 'state', 'node', 'type', 'target', 'attempts', 'timeout', 'seq',
    'max_attempts', 'due', 'interval')
  if t[1] == 'INQUEUE' and t[2] == node then
    local attempt = tonumber(t[5]) + 1
    -- As text: a claim number is past the 14 digits Lua's tostring keeps.
    local claim = string.format('%.0f', redis.call('INCR', claims_key))
    redis.call('HSET', task_key, 'state', 'RUNNING', 'attempts', attempt, 'claim', claim, 'updated', now)
    move_state(state_of, id, 'INQUEUE', 'RUNNING', t[7])
    event(events_key, id, 'c')
    table.insert(out, {id, t[3], t[4], tostring(attempt), t[6], claim, t[8], t[9], t[10]})
  else
    redis.call('LREM', inflight_key, 1, id)
  end
end
return out
"#;

/// FINISH (node): records the end of runs, in a batch.
/// KEYS: 1 `inflight(node)`, 2 `task_family`, 3 `results_family`, 4 `due`, 5 `state_family`,
///       6 `events`, 7 `lease`, 8 `node_channel_family`, 9 `ended_family`
/// ARGV: 1 node, 2 results kept, then per run 9 values: id, claim, attempt, outcome
///       (ok|error|timeout|killed|handback), message, started_at, finished_at, retry delay ms,
///       next run in ms (a recurring task's next cycle as its runner asks; 0: the interval).
/// A run is recorded only if the task is still RUNNING on this node under this claim: a node
/// that lost a task (deleted, or handed to another node) can never overwrite it, and a
/// FINISH retried after a timeout is recorded at most once.
/// ok → SUCCEED (recurring: WAITING at now + interval); error/timeout → WAITING after the retry
/// delay while attempts remain, else RUNTIME_ERROR (recurring: back on schedule); killed, or a
/// kill requested → KILLED; handback → WAITING now, the attempt not counted, no result.
/// A task asked to run again while it ran (`again`, set by SYNC_NOW) is due at once; one a
/// webhook asked for (`again_at`) is due at that time, and only after a run that went well (a
/// failing mirror keeps its back-off).
/// Returns the number of runs recorded.
pub(in crate::store) const FINISH: &str = r#"
local inflight_key, task_of, results_of, due_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local state_of, events_key, lease_key, channel_of = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local ended_of = KEYS[9]
local node, keep = ARGV[1], tonumber(ARGV[2])
local now = now_ms()
local recorded = 0
local codes = {ok = 0, error = 1, timeout = 2, killed = 3}
for i = 3, #ARGV, 9 do
  local id, claim, attempt, outcome = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  redis.call('LREM', inflight_key, 1, id)
  local tk = task_of .. id
  local t = redis.call('HMGET', tk, 'state', 'node', 'attempts', 'max_attempts', 'interval', 'seq', 'kill', 'claim',
    'again', 'again_at')
  if t[1] == 'RUNNING' and t[2] == node and t[8] == claim then
    local new, due = nil, nil
    local interval = tonumber(t[5])
    local cycle = tonumber(ARGV[i + 8]) or 0
    if cycle <= 0 then cycle = interval * 1000 end
    if outcome == 'handback' then
      new, due = 'WAITING', now
      redis.call('HSET', tk, 'attempts', tonumber(attempt) - 1)
    else
      push_result(results_of .. id, keep, {code = codes[outcome] or 1, message = ARGV[i + 4], node = node,
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
    if t[10] then
      redis.call('HDEL', tk, 'again_at')
      if new == 'WAITING' and outcome == 'ok' then due = math.min(due, math.max(now, tonumber(t[10]))) end
    end
    redis.call('HSET', tk, 'state', new, 'updated', now)
    if due then
      redis.call('HSET', tk, 'due', due)
      redis.call('ZADD', due_key, due, id)
    end
    move_state(state_of, id, 'RUNNING', new, t[6])
    mark_ended(ended_of, id, new, now)
    event(events_key, id, 'c')
    recorded = recorded + 1
  end
end
if recorded > 0 then wake_master(lease_key, channel_of, 'due') end
return recorded
"#;

/// RECOVER (node): runs the node has in flight but is not running. At start that is everything
/// it had (it restarted); later, a claim whose reply was lost (Redis restarted mid-call).
/// KEYS: 1 `inflight(node)`, 2 `inbox(node)`, 3 `task_family`, 4 `results_family`,
///       5 `state_family`, 6 `events`, 7 `ended_family`
/// ARGV: 1 node, 2 results kept, 3… the ids (none: the whole in-flight list)
/// Each task still RUNNING on this node goes back to the front of its inbox (INQUEUE), or
/// ends KILLED if a kill was asked, or RUNTIME_ERROR if it had no attempts left (a task
/// that kills its node every time must not loop forever).
/// Returns {requeued, ended}.
pub(in crate::store) const RECOVER: &str = r#"
local inflight_key, inbox_key, task_of, results_of, state_of, events_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local ended_of = KEYS[7]
local node, keep = ARGV[1], tonumber(ARGV[2])
local now = now_ms()
local requeued, ended = 0, 0
local ids = {}
for i = 3, #ARGV do table.insert(ids, ARGV[i]) end
local all = #ids == 0
if all then ids = redis.call('LRANGE', inflight_key, 0, -1) end
for _, id in ipairs(ids) do
  if not all then redis.call('LREM', inflight_key, 0, id) end
  local tk = task_of .. id
  local t = redis.call('HMGET', tk, 'state', 'node', 'attempts', 'max_attempts', 'seq', 'kill')
  if t[1] == 'RUNNING' and t[2] == node then
    local new = 'INQUEUE'
    if t[6] == '1' then new = 'KILLED'
    elseif tonumber(t[3]) >= tonumber(t[4]) then new = 'RUNTIME_ERROR' end
    if new == 'INQUEUE' then
      redis.call('RPUSH', inbox_key, id)
      requeued = requeued + 1
    else
      push_result(results_of .. id, keep, {code = 1, message = 'the run on node ' .. node .. ' was lost (the node stopped)',
        node = node, started_at = 0, finished_at = now, attempt = tonumber(t[3])})
      ended = ended + 1
    end
    redis.call('HSET', tk, 'state', new, 'updated', now)
    move_state(state_of, id, 'RUNNING', new, t[5])
    mark_ended(ended_of, id, new, now)
    event(events_key, id, 'c')
  end
end
if all then redis.call('DEL', inflight_key) end
return {requeued, ended}
"#;

/// HANDBACK (node, at graceful shutdown): marks the node as leaving (no more dispatch to it)
/// and gives every task still in its inbox back to the master, WAITING and due now.
/// KEYS: 1 `inbox(node)`, 2 `node_info(node)`, 3 `task_family`, 4 `due`, 5 `state_family`,
///       6 `events`, 7 `lease`, 8 `node_channel_family`
/// ARGV: 1 node
/// Returns the number handed back.
pub(in crate::store) const HANDBACK: &str = r#"
local inbox_key, info_key, task_of, due_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local state_of, events_key, lease_key, channel_of = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local node = ARGV[1]
local now = now_ms()
redis.call('HSET', info_key, 'leaving', 1)
local n = 0
local id = redis.call('RPOP', inbox_key)
while id do
  local tk = task_of .. id
  local t = redis.call('HMGET', tk, 'state', 'node', 'seq')
  if t[1] == 'INQUEUE' and t[2] == node then
    redis.call('HSET', tk, 'state', 'WAITING', 'due', now, 'updated', now)
    redis.call('ZADD', due_key, now, id)
    move_state(state_of, id, 'INQUEUE', 'WAITING', t[3])
    event(events_key, id, 'c')
    n = n + 1
  end
  id = redis.call('RPOP', inbox_key)
end
if n > 0 then wake_master(lease_key, channel_of, 'due') end
return n
"#;
