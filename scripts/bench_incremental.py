#!/usr/bin/env python3
"""Incremental files backup benchmark: a full backup of a tree against an incremental one after
1 % of its files changed, the same job, side by side in one run.

Usage:
    python3 scripts/bench_incremental.py [--warden PATH] [--size-mib N] [--file-kib N]
                                         [--changed-percent P] [--rounds N] [--work DIR]

What it does (BENCHMARKS.md, "Incremental files backups", has the method and the figures):

1. Writes a tree of --size-mib MiB (default 1024) in files of --file-kib KiB (default 256), in
   directories of 256 files, half incompressible and half text-like, and a warden config with
   one ``files`` job (zstd level 3, the default) with ``incremental: {full_every: 2}``, so runs
   alternate: full, incremental, full, incremental.
2. Per round (--rounds, default 3): ``warden backup run`` (a full; wall time of the process and
   its peak RSS), then rewrites --changed-percent (default 1) of the files, picked at random,
   with new content of the same size, then ``warden backup run`` again (an incremental). Before
   each run, ``sync``; the tree stays in the page cache for both, so the comparison is of the
   work each does, not of the disk.
3. Checks each run's level from its manifest (``parent``) and that the incremental archived
   exactly the changed files, then prints a markdown table: medians and the ratio incremental /
   full per round.

Python 3 standard library only; no shell.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(argv: list[str]) -> tuple[float, int]:
    """Runs argv to success; returns wall seconds and peak VmHWM in KiB."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            pass
        time.sleep(0.01)
    elapsed = time.monotonic() - start
    stderr = proc.stderr.read() if proc.stderr else ""
    if proc.returncode != 0:
        sys.exit(f"{argv} failed ({proc.returncode}):\n{stderr}")
    return elapsed, peak


def content(size: int, text: bool, rng: random.Random) -> bytes:
    if text:
        words = [b"warden", b"backup", b"tool", b"registry", b"audit", b"log", b"entry", b"\n"]
        out = bytearray()
        while len(out) < size:
            out += rng.choice(words) + b" "
        return bytes(out[:size])
    return os.urandom(size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warden", default="target/release/warden")
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--file-kib", type=int, default=256)
    parser.add_argument("--changed-percent", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", default=None)
    args = parser.parse_args()

    warden = str(Path(args.warden).resolve())
    work = Path(args.work or tempfile.mkdtemp(prefix="warden-bench-inc-"))
    tree = work / "tree"
    if work.exists():
        shutil.rmtree(work / "out", ignore_errors=True)
        shutil.rmtree(work / "state", ignore_errors=True)
    rng = random.Random(42)
    size = args.file_kib * 1024
    count = args.size_mib * 1024 // args.file_kib
    files = []
    for i in range(count):
        path = tree / f"d{i // 256:04}" / f"f{i:06}.dat"
        files.append((path, i % 2 == 1))
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content(size, i % 2 == 1, rng))
    config = work / "warden.yml"
    config.write_text(
        f"state_dir: {work}/state\nhost: {{enabled: false}}\nbackups:\n"
        f"  - name: tree\n    kind: files\n    paths: [{tree}]\n    destination: {work}/out\n"
        f"    incremental: {{full_every: 2}}\n"
    )
    changed = max(1, round(count * args.changed_percent / 100))
    print(f"tree: {count} files of {args.file_kib} KiB ({args.size_mib} MiB) in {work}; "
          f"{changed} changed per round", file=sys.stderr)

    def newest() -> dict:
        out = subprocess.run([warden, "backup", "list", "tree", "--output", "json", "--config", str(config)],
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out)[0]

    fulls, incs, ratios, full_rss, inc_rss = [], [], [], [], []
    for round_ in range(args.rounds):
        subprocess.run(["sync"], check=True)
        seconds, rss = run([warden, "backup", "run", "tree", "--config", str(config)])
        manifest = newest()
        if manifest.get("parent"):
            sys.exit(f"round {round_}: expected a full, got {manifest['id']} on {manifest['parent']}")
        fulls.append(seconds)
        full_rss.append(rss)
        for path, text in rng.sample(files, changed):
            path.write_bytes(content(size, text, rng))
        subprocess.run(["sync"], check=True)
        seconds, rss = run([warden, "backup", "run", "tree", "--config", str(config)])
        manifest = newest()
        if not manifest.get("parent"):
            sys.exit(f"round {round_}: expected an incremental, got a full")
        if manifest["files"]["files"] != changed:
            sys.exit(f"round {round_}: the incremental holds {manifest['files']['files']} files, {changed} changed")
        incs.append(seconds)
        inc_rss.append(rss)
        ratios.append(seconds / fulls[-1])
        print(f"round {round_ + 1}: full {fulls[-1]:.3f} s, incremental {seconds:.3f} s "
              f"({seconds / fulls[-1]:.3f}x), {manifest['size_bytes']} bytes", file=sys.stderr)

    print(f"| tree | full (median) | incremental, {args.changed_percent:g} % changed (median) | "
          f"ratio per round | peak RSS full / incremental |")
    print("|---|---|---|---|---|")
    print(f"| {count} × {args.file_kib} KiB | {statistics.median(fulls):.3f} s | "
          f"{statistics.median(incs):.3f} s | {', '.join(f'{r:.3f}×' for r in ratios)} | "
          f"{max(full_rss) / 1024:.1f} / {max(inc_rss) / 1024:.1f} MiB |")


if __name__ == "__main__":
    main()
