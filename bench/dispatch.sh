#!/usr/bin/env bash
# Dispatch benchmark: one gitflock node against the Celery baseline, same machine, same Redis
# settings (--save "" --appendonly no), no-op tasks.
#
#   bench/run.sh dispatch        env: N=20000 (drain), RATE=100 (open loop, RATE*10 tasks),
#                                     GITFLOCK_SHARED=<repo>/../shared (the baselines),
#                                     ACK=0 ([redis] min_replicas_ack; with ACK>0 Redis gets
#                                     ACK replicas, every acknowledged write waits for them,
#                                     and the Celery baseline is skipped)
#
# 1. fill:  N echo tasks created while the only node runs none (concurrency 0);
# 2. drain: the same node restarted with concurrency 8 (Celery's CONC) runs them all;
#           throughput = N / (first run's start → last run's end);
# 3. rate:  RATE*10 tasks created at RATE per second; create→start latency p50/p99/max;
# 4. Celery: $GITFLOCK_SHARED/bench/celery/run.sh with the same N and RATE.
# Prints key=value lines on stdout; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(git -C "$here" rev-parse --show-toplevel)
shared=${GITFLOCK_SHARED:-$top/../shared}
N=${N:-20000}
RATE=${RATE:-100}
ACK=${ACK:-0}
CONCURRENCY=8

bench_name=dispatch
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

tmp=$(mktemp -d -t gitflock-bench.XXXXXX)
replica_pids=()
stop_replicas() {
  for p in "${replica_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  replica_pids=()
}
trap 'rc=$?; stop_replicas; (exit $rc); cleanup_one_node' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

build_binaries

start_redis
for i in $(seq "$ACK"); do
  port=$(free_port)
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
    --dbfilename "replica$i.rdb" --replicaof 127.0.0.1 "$redis_port" >"$tmp/replica$i.log" 2>&1 &
  replica_pids+=($!)
  for _ in $(seq 100); do
    redis-cli -p "$port" info replication 2>/dev/null | grep -q master_link_status:up && break
    sleep 0.1
  done
  redis-cli -p "$port" info replication | grep -q master_link_status:up
done

grpc_port=$(free_port)
server=http://127.0.0.1:$grpc_port
new_token

# start_node CONCURRENCY: the one node, named bench1, always with the same data dir and port.
start_node() {
  env -i PATH="$PATH" HOME="${HOME:-/tmp}" RUST_LOG=warn \
    GITFLOCK_NODE_NAME=bench1 \
    GITFLOCK_NODE_DATA_DIR="$tmp/bench1" \
    GITFLOCK_NODE_GRPC_LISTEN="127.0.0.1:$grpc_port" \
    GITFLOCK_REDIS_URL="redis://127.0.0.1:$redis_port/0" \
    GITFLOCK_CLUSTER_TOKEN="$GITFLOCK_TOKEN" \
    GITFLOCK_NODE_CONCURRENCY="$1" \
    GITFLOCK_REDIS_MIN_REPLICAS_ACK="$ACK" \
    "$node_bin" >>"$tmp/node.log" 2>&1 &
  node_pid=$!
  "$bench" ready --server "$server"
}

# drive MODE ARGS...: runs the driver, echoes its lines to stderr, returns them.
drive() {
  local out
  out=$("$bench" "$1" --server "$server" "${@:2}")
  indent "gitflock $1: " <<<"$out"
  printf '%s\n' "$out"
}

log "fill: $N tasks, node with concurrency 0"
start_node 0
fill=$(drive fill --n "$N")
stop_node

log "drain: node restarted with concurrency $CONCURRENCY"
start_node "$CONCURRENCY"
drain=$(drive drain --n "$N")
log "rate: $((RATE * 10)) tasks at $RATE/s"
rate=$(drive rate --n "$((RATE * 10))" --rate "$RATE")
hwm_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$node_pid/status")
node_peak_rss_mb=$(awk -v kb="$hwm_kb" 'BEGIN { printf "%.1f", kb / 1024 }')
stop_node
stop_replicas
stop_redis

if [ "$ACK" -gt 0 ]; then
  cat <<OUT
gitflock_drain_tasks_per_s=$(value drain_tasks_per_s "$drain")
gitflock_create_to_start_p50_ms=$(value create_to_start_p50_ms "$rate")
gitflock_create_to_start_p99_ms=$(value create_to_start_p99_ms "$rate")
gitflock_create_to_start_max_ms=$(value create_to_start_max_ms "$rate")
gitflock_enqueue_tasks_per_s=$(value enqueue_tasks_per_s "$fill")
node_peak_rss_mb=$node_peak_rss_mb
min_replicas_ack=$ACK
n=$N
rate=$RATE
OUT
  exit 0
fi

log "celery baseline: $shared/bench/celery/run.sh"
celery=$(N=$N RATE=$RATE bash "$shared/bench/celery/run.sh")
indent "" <<<"$celery"

g_drain=$(value drain_tasks_per_s "$drain")
c_drain=$(value drain_tasks_per_s "$celery")
for v in "$g_drain" "$c_drain"; do
  [ -n "$v" ] || { log "missing a drain figure"; exit 1; }
done
cat <<OUT
gitflock_drain_tasks_per_s=$g_drain
celery_drain_tasks_per_s=$c_drain
ratio_vs_celery=$(awk -v a="$g_drain" -v b="$c_drain" 'BEGIN { printf "%.2f", a / b }')
gitflock_create_to_start_p50_ms=$(value create_to_start_p50_ms "$rate")
gitflock_create_to_start_p99_ms=$(value create_to_start_p99_ms "$rate")
celery_create_to_start_p50_ms=$(value create_to_start_p50_ms "$celery")
celery_create_to_start_p99_ms=$(value p99_ms "$celery")
node_peak_rss_mb=$node_peak_rss_mb
celery_worker_peak_rss_mb=$(value worker_peak_rss_mb "$celery")
n=$N
rate=$RATE
gitflock_enqueue_tasks_per_s=$(value enqueue_tasks_per_s "$fill")
celery_enqueue_tasks_per_s=$(value enqueue_tasks_per_s "$celery")
gitflock_create_to_start_max_ms=$(value create_to_start_max_ms "$rate")
celery_create_to_start_max_ms=$(value max_ms "$celery")
OUT
