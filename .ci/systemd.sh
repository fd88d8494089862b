#!/usr/bin/env bash
# CI: check the systemd units in conf/systemd/ with `systemd-analyze verify` (and the offline
# `systemd-analyze security` exposure score), without installing anything into /etc/systemd.
#
# verify needs each ExecStart= binary to exist: the units are copied into a temporary
# directory and their /usr/local/bin/<binary> is rewritten to the repository's
# target/release/<binary> (gitflock-node, gitflock-web; built if missing). As root it creates
# the system user `gitflock` the units run as, if missing.
#
# Type=notify is only honest if the binaries notify: both are started with a NOTIFY_SOCKET
# (a python3 datagram listener) and WATCHDOG_USEC=1 s, and must send READY=1, keep sending
# WATCHDOG=1, and on SIGTERM send STOPPING=1 and exit 0. The node needs a Redis: a
# redis-server on a free port (skipped, with a note, without redis-server or python3).
#
# systemd-analyze verify exits 0 on many unit errors ("Unknown key", "Failed to parse ..."), so
# every line it prints about our units counts as a failure. A deliberately broken copy of a
# unit is checked too, to prove that the check catches errors.
#
#   .ci/systemd.sh          # final line: "systemd units: N passed, 0 failed"
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
repo=$(pwd)

# Exposure score (0-100, systemd-analyze security --threshold) a unit may not exceed.
SECURITY_THRESHOLD=${GITFLOCK_SYSTEMD_THRESHOLD:-25}

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok    $*"; }
fail() { failed=$((failed + 1)); echo "FAIL  $*"; }
step() { echo "==> $*"; }

if ! command -v systemd-analyze >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    step "installing systemd (for systemd-analyze)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends systemd >/dev/null
  fi
  command -v systemd-analyze >/dev/null || { echo "systemd-analyze is not installed" >&2; exit 1; }
fi

if [ ! -x target/release/gitflock-node ] || [ ! -x target/release/gitflock ] ||
  [ ! -x target/release/gitflock-web ]; then
  step "building the release binaries"
  cargo build --release --bins -p gitflock-rpc -p gitflock-cli -p gitflock-web || exit 1
fi

user_missing=0
if ! getent passwd gitflock >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    step "creating the system user gitflock (User= of the units)"
    getent group gitflock >/dev/null || groupadd --system gitflock
    useradd --system --gid gitflock --home-dir /var/lib/gitflock --no-create-home \
      --shell /usr/sbin/nologin --comment "gitflock node" gitflock
  else
    echo "note: user gitflock does not exist and this is not root; messages about it are accepted"
    user_missing=1
  fi
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# Copies a unit into $tmp with its ExecStart binary made resolvable; prints the copy's path.
stage() {
  local unit=$1 dest bin name
  dest=$tmp/$(basename "$unit")
  cp "$unit" "$dest"
  bin=$(sed -n 's/^ExecStart=-\{0,1\}\([^ ]*\).*/\1/p' "$dest" | head -n 1)
  name=$(basename "$bin")
  if [ -x "$repo/target/release/$name" ]; then
    sed -i "s|^ExecStart=\(-\{0,1\}\)$bin|ExecStart=\1$repo/target/release/$name|" "$dest"
    echo "      ($(basename "$unit"): ExecStart uses target/release/$name)" >&2
  elif [ -x "$bin" ]; then
    :
  else
    echo "      ($(basename "$unit"): $name is neither built nor installed)" >&2
  fi
  echo "$dest"
}

# Verifies one staged unit; returns non-zero on any error or any message about it.
verify() {
  local path=$1 unit out rc findings
  unit=$(basename "$path")
  out=$(systemd-analyze verify "$path" 2>&1)
  rc=$?
  findings=$(printf '%s\n' "$out" | grep -F -e "$path" -e "$unit" || true)
  if [ "$user_missing" = 1 ]; then
    findings=$(printf '%s\n' "$findings" | grep -v -i -E "user.*gitflock|gitflock.*user" || true)
  fi
  findings=$(printf '%s\n' "$findings" | sed '/^$/d')
  if [ "$rc" != 0 ] || [ -n "$findings" ]; then
    printf '%s\n' "$out" | sed 's/^/      /'
    return 1
  fi
}

checked=0
for unit in conf/systemd/*.service; do
  checked=$((checked + 1))
  step "$unit"
  path=$(stage "$unit")
  if verify "$path"; then
    pass "systemd-analyze verify $(basename "$unit")"
  else
    fail "systemd-analyze verify $(basename "$unit")"
  fi
  # What the checks below rely on: the unit is what the product expects.
  missing=()
  for want in Type=notify NotifyAccess=main WatchdogSec=30s Restart=on-failure User=gitflock \
    Group=gitflock EnvironmentFile=-/etc/gitflock/gitflock.env StateDirectory=gitflock \
    ProtectSystem=strict ReadWritePaths=/var/lib/gitflock NoNewPrivileges=true CapabilityBoundingSet= \
    TimeoutStopSec=30s KillSignal=SIGTERM; do
    grep -qx -- "$want" "$unit" || missing+=("$want")
  done
  if [ ${#missing[@]} = 0 ]; then
    pass "$(basename "$unit") has the expected service settings"
  else
    fail "$(basename "$unit") lacks: ${missing[*]}"
  fi
  score=$(systemd-analyze security --offline=true "$path" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]* [A-Z]*\).*/\1/p')
  if systemd-analyze security --offline=true --threshold="$SECURITY_THRESHOLD" "$path" >/dev/null 2>&1; then
    pass "$(basename "$unit") exposure $score (systemd-analyze security; at most $SECURITY_THRESHOLD/100)"
  else
    fail "$(basename "$unit") exposure ${score:-unknown} is above the threshold $SECURITY_THRESHOLD/100"
  fi
done
[ "$checked" -gt 0 ] || fail "no units in conf/systemd/"

step "a broken unit must be caught"
broken=$(stage conf/systemd/gitflock-node.service 2>/dev/null)
sed -i 's/^RestartSec=.*/RestartSec=soon/; s/^\[Service\]/[Service]\nNoSuchKey=1/' "$broken"
if verify "$broken" >/dev/null; then
  fail "a unit with an unknown key and a bad value passed verification"
else
  pass "a unit with an unknown key and a bad value is rejected"
fi

# ---- the notifications behind Type=notify / WatchdogSec= ---------------------------------------
free_port() {
  local p
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 30000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  return 1
}
# listen SOCKET LOG: records every datagram on the unix socket as one line of LOG.
listen() {
  python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as log:
    while True:
        log.write(s.recv(4096).decode(errors="replace").replace("\n", " ") + "\n")
        log.flush()
' "$1" "$2" &
  pids+=($!)
  local i
  for i in $(seq 50); do [ -S "$1" ] && return 0; sleep 0.1; done
  return 1
}
# notify_check NAME ENV... -- COMMAND...: runs COMMAND with a notify socket and a 1 s watchdog;
# READY=1 within 30 s, two WATCHDOG=1 after it, and on SIGTERM STOPPING=1 and exit 0.
notify_check() {
  local name=$1 sock=$tmp/$1.notify log=$tmp/$1.log out=$tmp/$1.out pid rc i envs=()
  shift
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  : >"$log"
  listen "$sock" "$log" || { fail "$name: the notify listener did not start"; return; }
  env -i PATH="$PATH" HOME="$tmp" NOTIFY_SOCKET="$sock" WATCHDOG_USEC=1000000 "${envs[@]}" \
    "$@" >"$out" 2>&1 &
  pid=$!
  pids+=("$pid")
  for i in $(seq 300); do
    grep -q '^READY=1' "$log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if grep -q '^READY=1' "$log"; then
    pass "$name sends READY=1 ($(awk "BEGIN{print $i/10}") s after start)"
  else
    fail "$name sent no READY=1 within 30 s: $(tail -n 5 "$out" | tr '\n' ' ')"
    kill "$pid" 2>/dev/null
    return
  fi
  sleep 1.5
  if [ "$(grep -c '^WATCHDOG=1' "$log")" -ge 2 ]; then
    pass "$name feeds the watchdog ($(grep -c '^WATCHDOG=1' "$log") WATCHDOG=1 in ~1.5 s with WATCHDOG_USEC=1s)"
  else
    fail "$name sent $(grep -c '^WATCHDOG=1' "$log") WATCHDOG=1 in 1.5 s (WATCHDOG_USEC=1s)"
  fi
  kill -TERM "$pid"
  rc=timeout
  for i in $(seq 250); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid"; rc=$?; break; }
    sleep 0.1
  done
  if [ "$rc" = 0 ] && grep -q '^STOPPING=1' "$log"; then
    pass "$name on SIGTERM: STOPPING=1 and exit 0"
  else
    fail "$name on SIGTERM: exit $rc, STOPPING=1 $(grep -q '^STOPPING=1' "$log" && echo sent || echo missing)"
    kill -KILL "$pid" 2>/dev/null
  fi
}

step "notifications (Type=notify, WatchdogSec=)"
if ! command -v python3 >/dev/null; then
  echo "note: python3 is missing: the notification checks were not run"
else
  token=$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32)
  if p=$(free_port); then
    notify_check gitflock-web GITFLOCK_CLUSTER_TOKEN="$token" GITFLOCK_WEB_PASSWORD=notify-check-pw \
      GITFLOCK_WEB_LISTEN="127.0.0.1:$p" GITFLOCK_WEB_NODES="http://127.0.0.1:1" -- \
      "$repo/target/release/gitflock-web"
  fi
  if ! command -v redis-server >/dev/null; then
    echo "note: redis-server is missing: the node's notifications were not checked"
  elif rp=$(free_port) && gp=$(free_port); then
    redis-server --port "$rp" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" >/dev/null &
    pids+=($!)
    for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$rp") 2>/dev/null && break; sleep 0.1; done
    notify_check gitflock-node GITFLOCK_CLUSTER_TOKEN="$token" GITFLOCK_NODE_NAME=notify-check \
      GITFLOCK_NODE_DATA_DIR="$tmp/node" GITFLOCK_NODE_GRPC_LISTEN="127.0.0.1:$gp" \
      GITFLOCK_REDIS_URL="redis://127.0.0.1:$rp/0" -- "$repo/target/release/gitflock-node"
  fi
fi

echo "systemd-units: $passed passed, $failed failed"
[ "$failed" = 0 ]
