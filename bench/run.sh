#!/usr/bin/env bash
# gitflock's benchmarks: `bench/run.sh NAME` runs bench/NAME.sh, which prints key=value lines
# on stdout (progress on stderr).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
names=$(find "$here" -maxdepth 1 -name '*.sh' ! -name run.sh ! -name lib.sh -printf '%f\n' | sed 's/\.sh$//' | sort | paste -sd'|')
name=${1:-}
if [[ ! "$name" =~ ^[a-z0-9_-]+$ ]] || [ ! -f "$here/$name.sh" ]; then
  echo "usage: bench/run.sh {$names}" >&2
  exit 2
fi
shift
exec bash "$here/$name.sh" "$@"
