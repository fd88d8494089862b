#!/usr/bin/env python3
"""Upstream repositories for the mirror benchmark, made with one `git fast-import` each.

Usage: make_repos.py DIR N [SCRATCH]
Makes DIR/org<k>/repo<iii>.git for i in 0..N-1 (bare, default branch main, refs packed):
- most repos: 5-20 commits on main and 3-5 branches in all (each side branch 1-3 commits
  off some main commit);
- every fifth repo (i % 5 == 4): also 300 commits on main and 2000-3000 tags on them, half
  annotated, half lightweight (`v<major>.<minor>.<patch>` / `build-<n>`).
Each repo is built in SCRATCH (default /dev/shm when it exists) and then copied to DIR:
creating thousands of loose ref files is slow on some disks (~3 ms a file on the bench VM),
and after `pack-refs` a repo is a handful of files. Not idempotent: callers make DIR once
(under a temporary name) and rename it when this succeeded.
"""
import os
import shutil
import subprocess
import tempfile
import sys
from concurrent.futures import ThreadPoolExecutor


def tag_heavy(i):
    return i % 5 == 4


def stream(i):
    out = []
    w = out.append
    t0 = 1_700_000_000 + i * 3600
    ident = f"Bench Dev <dev{i % 7}@example.com>"
    mark = 0
    main_marks = []
    n_main = 300 if tag_heavy(i) else 5 + i % 16

    def commit(ref, parent, t, path, text):
        nonlocal mark
        mark += 1
        msg = f"change {mark} of repo {i}\n".encode()
        body = text.encode()
        w(f"commit {ref}\nmark :{mark}\n".encode())
        w(f"author {ident} {t} +0000\ncommitter {ident} {t} +0000\n".encode())
        w(f"data {len(msg)}\n".encode() + msg)
        if parent:
            w(f"from :{parent}\n".encode())
        w(f"M 100644 inline {path}\ndata {len(body)}\n".encode() + body + b"\n")
        return mark

    parent = 0
    for c in range(n_main):
        path = ["README.md", "src/main.c", "src/util.c", "Makefile", "docs/guide.txt"][c % 5]
        text = f"# repo {i}\nrevision {c}\n" + ("lorem ipsum dolor sit amet\n" * (3 + c % 20))
        parent = commit("refs/heads/main", parent, t0 + c * 60, path, text)
        main_marks.append(parent)
    n_branches = 3 + i % 3  # main included
    for b in range(1, n_branches):
        name = ["develop", "release/1.x", "feature/io", "fix/leak"][b - 1]
        base = main_marks[(b * 7 + i) % len(main_marks)]
        p = base
        for c in range(1 + (i + b) % 3):
            p = commit(f"refs/heads/{name}", p, t0 + 100_000 + b * 1000 + c,
                       f"branch/{b}.txt", f"branch {name} change {c}\n")
    if tag_heavy(i):
        n_tags = 2000 + (i * 7919) % 1001
        for k in range(n_tags):
            target = main_marks[k * len(main_marks) // n_tags]
            if k % 2 == 0:
                msg = f"release {k}\n".encode()
                w(f"tag v{k // 100}.{(k // 10) % 10}.{k}\nfrom :{target}\n".encode())
                w(f"tagger {ident} {t0 + 200_000 + k} +0000\n".encode())
                w(f"data {len(msg)}\n".encode() + msg)
            else:
                w(f"reset refs/tags/build-{k}\nfrom :{target}\n\n".encode())
    return b"".join(out)


def make(root, scratch, i):
    rel = os.path.join(f"org{i % 10}", f"repo{i:03d}.git")
    path = os.path.join(scratch, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    q = dict(check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["git", "init", "-q", "--template=", "--bare", "-b", "main", path], **q)
    subprocess.run(["git", "-c", "fastimport.unpackLimit=0", "-C", path, "fast-import", "--quiet"], input=stream(i), **q)
    subprocess.run(["git", "-C", path, "pack-refs", "--all", "--prune"], **q)
    shutil.copytree(path, os.path.join(root, rel))
    shutil.rmtree(path)


def main():
    root, n = sys.argv[1], int(sys.argv[2])
    base = sys.argv[3] if len(sys.argv) > 3 else ("/dev/shm" if os.path.isdir("/dev/shm") else None)
    with tempfile.TemporaryDirectory(prefix="gitflock-mirror-gen.", dir=base) as scratch:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda i: make(root, scratch, i), range(n)))


if __name__ == "__main__":
    main()
