#!/usr/bin/env python3
"""Offsite-copy benchmark: warden's upload to S3 against ``rclone copyto`` of the same file to the
same server, side by side in one run.

Usage:
    python3 scripts/bench_copy.py [--warden PATH] [--rclone PATH] [--size-mib N] [--rounds N]
                                  [--work DIR] [--markdown FILE]

What it does (BENCHMARKS.md, "Offsite copies", has the method and the figures):

1. Starts ``rclone serve s3`` (the test suite's S3 server, SigV4 checked) on a free loopback port
   over a directory in --work, with one bucket.
2. Writes an incompressible file of --size-mib MiB (default 1024) and a warden config whose
   ``files`` job archives it at zstd level 1 (so the backup is about the file's size) with one
   copy to the server; the archive is made once by the first ``warden backup run``.
3. Per round (--rounds, default 3), in alternating order: ``warden backup run`` (its log's
   ``upload_seconds``, the upload alone, from the first part to the completed multipart upload;
   ``read_back_seconds`` apart) and ``rclone copyto BACKUP s3:bucket/KEY`` of the same archive
   (wall time of the process). Before each, ``sync``; the file stays in the page cache.
4. Peak RSS of each ``warden backup run`` (VmHWM polled every 20 ms, the process itself) against a
   run of the same job without the copy, so the copy's own share shows; and of the second size
   (--size-mib / 4) to show it does not grow with the size.
5. Prints a markdown table: medians, ratios warden upload / rclone copyto per round.

Python 3 standard library only; no shell.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KEY_ID = "bench-key"
SECRET = "bench-secret-not-logged"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_run(argv: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Runs argv; returns wall seconds, peak VmHWM in KiB, and stderr."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            pass
        time.sleep(0.02)
    stderr = proc.stderr.read() if proc.stderr else ""
    wall = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"{argv} failed ({proc.returncode}):\n{stderr}")
    return wall, peak, stderr


def main() -> None:
    here = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warden", default=str(here / "target/release/warden"))
    parser.add_argument("--rclone", default=str(here / "target/test-tools/rclone/bin/rclone"))
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", default=None)
    parser.add_argument("--markdown", default=None)
    args = parser.parse_args()

    work = Path(args.work or tempfile.mkdtemp(prefix="wbc-"))
    work.mkdir(parents=True, exist_ok=True)
    root = work / "s3"
    (root / "bucket").mkdir(parents=True, exist_ok=True)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [args.rclone, "serve", "s3", "--addr", f"127.0.0.1:{port}", "--auth-key", f"{KEY_ID},{SECRET}", str(root)],
        env={"RCLONE_CONFIG": str(work / "rclone.conf"), "PATH": os.environ.get("PATH", "")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        results = run(args, work, endpoint)
    finally:
        server.terminate()
        server.wait()
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    report = render(args, results)
    print(report)
    if args.markdown:
        Path(args.markdown).write_text(report)


def write_noise(path: Path, mib: int) -> None:
    with open(path, "wb") as out:
        for _ in range(mib):
            out.write(os.urandom(1 << 20))


def config(work: Path, name: str, endpoint: str, copies: bool) -> Path:
    (work / "key").write_text(KEY_ID)
    (work / "secret").write_text(SECRET)
    text = (
        f"state_dir: {work}/state-{name}\nhost: {{enabled: false}}\nbackups:\n"
        f"  - name: {name}\n    kind: files\n    paths: [{work}/src-{name}]\n    level: 1\n"
        f"    destination: {work}/out-{name}\n    retention: {{keep_last: 1}}\n"
    )
    if copies:
        text += (
            f"    copies:\n      - name: offsite\n        retention: {{keep_last: 1}}\n"
            f"        s3: {{endpoint: '{endpoint}', bucket: bucket, prefix: {name}, path_style: true,"
            f" access_key_id_file: {work}/key, secret_access_key_file: {work}/secret}}\n"
        )
    path = work / f"{name}{'-copy' if copies else ''}.yml"
    path.write_text(text)
    return path


def run(args: argparse.Namespace, work: Path, endpoint: str) -> dict:
    env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C"}
    rclone_env = dict(env)
    rclone_env.update(
        {
            "RCLONE_CONFIG": str(work / "rclone.conf"),
            "RCLONE_CONFIG_BENCH_TYPE": "s3",
            "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
            "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": KEY_ID,
            "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": SECRET,
            "RCLONE_CONFIG_BENCH_ENDPOINT": endpoint,
            "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true",
        }
    )
    out: dict = {"sizes": {}}
    for name, mib in (("full", args.size_mib), ("quarter", max(1, args.size_mib // 4))):
        (work / f"src-{name}").mkdir(exist_ok=True)
        write_noise(work / f"src-{name}" / "noise.bin", mib)
        plain = config(work, name, endpoint, copies=False)
        copying = config(work, name, endpoint, copies=True)
        uploads, read_backs, rclones, peaks, plain_peaks = [], [], [], [], []
        for round_ in range(args.rounds):
            order = ["warden", "rclone"] if round_ % 2 == 0 else ["rclone", "warden"]
            for which in order:
                subprocess.run(["sync"], check=True)
                if which == "warden":
                    _, peak, log = peak_rss_run([args.warden, "backup", "run", name, "--config", str(copying)], env)
                    up = re.search(r'upload_seconds="?([0-9.]+)', log)
                    back = re.search(r'read_back_seconds="?([0-9.]+)', log)
                    if not up or not back:
                        sys.exit(f"no copy timings in warden's log:\n{log}")
                    uploads.append(float(up.group(1)))
                    read_backs.append(float(back.group(1)))
                    peaks.append(peak)
                else:
                    archive = next((work / f"out-{name}").glob("*.tar.zst"), None)
                    if archive is None:
                        # The first round starts with rclone: make the archive first.
                        peak_rss_run([args.warden, "backup", "run", name, "--config", str(plain)], env)
                        archive = next((work / f"out-{name}").glob("*.tar.zst"))
                    wall, _, _ = peak_rss_run(
                        [args.rclone, "copyto", str(archive), f"bench:bucket/rclone-{name}/{archive.name}"], rclone_env
                    )
                    rclones.append(wall)
            _, plain_peak, _ = peak_rss_run([args.warden, "backup", "run", name, "--config", str(plain)], env)
            plain_peaks.append(plain_peak)
        size = next((work / f"out-{name}").glob("*.tar.zst")).stat().st_size
        out["sizes"][name] = {
            "bytes": size,
            "upload": uploads,
            "read_back": read_backs,
            "rclone": rclones,
            "peak_kib": peaks,
            "plain_peak_kib": plain_peaks,
        }
    return out


def render(args: argparse.Namespace, results: dict) -> str:
    lines = [
        f"warden `{args.warden}`, rclone `{args.rclone}`, {args.rounds} rounds, "
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, load {os.getloadavg()[0]:.2f}",
        "",
        "| size | backup MiB | warden upload s (median) | rclone copyto s (median) | ratio (per round) | warden read-back s | peak RSS with copy MiB | without MiB |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for name, r in results["sizes"].items():
        ratios = [u / c for u, c in zip(r["upload"], r["rclone"])]
        lines.append(
            f"| {name} | {r['bytes'] / 2**20:.0f} | {statistics.median(r['upload']):.2f} | "
            f"{statistics.median(r['rclone']):.2f} | "
            f"{statistics.median(r['upload']) / statistics.median(r['rclone']):.2f}× "
            f"({', '.join(f'{x:.2f}' for x in ratios)}) | {statistics.median(r['read_back']):.2f} | "
            f"{max(r['peak_kib']) / 1024:.1f} | {max(r['plain_peak_kib']) / 1024:.1f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
