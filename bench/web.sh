#!/usr/bin/env bash
# Web benchmark: the dashboard's task list with 100k tasks in the store.
#
#   bench/run.sh web        env: N=100000 (tasks), C=16 (concurrency), REQS=3000 (per URL)
#
# 1. one node (concurrency 0, so the tasks stay put and nothing else competes for the CPU)
#    and gitflock-web over it (release builds);
# 2. N echo tasks created through the dashboard's own API (POST /api/v1/tasks, ab, 16
#    clients), which also gives the create throughput through the web;
# 3. ab (apache2-utils) with C concurrent clients, Bearer auth: GET /tasks (the HTML page,
#    50 tasks per page, rendered by askama) and GET /api/v1/tasks (JSON), REQS requests each
#    after a warm-up.
# Prints key=value lines on stdout (tasks_page_rps, tasks_page_p99_ms, api_tasks_rps,
# api_tasks_p99_ms, p99_ms = the worse p99); progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(git -C "$here" rev-parse --show-toplevel)
N=${N:-100000}
C=${C:-16}
REQS=${REQS:-3000}

bench_name=web
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

tmp=$(mktemp -d -t gitflock-bench.XXXXXX)
web_pid=""
cleanup() {
  local rc=$?
  if [ -n "$web_pid" ]; then
    kill -TERM "$web_pid" 2>/dev/null || true
    wait "$web_pid" 2>/dev/null || true
  fi
  if [ "$rc" -ne 0 ] && [ -s "$tmp/web.log" ]; then
    log "failed (status $rc); the dashboard's last log lines:"
    tail -n 20 "$tmp/web.log" >&2
  fi
  cleanup_one_node
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! command -v ab >/dev/null; then
  log "installing apache2-utils (ab)"
  apt-get install -y -q apache2-utils >/dev/null
fi

log "building (release)"
(cd "$top" && cargo build --release -q -p gitflock-rpc --bin gitflock-node -p gitflock-web)
target=$(cd "$top" && cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
node_bin=$target/release/gitflock-node
web_bin=$target/release/gitflock-web

start_redis
grpc_port=$(free_port)
server=http://127.0.0.1:$grpc_port
new_token

env -i PATH="$PATH" HOME="${HOME:-/tmp}" RUST_LOG=warn \
  GITFLOCK_NODE_NAME=bench1 \
  GITFLOCK_NODE_DATA_DIR="$tmp/bench1" \
  GITFLOCK_NODE_GRPC_LISTEN="127.0.0.1:$grpc_port" \
  GITFLOCK_REDIS_URL="redis://127.0.0.1:$redis_port/0" \
  GITFLOCK_CLUSTER_TOKEN="$GITFLOCK_TOKEN" \
  GITFLOCK_NODE_CONCURRENCY=0 \
  "$node_bin" >>"$tmp/node.log" 2>&1 &
node_pid=$!

web_port=$(free_port)
env -i PATH="$PATH" HOME="${HOME:-/tmp}" RUST_LOG=warn \
  GITFLOCK_CLUSTER_TOKEN="$GITFLOCK_TOKEN" \
  GITFLOCK_WEB_NODES="$server" \
  GITFLOCK_WEB_PASSWORD="$(python3 -c 'import secrets; print(secrets.token_hex(12))')" \
  GITFLOCK_WEB_LISTEN="127.0.0.1:$web_port" \
  "$web_bin" >>"$tmp/web.log" 2>&1 &
web_pid=$!
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$web_port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$web_port/healthz" >/dev/null

# ab takes headers only on its command line: the token is this run's throwaway one.
auth="Authorization: Bearer $GITFLOCK_TOKEN"
for _ in $(seq 300); do
  curl -fsS -H "$auth" "http://127.0.0.1:$web_port/api/v1/status" 2>/dev/null |
    python3 -c 'import json, sys; sys.exit(0 if json.load(sys.stdin)["master"] else 1)' 2>/dev/null && break
  sleep 0.1
done

# ab_ok OUTPUT: no non-2xx answer and no connect/receive/exception failure (ab also counts
# "Length" failures: answers whose size differs from the first one's, which JSON and pages
# with times in them do all the time — not an error).
ab_ok() {
  ! grep -q '^Non-2xx responses:' <<<"$1" &&
    ! grep -Eq 'Connect: [1-9]|Receive: [1-9]|Exceptions: [1-9]' <<<"$1"
}

log "creating $N tasks through POST /api/v1/tasks"
echo '{"type":"echo","target":"bench","name":"bench task"}' >"$tmp/task.json"
fill=$(ab -q -n "$N" -c 16 -p "$tmp/task.json" -T application/json -H "$auth" \
  "http://127.0.0.1:$web_port/api/v1/tasks")
if ! ab_ok "$fill"; then
  echo "$fill" >&2
  log "task creation failed"
  exit 1
fi
create_rps=$(awk '/^Requests per second:/ {print $4}' <<<"$fill")
log "created at $create_rps tasks/s"
total=$(curl -fsS -H "$auth" "http://127.0.0.1:$web_port/api/v1/tasks?size=1" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["total"])')
[ "$total" -ge "$N" ] || { log "only $total tasks in the store"; exit 1; }
log "$total tasks in the store"

# CPU seconds: of the machine (busy, all cores) and of our processes (node, web, redis), so
# that a run disturbed by other work on the machine shows it (other_cpu_s).
hz=$(getconf CLK_TCK)
machine_cpu() { awk -v hz="$hz" '$1 == "cpu" {print ($2 + $3 + $4 + $7 + $8) / hz}' /proc/stat; }
our_cpu() {
  local t=0 p
  for p in "$node_pid" "$web_pid" "$redis_pid"; do
    t=$(awk -v t="$t" -v hz="$hz" '{print t + ($14 + $15) / hz}' "/proc/$p/stat")
  done
  echo "$t"
}

# measure NAME PATH: rps and p99 of REQS GETs at concurrency C.
measure() {
  local url="http://127.0.0.1:$web_port$2" out rps p99 m0 o0 other
  ab -q -n 200 -c "$C" -H "$auth" "$url" >/dev/null
  m0=$(machine_cpu)
  o0=$(our_cpu)
  out=$(ab -q -n "$REQS" -c "$C" -H "$auth" "$url")
  other=$(awk -v m0="$m0" -v o0="$o0" -v m1="$(machine_cpu)" -v o1="$(our_cpu)" \
    'BEGIN {printf "%.1f", (m1 - m0) - (o1 - o0)}')
  if ! ab_ok "$out"; then
    log "$2: failed or non-2xx responses"
    echo "$out" >&2
    exit 1
  fi
  rps=$(awk '/^Requests per second:/ {print $4}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  log "$2: $rps req/s, p99 $p99 ms (other processes used ${other} s of CPU meanwhile)"
  echo "${1}_rps=$rps"
  echo "${1}_other_cpu_s=$other"
  echo "${1}_p99_ms=$p99"
}

page=$(measure tasks_page /tasks)
api=$(measure api_tasks /api/v1/tasks)
echo "tasks=$total"
echo "create_tasks_per_s=$create_rps"
echo "concurrency=$C"
echo "$page"
echo "$api"
p1=$(value tasks_page_p99_ms "$page")
p2=$(value api_tasks_p99_ms "$api")
echo "p99_ms=$(( p1 > p2 ? p1 : p2 ))"
