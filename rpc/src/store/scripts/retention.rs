//! Retention, so Redis stays bounded: EXPIRE (finished one-off tasks, long enough ago) and
//! TRIM_EVENTS (the change stream, by age). The transitions into a final state (FINISH, KILL,
//! RECOVER, REASSIGN) index the task in `ended(state)` by when (`mark_ended` in the prelude);
//! DELETE takes it out again.

/// EXPIRE (master): removes tasks that ended in `state` at least `retention` ago, the oldest
/// first, up to `max` of them.
/// KEYS: 1 `ended(state)`, 2 `task_family`, 3 `results_family`, 4 `mirror_family`, 5 `all`,
///       6 `state_family`, 7 `type_family`, 8 `due`, 9 `listed`, 10 `events`
/// ARGV: 1 state, 2 retention ms, 3 max
/// A task goes only if it is still in that state, one-off (`interval` 0: a recurring task is
/// never removed, whatever state it stopped in) and last updated before the cutoff; then it
/// leaves every index with its results and mirror status, as DELETE does, and watchers see it
/// deleted. Every id read leaves `ended(state)` (a task that moved on, or a recurring one,
/// is simply no longer indexed there).
/// Returns {removed, more}: more is 1 when ids older than the cutoff remain.
pub(in crate::store) const EXPIRE: &str = r#"
local ended_key, task_of, results_of, mirror_of, all_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local state_of, type_of, due_key, listed_key, events_key = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local state, max = ARGV[1], tonumber(ARGV[3])
local cutoff = now_ms() - tonumber(ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', ended_key, '-inf', cutoff, 'LIMIT', 0, max)
local removed = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', ended_key, id)
  local tk = task_of .. id
  local t = redis.call('HMGET', tk, 'state', 'type', 'interval', 'updated')
  if t[1] == state and (tonumber(t[3]) or 0) == 0 and (tonumber(t[4]) or 0) <= cutoff then
    redis.call('ZREM', all_key, id)
    redis.call('ZREM', state_of .. state, id)
    redis.call('ZREM', type_of .. t[2], id)
    redis.call('ZREM', due_key, id)
    redis.call('DEL', tk, results_of .. id, mirror_of .. id)
    redis.call('SREM', listed_key, id)
    event(events_key, id, 'd')
    removed = removed + 1
  end
end
local more = 0
if #ids == max and redis.call('ZCOUNT', ended_key, '-inf', cutoff) > 0 then more = 1 end
return {removed, more}
"#;

/// TRIM_EVENTS (master): drops change-stream entries older than `keep` (the stream is also
/// capped at ~10k entries by every XADD; this bounds it in time, so an idle cluster's stream
/// empties).
/// KEYS: 1 `events`
/// ARGV: 1 keep ms
/// Returns the number of entries dropped.
pub(in crate::store) const TRIM_EVENTS: &str = r#"
local minid = now_ms() - tonumber(ARGV[1])
if minid <= 0 then return 0 end
return redis.call('XTRIM', KEYS[1], 'MINID', minid)
"#;
