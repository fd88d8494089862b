# shellcheck shell=bash disable=SC2034,SC2154
# Shared by the benchmark scripts (sourced, not run). The caller sets `bench_name` (for log
# lines) and `tmp` (its scratch directory) before calling the functions that use them.

log() { echo "$bench_name $(date +%T): $*" >&2; }
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# Running and not a zombie (kill -0 succeeds on a zombie child).
alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}
# The value of KEY in `key=value` text (fields separated by spaces or newlines).
value() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p" | head -n 1; }
# indent PREFIX: copies stdin to stderr, each line indented and prefixed.
indent() { sed "s/^/  $1/" >&2; }

# Builds the release binaries; sets node_bin and bench (the driver).
build_binaries() {
  local top target
  top=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
  log "building (release)"
  (cd "$top" && cargo build --release -q -p gitflock-rpc -p gitflock-bench)
  target=$(cd "$top" && cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  node_bin=$target/release/gitflock-node
  bench=$target/release/gitflock-bench
}

# Starts a private redis-server with Celery's baseline settings (no persistence) in $tmp;
# sets redis_port and redis_pid.
redis_pid=""
start_redis() {
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
    >"$tmp/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p "$redis_port" ping >/dev/null
}
stop_redis() {
  [ -n "$redis_pid" ] || return 0
  kill -TERM "$redis_pid" 2>/dev/null || true
  wait "$redis_pid" 2>/dev/null || true
  redis_pid=""
}

# One node run by the script itself (its pid in node_pid): SIGTERM, then SIGKILL after 30 s.
node_pid=""
stop_node() {
  [ -n "$node_pid" ] || return 0
  kill -TERM "$node_pid" 2>/dev/null || true
  for _ in $(seq 300); do alive "$node_pid" || break; sleep 0.1; done
  if alive "$node_pid"; then
    log "node did not stop within 30 s of SIGTERM; killing it"
    kill -KILL "$node_pid" 2>/dev/null || true
  fi
  local rc=0
  wait "$node_pid" 2>/dev/null || rc=$?
  [ "$rc" -eq 0 ] || log "node exited with status $rc"
  node_pid=""
}

# The EXIT trap of a script with one node: stop it and Redis; on failure show the node's log.
cleanup_one_node() {
  local rc=$?
  stop_node
  stop_redis
  if [ "$rc" -ne 0 ] && [ -s "$tmp/node.log" ]; then
    log "failed (status $rc); the node's last log lines:"
    tail -n 20 "$tmp/node.log" >&2
  fi
  rm -rf "$tmp"
}

# A fresh cluster token in GITFLOCK_TOKEN, exported: gitflock-bench reads it from there (and
# gives it to the nodes it starts), so it stays off every command line.
new_token() {
  GITFLOCK_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  export GITFLOCK_TOKEN
}
