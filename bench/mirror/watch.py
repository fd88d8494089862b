#!/usr/bin/env python3
"""Waits on `gitflock mirror list --json` for the mirror benchmark (GITFLOCK_SERVER and
GITFLOCK_TOKEN from the environment; CLI = path of the `gitflock` binary).

  watch.py CLI ready N TIMEOUT_S
      until N mirrors have cloned (clone_url and last_fetch set) with no last_error;
      prints `ready refs=<sum of refs> tag_heavy=<mirrors with over 1000 refs>`.
  watch.py CLI pass N T0_MS TIMEOUT_S [POLL_S]
      until N mirrors have a last_fetch at or after T0_MS (ms since the epoch); a mirror
      showing a last_error fails. Prints `done_ms=` (newest last_fetch − T0, the node's own
      record of when the last mirror finished) and `seen_ms=` (when this poll saw it).
  watch.py CLI head TEXT SHA T0_MS TIMEOUT_S
      until the mirror whose URL contains TEXT shows head ending in SHA; prints `seen_ms=`
      (now − T0 at the poll that saw it) and `change_ms=` (its last_change − T0).
Polls are spaced POLL_S (default 0.1 s; 0.02 s for head): each is one ListMirrors call the
node serves, so the pass watcher stays sparse and takes its end time from the node's record.
"""
import json
import subprocess
import sys
import time
from datetime import datetime


def ms(text):
    if not text:
        return 0
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000 + 0.5)


def now_ms():
    return int(time.time() * 1000)


def mirrors(cli, text=""):
    cmd = [cli, "mirror", "list", "--json"] + (["--text", text] if text else [])
    return json.loads(subprocess.run(cmd, check=True, capture_output=True).stdout)


def main():
    cli, mode = sys.argv[1], sys.argv[2]
    a = sys.argv[3:]
    if mode == "ready":
        n, deadline = int(a[0]), time.time() + float(a[1])
        while True:
            ms_ = mirrors(cli)
            errs = [m for m in ms_ if m["last_error"]]
            ok = [m for m in ms_ if m["clone_url"] and m["last_fetch"] and not m["last_error"]]
            if len(ok) >= n:
                print(f"ready refs={sum(m['refs'] for m in ok)} "
                      f"tag_heavy={sum(1 for m in ok if m['refs'] > 1000)}")
                return
            if time.time() > deadline:
                for m in errs[:5]:
                    print(f"{m['url']}: {m['last_error']}", file=sys.stderr)
                sys.exit(f"only {len(ok)} of {n} mirrors cloned ({len(errs)} with errors)")
            time.sleep(0.5)
    elif mode == "pass":
        n, t0, deadline = int(a[0]), int(a[1]), time.time() + float(a[2])
        poll = float(a[3]) if len(a) > 3 else 0.1
        while True:
            ms_ = mirrors(cli)
            done = [ms(m["last_fetch"]) for m in ms_ if ms(m["last_fetch"]) >= t0]
            errs = [m for m in ms_ if m["last_error"]]
            if errs:
                sys.exit(f"{len(errs)} mirrors failed, e.g. {errs[0]['url']}: {errs[0]['last_error']}")
            if len(done) >= n:
                print(f"done_ms={max(done) - t0} seen_ms={now_ms() - t0}")
                return
            if time.time() > deadline:
                sys.exit(f"only {len(done)} of {n} mirrors ran after the trigger")
            time.sleep(poll)
    elif mode == "head":
        text, sha, t0, deadline = a[0], a[1], int(a[2]), time.time() + float(a[3])
        while True:
            for m in mirrors(cli, text):
                if m["head"].endswith(sha):
                    print(f"seen_ms={now_ms() - t0} change_ms={ms(m['last_change']) - t0}")
                    return
            if time.time() > deadline:
                sys.exit(f"the mirror of {text} did not reach {sha}")
            time.sleep(0.02)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
