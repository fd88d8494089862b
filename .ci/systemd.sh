#!/usr/bin/env bash
# CI: check the systemd units in conf/systemd/ with `systemd-analyze verify` (and the offline
# `systemd-analyze security` exposure score), without installing anything into /etc/systemd.
#
# verify needs each ExecStart= binary to exist: the units are copied into a temporary
# directory and their /usr/local/bin/<binary> is rewritten to the repository's
# target/release/<binary> (built if gitflock-node is missing), or to /bin/true when the binary
# does not exist yet (gitflock-web, until the dashboard lands). As root it creates the system
# user `gitflock` the units run as, if missing.
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

if [ ! -x target/release/gitflock-node ] || [ ! -x target/release/gitflock ]; then
  step "building the release binaries"
  cargo build --release --bins -p gitflock-rpc || exit 1
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
trap 'rm -rf "$tmp"' EXIT

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
    sed -i "s|^ExecStart=\(-\{0,1\}\)$bin|ExecStart=\1/bin/true|" "$dest"
    echo "      ($(basename "$unit"): $name is not built yet; ExecStart uses /bin/true)" >&2
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

echo "systemd-units: $passed passed, $failed failed"
[ "$failed" = 0 ]
