#!/usr/bin/env bash
# Log-chain benchmark: durable log entries per second through one gitflock node, against the
# seed gitchain's way (one `git add` + `git commit` per entry), same machine, same run.
#
#   bench/run.sh chain           env: N=200000 (entries), CLIENTS=4, BATCH=5000 (entries per
#                                     stream), BASELINE_N=500, GITFLOCK_SHARED=<repo>/../shared
#
# 1. one node on a private Redis (--save "" --appendonly no), no chain remote;
# 2. CLIENTS concurrent clients send Chain.WriteLogs streams of BATCH `info` entries (60-byte
#    contents, create_at empty) until N entries were sent; a WriteLogs call returns only once
#    its entries are fsync'd, so throughput = N / (first send → last acknowledgement);
# 3. the chain is read back from height 1 (count, consecutive heights) and VerifyChain'd;
# 4. baseline: $GITFLOCK_SHARED/bench/gitchain_baseline.sh BASELINE_N.
# Prints key=value lines on stdout; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(git -C "$here" rev-parse --show-toplevel)
shared=${GITFLOCK_SHARED:-$top/../shared}
N=${N:-200000}
CLIENTS=${CLIENTS:-4}
BATCH=${BATCH:-5000}
BASELINE_N=${BASELINE_N:-500}

bench_name=chain
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

tmp=$(mktemp -d -t gitflock-chain.XXXXXX)
trap cleanup_one_node EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

build_binaries

start_redis

grpc_port=$(free_port)
server=http://127.0.0.1:$grpc_port
new_token

env -i PATH="$PATH" HOME="${HOME:-/tmp}" RUST_LOG=info \
  GITFLOCK_NODE_NAME=bench1 \
  GITFLOCK_NODE_DATA_DIR="$tmp/bench1" \
  GITFLOCK_NODE_GRPC_LISTEN="127.0.0.1:$grpc_port" \
  GITFLOCK_REDIS_URL="redis://127.0.0.1:$redis_port/0" \
  GITFLOCK_CLUSTER_TOKEN="$GITFLOCK_TOKEN" \
  GITFLOCK_NODE_CONCURRENCY=4 \
  "$node_bin" >>"$tmp/node.log" 2>&1 &
node_pid=$!
# Bounded: `ready` gives up after 30 s, the driver's calls time out after 15 min.
"$bench" ready --server "$server"

log "writing $N entries: $CLIENTS clients, streams of $BATCH"
out=$("$bench" chain --server "$server" --n "$N" --clients "$CLIENTS" --batch "$BATCH")
indent "gitflock chain: " <<<"$out"
hwm_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$node_pid/status")
node_peak_rss_mb=$(awk -v kb="$hwm_kb" 'BEGIN { printf "%.1f", kb / 1024 }')
stop_node
stop_redis

log "gitchain baseline: $shared/bench/gitchain_baseline.sh $BASELINE_N"
baseline=$(timeout 1800 bash "$shared/bench/gitchain_baseline.sh" "$BASELINE_N")
indent "" <<<"$baseline"

g=$(value entries_per_s "$out")
b=$(value logs_per_s "$baseline")
for v in "$g" "$b"; do
  [ -n "$v" ] || { log "missing a throughput figure"; exit 1; }
done
cat <<OUT
gitflock_entries_per_s=$g
gitchain_entries_per_s=$b
ratio_vs_gitchain=$(awk -v a="$g" -v b="$b" 'BEGIN { printf "%.2f", a / b }')
entries=$(value entries "$out")
verify_ok=$(value verify_ok "$out")
node_peak_rss_mb=$node_peak_rss_mb
n=$N
clients=$CLIENTS
batch=$BATCH
write_secs=$(value write_secs "$out")
last_height=$(value last_height "$out")
height_gaps=$(value height_gaps "$out")
gitchain_n=$(value n "$baseline")
OUT
