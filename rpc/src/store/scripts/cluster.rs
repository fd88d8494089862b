//! The cluster: HEARTBEAT (presence), the master lease (LEASE_ACQUIRE, LEASE_RENEW,
//! LEASE_RELEASE), the master's fenced verdicts on nodes (REASSIGN, ADMIT), and INCARNATION
//! (has Redis lost its data?).

/// HEARTBEAT (node): presence in Redis, and the signed heartbeat on the Public channel in the
/// same round trip.
/// KEYS: 1 `nodes`, 2 `node_info(node)`, 3 `public_channel`
/// ARGV: 1 node, 2 addr, 3 concurrency, 4 running, 5 version, 6 epoch seen, 7 leaving (1 while
///       shutting down: no new work for it), 8 the signed `0:` message, 9 the metrics address
///       (`host:port`, empty: none)
/// Returns the server time (ms).
pub(in crate::store) const HEARTBEAT: &str = r#"
local nodes_key, info_key, public = KEYS[1], KEYS[2], KEYS[3]
local now = now_ms()
redis.call('ZADD', nodes_key, now, ARGV[1])
redis.call('HSET', info_key, 'addr', ARGV[2], 'concurrency', ARGV[3], 'running', ARGV[4],
  'version', ARGV[5], 'epoch', ARGV[6], 'last', now, 'leaving', ARGV[7], 'metrics', ARGV[9])
redis.call('PUBLISH', public, ARGV[8])
return now
"#;

/// LEASE_ACQUIRE: takes the master lease if nobody holds it, with a new epoch.
/// KEYS: 1 `lease`, 2 `holdoff`, 3 `epoch`, 4 `nodes`, 5 `node_info_family`
/// ARGV: 1 node, 2 lease ms, 3 the highest epoch this node has seen
/// Returns {1, epoch (text), lease ms} when taken, {0, holder ('' during a hold-off), ms
/// until it may be free} otherwise.
/// The epoch rises with every new master: it is the fencing token, and it never goes back.
/// The highest epoch seen is the larger of ARGV 3 and every epoch a node reported with its
/// heartbeat. If it is above what Redis holds — the epoch counter, or the epoch of the lease
/// itself — Redis lost data (restarted empty or from an old file, or a replica that lagged
/// was promoted by Sentinel): the stale lease is dropped, the epoch is raised past what was
/// seen, and nobody may take the lease for a whole lease time (`holdoff`), so any master of
/// before the loss has passed its own deadline.
pub(in crate::store) const LEASE_ACQUIRE: &str = r#"
local lease_key, holdoff_key, epoch_key, nodes_key, info_of = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local known = tonumber(ARGV[3])
for _, name in ipairs(redis.call('ZRANGE', nodes_key, 0, -1)) do
  local reported = tonumber(redis.call('HGET', info_of .. name, 'epoch') or '0') or 0
  if reported > known then known = reported end
end
local holder = redis.call('GET', lease_key)
if holder then
  local held = tonumber(string.match(holder, ' (%d+)$') or '0') or 0
  if held >= known then return {0, holder, redis.call('PTTL', lease_key)} end
  redis.call('DEL', lease_key)
end
if redis.call('EXISTS', holdoff_key) == 1 then return {0, '', redis.call('PTTL', holdoff_key)} end
local cur = tonumber(redis.call('GET', epoch_key) or '0')
if known > cur then
  redis.call('SET', epoch_key, known)
  redis.call('SET', holdoff_key, 1, 'PX', ARGV[2])
  return {0, '', tonumber(ARGV[2])}
end
local epoch = redis.call('INCR', epoch_key)
redis.call('SET', lease_key, ARGV[1] .. ' ' .. epoch, 'PX', ARGV[2])
return {1, tostring(epoch), tonumber(ARGV[2])}
"#;

/// LEASE_RENEW: extends the lease only if this exact holder still has it.
/// KEYS: 1 `lease`
/// ARGV: 1 holder "<node> <epoch>", 2 lease ms
/// Returns 1 if renewed, 0 if lost.
pub(in crate::store) const LEASE_RENEW: &str = r#"
local lease_key = KEYS[1]
if redis.call('GET', lease_key) == ARGV[1] then
  redis.call('PEXPIRE', lease_key, ARGV[2])
  return 1
end
return 0
"#;

/// LEASE_RELEASE: gives the lease up (resign, shutdown) if this holder has it, and publishes
/// the signed announcement on the Public channel so the others take over at once.
/// KEYS: 1 `lease`, 2 `public_channel`
/// ARGV: 1 holder, 2 the signed `2:` announcement
/// Returns 1 if released, 0 if this holder did not have it.
pub(in crate::store) const LEASE_RELEASE: &str = r#"
local lease_key, public = KEYS[1], KEYS[2]
if redis.call('GET', lease_key) == ARGV[1] then
  redis.call('DEL', lease_key)
  redis.call('PUBLISH', public, ARGV[2])
  return 1
end
return 0
"#;

/// REASSIGN (master only, fenced): a node was declared dead; its work goes back.
/// KEYS: 1 `lease`, 2 `node_info(node)`, 3 `inbox(node)`, 4 `inflight(node)`, 5 `task_family`,
///       6 `results_family`, 7 `due`, 8 `state_family`, 9 `events`, 10 `ended_family`
/// ARGV: 1 lease holder, 2 node, 3 results kept
/// Every task in its inbox (INQUEUE there) goes back to WAITING, due now. Every task in its
/// in-flight list still RUNNING there goes back to WAITING due now (its started attempt
/// counts), or ends KILLED if a kill was asked, or RUNTIME_ERROR if no attempts are left;
/// either way the lost run is recorded as a result of that attempt on that node (an error,
/// finished when the node was declared dead), so a task that ran twice shows why. `runs`
/// counts runs that finished, so a lost one is not counted there.
/// Finished tasks are not in these lists, so they are never re-run; recurring tasks keep
/// their due time; the node's claim numbers die with it, so if it comes back it cannot
/// record a run of a task it lost. The node is marked dead until the master admits it again.
/// Returns {requeued, ended}.
pub(in crate::store) const REASSIGN: &str = r#"
local lease_key, info_key, inbox_key, inflight_key, task_of = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local results_of, due_key, state_of, events_key, ended_of = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
if redis.call('GET', lease_key) ~= ARGV[1] then return redis.error_reply('NOTMASTER lease lost') end
local node, keep = ARGV[2], tonumber(ARGV[3])
local now = now_ms()
local requeued, ended = 0, 0
redis.call('HSET', info_key, 'dead', 1)
for _, list in ipairs({inbox_key, inflight_key}) do
  for _, id in ipairs(redis.call('LRANGE', list, 0, -1)) do
    local tk = task_of .. id
    local t = redis.call('HMGET', tk, 'state', 'node', 'attempts', 'max_attempts', 'seq', 'kill', 'updated')
    if (t[1] == 'INQUEUE' or t[1] == 'RUNNING') and t[2] == node then
      local new = 'WAITING'
      if t[6] == '1' then new = 'KILLED'
      elseif t[1] == 'RUNNING' and tonumber(t[3]) >= tonumber(t[4]) then new = 'RUNTIME_ERROR' end
      if t[1] == 'RUNNING' then
        -- A RUNNING task was last updated by its CLAIM: that is when the lost run started.
        local what = 'the run is lost; it runs again'
        if new ~= 'WAITING' then what = 'the run is lost' end
        push_result(results_of .. id, keep, {code = 1, message = 'node ' .. node .. ' was declared dead: ' .. what,
          node = node, started_at = tonumber(t[7]) or 0, finished_at = now, attempt = tonumber(t[3])})
      elseif new ~= 'WAITING' then
        push_result(results_of .. id, keep, {code = 1, message = 'node ' .. node .. ' was declared dead before the task ran',
          node = node, started_at = 0, finished_at = now, attempt = tonumber(t[3])})
      end
      if new == 'WAITING' then
        redis.call('HSET', tk, 'due', now)
        redis.call('ZADD', due_key, now, id)
        requeued = requeued + 1
      else
        ended = ended + 1
      end
      redis.call('HSET', tk, 'state', new, 'updated', now)
      move_state(state_of, id, t[1], new, t[5])
      mark_ended(ended_of, id, new, now)
      event(events_key, id, 'c')
    end
  end
  redis.call('DEL', list)
end
return {requeued, ended}
"#;

/// ADMIT (master only, fenced): a node declared dead answered a probe again; it may take
/// work.
/// KEYS: 1 `lease`, 2 `node_info(node)`
/// ARGV: 1 lease holder
/// Returns 1.
pub(in crate::store) const ADMIT: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('NOTMASTER lease lost') end
redis.call('HSET', KEYS[2], 'dead', 0)
return 1
"#;

/// INCARNATION (every node, about once a second): which life of the data this Redis holds.
/// KEYS: 1 `incarnation`, 2 `claims`
/// ARGV: 1 a new id (taken if Redis has none), 2 the id this node knew ('' none), 3 the highest
///       claim number this node was given (0 none), 4 node
/// Redis has no incarnation when it lost its data (restarted empty, FLUSHALL, failover to an
/// empty replica): a new one is made, its claim numbers above every earlier one's. It went
/// back in time (restarted from an older snapshot) when its claim counter is below a number
/// this node was given under the same incarnation: that incarnation is replaced. The first
/// node that finds an incarnation other than the one it knew records the loss (`lost` when,
/// `noticed_by`, `previous`); every node that does re-creates its standing tasks.
/// Returns {id, since (ms), lost (ms; 0: none recorded), noticed_by}.
pub(in crate::store) const INCARNATION: &str = r#"
local inc_key, claims_key = KEYS[1], KEYS[2]
local known, seen, node = ARGV[2], tonumber(ARGV[3]) or 0, ARGV[4]
local now = now_ms()
local id = redis.call('HGET', inc_key, 'id')
if id and id == known and (tonumber(redis.call('GET', claims_key)) or 0) < seen then
  redis.call('DEL', inc_key)
end
id = incarnation(inc_key, claims_key, ARGV[1], seen, now)
if known ~= '' and id ~= known and redis.call('HEXISTS', inc_key, 'lost') == 0 then
  redis.call('HSET', inc_key, 'lost', now, 'noticed_by', node, 'previous', known)
end
local r = redis.call('HMGET', inc_key, 'since', 'lost', 'noticed_by')
return {id, tonumber(r[1]) or 0, tonumber(r[2]) or 0, r[3] or ''}
"#;
