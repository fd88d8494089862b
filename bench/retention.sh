#!/usr/bin/env bash
# Retention benchmark: does Redis stay bounded? One gitflock node (concurrency 8) with
# [tasks] retention 60 s runs N echo tasks created as fast as 16 clients can; finished tasks
# expire 60 s after they end.
#
#   bench/run.sh retention        env: N=1000000, RETENTION=60 (seconds)
#
# 1. warm-up: 1000 tasks run and expire (so every script is loaded and every structure
#    exists once); then Redis's used_memory is read: `before`;
# 2. fill: N tasks created while the node runs them; every 2 s used_memory and the number
#    of tasks in Redis (ZCARD of the all-tasks index) are sampled; bytes per live task =
#    (used_memory - before) / tasks in Redis, at the sample with the most tasks;
# 3. drain: wait until every task ran and expired and the change stream is empty; then
#    used_memory again: `after`, and after/before.
# Prints key=value lines on stdout; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
N=${N:-1000000}
RETENTION=${RETENTION:-60}

bench_name=retention
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

tmp=$(mktemp -d -t gitflock-retention.XXXXXX)
trap cleanup_one_node EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

build_binaries
start_redis
grpc_port=$(free_port)
server=http://127.0.0.1:$grpc_port
new_token

rcli() { redis-cli -p "$redis_port" "$@"; }
used_memory() { rcli info memory | tr -d '\r' | sed -n 's/^used_memory://p'; }
in_redis() { rcli zcard gitflock:all; }
# Until no task is left in Redis and the change stream is empty (at most $1 seconds).
wait_empty() {
  local deadline=$((SECONDS + $1))
  while [ "$(in_redis)" != 0 ] || [ "$(rcli xlen gitflock:events)" != 0 ]; do
    if [ "$SECONDS" -gt "$deadline" ]; then
      log "still $(in_redis) tasks and $(rcli xlen gitflock:events) events after $1 s"
      return 1
    fi
    sleep 2
  done
}

env -i PATH="$PATH" HOME="${HOME:-/tmp}" RUST_LOG=warn \
  GITFLOCK_NODE_NAME=bench1 \
  GITFLOCK_NODE_DATA_DIR="$tmp/bench1" \
  GITFLOCK_NODE_GRPC_LISTEN="127.0.0.1:$grpc_port" \
  GITFLOCK_REDIS_URL="redis://127.0.0.1:$redis_port/0" \
  GITFLOCK_CLUSTER_TOKEN="$GITFLOCK_TOKEN" \
  GITFLOCK_NODE_CONCURRENCY=8 \
  GITFLOCK_TASKS_RETENTION_SUCCEED_SECS="$RETENTION" \
  GITFLOCK_TASKS_RETENTION_FAILED_SECS="$RETENTION" \
  "$node_bin" >>"$tmp/node.log" 2>&1 &
node_pid=$!
"$bench" ready --server "$server"

log "warm-up: 1000 tasks, then ${RETENTION} s until they expire"
"$bench" fill --server "$server" --n 1000 >/dev/null
wait_empty $((RETENTION + 600))
before=$(used_memory)
log "used_memory before: $before bytes; fill: $N tasks"

"$bench" fill --server "$server" --n "$N" >"$tmp/fill" &
fill_pid=$!
t0=$SECONDS
peak_live=0 peak_used=0 per_task=0
while alive "$fill_pid" || [ "$(rcli zcard gitflock:state:SUCCEED)" != "$(in_redis)" ]; do
  used=$(used_memory) live=$(in_redis)
  if [ "$live" -gt "$peak_live" ]; then
    peak_live=$live
    per_task=$(( (used - before) / (live > 0 ? live : 1) ))
  fi
  [ "$used" -gt "$peak_used" ] && peak_used=$used
  [ $(( (SECONDS - t0) % 30 )) -lt 2 ] && log "+$((SECONDS - t0)) s: $live tasks in redis, used_memory $used"
  sleep 2
done
wait "$fill_pid"
ran_secs=$((SECONDS - t0))
log "all $N created and run in $ran_secs s; waiting for them to expire"
wait_empty $((RETENTION + 900))
after=$(used_memory)
stop_node
stop_redis
cat <<OUT
tasks=$N
retention_secs=$RETENTION
create_and_run_secs=$ran_secs
enqueue_tasks_per_s=$(value enqueue_tasks_per_s "$(cat "$tmp/fill")")
used_memory_before=$before
used_memory_after=$after
after_vs_before=$(awk -v a="$after" -v b="$before" 'BEGIN { printf "%.3f", a / b }')
peak_tasks_in_redis=$peak_live
peak_used_memory=$peak_used
bytes_per_live_task=$per_task
OUT
