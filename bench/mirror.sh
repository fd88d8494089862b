#!/usr/bin/env bash
# Mirror benchmark: a refresh pass over REPOS unchanged mirrored repositories on one gitflock
# node, against the seed GitMirror's way (a `git fetch` process per repo on 10 threads) over
# the same repos, same machine, same run; then the upstream-commit → mirror lag, by polling
# and by a push-webhook-style sync.
#
#   bench/run.sh mirror          env: REPOS=200 PASSES=3 CONCURRENCY=16 POLL_INTERVAL=5
#                                     POLL_SAMPLES=8 HOOK_SAMPLES=10
#                                     GITFLOCK_SHARED=<repo>/../shared
#                                     MIRROR_CACHE=<target dir>/bench-cache/mirror
#                                     PACKED_DIAG=1 (0: skip the packed-refs diagnostic)
#
# 1. upstreams: REPOS bare repos (bench/mirror/make_repos.py: 5-20 commits and 3-5 branches
#    each; every fifth also 300 commits and 2000-3000 tags, half annotated), plus the seed's
#    mirrors of them (`git clone --mirror`), made once and cached under MIRROR_CACHE by a
#    version string; all served by `git daemon` on loopback (git://127.0.0.1:PORT/…);
# 2. one node (concurrency CONCURRENCY, mirror interval 3600 s so only the bench triggers
#    runs, serving its mirrors with its own git daemon) on a private Redis; `mirror add` of
#    every repo, then wait until all have cloned;
# 3. one warm-up round, then PASSES rounds of: a gitflock pass (`gitflock mirror sync` of all
#    URLs, wall time = that call's start → the newest last_fetch the node recorded, node CPU =
#    utime+stime+cutime+cstime of the node across the pass), a baseline pass
#    ($GITFLOCK_SHARED/bench/gitmirror_baseline.sh over the seed's mirrors: its wall time and
#    the CPU of its git processes), and a plain `git ls-remote` pass on 10 threads (the
#    upstream's floor, for reference). Medians are reported, every value is logged, and so
#    is the machine's other busy CPU during each pass (contention; ~0.3-0.5 s of it is the
#    bench's own helpers). Then a diagnostic: the node's mirrors' refs packed by hand and
#    PASSES more gitflock passes (diag_* keys; gitflock itself never packs them, see
#    docs/benchmarks.md);
# 4. lag: a mirror with `--interval POLL_INTERVAL`: commit + push to its upstream at a random
#    moment, poll `mirror list` (20 ms) until the new head shows (POLL_SAMPLES times); then a
#    mirror on the long interval: commit + push, `gitflock mirror sync URL` at once (what a
#    push webhook does), poll until the head shows (HOOK_SAMPLES times).
# Prints key=value lines on stdout; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(git -C "$here" rev-parse --show-toplevel)
shared=${GITFLOCK_SHARED:-$top/../shared}
REPOS=${REPOS:-200}
PASSES=${PASSES:-3}
CONCURRENCY=${CONCURRENCY:-16}
POLL_INTERVAL=${POLL_INTERVAL:-5}
POLL_SAMPLES=${POLL_SAMPLES:-8}
HOOK_SAMPLES=${HOOK_SAMPLES:-10}
# Bump when make_repos.py or the seed mirrors' setup changes: the cache is keyed by it.
cache_version=v1

bench_name=mirror
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

tmp=$(mktemp -d -t gitflock-mirror.XXXXXX)
daemon_pid=""
node_children=""
cleanup() {
  local rc=$?
  if [ -n "$node_pid" ]; then
    node_children=$(pgrep -P "$node_pid" 2>/dev/null | paste -sd' ' || true)
  fi
  stop_node
  # The node kills its own git daemon when it stops; after a SIGKILL it could not.
  for p in $node_children; do
    if alive "$p"; then kill -TERM "$p" 2>/dev/null || true; fi
  done
  if [ -n "$daemon_pid" ]; then
    kill -TERM "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  stop_redis
  if [ "$rc" -ne 0 ] && [ -s "$tmp/node.log" ]; then
    log "failed (status $rc); the node's last log lines:"
    tail -n 20 "$tmp/node.log" >&2
  fi
  [ -z "${lag_root:-}" ] || rm -rf "$lag_root"
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# CPU seconds (user+sys, own and waited-for children) of a process so far.
cpu_s() {
  local ticks
  ticks=$(sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 + $14 + $15 }')
  awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}
# CPU seconds the whole machine has been busy (all cores; /proc/stat), to see contention.
busy_s() {
  awk -v hz="$(getconf CLK_TCK)" '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat
}
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }
# median of the arguments (the lower middle for an even count), and "a b c" lists.
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
maximum() { printf '%s\n' "$@" | sort -g | tail -n 1; }
now_ms() { date +%s%3N; }

log "building (release)"
(cd "$top" && cargo build --release -q --bins -p gitflock-rpc -p gitflock-cli)
target=$(cd "$top" && cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
node_bin=$target/release/gitflock-node
cli=$target/release/gitflock

# 1. Upstreams and the seed's mirrors of them, cached.
cache=${MIRROR_CACHE:-$target/bench-cache/mirror}/$cache_version-n$REPOS
if [ ! -f "$cache/done" ]; then
  log "making $REPOS upstream repos and the seed's mirrors of them in $cache"
  rm -rf "$cache.tmp"
  mkdir -p "$cache.tmp"
  python3 "$here/mirror/make_repos.py" "$cache.tmp/upstream" "$REPOS"
  (cd "$cache.tmp/upstream" && find . -name '*.git' -type d -prune | sed 's|^\./||' | sort) |
    xargs -P 4 -I{} git clone -q --mirror --no-local "$cache.tmp/upstream/{}" "$cache.tmp/baseline/{}"
  touch "$cache.tmp/done"
  rm -rf "$cache"
  mv "$cache.tmp" "$cache"
fi
upstream=$cache/upstream
mapfile -t rels < <(cd "$upstream" && find . -path ./lag -prune -o -name '*.git' -type d -print -prune |
  sed 's|^\./||' | sort)
[ "${#rels[@]}" -eq "$REPOS" ] || { log "expected $REPOS repos in $upstream, found ${#rels[@]}"; exit 1; }
tag_heavy=0
for r in "${rels[@]}"; do
  n=$(grep -c ' refs/tags/' "$upstream/$r/packed-refs" || true)
  [ "$n" -lt 1000 ] || tag_heavy=$((tag_heavy + 1))
done

# The upstreams' git daemon; lag repos live beside the cached ones, made fresh each run.
lag_root=$upstream/lag
rm -rf "$lag_root"
mkdir -p "$lag_root"
dport=$(free_port)
# git-daemon itself (not `git daemon`, whose pid is a wrapper that waits for it), so that
# its cutime+cstime gathers the upload-packs it served.
"$(git --exec-path)/git-daemon" --reuseaddr --export-all --max-connections=64 --base-path="$upstream" \
  --listen=127.0.0.1 --port="$dport" "$upstream" >"$tmp/daemon.log" 2>&1 &
daemon_pid=$!
base=git://127.0.0.1:$dport
urls=()
for r in "${rels[@]}"; do urls+=("$base/$r"); done
for _ in $(seq 50); do git ls-remote "${urls[0]}" >/dev/null 2>&1 && break; sleep 0.1; done
git ls-remote "${urls[0]}" >/dev/null
# The seed's mirrors fetch from this run's port.
printf '%s\n' "${rels[@]}" |
  xargs -P 2 -I{} git -C "$cache/baseline/{}" config remote.origin.url "$base/{}"

# 2. Redis and one node; every repo mirrored.
start_redis
grpc_port=$(free_port)
serve_port=$(free_port)
new_token
export GITFLOCK_SERVER=http://127.0.0.1:$grpc_port
env -i PATH="$PATH" HOME="${HOME:-/tmp}" RUST_LOG=info \
  GITFLOCK_NODE_NAME=bench1 \
  GITFLOCK_NODE_DATA_DIR="$tmp/bench1" \
  GITFLOCK_NODE_GRPC_LISTEN="127.0.0.1:$grpc_port" \
  GITFLOCK_REDIS_URL="redis://127.0.0.1:$redis_port/0" \
  GITFLOCK_CLUSTER_TOKEN="$GITFLOCK_TOKEN" \
  GITFLOCK_NODE_CONCURRENCY="$CONCURRENCY" \
  GITFLOCK_MIRROR_SERVE_LISTEN="127.0.0.1:$serve_port" \
  GITFLOCK_MIRROR_INTERVAL_SECS=3600 \
  "$node_bin" >>"$tmp/node.log" 2>&1 &
node_pid=$!
for _ in $(seq 300); do "$cli" status >/dev/null 2>&1 && break; alive "$node_pid" || break; sleep 0.1; done
"$cli" status >/dev/null

log "adding $REPOS mirrors; waiting for their first clones"
t=$(now_ms)
printf '%s\n' "${urls[@]}" | xargs -P 4 -n 1 "$cli" mirror add >/dev/null
ready=$(python3 "$here/mirror/watch.py" "$cli" ready "$REPOS" 1800)
log "all $REPOS mirrors cloned in $(( $(now_ms) - t )) ms ($ready)"
# The node's clone URLs work (its git daemon serves them).
clone_url=$("$cli" mirror list --json | jq -r '.[0].clone_url')
git ls-remote "$clone_url" >/dev/null || { log "the node's clone URL $clone_url does not answer"; exit 1; }

# 3. Passes. The pass watcher's ListMirrors calls (every 0.25 s) are part of the node's CPU
# figure; what one costs the node is measured here, idle, to read that figure by.
c0=$(cpu_s "$node_pid")
for _ in $(seq 20); do "$cli" mirror list --json >/dev/null; done
list_cpu_ms=$(awk -v d="$(sub "$(cpu_s "$node_pid")" "$c0")" 'BEGIN { printf "%.1f", d * 1000 / 20 }')
g_wall=() g_seen=() g_cpu=() g_redis=() g_up=() g_other=() b_wall=() b_cpu=() b_up=() b_other=()
l_wall=() g_sync=()
gitflock_pass() {
  local c0 r0 u0 m0 t0 out
  c0=$(cpu_s "$node_pid") r0=$(cpu_s "$redis_pid") u0=$(cpu_s "$daemon_pid") m0=$(busy_s)
  t0=$(now_ms)
  "$cli" mirror sync "${urls[@]}" >/dev/null
  p_sync=$(awk -v m="$(( $(now_ms) - t0 ))" 'BEGIN { printf "%.3f", m / 1000 }')
  out=$(python3 "$here/mirror/watch.py" "$cli" pass "$REPOS" "$t0" 600 0.25)
  p_cpu=$(sub "$(cpu_s "$node_pid")" "$c0")
  p_redis=$(sub "$(cpu_s "$redis_pid")" "$r0")
  p_up=$(sub "$(cpu_s "$daemon_pid")" "$u0")
  # Busy CPU of the machine that was neither the node, Redis nor the upstream's daemon.
  p_other=$(awk -v m="$(sub "$(busy_s)" "$m0")" -v a="$p_cpu" -v b="$p_redis" -v c="$p_up" \
    'BEGIN { printf "%.2f", m - a - b - c }')
  p_wall=$(awk -v m="$(value done_ms "$out")" 'BEGIN { printf "%.3f", m / 1000 }')
  p_seen=$(awk -v m="$(value seen_ms "$out")" 'BEGIN { printf "%.3f", m / 1000 }')
}
baseline_pass() {
  local u0 m0 out
  u0=$(cpu_s "$daemon_pid") m0=$(busy_s)
  out=$(bash "$shared/bench/gitmirror_baseline.sh" "$cache/baseline")
  [ "$(value repos "$out")" = "$REPOS" ] || { log "baseline: $out"; exit 1; }
  p_wall=$(value seconds "$out")
  p_cpu=$(value cpu_seconds "$out")
  p_up=$(sub "$(cpu_s "$daemon_pid")" "$u0")
  p_other=$(awk -v m="$(sub "$(busy_s)" "$m0")" -v a="$p_cpu" -v c="$p_up" \
    'BEGIN { printf "%.2f", m - a - c }')
}
ls_remote_pass() {
  local t0
  t0=$(now_ms)
  printf '%s\n' "${urls[@]}" | xargs -P 10 -n 1 git ls-remote -q >/dev/null
  p_wall=$(awk -v m="$(( $(now_ms) - t0 ))" 'BEGIN { printf "%.3f", m / 1000 }')
}

log "warm-up round (not counted)"
gitflock_pass
log "  gitflock: ${p_wall} s, node cpu ${p_cpu} s"
baseline_pass
log "  baseline: ${p_wall} s, git cpu ${p_cpu} s"
for i in $(seq "$PASSES"); do
  gitflock_pass
  g_wall+=("$p_wall") g_seen+=("$p_seen") g_cpu+=("$p_cpu") g_redis+=("$p_redis") g_up+=("$p_up")
  g_other+=("$p_other") g_sync+=("$p_sync")
  log "pass $i gitflock: ${p_wall} s (seen ${p_seen} s, sync call ${p_sync} s), node cpu ${p_cpu} s, redis cpu ${p_redis} s, upstream cpu ${p_up} s, other cpu ${p_other} s"
  baseline_pass
  b_wall+=("$p_wall") b_cpu+=("$p_cpu") b_up+=("$p_up") b_other+=("$p_other")
  log "pass $i baseline: ${p_wall} s, git cpu ${p_cpu} s, upstream cpu ${p_up} s, other cpu ${p_other} s"
  ls_remote_pass
  l_wall+=("$p_wall")
  log "pass $i ls-remote: ${p_wall} s"
done
rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$node_pid/status")
hwm_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$node_pid/status")
g=$(median "${g_wall[@]}") b=$(median "${b_wall[@]}")
gc=$(median "${g_cpu[@]}") bc=$(median "${b_cpu[@]}")

# Diagnostic, not gitflock as it ships: the node's fetches (libgit2) leave every ref a loose
# file and nothing packs them, so each check of a tag-heavy mirror opens thousands of files.
# Pack them (no run is due: the interval is an hour) and measure PASSES more gitflock passes.
mirrors=$tmp/bench1/mirrors
loose_refs=$(find "$mirrors" -path '*.git/refs/*' -type f | wc -l)
d_wall=() d_cpu=()
if [ "${PACKED_DIAG:-1}" = 1 ]; then
  log "diagnostic: git pack-refs --all in the node's $REPOS mirrors ($loose_refs loose refs)"
  find "$mirrors" -name '*.git' -type d -prune -print0 |
    xargs -0 -P 2 -I{} git -C {} pack-refs --all --prune
  for i in $(seq "$PASSES"); do
    gitflock_pass
    d_wall+=("$p_wall") d_cpu+=("$p_cpu")
    log "diagnostic pass $i gitflock (refs packed): ${p_wall} s, node cpu ${p_cpu} s, other cpu ${p_other} s"
  done
fi

# 4. Lag.
commit_push() { # NAME: one more commit on main of lag/NAME, pushed; prints its sha
  local w=$tmp/work-$1
  echo "$(now_ms) $RANDOM" >>"$w/log.txt"
  git -C "$w" add log.txt
  git -C "$w" -c user.name=bench -c user.email=bench@example.com commit -q -m "change"
  git -C "$w" push -q "$lag_root/$1.git" main
  git -C "$w" rev-parse HEAD
}
for name in poll hook; do
  git init -q --bare -b main "$lag_root/$name.git"
  git init -q -b main "$tmp/work-$name"
  commit_push "$name" >/dev/null
done
"$cli" mirror add "$base/lag/poll.git" --interval "$POLL_INTERVAL" >/dev/null
"$cli" mirror add "$base/lag/hook.git" >/dev/null
python3 "$here/mirror/watch.py" "$cli" ready "$((REPOS + 2))" 120 >/dev/null

log "poll lag: $POLL_SAMPLES commits at random moments, mirror interval $POLL_INTERVAL s"
poll_lag=() poll_change=()
for i in $(seq "$POLL_SAMPLES"); do
  sleep "$(awk -v s="$RANDOM" -v i="$POLL_INTERVAL" 'BEGIN { printf "%.3f", s / 32768 * i }')"
  sha=$(commit_push poll)
  t0=$(now_ms)
  out=$(python3 "$here/mirror/watch.py" "$cli" head lag/poll "$sha" "$t0" $((POLL_INTERVAL * 3 + 30)))
  poll_lag+=("$(value seen_ms "$out")") poll_change+=("$(value change_ms "$out")")
  log "  sample $i: seen after $(value seen_ms "$out") ms (fetched at +$(value change_ms "$out") ms)"
done

log "hook lag: $HOOK_SAMPLES commits, each followed at once by \`gitflock mirror sync\`"
hook_lag=() hook_change=()
for i in $(seq "$HOOK_SAMPLES"); do
  sleep 0.$((RANDOM % 10))
  sha=$(commit_push hook)
  t0=$(now_ms)
  "$cli" mirror sync "$base/lag/hook.git" >/dev/null
  out=$(python3 "$here/mirror/watch.py" "$cli" head lag/hook "$sha" "$t0" 60)
  hook_lag+=("$(value seen_ms "$out")") hook_change+=("$(value change_ms "$out")")
  log "  sample $i: seen after $(value seen_ms "$out") ms (fetched at +$(value change_ms "$out") ms)"
done

cat <<OUT
repos=$REPOS
tag_heavy_repos=$tag_heavy
mirror_refs=$(value refs "$ready")
gitflock_pass_s=$g
baseline_pass_s=$b
pass_ratio_vs_gitmirror=$(awk -v a="$b" -v b="$g" 'BEGIN { printf "%.2f", a / b }')
node_cpu_s=$gc
baseline_cpu_s=$bc
client_cpu_ratio=$(awk -v a="$bc" -v b="$gc" 'BEGIN { printf (b > 0 ? "%.1f" : "inf"), (b > 0 ? a / b : 0) }')
ls_remote_pass_s=$(median "${l_wall[@]}")
gitflock_pass_seen_s=$(median "${g_seen[@]}")
sync_call_s=$(median "${g_sync[@]}")
redis_cpu_s=$(median "${g_redis[@]}")
upstream_cpu_gitflock_s=$(median "${g_up[@]}")
upstream_cpu_baseline_s=$(median "${b_up[@]}")
other_cpu_gitflock_s_all=$(IFS=,; echo "${g_other[*]}")
other_cpu_baseline_s_all=$(IFS=,; echo "${b_other[*]}")
gitflock_pass_s_all=$(IFS=,; echo "${g_wall[*]}")
baseline_pass_s_all=$(IFS=,; echo "${b_wall[*]}")
node_cpu_s_all=$(IFS=,; echo "${g_cpu[*]}")
baseline_cpu_s_all=$(IFS=,; echo "${b_cpu[*]}")
ls_remote_pass_s_all=$(IFS=,; echo "${l_wall[*]}")
interval_secs=$POLL_INTERVAL
poll_lag_ms_p50=$(median "${poll_lag[@]}")
poll_lag_ms_max=$(maximum "${poll_lag[@]}")
poll_lag_ms_all=$(IFS=,; echo "${poll_lag[*]}")
hook_lag_ms_p50=$(median "${hook_lag[@]}")
hook_lag_ms_max=$(maximum "${hook_lag[@]}")
hook_lag_ms_all=$(IFS=,; echo "${hook_lag[*]}")
hook_fetch_ms_p50=$(median "${hook_change[@]}")
hook_fetch_ms_max=$(maximum "${hook_change[@]}")
poll_fetch_ms_max=$(maximum "${poll_change[@]}")
list_call_node_cpu_ms=$list_cpu_ms
node_loose_refs=$loose_refs
diag_packed_refs_pass_s=$([ "${#d_wall[@]}" -eq 0 ] || median "${d_wall[@]}")
diag_packed_refs_node_cpu_s=$([ "${#d_cpu[@]}" -eq 0 ] || median "${d_cpu[@]}")
diag_packed_refs_client_cpu_ratio=$([ "${#d_cpu[@]}" -eq 0 ] || awk -v a="$bc" -v b="$(median "${d_cpu[@]}")" 'BEGIN { printf (b > 0 ? "%.1f" : "inf"), (b > 0 ? a / b : 0) }')
node_rss_mb=$(awk -v kb="$rss_kb" 'BEGIN { printf "%.1f", kb / 1024 }')
node_peak_rss_mb=$(awk -v kb="$hwm_kb" 'BEGIN { printf "%.1f", kb / 1024 }')
concurrency=$CONCURRENCY
passes=$PASSES
OUT
