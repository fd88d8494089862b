#!/usr/bin/env bash
# CI: the end-to-end test of the docker-compose cluster (docker-compose.yml), as root with
# Docker available. It builds what is missing (release binaries, the base images from Debian
# packages), starts Redis, three nodes, the dashboard `web`, nginx (profile `nginx`) and a git
# server `upstream` (profile `e2e`; the nodes' [chain] remote is git://upstream/chain.git, set
# by an override file) as the compose project `gitflock-e2e`, and checks:
#
#   - a master is elected; an echo task and a 2 s sleep task SUCCEED;
#   - Redis refuses a client without GITFLOCK_REDIS_PASSWORD (the nodes use the URL with it),
#     and the password shows in no node's or the dashboard's log;
#   - a mirror task of git://upstream/demo.git (--interval 5) reaches the upstream's head; its
#     clone URL (git://nodeN:9418/...) clones from another node's container; a commit pushed
#     to the upstream is followed;
#   - `gitflock block make` pushes every node's chain: `block list` shows the blocks and
#     the upstream's chain.git has the branches nodeN-YYYYMMDD;
#   - the nodes' /metrics (:9100, read inside the containers) show gitflock_mirror_sync_seconds
#     (its count moving while the mirror polls) and gitflock_block_pushes_total;
#   - the dashboard: /healthz, /api/v1/tasks refused anonymously and JSON with the Bearer
#     token, /metrics with gitflock_web_*;
#   - nginx: `nginx -t` in the running container and on the shipped file; through nginx a login
#     with the env file's password, and server-sent events (/events, cookie and Bearer) that
#     arrive at once, including the event of a task created meanwhile;
#   - the master's container is SIGKILLed with six 3 s sleep tasks in flight: another node
#     becomes master within 15 s, the old one is reported dead, a new task and the six in
#     flight SUCCEED, and the dashboard still answers (from the next node);
#   - a slave's container is paused for 5 s (longer than the 2 s lease): it is reported not
#     alive, comes back alive as a slave after unpause, and new tasks SUCCEED;
#   - the containers' healthchecks pass (nodes, web, redis, upstream); a slave stopped with
#     SIGTERM (`docker-compose stop`) exits 0 within 15 s, and tasks still SUCCEED;
#   - `docker-compose down -v` leaves no container, network or volume of the project.
#
# Every wait polls against a deadline. The project is always taken down (trap), and a
# conf/docker/cluster.env this script created is removed again (one that exists but lacks a
# dashboard password gets a random GITFLOCK_WEB_PASSWORD appended, and keeps it). Final line:
#   compose-e2e: N passed, 0 failed
#
# Env: GITFLOCK_E2E_KEEP=1 leaves the cluster running on success (for poking at it).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

PROJECT=gitflock-e2e
ENV_FILE=conf/docker/cluster.env
CLI=target/release/gitflock
t_start=$(date +%s)
# Scratch files (the compose override, SSE captures, cookies); removed at the end.
TMPD=$(mktemp -d /tmp/gitflock-e2e.XXXXXX)
OVERRIDE=$TMPD/e2e.override.yml
cat >"$OVERRIDE" <<'YAML'
# .ci/compose.sh: the nodes push their chain blocks to the `upstream` service (profile e2e),
# and mirror from it: a container on the compose network, a private address, which the
# example's SSRF guard (GITFLOCK_MIRROR_DENY_PRIVATE_NETWORKS) would refuse.
services:
  node1:
    environment:
      GITFLOCK_CHAIN_REMOTE: git://upstream/chain.git
      GITFLOCK_MIRROR_DENY_PRIVATE_NETWORKS: "false"
  node2:
    environment:
      GITFLOCK_CHAIN_REMOTE: git://upstream/chain.git
      GITFLOCK_MIRROR_DENY_PRIVATE_NETWORKS: "false"
  node3:
    environment:
      GITFLOCK_CHAIN_REMOTE: git://upstream/chain.git
      GITFLOCK_MIRROR_DENY_PRIVATE_NETWORKS: "false"
YAML

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
# Every call names both files and both profiles, so up, ps, logs and down see every service.
DC=("${COMPOSE[@]}" -p "$PROJECT" -f docker-compose.yml -f "$OVERRIDE" --profile nginx --profile e2e)
dc() { "${DC[@]}" "$@"; }

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
  dc down -v --remove-orphans --timeout 20 >/dev/null 2>&1 ||
    "${COMPOSE[@]}" -p "$PROJECT" down -v --remove-orphans --timeout 20 >/dev/null 2>&1 || true
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
    say "GITFLOCK_E2E_KEEP=1: leaving $PROJECT running (remove it with: ${DC[*]} down -v)"
  else
    teardown
  fi
  if [ "$created_env" = 1 ] && [ "${GITFLOCK_E2E_KEEP:-0}" != 1 ]; then
    rm -f "$ENV_FILE"
  fi
  if [ "${GITFLOCK_E2E_KEEP:-0}" = 1 ] && [ "$torn_down" = 0 ]; then
    say "the compose override stays in $OVERRIDE (remove it after the down)"
  else
    rm -rf "$TMPD"
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
tools=()
command -v jq >/dev/null || tools+=(jq)
command -v curl >/dev/null || tools+=(curl)
if [ ${#tools[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "${tools[*]} missing (apt-get install ${tools[*]})"
  say "installing ${tools[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${tools[@]}" >/dev/null 2>&1 ||
    { apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${tools[@]}" >/dev/null; } ||
    die "cannot install ${tools[*]}"
fi
say "compose: ${COMPOSE[*]} ($("${COMPOSE[@]}" version --short 2>/dev/null || echo '?'))"

if [ ! -x target/release/gitflock-node ] || [ ! -x "$CLI" ] || [ ! -x target/release/gitflock-web ]; then
  phase "building the release binaries (cargo build --release --bins -p gitflock-rpc -p gitflock-cli -p gitflock-web)"
  cargo build --release --bins -p gitflock-rpc -p gitflock-cli -p gitflock-web || die "cargo build failed"
fi

random_text() { head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c "$1"; }
if [ ! -e "$ENV_FILE" ]; then
  mkdir -p "$(dirname "$ENV_FILE")"
  redis_password=$(random_text 32)
  (umask 077 && printf 'GITFLOCK_CLUSTER_TOKEN=%s\nGITFLOCK_WEB_PASSWORD=%s\nGITFLOCK_REDIS_PASSWORD=%s\nGITFLOCK_REDIS_URL=redis://:%s@redis:6379/0\n' \
    "$(random_text 40)" "$(random_text 20)" "$redis_password" "$redis_password" >"$ENV_FILE")
  created_env=1
  say "created $ENV_FILE with a random token, dashboard and Redis passwords (removed again at the end)"
elif ! grep -q '^GITFLOCK_WEB_PASSWORD\(_HASH\)\{0,1\}=.' "$ENV_FILE"; then
  printf '# The dashboard login (appended by .ci/compose.sh).\nGITFLOCK_WEB_PASSWORD=%s\n' \
    "$(random_text 20)" >>"$ENV_FILE"
  say "$ENV_FILE had no dashboard password: appended a random GITFLOCK_WEB_PASSWORD (it stays)"
fi
if ! grep -q '^GITFLOCK_REDIS_PASSWORD=.' "$ENV_FILE"; then
  redis_password=$(random_text 32)
  printf '# Redis (appended by .ci/compose.sh).\nGITFLOCK_REDIS_PASSWORD=%s\nGITFLOCK_REDIS_URL=redis://:%s@redis:6379/0\n' \
    "$redis_password" "$redis_password" >>"$ENV_FILE"
  say "$ENV_FILE had no Redis password: appended a random GITFLOCK_REDIS_PASSWORD and its GITFLOCK_REDIS_URL (they stay)"
fi
TOKEN=$(sed -n 's/^GITFLOCK_CLUSTER_TOKEN=//p' "$ENV_FILE" | tail -n 1)
[ ${#TOKEN} -ge 16 ] || die "$ENV_FILE has no GITFLOCK_CLUSTER_TOKEN of at least 16 characters"
# The plain password, for the login through nginx (none when only a hash is configured).
WEB_PASSWORD=$(sed -n 's/^GITFLOCK_WEB_PASSWORD=//p' "$ENV_FILE" | tail -n 1)
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
# The dashboard (8080) and nginx (8081), likewise.
pick_port() { # default name
  local p=$1
  if port_busy "$p"; then
    p=$(free_port) || return 1
    say "127.0.0.1:$1 is in use here: $2 is published on $p" >&2
  fi
  echo "$p"
}
WEBPORT=$(pick_port 8080 web) || die "no free port"
NGINXPORT=$(pick_port 8081 nginx) || die "no free port"
[ "$NGINXPORT" != "$WEBPORT" ] || NGINXPORT=$(free_port) || die "no free port"
export GITFLOCK_HTTP_PORT=$WEBPORT GITFLOCK_NGINX_PORT=$NGINXPORT
WEB=http://127.0.0.1:$WEBPORT
NGINX=http://127.0.0.1:$NGINXPORT

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
# `build` first: `up --build` may try to pull gitflock/node:dev for the services that only
# use it (node2, node3, web) before node1 has built it.
phase "starting the cluster: ${COMPOSE[*]} -p $PROJECT build, then up -d"
dc down -v --remove-orphans >/dev/null 2>&1 || true # a previous run killed hard
if dc build >"/tmp/$PROJECT-up.log" 2>&1 && dc up -d >>"/tmp/$PROJECT-up.log" 2>&1; then
  pass "${COMPOSE[*]} build && up -d (redis, node1..node3, web, nginx, upstream)"
else
  sed 's/^/    /' "/tmp/$PROJECT-up.log" | tail -n 40
  rm -f "/tmp/$PROJECT-up.log"
  die "${COMPOSE[*]} build / up -d failed"
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
# ---------------------------------------------------------------------------------------------
# Helpers for the containers: a command in a service, and a node's metrics (no curl inside the
# image: bash's /dev/tcp speaks HTTP/1.0 to the node's metrics listener, which closes).
in_svc() { timeout 60 "${DC[@]}" exec -T "$@"; }
node_metrics() { # service
  in_svc "$1" bash -c 'exec 3<>/dev/tcp/127.0.0.1/9100 &&
    printf "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n" >&3 && cat <&3' 2>/dev/null
}
# The sum of a metric's samples (all label sets) in a /metrics text on stdin.
metric_sum() { # name
  awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $NF; f = 1 } END { if (f) print s; else exit 1 }'
}
upstream_head() { in_svc upstream git --git-dir /srv/git/demo.git rev-parse refs/heads/main 2>/dev/null | tr -d '\r'; }
MIRROR_URL=git://upstream/demo.git
mirror_at() { # via commit: the mirror's head is main at this commit (sets MIRROR_* globals)
  local m
  m=$(cli "$1" --json mirror list --text upstream/demo 2>/dev/null) || return 1
  m=$(jq -c --arg u "$MIRROR_URL" '[.[] | select(.url == $u)][0] // empty' <<<"$m")
  [ -n "$m" ] || return 1
  MIRROR_HEAD=$(jq -r '.head' <<<"$m")
  MIRROR_NODE=$(jq -r '.node' <<<"$m")
  MIRROR_CLONE=$(jq -r '.clone_url' <<<"$m")
  MIRROR_ERROR=$(jq -r '.last_error' <<<"$m")
  [ "$MIRROR_HEAD" = "main $2" ] && [ -n "$MIRROR_CLONE" ]
}
other_node() { # not this service
  local n
  for n in node1 node2 node3; do [ "$n" != "$1" ] && { echo "$n"; return; }; done
}

phase "Redis asks for GITFLOCK_REDIS_PASSWORD; no node shows it"
if out=$(in_svc redis redis-cli ping 2>&1) && [[ "$out" == *NOAUTH* ]]; then
  pass "redis-cli without the password: NOAUTH (the nodes got in with the URL from $ENV_FILE)"
else
  fail "redis-cli without the password answered: $(head -c 200 <<<"$out")"
fi
REDIS_PASSWORD=$(sed -n 's/^GITFLOCK_REDIS_PASSWORD=//p' "$ENV_FILE" | tail -n 1)
if [ -n "$REDIS_PASSWORD" ] && ! dc logs --no-color node1 node2 node3 web 2>&1 | grep -qF "$REDIS_PASSWORD" &&
  ! cli node1 nodes 2>&1 | grep -qF "$REDIS_PASSWORD"; then
  pass "the Redis password is in no node's or the dashboard's log, nor in gitflock nodes"
else
  fail "the Redis password shows in a log or in gitflock nodes"
fi

phase "mirror task: $MIRROR_URL (profile e2e service upstream), --interval 5"
UP1=$(upstream_head)
[ ${#UP1} = 40 ] || die "the upstream service has no demo.git main (got '$UP1')"
t0=$(date +%s%N)
if out=$(cli node1 mirror add "$MIRROR_URL" --interval 5 2>&1); then
  MIRROR_TASK=$(tail -n 1 <<<"$out" | tr -d '[:space:]')
  pass "gitflock mirror add $MIRROR_URL --interval 5 → task ${MIRROR_TASK:0:8}"
else
  die "gitflock mirror add $MIRROR_URL: $out"
fi
if wait_until 60 mirror_at node1 "$UP1"; then
  pass "the mirror on $MIRROR_NODE is at the upstream's main ${UP1:0:12} after $(( ($(date +%s%N) - t0) / 1000000 )) ms; clone URL $MIRROR_CLONE"
else
  die "the mirror did not reach main $UP1 within 60 s (head '${MIRROR_HEAD:-}', error '${MIRROR_ERROR:-}')"
fi
# Node names are the service names here (GITFLOCK_NODE_NAME=nodeN).
CLONER=$(other_node "$MIRROR_NODE")
if got=$(in_svc "$CLONER" bash -c 'd=$(mktemp -d) && git clone -q "$1" "$d/c" && git -C "$d/c" rev-parse HEAD; rc=$?; rm -rf "$d"; exit $rc' _ "$MIRROR_CLONE" 2>&1) &&
  [ "$(tail -n 1 <<<"$got" | tr -d '\r')" = "$UP1" ]; then
  pass "git clone $MIRROR_CLONE in $CLONER's container: HEAD ${UP1:0:12}"
else
  fail "git clone $MIRROR_CLONE in $CLONER's container: $(tail -n 3 <<<"$got" | tr '\n' ' ')"
fi
UP2=$(in_svc upstream bash -c 'cd /srv/work &&
  git -c user.name=e2e -c user.email=e2e@gitflock.invalid commit -q --allow-empty -m "second commit" &&
  git push -q /srv/git/demo.git main && git rev-parse HEAD' 2>/dev/null | tail -n 1 | tr -d '\r')
[ ${#UP2} = 40 ] && [ "$UP2" != "$UP1" ] || die "could not push a second commit to the upstream (got '$UP2')"
t0=$(date +%s%N)
if wait_until 30 mirror_at node1 "$UP2"; then
  pass "the mirror followed the upstream's new commit ${UP2:0:12} in $(( ($(date +%s%N) - t0) / 1000000 )) ms (interval 5 s)"
else
  fail "the mirror did not follow the upstream's new commit $UP2 within 30 s (head '${MIRROR_HEAD:-}', error '${MIRROR_ERROR:-}')"
fi
if got=$(in_svc "$CLONER" git ls-remote "$MIRROR_CLONE" refs/heads/main 2>&1) && [[ "$got" == "$UP2"* ]]; then
  pass "git ls-remote $MIRROR_CLONE from $CLONER serves the new commit"
else
  fail "git ls-remote $MIRROR_CLONE from $CLONER: $got"
fi

phase "blocks: gitflock block make (every live node) to git://upstream/chain.git"
for n in node1 node2 node3; do
  cli "$n" log write "compose e2e: an entry on $n" >/dev/null 2>&1 || fail "gitflock log write via $n"
done
TODAY=$(date -u +%Y%m%d)
t0=$(date +%s%N)
if out=$(timeout 130 "$CLI" --server "http://127.0.0.1:${PORT[node1]}" block make 2>&1); then
  pass "gitflock block make SUCCEED in $(( ($(date +%s%N) - t0) / 1000000 )) ms: $(tail -n 1 <<<"$out" | cut -c1-100)"
else
  fail "gitflock block make: $(tail -n 3 <<<"$out" | tr '\n' ' ')"
fi
blocks_listed() {
  local b
  b=$(cli node1 --json block list 2>/dev/null) || return 1
  BLOCKS=$(jq -r '[.[] | .branch] | unique | join(" ")' <<<"$b")
  for n in node1 node2 node3; do
    jq -e --arg br "$n-$TODAY" 'any(.[]; .branch == $br and (.tip | length) == 40)' <<<"$b" >/dev/null || return 1
  done
}
if wait_until 15 blocks_listed; then
  pass "gitflock block list --json: node1-$TODAY, node2-$TODAY, node3-$TODAY with their tips"
else
  fail "gitflock block list lacks a block per node (branches: ${BLOCKS:-none})"
fi
got=$(in_svc upstream git --git-dir /srv/git/chain.git for-each-ref --format='%(refname:short)' refs/heads/ 2>&1 | tr -d '\r')
if grep -qx "node1-$TODAY" <<<"$got" && grep -qx "node2-$TODAY" <<<"$got" && grep -qx "node3-$TODAY" <<<"$got"; then
  pass "the upstream's chain.git has the branches $(tr '\n' ' ' <<<"$got")"
else
  fail "the upstream's chain.git branches: $(tr '\n' ' ' <<<"$got")"
fi

phase "node metrics (GITFLOCK_NODE_METRICS_LISTEN=0.0.0.0:9100, read in the containers)"
M1=$(node_metrics "$MIRROR_NODE")
c1=$(metric_sum gitflock_mirror_sync_seconds_count <<<"$M1") || c1=""
if [ -n "$c1" ] && [ "$c1" -ge 1 ]; then
  pass "$MIRROR_NODE: gitflock_mirror_sync_seconds_count $c1"
else
  fail "$MIRROR_NODE: no gitflock_mirror_sync_seconds in its /metrics ($(wc -l <<<"$M1") lines)"
fi
for n in node1 node2 node3; do
  v=$(node_metrics "$n" | metric_sum gitflock_block_pushes_total) || v=""
  if [ -n "$v" ] && [ "$v" -ge 1 ]; then
    pass "$n: gitflock_block_pushes_total $v"
  else
    fail "$n: no gitflock_block_pushes_total in its /metrics"
  fi
done
# Live values: the mirror polls every 5 s, so its sync count moves.
mirror_count_moved() {
  local c
  c=$(node_metrics "$MIRROR_NODE" | metric_sum gitflock_mirror_sync_seconds_count) || return 1
  C2=$c
  [ "$c" -gt "${c1:-0}" ]
}
if wait_until 20 mirror_count_moved; then
  pass "$MIRROR_NODE: gitflock_mirror_sync_seconds_count moved $c1 → $C2 while the mirror polls"
else
  fail "$MIRROR_NODE: gitflock_mirror_sync_seconds_count stayed at ${c1:-?} for 20 s"
fi

phase "the dashboard (service web, $WEB)"
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@"; }
web_healthy() { curl -fsS --max-time 3 "$WEB/healthz" >/dev/null 2>&1; }
if wait_until 30 web_healthy; then
  pass "GET $WEB/healthz: $(curl -fsS --max-time 3 "$WEB/healthz")"
else
  die "GET $WEB/healthz did not answer within 30 s"
fi
code=$(http_code "$WEB/api/v1/tasks")
if [ "$code" = 401 ] || [ "$code" = 303 ]; then
  pass "anonymous GET /api/v1/tasks is refused ($code)"
else
  fail "anonymous GET /api/v1/tasks answered $code (want 401 or 303)"
fi
# The header comes from a file descriptor: the token never shows in `ps`.
bearer() { curl -fsS --max-time 10 -H @<(printf 'Authorization: Bearer %s\n' "$TOKEN") "$@"; }
if out=$(bearer "$WEB/api/v1/tasks?type=mirror") &&
  jq -e --arg id "$MIRROR_TASK" '.tasks | type == "array" and any(.[]; .id == $id)' <<<"$out" >/dev/null; then
  pass "GET /api/v1/tasks with the Bearer token: JSON with the mirror task ${MIRROR_TASK:0:8}"
else
  fail "GET /api/v1/tasks with the Bearer token: $(cut -c1-200 <<<"${out:-no answer}")"
fi
if out=$(bearer "$WEB/metrics") && n=$(grep -c '^gitflock_web_' <<<"$out") && [ "$n" -gt 0 ]; then
  pass "GET /metrics with the Bearer token: $n gitflock_web_ samples"
else
  fail "GET /metrics with the Bearer token has no gitflock_web_ metrics"
fi

phase "nginx in front of the dashboard (profile nginx, $NGINX)"
if out=$(in_svc nginx nginx -t 2>&1); then
  pass "nginx -t in the running nginx container (upstream web:8080)"
else
  fail "nginx -t in the running nginx container: $out"
fi
if out=$(docker run --rm -v "$PWD/conf/nginx/gitflock.conf:/etc/nginx/conf.d/gitflock.conf:ro" \
  gitflock/nginx:bookworm sh -c 'rm -f /etc/nginx/sites-enabled/default; nginx -t' 2>&1); then
  pass "nginx -t: conf/nginx/gitflock.conf as shipped (upstream 127.0.0.1:8080)"
else
  fail "nginx -t: conf/nginx/gitflock.conf: $out"
fi
nginx_healthy() { curl -fsS --max-time 3 "$NGINX/healthz" >/dev/null 2>&1; }
if wait_until 20 nginx_healthy; then
  pass "GET $NGINX/healthz through nginx"
else
  fail "GET $NGINX/healthz through nginx did not answer within 20 s"
fi
COOKIE=""
if [ -n "$WEB_PASSWORD" ]; then
  # As a browser does: GET the form (its token, and the same in the gitflock_login cookie),
  # then post it. The password goes in on stdin (not in `ps`), without a newline.
  form=$(curl -sS --max-time 10 -D - "$NGINX/login" 2>&1 | tr -d '\r')
  form_cookie=$(sed -n 's/^[Ss]et-[Cc]ookie: \(gitflock_login=[^;]*\).*/\1/p' <<<"$form" | head -n 1)
  form_token=$(sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' <<<"$form" | head -n 1)
  hdrs=$(printf '%s' "$WEB_PASSWORD" | curl -sS --max-time 10 -o /dev/null -D - \
    -H "Cookie: $form_cookie" --data-urlencode "csrf=$form_token" \
    --data-urlencode "password@-" --data-urlencode "next=/" "$NGINX/login" 2>&1 | tr -d '\r')
  COOKIE=$(sed -n 's/^[Ss]et-[Cc]ookie: \(gitflock_session=[^;]*\).*/\1/p' <<<"$hdrs" | head -n 1)
  if [[ "$hdrs" == "HTTP/1.1 303"* ]] && [ -n "$COOKIE" ]; then
    pass "POST /login through nginx with GITFLOCK_WEB_PASSWORD: 303 and a session cookie"
  else
    fail "POST /login through nginx: $(head -n 1 <<<"$hdrs")"
  fi
else
  say "skip  the login through nginx: $ENV_FILE has only GITFLOCK_WEB_PASSWORD_HASH"
fi
# sse FILE CURL-ARGS...: /events through nginx into FILE for at most 20 s, in the background.
sse() {
  local f=$1
  shift
  curl -sS -N --max-time 20 "$@" "$NGINX/events" >"$f" 2>&1 &
  SSE_PID=$!
}
sse_has() { grep -q "$2" "$1"; }
if [ -n "$COOKIE" ]; then
  t0=$(date +%s%N)
  sse "$TMPD/sse-cookie" -H @<(printf 'Cookie: %s\n' "$COOKIE")
  if wait_until 5 sse_has "$TMPD/sse-cookie" '^event: hello'; then
    pass "GET /events through nginx with the session cookie: first event after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
  else
    fail "GET /events through nginx with the session cookie: no event within 5 s: $(head -c 200 "$TMPD/sse-cookie")"
  fi
  kill "$SSE_PID" 2>/dev/null
  wait "$SSE_PID" 2>/dev/null
fi
t0=$(date +%s%N)
sse "$TMPD/sse-bearer" -H @<(printf 'Authorization: Bearer %s\n' "$TOKEN")
if wait_until 5 sse_has "$TMPD/sse-bearer" '^data:'; then
  pass "GET /events through nginx with the Bearer token: first event after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
  if id=$(create_task node1 echo sse-through-nginx) && wait_until 10 sse_has "$TMPD/sse-bearer" "$id"; then
    pass "the event of a new task (${id:0:8}) arrives through nginx at once (proxy_buffering off)"
  else
    fail "no event of the new task ${id:-?} through nginx within 10 s"
  fi
else
  fail "GET /events through nginx with the Bearer token: no data: line within 5 s: $(head -c 200 "$TMPD/sse-bearer")"
fi
kill "$SSE_PID" 2>/dev/null
wait "$SSE_PID" 2>/dev/null

phase "failover: SIGKILL the master's container"
has_master node1 3 || die "no master with three live nodes before the failover"
old_master=$MASTER
svc=$(service_of node1 "$old_master")
[ -n "$svc" ] && [ -n "${PORT[$svc]:-}" ] || die "cannot map master $old_master to a compose service (got '$svc')"
via=""
for n in node1 node2 node3; do
  [ "$n" != "$svc" ] && { via=$n; break; }
done
say "master $old_master is service $svc; talking to $via (127.0.0.1:${PORT[$via]}) from now on"
# Work in flight when the master dies: six 3 s sleeps spread over the nodes.
inflight=()
for i in 1 2 3 4 5 6; do
  id=$(create_task "$via" sleep 3s) || die "create sleep task $i before the kill"
  inflight+=("$id")
done
sleep 1
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
all_settled() {
  local id
  for id in "${inflight[@]}"; do task_settled "$via" "$id" || return 1; done
}
if wait_until 45 all_settled; then
  bad=0
  for id in "${inflight[@]}"; do task_done "$via" "$id" || bad=$((bad + 1)); done
  if [ "$bad" = 0 ]; then
    pass "all 6 sleep tasks in flight at the kill SUCCEED ($(( ($(date +%s%N) - t0) / 1000000 )) ms after it)"
  else
    fail "$bad of the 6 sleep tasks in flight at the kill did not SUCCEED"
  fi
else
  fail "the 6 sleep tasks in flight at the kill were not all done within 45 s"
fi
web_sees_master() { # the dashboard (which may have to try the next node) reports this master
  local out
  out=$(bearer "$WEB/api/v1/status" 2>/dev/null) || return 1
  [ "$(jq -r '.master' <<<"$out")" = "$1" ]
}
if wait_until 15 web_sees_master "$new_master_name"; then
  pass "the dashboard answers /api/v1/status after the kill: master $new_master_name"
else
  fail "the dashboard does not report the new master $new_master_name within 15 s"
fi

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

phase "container healthchecks (nodes: gitflock status; web: GET /healthz; redis; upstream)"
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
  for n in redis web upstream; do
    c=$(dc ps -q "$n" 2>/dev/null)
    h=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$c" 2>/dev/null)
    HEALTH="$HEALTH $n=$h"
    [ "$h" = healthy ] || bad=1
  done
  [ "$bad" = 0 ]
}
if wait_until 40 health_ok; then
  pass "containers healthy:$HEALTH"
else
  fail "containers not healthy within 40 s:$HEALTH"
fi

phase "graceful stop: ${COMPOSE[*]} stop $slave (SIGTERM)"
t0=$(date +%s%N)
dc stop -t 20 "$slave" >/dev/null 2>&1 || fail "${COMPOSE[*]} stop $slave"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
code=$(docker inspect -f '{{.State.ExitCode}}' "$(dc ps -q "$slave")" 2>/dev/null)
if [ "$code" = 0 ] && [ "$ms" -lt 15000 ]; then
  pass "$slave exited 0 on SIGTERM in $ms ms"
  if [ "$ms" -gt 4000 ]; then
    say "      (slow: the end of $slave's log)"
    dc logs --no-color --tail 12 "$slave" 2>&1 | cut -c1-220 | sed 's/^/      /'
  fi
else
  fail "$slave on SIGTERM: exit code '${code:-?}' after $ms ms"
fi
run_task "$via" echo after-stop 15 || exit 1

if [ "${GITFLOCK_E2E_KEEP:-0}" != 1 ]; then
  teardown
fi
