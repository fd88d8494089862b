#!/usr/bin/env bash
# Failover benchmark: three gitflock nodes (concurrency 4) on a private Redis, under a steady
# load of `sleep` tasks, with the master killed again and again, then a soak with busy cores.
#
#   bench/run.sh failover        env: KILLS=20, SOAK_SECS=300, RATE=50 (tasks/s),
#                                     BENCH_KEEP=1 (keep the node logs; their path goes to stderr)
#
# The driver (gitflock-bench failover) spawns the nodes itself, through gitflock-harness, so
# that it can kill -9 and restart them:
# 1. kills: KILLS times, the master (as the nodes' Nodes.Status names it) is killed with
#    SIGKILL; the failover time is kill → a surviving node's Status names another master
#    (asked every 10 ms); the node is restarted (same name, port, data dir) and the next kill
#    waits until it answers and 2 s plus a random 0-1 s passed (the jitter spreads the kills
#    over the new master's 500 ms lease-renewal cycle). The load creates RATE `sleep 20ms`
#    tasks per second round-robin through the live nodes, each CreateTask with a unique request_id and retried on another
#    node until one acknowledges it; at the end every created task must be SUCCEED.
# 2. soak: SOAK_SECS with 2 CPU burners (`while :; do :; done`) and the same load, no kills;
#    every change of the lease's epoch is a false failover.
# Prints key=value lines on stdout; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(git -C "$here" rev-parse --show-toplevel)
KILLS=${KILLS:-20}
SOAK_SECS=${SOAK_SECS:-300}
RATE=${RATE:-50}
NODES=3
CONCURRENCY=4
BURNERS=2

bench_name=failover
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

tmp=$(mktemp -d -t gitflock-failover.XXXXXX)
driver_pid=""

stop_driver() {
  [ -n "$driver_pid" ] || return 0
  if alive "$driver_pid"; then
    # The driver kills its nodes and burners when it gets SIGTERM.
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
  stop_redis
  if [ "$rc" -ne 0 ]; then
    for f in "$tmp"/node*.log; do
      [ -s "$f" ] || continue
      log "failed (status $rc); the last lines of $(basename "$f"):"
      tail -n 15 "$f" >&2
    done
  fi
  if [ -n "${BENCH_KEEP:-}" ]; then
    log "kept the node logs in $tmp"
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

build_binaries

start_redis

new_token

log "$NODES nodes (concurrency $CONCURRENCY), $RATE tasks/s, $KILLS kills, then a ${SOAK_SECS} s soak"
setsid "$bench" failover \
  --node-bin "$node_bin" \
  --redis-url "redis://127.0.0.1:$redis_port/0" \
  --dir "$tmp" \
  --nodes "$NODES" --concurrency "$CONCURRENCY" \
  --kills "$KILLS" --rate "$RATE" --sleep 20ms --settle-secs 2 --kill-jitter-ms 1000 \
  --soak-secs "$SOAK_SECS" --burners "$BURNERS" \
  >"$tmp/out" </dev/null &
driver_pid=$!
rc=0
wait "$driver_pid" || rc=$?
driver_pid=""
sed 's/^/  gitflock failover: /' "$tmp/out" >&2
if [ "$rc" -ne 0 ]; then
  log "the driver failed (status $rc)"
  exit 1
fi
cat "$tmp/out"
