#!/usr/bin/env bash
# CI: the end-to-end test of the docker-compose cluster (docker-compose.yml), as root with
# Docker available. It builds what is missing (release binaries, the base images from Debian
# packages), starts Redis and three nodes as the compose project `gitflock-e2e`, and checks:
#
#   - a master is elected; an echo task and a 2 s sleep task SUCCEED;
#   - the master's container is SIGKILLed: another node becomes master within 15 s, the old
#     one is reported dead, and a new task SUCCEEDs;
#   - a slave's container is paused for 5 s (longer than the 2 s lease): it is reported not
#     alive, comes back alive as a slave after unpause, and new tasks SUCCEED;
#   - the nginx image's configuration passes `nginx -t`;
#   - `docker-compose down -v` leaves no container, network or volume of the project.
#
# Every wait polls against a deadline. The project is always taken down (trap), and a
# conf/docker/cluster.env this script created is removed again. Final line:
#   compose e2e: N passed, 0 failed
#
# Env: GITFLOCK_E2E_KEEP=1 leaves the cluster running on success (for poking at it).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

PROJECT=gitflock-e2e
ENV_FILE=conf/docker/cluster.env
CLI=target/release/gitflock
t_start=$(date +%s)

passed=0
failed=0
torn_down=0
created_env=0
phase_start=$t_start

say() { echo "[$(printf '%4s' $(($(date +%s) - t_start)))s] $*"; }
pass() { passed=$((passed + 1)); say "ok    $*"; }
fail() { failed=$((failed + 1)); say "FAIL  $*"; }
# A failed check that later checks depend on: stop here (the trap tears down and reports).
die() { fail "$*"; exit 1; }
phase() {
  local now
  now=$(date +%s)
  say "==> $* (previous step: $((now - phase_start)) s)"
  phase_start=$now
}

# docker-compose (v1) or `docker compose` (v2), whichever exists.
if command -v docker-compose >/dev/null; then
  COMPOSE=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
else
  echo "compose e2e: neither docker-compose nor 'docker compose' is installed" >&2
  exit 1
fi
dc() { "${COMPOSE[@]}" -p "$PROJECT" "$@"; }

# What remains of the project: containers, networks, volumes (one per line).
leftovers() {
  docker ps -a --format 'container {{.Names}}' --filter "label=com.docker.compose.project=$PROJECT"
  docker ps -a --format 'container {{.Names}}' --filter "name=$PROJECT"
  docker network ls --format 'network {{.Name}}' --filter "name=$PROJECT"
  docker volume ls --format 'volume {{.Name}}' --filter "name=$PROJECT"
  docker volume ls --format 'volume {{.Name}}' --filter "label=com.docker.compose.project=$PROJECT"
}

teardown() {
  [ "$torn_down" = 1 ] && return 0
  torn_down=1
  phase "teardown: ${COMPOSE[*]} -p $PROJECT down -v"
  dc unpause >/dev/null 2>&1 || true
  dc --profile nginx down -v --remove-orphans --timeout 20 >/dev/null 2>&1 ||
    dc down -v --remove-orphans --timeout 20 >/dev/null 2>&1 || true
  # Rebuilt images leave their predecessors untagged: remove those (ours only, by label).
  docker image prune -f --filter label=io.gitflock.image >/dev/null 2>&1 || true
  local left
  left=$(leftovers | sort -u)
  if [ -z "$left" ]; then
    pass "nothing named $PROJECT is left (docker ps -a, docker network ls, docker volume ls)"
  else
    fail "left behind: $(echo "$left" | tr '\n' ' ')"
  fi
}

finish() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$failed" -gt 0 ] || [ "$rc" != 0 ]; then
    [ "$failed" = 0 ] && fail "the script stopped unexpectedly (exit $rc)"
    if [ "$torn_down" = 0 ]; then
      say "--- compose ps"
      dc ps 2>&1 | sed 's/^/    /'
      say "--- the last 40 lines of each service's log"
      dc logs --no-color --tail 40 2>&1 | sed 's/^/    /'
    fi
  fi
  if [ "${GITFLOCK_E2E_KEEP:-0}" = 1 ] && [ "$failed" = 0 ] && [ "$torn_down" = 0 ]; then
    say "GITFLOCK_E2E_KEEP=1: leaving $PROJECT running (${COMPOSE[*]} -p $PROJECT down -v)"
  else
    teardown
  fi
  if [ "$created_env" = 1 ] && [ "${GITFLOCK_E2E_KEEP:-0}" != 1 ]; then
    rm -f "$ENV_FILE"
  fi
  say "total $(($(date +%s) - t_start)) s"
  echo "compose-e2e: $passed passed, $failed failed"
  [ "$failed" = 0 ] || exit 1
  exit 0
}
trap finish EXIT
trap 'fail "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
phase "prerequisites"
docker info >/dev/null 2>&1 || die "cannot talk to the Docker engine"
if ! command -v jq >/dev/null; then
  [ "$(id -u)" = 0 ] || die "jq is missing (apt-get install jq)"
  say "installing jq"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null 2>&1 ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null; } ||
    die "cannot install jq"
fi
say "compose: ${COMPOSE[*]} ($("${COMPOSE[@]}" version --short 2>/dev/null || echo '?'))"

if [ ! -x target/release/gitflock-node ] || [ ! -x "$CLI" ]; then
  phase "building the release binaries (cargo build --release --bins -p gitflock-rpc)"
  cargo build --release --bins -p gitflock-rpc || die "cargo build failed"
fi

if [ ! -e "$ENV_FILE" ]; then
  mkdir -p "$(dirname "$ENV_FILE")"
  token=$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40)
  (umask 077 && printf 'GITFLOCK_CLUSTER_TOKEN=%s\n' "$token" >"$ENV_FILE")
  created_env=1
  say "created $ENV_FILE with a random token (removed again at the end)"
fi
TOKEN=$(sed -n 's/^GITFLOCK_CLUSTER_TOKEN=//p' "$ENV_FILE" | tail -n 1)
[ ${#TOKEN} -ge 16 ] || die "$ENV_FILE has no GITFLOCK_CLUSTER_TOKEN of at least 16 characters"
# The CLI reads the token from the environment: it never shows up in `ps`.
export GITFLOCK_TOKEN=$TOKEN

phase "base images (scripts/build-base-image.sh --with-nginx; skipped if they exist)"
scripts/build-base-image.sh --with-nginx || die "scripts/build-base-image.sh failed"

# The published ports: 6666..6668 unless something on this host listens there already (a
# `gitflock dev`, another test): then free ones.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 30000))
    port_busy "$p" || { echo "$p"; return; }
  done
  return 1
}
declare -A PORT
for i in 1 2 3; do
  p=$((6665 + i))
  if port_busy "$p"; then
    p=$(free_port) || die "no free port"
    say "127.0.0.1:$((6665 + i)) is in use here: node$i is published on $p"
  fi
  PORT[node$i]=$p
  export "GITFLOCK_NODE${i}_PORT=$p"
done

# ---------------------------------------------------------------------------------------------
# Helpers over the CLI (each call bounded by `timeout`).
cli() { timeout 15 "$CLI" --server "http://127.0.0.1:${PORT[$1]}" "${@:2}"; }
status_json() { cli "$1" --json status 2>/dev/null; }

# Polls `cond` (a command) every 0.25 s until it succeeds or `secs` pass; returns 1 on timeout.
wait_until() {
  local secs=$1
  shift
  local deadline=$(($(date +%s%N) / 1000000 + secs * 1000))
  while :; do
    "$@" && return 0
    [ $(($(date +%s%N) / 1000000)) -ge "$deadline" ] && return 1
    sleep 0.25
  done
}

# Condition helpers set globals for the caller (MASTER, ...).
has_master() {
  local s
  s=$(status_json "$1") || return 1
  MASTER=$(jq -r '.master // ""' <<<"$s")
  ALIVE=$(jq -r '[.nodes[] | select(.state == "alive")] | length' <<<"$s")
  [ -n "$MASTER" ] && [ "$ALIVE" -ge "${2:-1}" ]
}
new_master() { # via, old master
  has_master "$1" && [ "$MASTER" != "$2" ]
}
node_state_is_not() { # via, node, state
  local s
  s=$(status_json "$1") || return 1
  STATE=$(jq -r --arg n "$2" '.nodes[] | select(.name == $n) | .state' <<<"$s")
  [ -n "$STATE" ] && [ "$STATE" != "$3" ]
}
alive_slave() { # via, node: alive, and not the master
  local s
  s=$(status_json "$1") || return 1
  MASTER=$(jq -r '.master // ""' <<<"$s")
  jq -e --arg n "$2" '.nodes[] | select(.name == $n and .state == "alive" and .role != "master")' \
    <<<"$s" >/dev/null && [ -n "$MASTER" ] && [ "$MASTER" != "$2" ]
}
# The compose service of a node: the host part of its advertised address (<service>:6666).
service_of() { # via, node
  status_json "$1" | jq -r --arg n "$2" '.nodes[] | select(.name == $n) | .addr | split(":")[0]'
}

# create_task via type target → prints the id
create_task() {
  local id
  id=$(cli "$1" task create --type "$2" --target "$3" 2>&1) || { say "      $id"; return 1; }
  id=$(tail -n 1 <<<"$id" | tr -d '[:space:]')
  [ -n "$id" ] && echo "$id"
}
TASK_STATE=""
task_done() { # via id: true once SUCCEED; fails fast on a final failure state
  local t
  t=$(cli "$1" --json task get "$2" 2>/dev/null) || return 1
  TASK_STATE=$(jq -r '.state' <<<"$t")
  TASK_NODE=$(jq -r '.node // ""' <<<"$t")
  case "$TASK_STATE" in
    SUCCEED) return 0 ;;
    RUNTIME_ERROR | KILLED) return 2 ;;
    *) return 1 ;;
  esac
}
task_settled() { task_done "$@"; [ $? != 1 ]; }
# run_task via type target secs: creates a task and waits for SUCCEED
run_task() {
  local via=$1 type=$2 target=$3 secs=$4 id t0
  t0=$(date +%s%N)
  id=$(create_task "$via" "$type" "$target") || { fail "create a $type task via $via"; return 1; }
  if wait_until "$secs" task_settled "$via" "$id" && [ "$TASK_STATE" = SUCCEED ]; then
    pass "$type task ${id:0:8} ($target) SUCCEED on $TASK_NODE in $(( ($(date +%s%N) - t0) / 1000000 )) ms (via $via)"
  else
    fail "$type task $id ($target) did not SUCCEED within $secs s (state ${TASK_STATE:-unknown})"
    return 1
  fi
}

# ---------------------------------------------------------------------------------------------
phase "starting the cluster: ${COMPOSE[*]} -p $PROJECT up -d --build"
dc --profile nginx down -v --remove-orphans >/dev/null 2>&1 || true # a previous run killed hard
if dc up -d --build >"/tmp/$PROJECT-up.log" 2>&1; then
  pass "${COMPOSE[*]} up -d --build (redis, node1..node3)"
else
  sed 's/^/    /' "/tmp/$PROJECT-up.log" | tail -n 40
  rm -f "/tmp/$PROJECT-up.log"
  die "${COMPOSE[*]} up -d --build failed"
fi
rm -f "/tmp/$PROJECT-up.log"

phase "waiting for a master and three live nodes (deadline 60 s)"
if wait_until 60 has_master node1 3; then
  pass "master $MASTER elected, $ALIVE nodes alive (status via node1)"
else
  die "no master with three live nodes within 60 s (status: $(status_json node1 | jq -c '{master, nodes: [.nodes[] | {name, role, state}]}' 2>/dev/null))"
fi

phase "tasks"
run_task node1 echo hello-compose 30 || exit 1
run_task node1 sleep 2s 30 || exit 1
say "skip  mirror and block tasks: those task types do not exist yet"

phase "failover: SIGKILL the master's container"
old_master=$MASTER
svc=$(service_of node1 "$old_master")
[ -n "$svc" ] && [ -n "${PORT[$svc]:-}" ] || die "cannot map master $old_master to a compose service (got '$svc')"
via=""
for n in node1 node2 node3; do
  [ "$n" != "$svc" ] && { via=$n; break; }
done
say "master $old_master is service $svc; talking to $via (127.0.0.1:${PORT[$via]}) from now on"
t0=$(date +%s%N)
dc kill "$svc" >/dev/null 2>&1 || die "${COMPOSE[*]} kill $svc"
if wait_until 15 new_master "$via" "$old_master"; then
  pass "new master $MASTER within $(( ($(date +%s%N) - t0) / 1000000 )) ms of killing $old_master"
else
  die "no new master within 15 s of killing $old_master (master: '${MASTER:-}')"
fi
new_master_name=$MASTER
if wait_until 15 node_state_is_not "$via" "$old_master" alive; then
  pass "the killed $old_master is reported $STATE"
else
  fail "the killed $old_master is still reported alive after 15 s"
fi
run_task "$via" echo after-failover 15 || exit 1

phase "pause a slave past the lease (5 s; the lease is 2 s)"
slave=""
for n in node1 node2 node3; do
  [ "$n" = "$svc" ] && continue
  [ "$n" = "$(service_of "$via" "$new_master_name")" ] && continue
  slave=$n
done
[ -n "$slave" ] || die "no slave left to pause"
# Talk to the master's node while the slave is paused.
via=$(service_of "$via" "$new_master_name")
[ -n "${PORT[$via]:-}" ] || die "cannot map the master $new_master_name to a compose service"
slave_name=$(status_json "$via" | jq -r --arg s "$slave:" '.nodes[] | select(.addr | startswith($s)) | .name')
say "pausing $slave (node $slave_name); master $new_master_name"
dc pause "$slave" >/dev/null 2>&1 || die "${COMPOSE[*]} pause $slave"
paused_at=$(date +%s%N)
if wait_until 5 node_state_is_not "$via" "$slave_name" alive; then
  pass "the paused $slave_name is reported $STATE after $(( ($(date +%s%N) - paused_at) / 1000000 )) ms"
else
  fail "the paused $slave_name is still reported alive after 5 s"
fi
# The rest of the 5 s pause (a deliberate wait: the node must stay frozen past the lease).
rest=$((5000 - ($(date +%s%N) - paused_at) / 1000000))
[ "$rest" -gt 0 ] && sleep "$(printf '%d.%03d' $((rest / 1000)) $((rest % 1000)))"
dc unpause "$slave" >/dev/null 2>&1 || die "${COMPOSE[*]} unpause $slave"
t0=$(date +%s%N)
if wait_until 30 alive_slave "$via" "$slave_name"; then
  pass "$slave_name is alive again and a slave (master $MASTER) $(( ($(date +%s%N) - t0) / 1000000 )) ms after unpause"
else
  die "$slave_name is not alive as a slave within 30 s of unpause"
fi
for i in 1 2 3 4; do
  run_task "$via" echo "after-pause-$i" 30 || exit 1
done

phase "container healthchecks (docker-compose.yml: gitflock status in each running node)"
health_ok() {
  local c h bad=0
  HEALTH=""
  for n in node1 node2 node3; do
    [ "$n" = "$svc" ] && continue # killed above
    c=$(dc ps -q "$n" 2>/dev/null)
    h=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$c" 2>/dev/null)
    HEALTH="$HEALTH $n=$h"
    [ "$h" = healthy ] || bad=1
  done
  c=$(dc ps -q redis 2>/dev/null)
  h=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$c" 2>/dev/null)
  HEALTH="$HEALTH redis=$h"
  [ "$h" = healthy ] && [ "$bad" = 0 ]
}
if wait_until 40 health_ok; then
  pass "containers healthy:$HEALTH"
else
  fail "containers not healthy within 40 s:$HEALTH"
fi

phase "nginx configuration (gitflock/nginx:bookworm)"
if dc --profile nginx build nginx >/dev/null 2>&1; then
  pass "the nginx image builds (conf/nginx/Dockerfile)"
  # The compose variant (upstream web:8080; the web service does not exist yet, so `web` is
  # given an address here), and the host variant as shipped (upstream 127.0.0.1:8080).
  if out=$(docker run --rm --add-host web:127.0.0.1 gitflock/nginx-proxy:dev nginx -t 2>&1); then
    pass "nginx -t: the compose nginx image (upstream web:8080)"
  else
    fail "nginx -t: the compose nginx image: $out"
  fi
  if out=$(docker run --rm -v "$PWD/conf/nginx/gitflock.conf:/etc/nginx/conf.d/gitflock.conf:ro" \
    gitflock/nginx:bookworm sh -c 'rm -f /etc/nginx/sites-enabled/default; nginx -t' 2>&1); then
    pass "nginx -t: conf/nginx/gitflock.conf as shipped"
  else
    fail "nginx -t: conf/nginx/gitflock.conf: $out"
  fi
else
  fail "${COMPOSE[*]} --profile nginx build nginx"
fi

if [ "${GITFLOCK_E2E_KEEP:-0}" != 1 ]; then
  teardown
fi
