#!/usr/bin/env python3
"""Side-by-side backup benchmark: ``warden backup run JOB`` against pg_dump, sqlite3 .backup, tar -czf.

Usage:
    python3 scripts/bench_backup.py [--warden PATH] [--runs N] [--work DIR] [--only KINDS]
                                    [--json FILE] [--markdown FILE]

What it does (see BENCHMARKS.md, section "Backups", for the method and the recorded figures):

1. Builds the data sets in --work (default /tmp/wb, removed at exit unless --keep-data):
   - a throwaway PostgreSQL cluster (initdb/pg_ctl of the newest /usr/lib/postgresql/*/bin, as the
     ``postgres`` user when root, trust auth, a free loopback port) holding ``pgbench -i -s 67``
     (~1 GB, checked with pg_database_size); fsync/full_page_writes/synchronous_commit are off,
     which only speeds up the load: the benchmark reads the database, it never waits on its WAL;
   - ``big.db``: a ~1 GiB SQLite file (rollback journal, the default) built with Python's sqlite3:
     an integer key, two text columns, a 1 KiB random blob per row, and an index on a text column;
     plus ``small.db``, the same at ~1/4 the size;
   - ``tree``: ~1 GiB of files: half random bytes in 50-100 MiB files, 3/8 compressible log
     lines, 1/8 a few thousand small JSON files in nested directories; plus ``tree-small``, the
     same mix at ~1/4 the size.
2. Writes one warden config with a job per case (checked with ``warden check-config``).
3. Runs each kind's commands interleaved, round by round (the order rotates every round so no
   command always follows the same one), --runs rounds (default 3):
   - postgres: ``pg_dump -Fc -f OUT`` (the same pg_dump binary warden finds) vs ``warden backup
     run pg``;
   - sqlite: ``sqlite3 big.db ".backup OUT"`` vs ``warden backup run lite`` (PRAGMA
     integrity_check of the copy, the default) vs ``lite-quick`` (PRAGMA quick_check);
   - files: ``tar -czf OUT -C / tmp/wb/tree`` vs ``warden backup run tree-gz`` (gzip) vs
     ``warden backup run tree`` (zstd);
   - streaming: warden's ``tree`` and ``lite`` jobs again on the ~1/4-size data (tree-small,
     lite-small), to compare warden's peak RSS at both sizes.
   Before every run the command's output is deleted and ``sync`` is called, so no run pays for
   the previous run's write-back; the sources stay in the page cache (they were read before the
   first round).
4. Measures per run: wall time (monotonic, spawn to reap); CPU (ru_utime + ru_stime of the
   process and its reaped children, from ``os.wait4``); peak RSS: the measured process's own
   VmHWM, polled from /proc/PID/status every 20 ms (VmHWM only grows, so the last sample is its
   peak), and the largest VmHWM of any of its descendants (pg_dump and pg_restore under warden,
   gzip under tar). wait4's ``ru_maxrss`` is not used for the tables: on Linux it also covers
   every reaped descendant and the forked copy of this Python process before the exec.
5. Times the parts of warden's SQLite verification with the standard tools on warden's last
   copy (``sqlite3 COPY 'PRAGMA integrity_check'``, ``... quick_check``, ``sha256sum COPY`` and
   SHA-256 through Python's hashlib, i.e. OpenSSL, which like warden uses SHA-NI where the CPU
   has it) and of its files verification on its last archives (``sha256sum``, ``gzip -t``,
   ``zstd -t``, hashlib).
6. Prints a markdown report (median, min, max; ratio of medians warden / anchor and the range of
   the per-round ratios) and PASS/FAIL against the issue's targets; --json writes the figures.

Python 3 standard library only; no shell. Processes it started are stopped on exit, also on
Ctrl-C and SIGTERM; the PostgreSQL cluster and the work directory are removed.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import json
import os
import platform
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Shared with the scrape benchmark beside this file.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
from bench import default_warden, free_port, pg_bin_dir  # noqa: E402
MIB = 1 << 20
GIB = 1 << 30

# The targets: warden's wall time / the standard tool's.
TARGET_PG_RATIO = 1.10
TARGET_SQLITE_RATIO = 1.20
TARGET_GZIP_RATIO = 1.00
# "zstd clearly faster than tar -czf": this script's reading of "clearly".
TARGET_ZSTD_RATIO = 0.75
# Streaming: warden's peak RSS at full size may exceed that at 1/4 size by at most this much.
TARGET_RSS_GROWTH = 1.25

LOAD_TIMEOUT_SECONDS = 1800.0
RUN_TIMEOUT_SECONDS = 1800.0
POLL_SECONDS = 0.02

# SHA-256 of a file through OpenSSL (SHA-NI where the CPU has it, as warden's sha2 crate uses):
# Debian's sha256sum is coreutils' portable C code, several times slower on such CPUs.
HASH_SNIPPET = ("import hashlib, sys\n"
                "with open(sys.argv[1], 'rb') as f:\n"
                "    print(hashlib.file_digest(f, 'sha256').hexdigest())\n")

# Appended to postgresql.conf. No durability: the cluster is thrown away, and pg_dump only reads.


# --------------------------------------------------------------------------------------------
# Processes and clean-up


_CLEANUPS: list = []
_RUNNING: list[subprocess.Popen] = []


def _clean_up() -> None:
    for proc in list(_RUNNING):
        if proc.returncode is None:
            try:
                proc.kill()
            except ProcessLookupError:
                pass
            try:
                os.waitpid(proc.pid, 0)
            except ChildProcessError:
                pass
    _RUNNING.clear()
    while _CLEANUPS:
        cleanup = _CLEANUPS.pop()
        try:
            cleanup()
        except Exception as err:  # noqa: BLE001 - keep cleaning up
            print(f"bench: clean-up failed: {err}", file=sys.stderr)


def _on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def vm_hwm(pid: int) -> int | None:
    """VmHWM (peak RSS) in bytes, or None once the process is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def descendants(pid: int) -> list[int]:
    """The live descendants of PID, from /proc/PID/task/*/children."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{p}/task/{tid}/children", encoding="ascii") as f:
                    kids = [int(k) for k in f.read().split()]
            except (OSError, ValueError):
                continue
            out += kids
            todo += kids
    return out


def measure(argv: list[str], log_dir: str, label: str, env: dict | None = None,
            timeout: float = RUN_TIMEOUT_SECONDS) -> dict:
    """Runs argv to completion: wall time, CPU and peak RSS.

    Peak RSS is polled every POLL_SECONDS: the process's own VmHWM (it only grows, so the last
    sample is the peak, short of the final POLL_SECONDS), and the largest VmHWM of any
    descendant seen (pg_dump and pg_restore under warden, gzip under tar). ``ru_maxrss`` from
    ``os.wait4`` is kept in the JSON only: on Linux it is the largest peak of the process and
    every descendant it reaped, and also of the forked copy of this Python process before the
    exec, so it never reads below this script's own RSS (~30 MiB).

    stdout goes to LOG_DIR/LABEL.out and stderr to LOG_DIR/LABEL.err (appended across runs).
    """
    out_path = os.path.join(log_dir, f"{label}.out")
    err_path = os.path.join(log_dir, f"{label}.err")
    with open(out_path, "wb") as out, open(err_path, "ab") as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        _RUNNING.append(proc)
        peak = [0, 0]
        done = threading.Event()

        def poll() -> None:
            while not done.is_set():
                hwm = vm_hwm(proc.pid)
                if hwm is None:
                    return
                peak[0] = max(peak[0], hwm)
                for kid in descendants(proc.pid):
                    peak[1] = max(peak[1], vm_hwm(kid) or 0)
                done.wait(POLL_SECONDS)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall = time.monotonic() - t0
        done.set()
        poller.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        _RUNNING.remove(proc)
    with open(out_path, "rb") as f:
        stdout = f.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        with open(err_path, "rb") as f:
            tail = f.read()[-3000:].decode("utf-8", "replace")
        raise RuntimeError(f"{label}: {argv} exited {proc.returncode}:\n{stdout[-2000:]}\n{tail}")
    return {
        "wall_seconds": wall,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "hwm_bytes": peak[0],
        "child_hwm_bytes": peak[1],
        "maxrss_wait4_bytes": usage.ru_maxrss * 1024,
        "stdout": stdout,
    }


def version_of(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10,
                             stdin=subprocess.DEVNULL)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError) as err:
        return f"unknown ({err})"


def git_revision(path: str) -> str:
    """The short commit (and +dirty) of the checkout that holds PATH (the warden binary)."""
    where = os.path.dirname(os.path.abspath(path))
    try:
        rev = subprocess.run(["git", "-C", where, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", where, "status", "--porcelain",
                                "--untracked-files=no", "--", ":/src", ":/Cargo.toml",
                                ":/Cargo.lock"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (rev + ("+dirty" if dirty else "")) if rev else "unknown"
    except OSError:
        return "unknown"


def machine_facts() -> dict:
    model = ""
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="ascii") as f:
        mem_total = int(f.readline().split()[1]) * 1024
    os_name = ""
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    os_name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "hostname": socket.gethostname(),
        "os": os_name,
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "mem_total_bytes": mem_total,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_start": open("/proc/loadavg", encoding="ascii").read().split()[:3],
    }


def sync() -> None:
    os.sync()


def remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def tree_bytes(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            total += os.path.getsize(os.path.join(root, name))
    return total


def read_all(path: str) -> None:
    """Reads every file under PATH once, so the first round finds it in the page cache."""
    buf = bytearray(1 << 20)
    paths = [path] if os.path.isfile(path) else [
        os.path.join(root, n) for root, _d, files in os.walk(path) for n in files]
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


# --------------------------------------------------------------------------------------------
# PostgreSQL


class PgCluster(bench.PgCluster):
    """The scrape benchmark's throwaway cluster (bench.py: initdb/pg_ctl on a free loopback
    port, as the ``postgres`` user when root), plus what this benchmark needs: the client tools
    of the same version and their connection arguments."""

    def tool(self, name: str) -> str:
        return os.path.join(self.bin, name)

    def client_args(self, db: str) -> list[str]:
        return ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db]

    def psql(self, db: str, sql: str, timeout: float = bench.PSQL_TIMEOUT_SECONDS) -> str:
        return super().psql(db, sql, timeout).strip()


# --------------------------------------------------------------------------------------------
# Data sets


WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
         "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()


def make_sqlite(path: str, target_bytes: int, seed: int) -> dict:
    """A rollback-journal SQLite file of about TARGET_BYTES: rows with a 1 KiB random blob."""
    rng = random.Random(seed)
    remove(path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                 "note TEXT NOT NULL, payload BLOB NOT NULL)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    batch = 5000
    rows = 0
    # Leave ~4 % for the index built at the end.
    while True:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        if pages * page_size >= target_bytes * 0.96:
            break
        data = []
        for _ in range(batch):
            rows += 1
            data.append((rows, f"item-{rng.randrange(10**8):08d}-{rng.choice(WORDS)}",
                         " ".join(rng.choice(WORDS) for _ in range(8)), rng.randbytes(1024)))
        with conn:
            conn.executemany("INSERT INTO items VALUES (?, ?, ?, ?)", data)
    conn.execute("CREATE INDEX items_name ON items (name)")
    conn.commit()
    conn.close()
    return {"path": path, "bytes": os.path.getsize(path), "rows": rows, "page_size": page_size}


LEVELS = ("INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR")
COMPONENTS = ("api", "scheduler", "worker", "db", "cache", "auth", "backup")
MESSAGES = ("request served", "job queued", "job finished", "cache miss", "connection opened",
            "connection closed", "retrying after timeout", "user logged in", "snapshot taken")


def make_tree(root: str, target_bytes: int, seed: int) -> dict:
    """~TARGET_BYTES of files: 1/2 random bytes in 50-100 MiB files, 3/8 log lines, 1/8 JSON."""
    rng = random.Random(seed)
    remove(root)
    os.makedirs(root)
    random_bytes = target_bytes // 2
    log_bytes = target_bytes * 3 // 8
    json_bytes = target_bytes - random_bytes - log_bytes
    counts = {"random_files": 0, "log_files": 0, "json_files": 0}

    sizes = [96, 80, 64, 56, 72, 100, 50]
    os.makedirs(os.path.join(root, "blobs"))
    left, i = random_bytes, 0
    while left > 0:
        size = min(left, sizes[i % len(sizes)] * MIB)
        with open(os.path.join(root, "blobs", f"blob-{i:02d}.bin"), "wb") as f:
            for off in range(0, size, 4 * MIB):
                f.write(os.urandom(min(4 * MIB, size - off)))
        left -= size
        i += 1
        counts["random_files"] += 1

    os.makedirs(os.path.join(root, "logs"))
    # Line templates (level, component, pid, message) drawn from a pool, as real logs repeat
    # theirs; the timestamp and the numbers vary per line.
    bits = rng.getrandbits
    bodies = [f"{rng.choice(LEVELS)} {rng.choice(COMPONENTS)}[{rng.randrange(100, 999)}]: "
              f"{rng.choice(MESSAGES)}" for _ in range(2048)]
    minutes: dict[int, str] = {}
    left, i = log_bytes, 0
    t = 1_760_000_000
    while left > 0:
        size = min(left, 32 * MIB)
        written = 0
        with open(os.path.join(root, "logs", f"app-{i:02d}.log"), "w", encoding="ascii") as f:
            while written < size:
                lines = []
                for _ in range(4000):
                    t += bits(1) + bits(1)
                    minute = minutes.get(t // 60)
                    if minute is None:
                        minute = minutes[t // 60] = dt.datetime.fromtimestamp(
                            t - t % 60, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:")
                    lines.append(f"{minute}{t % 60:02d}Z {bodies[bits(11)]} id={bits(20)} "
                                 f"took={bits(11)}ms user=u{bits(9)}\n")
                chunk = "".join(lines)[: size - written]
                f.write(chunk)
                written += len(chunk)
        left -= size
        i += 1
        counts["log_files"] += 1

    n_json = max(10, round(4000 * target_bytes / GIB))
    per_file = json_bytes // n_json
    for j in range(n_json):
        d = os.path.join(root, "json", f"d{j % 16:02d}", f"e{(j // 16) % 12:02d}")
        os.makedirs(d, exist_ok=True)
        records, size = [], 0
        target = rng.randrange(per_file // 4, per_file * 7 // 4)
        while size < target:
            rec = {"id": rng.randrange(10**9), "name": rng.choice(WORDS),
                   "tags": rng.sample(WORDS, 3), "score": round(rng.random() * 100, 3),
                   "active": rng.random() < 0.5, "note": " ".join(rng.sample(WORDS, 6))}
            records.append(rec)
            size += 150
        with open(os.path.join(d, f"rec-{j:05d}.json"), "w", encoding="ascii") as f:
            json.dump(records, f)
        counts["json_files"] += 1
    counts["bytes"] = tree_bytes(root)
    return counts


def write_config(path: str, work: str, port: int) -> None:
    out = os.path.join(work, "out")
    text = f"""# Written by scripts/bench_backup.py.
state_dir: {work}/state
host: {{enabled: false}}
postgres:
  - {{name: bench, dsn: "postgres://postgres@127.0.0.1:{port}/bench?sslmode=disable"}}
sqlite:
  - {{name: big, path: {work}/big.db}}
  - {{name: small, path: {work}/small.db}}
backups:
  - name: pg
    kind: postgres
    source: postgres/bench
    destination: {out}/pg
    verify: {{required_tables: [pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history]}}
  - {{name: pg-plain, kind: postgres, source: postgres/bench, destination: {out}/pg-plain}}
  - {{name: lite, kind: sqlite, source: sqlite/big, destination: {out}/lite}}
  - name: lite-quick
    kind: sqlite
    source: sqlite/big
    destination: {out}/lite-quick
    verify: {{integrity_check: quick}}
  - {{name: lite-small, kind: sqlite, source: sqlite/small, destination: {out}/lite-small}}
  - {{name: tree, kind: files, paths: [{work}/tree], destination: {out}/tree}}
  - {{name: tree-gz, kind: files, paths: [{work}/tree], compression: gzip, destination: {out}/tree-gz}}
  - {{name: tree-small, kind: files, paths: [{work}/tree-small], destination: {out}/tree-small}}
"""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


# --------------------------------------------------------------------------------------------
# Runs


class Case:
    """One command compared: its argv, the output to delete before each run, its figures."""

    def __init__(self, name: str, argv: list[str], output: str, env: dict | None = None,
                 warden: bool = False):
        self.name = name
        self.argv = argv
        self.output = output
        self.env = env
        self.warden = warden
        self.runs: list[dict] = []
        self.manifest: dict | None = None

    def prepare(self) -> None:
        remove(self.output)
        if self.warden:
            os.makedirs(self.output)
        sync()

    def run(self, log_dir: str) -> dict:
        self.prepare()
        r = measure(self.argv, log_dir, self.name, env=self.env)
        if self.warden:
            manifests = json.loads(r["stdout"])
            self.manifest = manifests[0]
            r["size_bytes"] = self.manifest["size_bytes"]
            r["manifest_seconds"] = self.manifest["duration_seconds"]
        else:
            r["size_bytes"] = tree_bytes(self.output)
        del r["stdout"]
        self.runs.append(r)
        return r


def interleave(cases: list[Case], rounds: int, log_dir: str, title: str) -> None:
    """Runs every case once per round, the order rotated by one each round."""
    for i in range(rounds):
        k = i % len(cases)
        order = cases[k:] + cases[:k]
        for c in order:
            r = c.run(log_dir)
            print(f"bench: {title} round {i + 1}/{rounds} {c.name}: {r['wall_seconds']:.2f} s, "
                  f"own peak {r['hwm_bytes'] / MIB:.1f} MiB, largest child "
                  f"{r['child_hwm_bytes'] / MIB:.1f} MiB", file=sys.stderr)


def stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "values": values}


def summarize(case: Case) -> dict:
    return {
        "name": case.name,
        "argv": case.argv,
        "wall_seconds": stats([r["wall_seconds"] for r in case.runs]),
        "cpu_seconds": stats([r["cpu_seconds"] for r in case.runs]),
        "hwm_bytes": stats([r["hwm_bytes"] for r in case.runs]),
        "child_hwm_bytes": stats([r["child_hwm_bytes"] for r in case.runs]),
        "maxrss_wait4_bytes": stats([r["maxrss_wait4_bytes"] for r in case.runs]),
        "size_bytes": case.runs[-1]["size_bytes"],
        "manifest_checks": (case.manifest or {}).get("verification", {}).get("checks"),
        "tool": (case.manifest or {}).get("tool"),
    }


def compare(case: Case, anchor: Case) -> dict:
    """Ratio of the median walls, and the range of the per-round ratios (same round index)."""
    med = statistics.median(r["wall_seconds"] for r in case.runs) / \
        statistics.median(r["wall_seconds"] for r in anchor.runs)
    paired = [a["wall_seconds"] / b["wall_seconds"] for a, b in zip(case.runs, anchor.runs)]
    return {"median_ratio": med, "round_ratio_min": min(paired), "round_ratio_max": max(paired)}


def time_tools(tools: list[tuple[str, list[str]]], rounds: int, log_dir: str) -> dict:
    """Times standard tools (e.g. the parts of warden's verification), interleaved."""
    walls: dict[str, list[float]] = {name: [] for name, _ in tools}
    for i in range(rounds):
        k = i % len(tools)
        for name, argv in tools[k:] + tools[:k]:
            sync()
            walls[name].append(measure(argv, log_dir, "tool-" + name.split()[0])["wall_seconds"])
    return {name: stats(v) for name, v in walls.items()}


# --------------------------------------------------------------------------------------------
# Report


def fmt_s(x: float) -> str:
    return f"{x:.2f}"


def fmt_mib(n: float) -> str:
    return f"{n / MIB:.1f}"


def render_kind(rows: list[dict], anchor: str, ratios: dict) -> list[str]:
    out = ["| command | wall median s | min s | max s | ratio (medians) | per-round ratios "
           "| CPU median s | own peak RSS MiB | largest child's peak RSS MiB | output MiB |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        w = r["wall_seconds"]
        rt = ratios.get(r["name"])
        ratio_text = "1 (anchor)" if r["name"] == anchor else f"**{rt['median_ratio']:.2f}×**"
        child = fmt_mib(r["child_hwm_bytes"]["max"]) if r["child_hwm_bytes"]["max"] else "—"
        rounds = "—" if r["name"] == anchor else \
            f"{rt['round_ratio_min']:.2f}–{rt['round_ratio_max']:.2f}×"
        out.append(f"| {r['label']} | {fmt_s(w['median'])} | {fmt_s(w['min'])} | "
                   f"{fmt_s(w['max'])} | {ratio_text} | {rounds} | "
                   f"{fmt_s(r['cpu_seconds']['median'])} | {fmt_mib(r['hwm_bytes']['max'])} | "
                   f"{child} | {fmt_mib(r['size_bytes'])} |")
    return out


def render(report: dict) -> str:
    m = report["machine"]
    v = report["versions"]
    out = [f"### Run {m['date']}\n",
           f"- machine: {m['os']}, {m['nproc']} CPU ({m['cpu_model']}), "
           f"{m['mem_total_bytes'] / GIB:.1f} GiB RAM, kernel {m['kernel']}; load at start "
           f"{' '.join(m['loadavg_start'])}, at end {' '.join(m['loadavg_end'])}",
           f"- warden: {v['warden']} (git {v['warden_git']}), `{report['paths']['warden']}`",
           f"- {v['pg_dump']}; {v['server']}; sqlite3 {v['sqlite3']}; {v['tar']}; "
           f"{v['gzip']}; {v['zstd']}",
           f"- {report['runs']} rounds per kind, interleaved (order rotated each round); "
           "output deleted and `sync` before every run; sources in the page cache", ""]
    for kind, section in report["kinds"].items():
        out.append(f"#### {section['title']}\n")
        for line in section.get("notes", []):
            out.append(f"- {line}")
        out.append("")
        out += render_kind(section["rows"], section["anchor"], section["ratios"])
        out.append("")
        if section.get("breakdown"):
            out.append(section["breakdown_title"] + "\n")
            out.append("| command | median s | min s | max s |")
            out.append("|---|---:|---:|---:|")
            for name, s in section["breakdown"].items():
                out.append(f"| `{name}` | {fmt_s(s['median'])} | {fmt_s(s['min'])} | "
                           f"{fmt_s(s['max'])} |")
            out.append("")
    if report.get("streaming"):
        out.append("#### Streaming: warden's peak RSS at ~1/4 and full size\n")
        out.append("| job | data | wall median s | own peak RSS MiB (median, min–max) |")
        out.append("|---|---:|---:|---:|")
        for r in report["streaming"]:
            h = r["hwm_bytes"]
            out.append(f"| {r['label']} | {fmt_mib(r['data_bytes'])} MiB | "
                       f"{fmt_s(r['wall_seconds']['median'])} | {fmt_mib(h['median'])} "
                       f"({fmt_mib(h['min'])}–{fmt_mib(h['max'])}) |")
        out.append("")
    out.append("#### Against the targets\n")
    out.append("| target | measured | result |")
    out.append("|---|---|---|")
    for t in report["targets"]:
        out.append(f"| {t['target']} | {t['measured']} | {'PASS' if t['pass'] else 'FAIL'} |")
    out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--warden", default=default_warden(),
                   help="the warden binary ($CARGO_TARGET_DIR or ./target /release/warden)")
    p.add_argument("--runs", type=int, default=3, help="interleaved rounds per kind (3)")
    p.add_argument("--work", default="/tmp/wb",
                   help="work directory for data and outputs (/tmp/wb; must not exist, or hold "
                        "only an earlier run's files)")
    p.add_argument("--only", default="postgres,sqlite,files,streaming",
                   help="comma-separated kinds: postgres, sqlite, files, streaming (all)")
    p.add_argument("--pg-scale", type=int, default=67, help="pgbench -i scale (67, ~1 GB)")
    p.add_argument("--sqlite-mib", type=int, default=1024, help="SQLite file size (1024 MiB)")
    p.add_argument("--files-mib", type=int, default=1024, help="file tree size (1024 MiB)")
    p.add_argument("--small-fraction", type=float, default=0.25,
                   help="size of the streaming comparison's data sets (0.25)")
    p.add_argument("--seed", type=int, default=1, help="seed for the generated data (1)")
    p.add_argument("--keep-data", action="store_true", help="keep the work directory")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.add_argument("--markdown", metavar="FILE", help="also write the report as markdown")
    args = p.parse_args(argv)
    args.only = {k.strip() for k in args.only.split(",") if k.strip()}
    unknown = args.only - {"postgres", "sqlite", "files", "streaming"}
    if unknown:
        p.error(f"unknown kinds in --only: {', '.join(sorted(unknown))}")
    if not 1 <= args.runs <= 50:
        p.error("--runs must be between 1 and 50")
    if not 0.01 <= args.small_fraction <= 1:
        p.error("--small-fraction must be between 0.01 and 1")
    for name in ("pg_scale", "sqlite_mib", "files_mib"):
        if not 1 <= getattr(args, name) <= 100_000:
            p.error(f"--{name.replace('_', '-')} must be between 1 and 100000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not os.access(args.warden, os.X_OK):
        print(f"bench: {args.warden} is not executable; build it: cargo build --release",
              file=sys.stderr)
        return 2
    for tool in ("sqlite3", "tar", "gzip", "zstd", "sha256sum"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} is not installed", file=sys.stderr)
            return 2
    bin_dir = pg_bin_dir()
    if "postgres" in args.only and bin_dir is None:
        print("bench: no PostgreSQL under /usr/lib/postgresql; apt-get install postgresql",
              file=sys.stderr)
        return 2
    work = os.path.abspath(args.work)
    if os.path.exists(work):
        print(f"bench: {work} exists; remove it first (it is this script's scratch space)",
              file=sys.stderr)
        return 2
    os.makedirs(work)
    os.chmod(work, 0o755)
    parent = os.path.dirname(work)
    st = os.statvfs(parent)
    free = st.f_bavail * st.f_frsize
    need = 6 * GIB * max(args.sqlite_mib, args.files_mib, args.pg_scale * 15) // 1024
    if free < need:
        print(f"bench: {free / GIB:.1f} GiB free in {parent}, need about {need / GIB:.1f}",
              file=sys.stderr)
        os.rmdir(work)
        return 2
    if not args.keep_data:
        _CLEANUPS.append(lambda: shutil.rmtree(work, ignore_errors=True))
    atexit.register(_clean_up)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    try:
        return run(args, work, bin_dir)
    except KeyboardInterrupt as err:
        print(f"bench: interrupted ({err}); cleaning up", file=sys.stderr)
        return 130
    finally:
        _clean_up()


def run(args: argparse.Namespace, work: str, bin_dir: str | None) -> int:
    facts = machine_facts()
    logs = os.path.join(work, "logs")
    out = os.path.join(work, "out")
    os.makedirs(logs)
    os.makedirs(out)
    report: dict = {"machine": facts, "runs": args.runs, "paths": {"warden": args.warden},
                    "kinds": {}, "targets": []}
    pg_dump = os.path.join(bin_dir, "pg_dump") if bin_dir else "pg_dump"
    report["versions"] = {
        "warden": version_of([args.warden, "--version"]),
        "warden_git": git_revision(args.warden),
        "pg_dump": version_of([pg_dump, "--version"]),
        "server": "",
        "sqlite3": version_of(["sqlite3", "--version"]).split()[0],
        "tar": version_of(["tar", "--version"]),
        "gzip": version_of(["gzip", "--version"]),
        "zstd": version_of(["zstd", "--version"]),
    }
    small = args.small_fraction

    # ---- data
    port = 1
    cluster = None
    if "postgres" in args.only:
        cluster = PgCluster(bin_dir)
        _CLEANUPS.append(cluster.destroy)
        print(f"bench: starting PostgreSQL from {bin_dir} …", file=sys.stderr)
        cluster.init_and_start()
        port = cluster.port
        cluster.psql("postgres", "CREATE DATABASE bench")
        print(f"bench: pgbench -i -s {args.pg_scale} …", file=sys.stderr)
        t0 = time.monotonic()
        load = subprocess.run([cluster.tool("pgbench"), "-i", "-q", "-s", str(args.pg_scale),
                               *cluster.client_args("bench")[:-2], "bench"],
                              capture_output=True, text=True, timeout=LOAD_TIMEOUT_SECONDS,
                              stdin=subprocess.DEVNULL)
        if load.returncode != 0:
            raise RuntimeError(f"pgbench -i failed:\n{load.stderr[-3000:]}")
        cluster.psql("bench", "CHECKPOINT")
        report["versions"]["server"] = "server " + cluster.psql("bench", "SHOW server_version")
        report["postgres_data"] = {
            "scale": args.pg_scale,
            "load_seconds": time.monotonic() - t0,
            "database_bytes": int(cluster.psql("bench", "SELECT pg_database_size('bench')")),
            "accounts_rows": int(cluster.psql("bench", "SELECT count(*) FROM pgbench_accounts")),
        }
        print(f"bench: {report['postgres_data']}", file=sys.stderr)
    if args.only & {"sqlite", "streaming"}:
        print("bench: building the SQLite files …", file=sys.stderr)
        report["sqlite_data"] = {
            "big": make_sqlite(os.path.join(work, "big.db"), args.sqlite_mib * MIB, args.seed),
            "small": make_sqlite(os.path.join(work, "small.db"),
                                 int(args.sqlite_mib * MIB * small), args.seed + 1),
        }
        print(f"bench: {report['sqlite_data']}", file=sys.stderr)
    if args.only & {"files", "streaming"}:
        print("bench: building the file trees …", file=sys.stderr)
        report["files_data"] = {
            "tree": make_tree(os.path.join(work, "tree"), args.files_mib * MIB, args.seed),
            "tree-small": make_tree(os.path.join(work, "tree-small"),
                                    int(args.files_mib * MIB * small), args.seed + 1),
        }
        print(f"bench: {report['files_data']}", file=sys.stderr)
    if cluster is None:
        # The config names a PostgreSQL entry; without the cluster it is never connected to.
        port = free_port()
    config = os.path.join(work, "warden.yml")
    write_config(config, work, port)
    check = subprocess.run([args.warden, "check-config", config], capture_output=True,
                           text=True, timeout=30, stdin=subprocess.DEVNULL)
    if check.returncode != 0:
        raise RuntimeError(f"warden check-config failed:\n{check.stdout}{check.stderr}")
    sync()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUST_LOG", "WARDEN_"))}

    def warden(job: str, dest: str) -> Case:
        return Case(job, [args.warden, "backup", "--config", config, "--output", "json", "run",
                          job], os.path.join(out, dest), env=env, warden=True)

    def label(rows: list[dict], labels: dict) -> list[dict]:
        for r in rows:
            r["label"] = labels[r["name"]]
        return rows

    # warden's full-size rows, for the streaming comparison.
    full_size: dict = {}

    # ---- postgres
    if "postgres" in args.only:
        raw = Case("pg_dump", [pg_dump, "-Fc", "-f", os.path.join(out, "raw.dump"),
                               *cluster.client_args("bench")], os.path.join(out, "raw.dump"))
        w = warden("pg", "pg")
        # The same without required tables: no row counts competing with pg_dump for the CPUs.
        plain = warden("pg-plain", "pg-plain")
        read_all(cluster.data)
        interleave([raw, w, plain], args.runs, logs, "postgres")
        ratios = {"pg": compare(w, raw), "pg-plain": compare(plain, raw)}
        report["kinds"]["postgres"] = {
            "title": f"PostgreSQL: pgbench -i -s {args.pg_scale}, "
                     f"pg_database_size {report['postgres_data']['database_bytes'] / MIB:.0f} MiB",
            "anchor": "pg_dump", "ratios": ratios,
            "rows": label([summarize(raw), summarize(w), summarize(plain)],
                          {"pg_dump": "`pg_dump -Fc -f OUT`",
                           "pg": "`warden backup run pg` (row counts of the 4 tables)",
                           "pg-plain": "`warden backup run pg-plain` (no required tables)"}),
            "notes": [f"warden's checks: {'; '.join(summarize(w)['manifest_checks'] or [])}"],
        }
        r = ratios["pg"]["median_ratio"]
        report["targets"].append({"target": f"postgres: warden ≤ {TARGET_PG_RATIO:.2f}× pg_dump",
                                  "measured": f"{r:.2f}×", "pass": r <= TARGET_PG_RATIO})
        for c in (raw, w, plain):
            remove(c.output)

    # ---- sqlite
    if "sqlite" in args.only:
        big = os.path.join(work, "big.db")
        raw_out = os.path.join(out, "raw.db")
        raw = Case("sqlite3", ["sqlite3", big, f".backup {raw_out}"], raw_out)
        full = warden("lite", "lite")
        quick = warden("lite-quick", "lite-quick")
        read_all(big)
        interleave([raw, full, quick], args.runs, logs, "sqlite")
        ratios = {"lite": compare(full, raw), "lite-quick": compare(quick, raw)}
        copy = os.path.join(full.output, full.manifest["file"])
        breakdown = time_tools([
            (f"sqlite3 COPY 'PRAGMA integrity_check'", ["sqlite3", copy, "PRAGMA integrity_check"]),
            (f"sqlite3 COPY 'PRAGMA quick_check'", ["sqlite3", copy, "PRAGMA quick_check"]),
            ("sha256sum COPY", ["sha256sum", copy]),
            ("python3 hashlib.sha256 COPY (OpenSSL)", [sys.executable, "-c", HASH_SNIPPET, copy]),
        ], args.runs, logs)
        rows = label([summarize(raw), summarize(full), summarize(quick)],
                     {"sqlite3": "`sqlite3 big.db \".backup OUT\"`",
                      "lite": "`warden backup run lite` (integrity_check)",
                      "lite-quick": "`warden backup run lite-quick` (quick_check)"})
        report["kinds"]["sqlite"] = {
            "title": f"SQLite: {report['sqlite_data']['big']['bytes'] / MIB:.0f} MiB file, "
                     f"{report['sqlite_data']['big']['rows']} rows",
            "anchor": "sqlite3", "ratios": ratios, "rows": rows,
            "notes": [f"warden's copy: {rows[1]['tool']}; checks: "
                      f"{'; '.join(rows[1]['manifest_checks'] or [])}"],
            "breakdown_title": "The parts of warden's verification, timed with the standard tools "
                               "on warden's last copy (COPY):",
            "breakdown": breakdown,
        }
        for name, limit_name in (("lite", "integrity_check"), ("lite-quick", "quick_check")):
            r = ratios[name]["median_ratio"]
            report["targets"].append({
                "target": f"sqlite ({limit_name}): warden ≤ {TARGET_SQLITE_RATIO:.2f}× sqlite3 "
                          ".backup", "measured": f"{r:.2f}×", "pass": r <= TARGET_SQLITE_RATIO})
        for c in (raw, full, quick):
            remove(c.output)
        full_size["lite"] = rows[1]

    # ---- files
    if "files" in args.only:
        tree = os.path.join(work, "tree")
        raw_out = os.path.join(out, "raw.tar.gz")
        raw = Case("tar", ["tar", "-czf", raw_out, "-C", "/", tree.lstrip("/")], raw_out)
        gz = warden("tree-gz", "tree-gz")
        zst = warden("tree", "tree")
        read_all(tree)
        interleave([raw, gz, zst], args.runs, logs, "files")
        ratios = {"tree-gz": compare(gz, raw), "tree": compare(zst, raw)}
        gz_file = os.path.join(gz.output, gz.manifest["file"])
        zst_file = os.path.join(zst.output, zst.manifest["file"])
        breakdown = time_tools([
            ("sha256sum GZ", ["sha256sum", gz_file]),
            ("gzip -t GZ", ["gzip", "-t", gz_file]),
            ("sha256sum ZST", ["sha256sum", zst_file]),
            ("zstd -t ZST", ["zstd", "-q", "-t", zst_file]),
            ("python3 hashlib.sha256 ZST (OpenSSL)", [sys.executable, "-c", HASH_SNIPPET,
                                                      zst_file]),
        ], args.runs, logs)
        rows = label([summarize(raw), summarize(gz), summarize(zst)],
                     {"tar": "`tar -czf OUT -C / tmp/wb/tree`",
                      "tree-gz": "`warden backup run tree-gz` (gzip 6)",
                      "tree": "`warden backup run tree` (zstd 3)"})
        fd = report["files_data"]["tree"]
        report["kinds"]["files"] = {
            "title": f"Files: {fd['bytes'] / MIB:.0f} MiB in {fd['random_files']} random, "
                     f"{fd['log_files']} log and {fd['json_files']} JSON files",
            "anchor": "tar", "ratios": ratios, "rows": rows,
            "notes": [f"warden's checks (gzip): {'; '.join(rows[1]['manifest_checks'] or [])}"],
            "breakdown_title": "Re-reading warden's last archives with the standard tools "
                               "(GZ = tree-gz's, ZST = tree's):",
            "breakdown": breakdown,
        }
        r = ratios["tree-gz"]["median_ratio"]
        report["targets"].append({"target": f"files: warden gzip ≤ {TARGET_GZIP_RATIO:.2f}× "
                                            "tar -czf", "measured": f"{r:.2f}×",
                                  "pass": r <= TARGET_GZIP_RATIO})
        r = ratios["tree"]["median_ratio"]
        report["targets"].append({"target": f"files: warden zstd clearly faster than tar -czf "
                                            f"(≤ {TARGET_ZSTD_RATIO:.2f}×, this script's reading)",
                                  "measured": f"{r:.2f}×", "pass": r <= TARGET_ZSTD_RATIO})
        for c in (raw, gz, zst):
            remove(c.output)
        full_size["tree"] = rows[2]

    # ---- streaming
    if "streaming" in args.only:
        zs = warden("tree-small", "tree-small")
        ls = warden("lite-small", "lite-small")
        read_all(os.path.join(work, "tree-small"))
        read_all(os.path.join(work, "small.db"))
        interleave([zs, ls], args.runs, logs, "streaming")
        rows = []
        full = full_size
        fdata = report.get("files_data", {})
        sdata = report.get("sqlite_data", {})
        pairs = [("tree (zstd)", summarize(zs), fdata.get("tree-small", {}).get("bytes", 0),
                  full.get("tree"), fdata.get("tree", {}).get("bytes", 0)),
                 ("lite (integrity_check)", summarize(ls),
                  sdata.get("small", {}).get("bytes", 0),
                  full.get("lite"), sdata.get("big", {}).get("bytes", 0))]
        for name, s_small, b_small, s_full, b_full in pairs:
            rows.append({**s_small, "label": name, "data_bytes": b_small})
            if s_full:
                rows.append({**s_full, "label": name, "data_bytes": b_full})
                growth = s_full["hwm_bytes"]["median"] / s_small["hwm_bytes"]["median"]
                report["targets"].append({
                    "target": f"streaming, {name}: peak RSS at full size ≤ "
                              f"{TARGET_RSS_GROWTH:.2f}× that at 1/4 size",
                    "measured": f"{fmt_mib(s_small['hwm_bytes']['median'])} → "
                                f"{fmt_mib(s_full['hwm_bytes']['median'])} MiB "
                                f"({growth:.2f}×)",
                    "pass": growth <= TARGET_RSS_GROWTH})
        report["streaming"] = rows
        for c in (zs, ls):
            remove(c.output)

    facts["loadavg_end"] = open("/proc/loadavg", encoding="ascii").read().split()[:3]
    text = render(report)
    print(text)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, ensure_ascii=False)
            f.write("\n")
    return 0 if all(t["pass"] for t in report["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
