#!/usr/bin/env bash
# Redis failover benchmark: three gitflock nodes (concurrency 4) on a Redis that fails over — a
# primary, two replicas and three sentinels (down-after-milliseconds 1000), all on loopback —
# under a steady load of `sleep` tasks, with the Redis primary killed -9 again and again.
#
#   bench/run.sh redis-failover   env: KILLS=5, RATE=100 (tasks/s), ACK=1 ([redis]
#                                      min_replicas_ack), DOWN_AFTER_MS=1000,
#                                      BENCH_KEEP=1 (keep the logs; their path goes to stderr)
#
# The driver (gitflock-bench redis-failover) starts the servers, sentinels and nodes itself,
# through gitflock-harness. Each kill: the primary (as the sentinels name it) gets SIGKILL;
# the sentinels promote a replica; the killed server is started again as a replica of the new
# primary; 8 s later the next kill. The load creates RATE `sleep 20ms` tasks per second
# round-robin through the nodes, each CreateTask with a unique request_id and retried on
# another node until one acknowledges it; at the end every acknowledged task must be SUCCEED
# (lost_tasks counts those that are not). The time from a kill to the first task completed
# on the new primary is read from the tasks' updated_at (Redis's clock at their FINISH).
# Prints key=value lines on stdout; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
KILLS=${KILLS:-5}
RATE=${RATE:-100}
ACK=${ACK:-1}
DOWN_AFTER_MS=${DOWN_AFTER_MS:-1000}

bench_name=redis-failover
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

tmp=$(mktemp -d -t gitflock-redis-failover.XXXXXX)
driver_pid=""

stop_driver() {
  [ -n "$driver_pid" ] || return 0
  if alive "$driver_pid"; then
    # The driver kills its servers and nodes when it gets SIGTERM.
    kill -TERM "$driver_pid" 2>/dev/null || true
    for _ in $(seq 50); do alive "$driver_pid" || break; sleep 0.1; done
  fi
  # The driver runs in its own process group (setsid): whatever is left of it goes too.
  kill -KILL -- "-$driver_pid" 2>/dev/null || true
  wait "$driver_pid" 2>/dev/null || true
  driver_pid=""
}
cleanup() {
  local rc=$?
  stop_driver
  if [ "$rc" -ne 0 ]; then
    for f in "$tmp"/node*.log "$tmp"/redis/sentinel1.log; do
      [ -s "$f" ] || continue
      log "failed (status $rc); the last lines of $(basename "$f"):"
      tail -n 15 "$f" >&2
    done
  fi
  if [ -n "${BENCH_KEEP:-}" ]; then
    log "kept the logs in $tmp"
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

build_binaries
new_token

log "3 nodes, $RATE tasks/s, $KILLS primary kills, min_replicas_ack $ACK, down-after ${DOWN_AFTER_MS} ms"
setsid "$bench" redis-failover \
  --node-bin "$node_bin" \
  --dir "$tmp" \
  --nodes 3 --concurrency 4 \
  --kills "$KILLS" --rate "$RATE" --sleep 20ms \
  --min-replicas-ack "$ACK" --down-after-ms "$DOWN_AFTER_MS" \
  >"$tmp/out" </dev/null &
driver_pid=$!
rc=0
wait "$driver_pid" || rc=$?
driver_pid=""
sed 's/^/  gitflock redis-failover: /' "$tmp/out" >&2
if [ "$rc" -ne 0 ]; then
  log "the driver failed (status $rc)"
  exit 1
fi
cat "$tmp/out"
