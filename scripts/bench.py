#!/usr/bin/env python3
"""Side-by-side scrape benchmark: warden against Debian's node_exporter, on one host, in one run.

Usage:
    python3 scripts/bench.py [--scrapes N] [--warden PATH] [--node-exporter PATH] [--json FILE]

What it does (see BENCHMARKS.md for the method and the recorded figures):

1. Starts three exporters on free loopback ports, all at once:
   - ``warden``       -- ``warden serve --config TMP --listen 127.0.0.1:PORT``; the temp config only
     moves ``state_dir`` into a temp directory, so warden runs its default collectors (host + its
     own process metrics);
   - ``node-same``    -- node_exporter restricted to the families warden exposes
     (``--collector.disable-defaults --collector.cpu ...``): the fair comparison, and the anchor
     every ratio is taken against;
   - ``node-default`` -- node_exporter with its Debian defaults (minus the systemd collector,
     which warden has no counterpart for and which only errors without a system bus).
2. Warms each one up, then scrapes warden and node-same N times each over one persistent
   HTTP/1.1 keep-alive connection per exporter, round-robin with the order shuffled every round,
   so that machine noise falls on both alike; node-default is then scraped N times on its own
   (it is not compared, and its heavier scrapes would disturb the pair).
3. Measures per scrape the wall latency (request sent to last body byte read), and per exporter
   the CPU time of the whole process (utime+stime of all its threads, from /proc/PID/stat) before
   and after, divided by the number of scrapes; RSS (VmRSS, VmHWM); series and payload bytes.
4. Optionally scrapes warden again with Prometheus' OpenMetrics Accept header (warden alone).
5. Sits idle (no scrapes) for a while and reports the CPU each exporter burned meanwhile.
6. Prints a markdown report with ratios (warden / node-same) and PASS/FAIL against the targets,
   and writes the same figures as JSON with ``--json``.

With ``--postgres`` (default 300 scrapes) it instead benchmarks warden with one PostgreSQL server
against node_exporter (node-same) + postgres_exporter together: it starts a throwaway PostgreSQL
cluster (initdb/pg_ctl of the newest /usr/lib/postgresql/*/bin, as the ``postgres`` user when root,
trust auth, a free loopback port, a temp dir under /tmp; stopped and removed at exit), seeds a
database ``app`` (``runs`` with 100k rows, three small tables), runs the three exporters
interleaved and paced over >= --pg-duration seconds (so warden's background refreshes every
--pg-interval fall inside the measured CPU), samples pg_stat_activity, counts connections from the
server log (log_connections), sits idle to measure warden's refresh alone, then stops the cluster
and scrapes warden and postgres_exporter with the database down. See BENCHMARKS.md.

    python3 scripts/bench.py --postgres [--scrapes N] [--pg-interval S] [--pg-duration S]

Python 3 standard library only. Loopback only. Every loop is bounded. The exporters it started
are stopped on exit, also on Ctrl-C, SIGTERM and exceptions.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

TEXT_ACCEPT = "text/plain"
# What Prometheus 2.4x sends when it scrapes.
OPENMETRICS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)

# The issue's targets for warden's host-only scrape (issue 11: node_exporter's default
# collector set, of which warden implements all it runs by default).
TARGET_CPU_RATIO = 0.15          # warden CPU per scrape <= 0.15 x node_exporter's
TARGET_P50_SECONDS = 0.002       # p50 latency <= 2 ms
TARGET_RSS_BYTES = 15 * 1024 * 1024   # RSS <= 15 MiB (judged on the peak, VmHWM)
# "Idle CPU near zero": at most 0.1 % of one core while nobody scrapes.
TARGET_IDLE_CORE_FRACTION = 0.001

READY_TIMEOUT_SECONDS = 20.0
REQUEST_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0


# --------------------------------------------------------------------------------------------
# Processes


_STARTED: list[subprocess.Popen] = []
# Further clean-ups (the PostgreSQL cluster of --postgres), run after the exporters are stopped.
_CLEANUPS: list = []


def _stop_all() -> None:
    """Stops every process this script started: SIGTERM, then SIGKILL after a grace period."""
    try:
        _stop_processes()
    finally:
        while _CLEANUPS:
            cleanup = _CLEANUPS.pop()
            try:
                cleanup()
            except Exception as err:  # noqa: BLE001 - keep cleaning up
                print(f"bench: clean-up failed: {err}", file=sys.stderr)


def _stop_processes() -> None:
    for proc in _STARTED:
        if proc.poll() is None:
            try:
                proc.terminate()
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for proc in _STARTED:
        remaining = max(0.0, deadline - time.monotonic())
        try:
            proc.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_SECONDS)
    _STARTED.clear()


def _on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def file_tail(path: str, lines: int) -> str:
    """The last `lines` lines of a log file; empty when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def file_size(path: str) -> int:
    """A file's size; 0 when it cannot be read."""
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """utime+stime of the whole process (all threads, live and exited), in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        data = f.read()
    # The command name (field 2) may contain spaces; fields after it start past the last ')'.
    fields = data[data.rindex(")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLK_TCK


def sched_seconds(pid: int) -> float | None:
    """On-CPU time summed over the live threads from /proc/PID/task/*/schedstat (ns precision).

    A cross-check of cpu_seconds(), which is tick-sampled; threads that exited are missing here.
    """
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e9


def thread_counters(pid: int) -> dict[int, tuple[int, int]]:
    """Per live thread: (context switches, on-CPU ns) from /proc/PID/task/TID/{status,schedstat}.

    While nobody scrapes, context switches are wake-ups: a process without background polling
    shows (almost) none.
    """
    out: dict[int, tuple[int, int]] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        switches = 0
        try:
            with open(f"/proc/{pid}/task/{tid}/status", encoding="ascii") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        switches += int(line.split()[1])
            with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as f:
                ns = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        out[int(tid)] = (switches, ns)
    return out


def idle_delta(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]):
    """(wake-ups, on-CPU seconds) of the threads alive at both ends of the idle window."""
    common = before.keys() & after.keys()
    wakeups = sum(after[t][0] - before[t][0] for t in common)
    ns = sum(after[t][1] - before[t][1] for t in common)
    return wakeups, ns / 1e9


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (bytes) and Threads from /proc/PID/status."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
            elif key == "Threads":
                out[key] = int(value.strip())
    return out


# --------------------------------------------------------------------------------------------
# Exporters


@dataclass
class Exporter:
    name: str
    argv: list[str]
    port: int
    log_path: str
    accept: str = TEXT_ACCEPT
    proc: subprocess.Popen | None = None
    conn: http.client.HTTPConnection | None = None
    latencies: list[float] = field(default_factory=list)
    connections: int = 0
    last_body: bytes = b""
    content_type: str = ""
    # collector name -> durations seen across the measured scrapes
    collector_durations: dict[str, list[float]] = field(default_factory=dict)
    collector_failures: dict[str, int] = field(default_factory=dict)
    # Extra environment for the process (postgres_exporter reads DATA_SOURCE_NAME).
    env: dict[str, str] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=os.path.dirname(self.log_path),
            env=None if self.env is None else {**os.environ, **self.env},
        )
        log.close()
        _STARTED.append(self.proc)

    def log_tail(self, lines: int = 20) -> str:
        return file_tail(self.log_path, lines)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        last_err: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} before it was ready:\n"
                    f"{self.log_tail()}"
                )
            try:
                self.scrape(record=False)
                return
            except (OSError, http.client.HTTPException, RuntimeError) as err:
                last_err = err
                self.close()
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {READY_TIMEOUT_SECONDS}s: {last_err}\n"
                           f"{self.log_tail()}")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def scrape(self, record: bool = True) -> float:
        """GET /metrics over the keep-alive connection; returns the wall latency in seconds."""
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                       timeout=REQUEST_TIMEOUT_SECONDS)
                self.connections += 1
            try:
                start = time.perf_counter()
                self.conn.request("GET", "/metrics", headers={"Accept": self.accept})
                resp = self.conn.getresponse()
                body = resp.read()
                elapsed = time.perf_counter() - start
            except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
                # The server closed an idle keep-alive connection; reconnect once.
                self.close()
                if attempt:
                    raise
                continue
            if resp.status != 200:
                raise RuntimeError(f"{self.name}: HTTP {resp.status}: {body[:200]!r}")
            if resp.will_close:
                self.close()
            self.last_body = body
            self.content_type = resp.getheader("Content-Type", "")
            if record:
                self.latencies.append(elapsed)
                self._record_collectors(body)
            return elapsed
        raise AssertionError("unreachable")

    def _record_collectors(self, body: bytes) -> None:
        for name, value in collector_durations(body):
            self.collector_durations.setdefault(name, []).append(value)
        for name, ok in collector_success(body):
            if not ok:
                self.collector_failures[name] = self.collector_failures.get(name, 0) + 1


_DURATION_RE = re.compile(
    rb'^(?:warden_collector_duration_seconds|node_scrape_collector_duration_seconds'
    rb'|pg_scrape_collector_duration_seconds)'
    rb'\{[^}]*collector="([^"]+)"[^}]*\} (\S+)', re.M)
_SUCCESS_RE = re.compile(
    rb'^(?:warden_collector_success|node_scrape_collector_success|pg_scrape_collector_success)'
    rb'\{[^}]*collector="([^"]+)"[^}]*\} (\S+)', re.M)


_HOST_COLLECTOR_RE = re.compile(
    rb'^node_scrape_collector_success\{collector="([^"]+)"\}', re.M)


def host_collectors(warden: "Exporter") -> list[str]:
    """The node_exporter collector names warden ran in its last scrape (its host collectors,
    which it also reports under node_scrape_collector_success): node-same runs exactly these."""
    names = sorted({m.group(1).decode() for m in _HOST_COLLECTOR_RE.finditer(warden.last_body)})
    if not names:
        raise RuntimeError("warden reported no node_scrape_collector_success: no host collectors?")
    return names


def collector_durations(body: bytes):
    for m in _DURATION_RE.finditer(body):
        yield m.group(1).decode(), float(m.group(2))


def collector_success(body: bytes):
    for m in _SUCCESS_RE.finditer(body):
        yield m.group(1).decode(), float(m.group(2)) == 1.0


def exposition_stats(body: bytes) -> dict:
    """Series (sample lines), families (TYPE lines) and payload bytes of one exposition."""
    series = 0
    families = set()
    names = set()
    for line in body.split(b"\n"):
        if not line:
            continue
        if line.startswith(b"#"):
            if line.startswith(b"# TYPE "):
                families.add(line.split()[2].decode())
            continue
        series += 1
        end = len(line)
        for sep in (b"{", b" "):
            i = line.find(sep)
            if i != -1:
                end = min(end, i)
        names.add(line[:end].decode())
    return {"series": series, "families": len(families), "bytes": len(body),
            "family_names": sorted(families), "sample_names": sorted(names)}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100])."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def version_of(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv + ["--version"], capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError) as err:
        return f"unknown ({err})"


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no",
                                "--", "src", "Cargo.toml", "Cargo.lock"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def machine_facts() -> dict:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    with open("/proc/meminfo", encoding="ascii") as f:
        mem_total = int(f.readline().split()[1]) * 1024
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "hostname": socket.gethostname(),
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "mem_total_bytes": mem_total,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_start": open("/proc/loadavg", encoding="ascii").read().split()[:3],
    }


# --------------------------------------------------------------------------------------------
# Report


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}"


def fmt_mib(n: int) -> str:
    return f"{n / 1048576:.1f}"


def ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def fmt_ratio(r: float | None) -> str:
    return "n/a" if r is None else f"{r:.2f}×"


def summarize(exp: Exporter, cpu: float, sched: float | None, n: int, status: dict) -> dict:
    stats = exposition_stats(exp.last_body)
    return {
        "name": exp.name,
        "argv": exp.argv,
        "accept": exp.accept,
        "content_type": exp.content_type,
        "scrapes": n,
        "latency_seconds": {
            "p50": percentile(exp.latencies, 50),
            "p90": percentile(exp.latencies, 90),
            "p99": percentile(exp.latencies, 99),
            "max": max(exp.latencies),
            "mean": statistics.fmean(exp.latencies),
        },
        "cpu_seconds_total": cpu,
        "cpu_seconds_per_scrape": cpu / n,
        "sched_seconds_per_scrape": None if sched is None else sched / n,
        "rss_bytes": status.get("VmRSS"),
        "hwm_bytes": status.get("VmHWM"),
        "threads": status.get("Threads"),
        "series": stats["series"],
        "families": stats["families"],
        "payload_bytes": stats["bytes"],
        "reconnects_while_measuring": exp.connections,
        "collector_duration_p50_seconds": {
            k: statistics.median(v) for k, v in sorted(exp.collector_durations.items())},
        "collector_failures": dict(sorted(exp.collector_failures.items())),
        "_family_names": stats["family_names"],
    }


def render(report: dict) -> str:
    m = report["machine"]
    rows = report["results"]
    anchor = rows.get("node-same")
    out = []
    out.append(f"## Run {m['date']}\n")
    out.append(f"- machine: {m['hostname']}, {m['nproc']} CPU ({m['cpu_model']}), "
               f"{fmt_mib(m['mem_total_bytes'])} MiB RAM, kernel {m['kernel']}, "
               f"load at start {' '.join(m['loadavg_start'])}, at end {' '.join(m['loadavg_end'])}")
    out.append(f"- warden: {report['versions']['warden']} (git {report['versions']['warden_git']}), "
               f"`{report['paths']['warden']}`")
    out.append(f"- node_exporter: {report['versions']['node_exporter']}, "
               f"`{report['paths']['node_exporter']}`")
    out.append(f"- {report['scrapes']} measured scrapes per exporter after {report['warmup']} "
               f"warm-up scrapes, interleaved round-robin (shuffled order, seed {report['seed']}); "
               f"idle window {report['idle_seconds']:g} s\n")
    out.append("| exporter | series | bytes | p50 ms | p90 ms | p99 ms | max ms | CPU ms/scrape "
               "| CPU vs node-same | RSS MiB | peak RSS MiB | threads | idle CPU ms | idle wake-ups |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        lat = r["latency_seconds"]
        cpu_ratio = fmt_ratio(ratio(r["cpu_seconds_per_scrape"], anchor["cpu_seconds_per_scrape"])) \
            if anchor else "n/a"
        idle = r.get("idle_cpu_seconds")
        out.append(
            f"| {name} | {r['series']} | {r['payload_bytes']} | {fmt_ms(lat['p50'])} | "
            f"{fmt_ms(lat['p90'])} | {fmt_ms(lat['p99'])} | {fmt_ms(lat['max'])} | "
            f"{r['cpu_seconds_per_scrape'] * 1e3:.3f} | {cpu_ratio} | {fmt_mib(r['rss_bytes'])} | "
            f"{fmt_mib(r['hwm_bytes'])} | {r['threads']} | "
            f"{'—' if idle is None else f'{idle * 1e3:.0f}'} | "
            f"{'—' if idle is None else r['idle_wakeups']} |")
    out.append("")
    if anchor and "warden" in rows:
        w = rows["warden"]
        out.append("Ratios, warden / node-same (node_exporter restricted to the same families):\n")
        for key, label in (("p50", "p50 latency"), ("p99", "p99 latency")):
            out.append(f"- {label}: {fmt_ratio(ratio(w['latency_seconds'][key], anchor['latency_seconds'][key]))}")
        out.append(f"- CPU per scrape: {fmt_ratio(ratio(w['cpu_seconds_per_scrape'], anchor['cpu_seconds_per_scrape']))}"
                   + (f" (schedstat cross-check: "
                      f"{fmt_ratio(ratio(w['sched_seconds_per_scrape'], anchor['sched_seconds_per_scrape']))})"
                      if w.get("sched_seconds_per_scrape") and anchor.get("sched_seconds_per_scrape") else ""))
        out.append(f"- peak RSS: {fmt_ratio(ratio(w['hwm_bytes'], anchor['hwm_bytes']))}")
        out.append(f"- series: {fmt_ratio(ratio(w['series'], anchor['series']))}, "
                   f"payload bytes: {fmt_ratio(ratio(w['payload_bytes'], anchor['payload_bytes']))}")
        out.append("")
    out.append("Targets (warden, host-only default config):\n")
    out.append("| target | measured | result |")
    out.append("|---|---|---|")
    for t in report["targets"]:
        out.append(f"| {t['target']} | {t['measured']} | {'PASS' if t['pass'] else 'FAIL'} |")
    out.append("")
    if report.get("family_diff"):
        d = report["family_diff"]
        out.append(f"node_* families in node-same but not in warden ({len(d['missing_in_warden'])}): "
                   f"{', '.join(d['missing_in_warden']) or 'none'}\n")
        out.append(f"node_* families in warden but not in node-same ({len(d['extra_in_warden'])}): "
                   f"{', '.join(d['extra_in_warden']) or 'none'}\n")
    for name, r in rows.items():
        durs = r["collector_duration_p50_seconds"]
        if durs:
            top = sorted(durs.items(), key=lambda kv: -kv[1])
            out.append(f"{name}: median self-reported collector duration (ms): "
                       + ", ".join(f"{k} {v * 1e3:.3f}" for k, v in top))
            if r["collector_failures"]:
                out.append(f"  failures: {r['collector_failures']}")
            out.append("")
    return "\n".join(out)


def targets(rows: dict) -> list[dict]:
    w, n = rows.get("warden"), rows.get("node-same")
    if not w:
        return []
    out = []
    if n:
        r = ratio(w["cpu_seconds_per_scrape"], n["cpu_seconds_per_scrape"])
        out.append({"target": f"CPU per scrape ≤ {TARGET_CPU_RATIO}× node-same",
                    "measured": f"{w['cpu_seconds_per_scrape'] * 1e3:.3f} ms vs "
                                f"{n['cpu_seconds_per_scrape'] * 1e3:.3f} ms = {fmt_ratio(r)}",
                    "pass": r is not None and r <= TARGET_CPU_RATIO})
    p50 = w["latency_seconds"]["p50"]
    out.append({"target": f"p50 latency ≤ {TARGET_P50_SECONDS * 1e3:g} ms",
                "measured": f"{fmt_ms(p50)} ms", "pass": p50 <= TARGET_P50_SECONDS})
    hwm = w["hwm_bytes"]
    out.append({"target": f"RSS ≤ {TARGET_RSS_BYTES / 1048576:g} MiB (peak, VmHWM)",
                "measured": f"{fmt_mib(hwm)} MiB (VmRSS {fmt_mib(w['rss_bytes'])} MiB)",
                "pass": hwm <= TARGET_RSS_BYTES})
    idle = w.get("idle_cpu_seconds")
    idle_window = w.get("idle_window_seconds")
    if idle is not None and idle_window:
        frac = idle / idle_window
        out.append({"target": f"idle CPU ≤ {TARGET_IDLE_CORE_FRACTION * 100:g} % of a core",
                    "measured": f"{idle * 1e3:.0f} ms over {idle_window:.0f} s = {frac * 100:.3f} % "
                                f"(live threads: {w['idle_sched_seconds'] * 1e3:.3f} ms on CPU, "
                                f"{w['idle_wakeups']} wake-ups)",
                    "pass": frac <= TARGET_IDLE_CORE_FRACTION})
    return out


# --------------------------------------------------------------------------------------------
# --postgres: warden (host + one PostgreSQL) against node_exporter + postgres_exporter


# The issue's targets for warden with one PostgreSQL server, against the two anchors together.
PG_TARGET_CPU_RATIO = 0.2             # warden CPU per scrape <= 0.2 x (node-same + postgres_exporter)
PG_TARGET_P50_SECONDS = 0.002         # p50 latency <= 2 ms
PG_TARGET_RSS_BYTES = 15 * 1024 * 1024
PG_TARGET_BACKENDS = 1                # at most one backend connection held by warden
PG_TARGET_DOWN_P50_SECONDS = 0.050    # database down: scrape p50 <= 50 ms
PG_TARGET_SERIES = 1000               # default series on a small host with one database

PG_APP = "warden"                     # warden's application_name
BENCH_APP = "warden-bench"            # this script's psql sessions
PG_CTL_TIMEOUT = "30"                 # seconds pg_ctl -w waits
PSQL_TIMEOUT_SECONDS = 120.0          # the seeding statements run well under this
PG_START_ATTEMPTS = 3

# Appended to postgresql.conf: loopback only, a private socket directory (set on the command
# line), no durability (the cluster is thrown away), and a log line per connection so that the
# connections each exporter opens can be counted.
PG_SETTINGS = """
# Added by warden's scripts/bench.py --postgres.
listen_addresses = '127.0.0.1'
fsync = off
full_page_writes = off
synchronous_commit = off
log_connections = on
"""

# The application's schema: a job table of ~100k rows and a few small tables.
PG_SEED_SQL = """
CREATE TABLE runs (
    id bigserial PRIMARY KEY,
    model text NOT NULL,
    status text NOT NULL,
    queued_at timestamptz NOT NULL,
    started_at timestamptz,
    finished_at timestamptz,
    error text
);
INSERT INTO runs (model, status, queued_at, started_at, finished_at, error)
SELECT 'model-' || (g % 20),
       (ARRAY['scheduled','running','completed','completed','completed','failed','cancelled'])[1 + g % 7],
       now() - make_interval(secs => g * 30),
       CASE WHEN g % 7 <> 0 THEN now() - make_interval(secs => g * 30 - 5) END,
       CASE WHEN g % 7 > 1 THEN now() - make_interval(secs => g * 30 - 600) END,
       CASE WHEN g % 7 = 5 THEN 'exit status 1' END
FROM generate_series(1, 100000) AS g;
CREATE INDEX runs_status ON runs (status);
CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, created_at timestamptz DEFAULT now());
INSERT INTO users (name) SELECT 'user-' || g FROM generate_series(1, 200) AS g;
CREATE TABLE settings (key text PRIMARY KEY, value text);
INSERT INTO settings VALUES ('retention_days', '30'), ('max_parallel_runs', '4');
CREATE TABLE request_logs (id bigserial PRIMARY KEY, at timestamptz DEFAULT now(),
                           transport text, status int, duration_ms double precision);
INSERT INTO request_logs (transport, status, duration_ms)
SELECT (ARRAY['stdio','sse','http'])[1 + g % 3], CASE WHEN g % 50 = 0 THEN 500 ELSE 200 END, g % 97
FROM generate_series(1, 2000) AS g;
UPDATE runs SET error = NULL WHERE id % 100 = 0;
DELETE FROM request_logs WHERE id % 10 = 0;
ANALYZE;
"""


def pg_bin_dir() -> str | None:
    """The bin directory of the newest PostgreSQL under /usr/lib/postgresql."""
    base = "/usr/lib/postgresql"
    try:
        versions = [v for v in os.listdir(base) if os.path.isfile(os.path.join(base, v, "bin", "initdb"))]
    except OSError:
        return None
    if not versions:
        return None

    def key(v: str):
        return tuple(int(p) if p.isdigit() else 0 for p in v.split("."))
    return os.path.join(base, max(versions, key=key), "bin")


class PgCluster:
    """A throwaway PostgreSQL cluster on a free loopback port, in its own temp dir under /tmp.

    PostgreSQL refuses to run as root: then every server binary runs as the ``postgres`` OS user
    through ``runuser -u postgres --`` and the directory is handed to that user. psql connects
    over TCP with trust auth, so it runs as whoever we are.
    """

    def __init__(self, bin_dir: str):
        self.bin = bin_dir
        self.psql_bin = os.path.join(bin_dir, "psql") if os.path.isfile(os.path.join(bin_dir, "psql")) \
            else (shutil.which("psql") or "psql")
        self.root = os.geteuid() == 0
        self.dir = tempfile.mkdtemp(prefix="warden-bench-pg-", dir="/tmp")
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        self.log = os.path.join(self.dir, "server.log")
        self.port = 0
        self.running = False
        os.mkdir(self.sock)
        if self.root:
            import pwd
            pw = pwd.getpwnam("postgres")
            for path in (self.dir, self.sock):
                os.chown(path, pw.pw_uid, pw.pw_gid)
            os.chmod(self.dir, 0o755)  # the log is read by this script

    def _as_owner(self, argv: list[str]) -> list[str]:
        return (["runuser", "-u", "postgres", "--"] + argv) if self.root else argv

    def _run(self, argv: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess:
        return subprocess.run(self._as_owner(argv), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def init_and_start(self) -> None:
        out = self._run([os.path.join(self.bin, "initdb"), "-D", self.data, "-U", "postgres",
                         "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"], timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{out.stdout}\n{out.stderr}")
        conf = os.path.join(self.data, "postgresql.conf")
        # Append as the owner: the data directory is 0700 and owned by postgres.
        proc = subprocess.run(self._as_owner(["tee", "-a", conf]), input=PG_SETTINGS, text=True,
                              capture_output=True, timeout=10)
        if proc.returncode != 0:
            raise RuntimeError(f"cannot append to {conf}: {proc.stderr}")
        for attempt in range(PG_START_ATTEMPTS):
            self.port = free_port()
            if self.start():
                return
            if attempt + 1 == PG_START_ATTEMPTS:
                raise RuntimeError(f"PostgreSQL did not start:\n{self.log_tail()}")

    def start(self) -> bool:
        out = self._run([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-l", self.log,
                         "-w", "-t", PG_CTL_TIMEOUT,
                         "-o", f"-p {self.port} -k {self.sock}", "start"], timeout=90)
        self.running = out.returncode == 0
        return self.running

    def stop(self, mode: str = "fast") -> None:
        if not os.path.isfile(os.path.join(self.data, "postmaster.pid")):
            self.running = False
            return
        self._run([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-w", "-t", PG_CTL_TIMEOUT,
                   "-m", mode, "stop"], timeout=90)
        self.running = False

    def destroy(self) -> None:
        try:
            self.stop("fast")
        except (OSError, subprocess.TimeoutExpired):
            try:
                self.stop("immediate")
            except (OSError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        return file_tail(self.log, lines)

    def log_size(self) -> int:
        return file_size(self.log)

    def log_between(self, start: int, end: int) -> str:
        with open(self.log, "rb") as f:
            f.seek(start)
            return f.read(max(0, end - start)).decode("utf-8", "replace")

    def psql(self, db: str, sql: str, timeout: float = PSQL_TIMEOUT_SECONDS) -> str:
        env = {**os.environ, "PGAPPNAME": BENCH_APP, "PGCONNECT_TIMEOUT": "10"}
        out = subprocess.run([self.psql_bin, "-X", "-q", "-At", "-F", "|", "-v", "ON_ERROR_STOP=1",
                              "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db,
                              "-c", sql], capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL, env=env)
        if out.returncode != 0:
            raise RuntimeError(f"psql failed ({db}): {out.stderr.strip()}")
        return out.stdout

    def postmaster_pid(self) -> int | None:
        try:
            with open(os.path.join(self.data, "postmaster.pid"), encoding="ascii") as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None


def pg_backends(cluster: PgCluster) -> list[dict]:
    """Client backends other than this script's, from pg_stat_activity."""
    rows = cluster.psql("postgres",
                        "SELECT pid, coalesce(application_name, ''), coalesce(datname, ''), "
                        "coalesce(state, ''), backend_start FROM pg_stat_activity "
                        f"WHERE backend_type = 'client backend' AND application_name <> '{BENCH_APP}'",
                        timeout=30)
    out = []
    for line in rows.splitlines():
        parts = line.split("|")
        if len(parts) == 5:
            out.append({"pid": int(parts[0]), "app": parts[1], "db": parts[2], "state": parts[3],
                        "start": parts[4]})
    return out


def connections_in_log(text: str) -> dict[str, int]:
    """Connections authorized in a slice of the server log, by application_name ('' = none)."""
    out: dict[str, int] = {}
    for m in re.finditer(r"connection authorized: ([^\n]*)", text):
        app = re.search(r"application_name=(\S+)", m.group(1))
        name = app.group(1) if app else ""
        out[name] = out.get(name, 0) + 1
    return out


def proc_cpu_with_children(pid: int) -> float:
    """utime+stime+cutime+cstime: a postmaster's own CPU plus that of the backends it reaped."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        data = f.read()
    fields = data[data.rindex(")") + 2:].split()
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def cluster_cpu(postmaster: int | None) -> float | None:
    """CPU of the whole cluster: every live child of the postmaster, plus reaped children."""
    if postmaster is None:
        return None
    try:
        total = proc_cpu_with_children(postmaster)
    except OSError:
        return None
    try:
        with open(f"/proc/{postmaster}/task/{postmaster}/children", encoding="ascii") as f:
            children = [int(c) for c in f.read().split()]
    except OSError:
        children = []
    for child in children:
        try:
            total += cpu_seconds(child)
        except (OSError, ValueError):
            continue
    return total


_PG_UP_RE = re.compile(rb"^pg_up(?:\{[^}]*\})? (\S+)$", re.M)
_PGX_LAST_SCRAPE_RE = re.compile(rb"^pg_exporter_last_scrape_duration_seconds (\S+)$", re.M)


def pg_up_values(body: bytes) -> list[float]:
    return [float(m.group(1)) for m in _PG_UP_RE.finditer(body)]


def count_prefix(body: bytes, prefix: bytes) -> int:
    return sum(1 for line in body.split(b"\n") if line.startswith(prefix))


def wait_pg_up(e: Exporter, seconds: float = 30.0) -> bool:
    """Scrapes (unrecorded) until the exporter reports pg_up 1; bounded."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        e.scrape(record=False)
        if pg_up_values(e.last_body) and all(v == 1.0 for v in pg_up_values(e.last_body)):
            return True
        time.sleep(0.25)
    return False



def publish(report: dict, text: str, args: argparse.Namespace) -> int:
    """Prints the report, writes --markdown and --json, and returns 1 if a target was missed."""
    print(text)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, ensure_ascii=False)
            f.write("\n")
    return 0 if all(t["pass"] for t in report["targets"]) else 1

# The refresh interval of the probe warden that times one refresh.
PROBE_INTERVAL = 0.25


def run_postgres(args: argparse.Namespace, tmp: str) -> int:
    rng = random.Random(args.seed)
    facts = machine_facts()
    bin_dir = pg_bin_dir()
    if bin_dir is None:
        print("bench: no PostgreSQL server under /usr/lib/postgresql; "
              "install it: apt-get install postgresql", file=sys.stderr)
        return 2
    interval = args.pg_interval

    # ---- the database
    cluster = PgCluster(bin_dir)
    _CLEANUPS.append(cluster.destroy)
    print(f"bench: starting PostgreSQL from {bin_dir} in {cluster.dir} …", file=sys.stderr)
    cluster.init_and_start()
    cluster.psql("postgres", "CREATE DATABASE app")
    t_seed = time.monotonic()
    cluster.psql("app", PG_SEED_SQL)
    pg_version = cluster.psql("postgres", "SHOW server_version").strip()
    runs_rows = int(cluster.psql("app", "SELECT count(*) FROM runs").strip())
    print(f"bench: PostgreSQL {pg_version} on 127.0.0.1:{cluster.port}; seeded app "
          f"({runs_rows} runs) in {time.monotonic() - t_seed:.1f} s", file=sys.stderr)

    # ---- the exporters
    w_port = free_port()
    config_path = os.path.join(tmp, "warden.yml")
    with open(config_path, "w", encoding="utf-8") as f:
        f.write(f"listen: 127.0.0.1:{w_port}\n"
                f"state_dir: {os.path.join(tmp, 'warden-state')}\n"
                "postgres:\n"
                "  - name: main\n"
                f"    dsn: postgres://postgres@127.0.0.1:{cluster.port}/app\n"
                f"    interval: {interval:g}s\n")
    warden = Exporter("warden", [args.warden, "serve", "--config", config_path,
                                 "--listen", f"127.0.0.1:{w_port}"],
                      w_port, os.path.join(tmp, "warden.log"))
    warden.start()
    warden.wait_ready()
    n_port = free_port()
    node_same = Exporter("node-same",
                         [args.node_exporter, f"--web.listen-address=127.0.0.1:{n_port}",
                          "--log.level=warn", "--collector.disable-defaults"]
                         + [f"--collector.{c}" for c in host_collectors(warden)],
                         n_port, os.path.join(tmp, "node-same.log"))
    p_port = free_port()
    pg_dsn = f"postgresql://postgres@127.0.0.1:{cluster.port}/app?sslmode=disable"
    pgx = Exporter("postgres_exporter",
                   [args.postgres_exporter, f"--web.listen-address=127.0.0.1:{p_port}",
                    "--log.level=warn"],
                   p_port, os.path.join(tmp, "postgres_exporter.log"),
                   env={"DATA_SOURCE_NAME": pg_dsn})
    exporters = [warden, node_same, pgx]
    for e in exporters:
        if e.proc is None:
            e.start()
    for e in exporters:
        e.wait_ready()
    for e in (warden, pgx):
        if not wait_pg_up(e):
            raise RuntimeError(f"{e.name} does not report pg_up 1:\n{e.log_tail()}")
    print(f"bench: started {', '.join(f'{e.name} (pid {e.pid}, port {e.port})' for e in exporters)}",
          file=sys.stderr)
    for _ in range(args.warmup):
        for e in exporters:
            e.scrape(record=False)

    # ---- the interleaved, paced run
    n = args.scrapes
    duration = args.pg_duration
    period = duration / n if duration > 0 else 0.0
    sample_every = max(1, n // max(1, args.pg_samples))
    samples: list[dict] = []
    postmaster = cluster.postmaster_pid()
    # The backends each exporter holds when the run starts; warden sets application_name,
    # postgres_exporter (lib/pq) sets none.
    backend_pids = {"warden": [], "postgres_exporter": []}
    for b in pg_backends(cluster):
        backend_pids["warden" if b["app"] == PG_APP else "postgres_exporter"].append(b["pid"])

    def backends_cpu() -> dict[str, float | None]:
        out = {}
        for who, pids in backend_pids.items():
            vals = [sched_seconds(pid) for pid in pids]
            out[who] = None if not pids or any(v is None for v in vals) else sum(vals)
        return out
    print(f"bench: {n} scrapes each of {', '.join(e.name for e in exporters)}, interleaved, "
          f"paced over ≥ {duration:g} s (warden's PostgreSQL interval {interval:g} s) …",
          file=sys.stderr)
    for e in exporters:
        e.connections = 0
    log0 = cluster.log_size()
    db0 = cluster_cpu(postmaster)
    bc0 = backends_cpu()
    before = {e.name: (cpu_seconds(e.pid), sched_seconds(e.pid)) for e in exporters}
    t0 = time.monotonic()
    order = list(exporters)
    for i in range(n):
        rng.shuffle(order)
        for e in order:
            e.scrape()
        if i % sample_every == sample_every // 2:
            t_s = time.monotonic()
            backends = pg_backends(cluster)
            samples.append({"t": round(t_s - t0, 2),
                            "warden": sum(1 for b in backends if b["app"] == PG_APP),
                            "other": sum(1 for b in backends if b["app"] != PG_APP),
                            "backends": backends})
        # Pace the rounds: round i+1 starts no earlier than t0 + (i+1) * period.
        delay = t0 + (i + 1) * period - time.monotonic()
        if delay > 0:
            time.sleep(min(delay, period))
    wall = time.monotonic() - t0
    after = {e.name: (cpu_seconds(e.pid), sched_seconds(e.pid)) for e in exporters}
    db1 = cluster_cpu(postmaster)
    bc1 = backends_cpu()
    log1 = cluster.log_size()
    conns = connections_in_log(cluster.log_between(log0, log1))
    conns.pop(BENCH_APP, None)
    conns_since_start = connections_in_log(cluster.log_between(0, log1))
    conns_since_start.pop(BENCH_APP, None)
    print(f"bench: measured run took {wall:.1f} s", file=sys.stderr)

    # ---- idle: warden's background refresh alone
    for e in exporters:
        e.close()
    idle_seconds = args.idle if args.idle is not None else 2 * interval
    idle = {}
    if idle_seconds > 0:
        print(f"bench: idle for {idle_seconds:g} s (warden keeps refreshing every {interval:g} s) …",
              file=sys.stderr)
        ib = {e.name: (cpu_seconds(e.pid), thread_counters(e.pid)) for e in exporters}
        t_idle = time.monotonic()
        time.sleep(idle_seconds)
        window = time.monotonic() - t_idle
        for e in exporters:
            wakeups, sched = idle_delta(ib[e.name][1], thread_counters(e.pid))
            idle[e.name] = {"idle_cpu_seconds": cpu_seconds(e.pid) - ib[e.name][0],
                            "idle_window_seconds": window, "idle_wakeups": wakeups,
                            "idle_sched_seconds": sched}

    # ---- warden's refresh alone: a second warden with no host collectors, refreshing every
    # PROBE_INTERVAL and never scraped; its CPU over the window ÷ refreshes is one refresh. (The
    # idle window above holds only two refreshes of the main warden, too few to divide by.)
    probe = None
    if args.refresh_probe > 0:
        p_port = free_port()
        p_config = os.path.join(tmp, "warden-probe.yml")
        with open(p_config, "w", encoding="utf-8") as f:
            f.write(f"listen: 127.0.0.1:{p_port}\n"
                    f"state_dir: {os.path.join(tmp, 'warden-probe-state')}\n"
                    "host: {enabled: false}\n"
                    "postgres:\n"
                    "  - name: main\n"
                    f"    dsn: postgres://postgres@127.0.0.1:{cluster.port}/app\n"
                    f"    interval: {PROBE_INTERVAL * 1000:g}ms\n")
        prober = Exporter("warden-probe", [args.warden, "serve", "--config", p_config],
                          p_port, os.path.join(tmp, "warden-probe.log"))
        prober.start()
        prober.wait_ready()
        prober.close()
        time.sleep(2)  # connected, first refreshes done
        print(f"bench: refresh probe for {args.refresh_probe:g} s (every {PROBE_INTERVAL:g} s, "
              "no scrapes) …", file=sys.stderr)
        pc0, ps0 = cpu_seconds(prober.pid), sched_seconds(prober.pid)
        time.sleep(args.refresh_probe)
        pc1, ps1 = cpu_seconds(prober.pid), sched_seconds(prober.pid)
        refreshes = args.refresh_probe / PROBE_INTERVAL
        probe = {"refreshes": refreshes,
                 "cpu_seconds_per_refresh": (pc1 - pc0) / refreshes,
                 "sched_seconds_per_refresh": None if ps0 is None or ps1 is None
                 else (ps1 - ps0) / refreshes}
        if prober.proc is not None:
            prober.proc.terminate()
            prober.proc.wait(timeout=10)

    rows = {}
    for e in exporters:
        c0, s0 = before[e.name]
        c1, s1 = after[e.name]
        row = summarize(e, c1 - c0, None if s0 is None or s1 is None else s1 - s0, n,
                        proc_status(e.pid))
        row.pop("_family_names", None)
        row["wall_seconds"] = wall
        row["cpu_seconds_per_wall_second"] = (c1 - c0) / wall
        row["pg_series"] = count_prefix(e.last_body, b"pg_")
        row["node_series"] = count_prefix(e.last_body, b"node_")
        row["pg_up"] = pg_up_values(e.last_body)
        row.update(idle.get(e.name, {}))
        rows[e.name] = row
    m = _PGX_LAST_SCRAPE_RE.search(pgx.last_body)
    rows["postgres_exporter"]["self_reported_last_scrape_seconds"] = float(m.group(1)) if m else None

    # ---- database down
    down = {}
    if args.pg_down_scrapes > 0:
        print("bench: stopping PostgreSQL (pg_ctl stop -m fast), waiting 3 s …", file=sys.stderr)
        cluster.stop("fast")
        time.sleep(3)
        views = [Exporter(f"{e.name}-down", e.argv, e.port, e.log_path, proc=e.proc)
                 for e in (warden, pgx)]
        print(f"bench: {args.pg_down_scrapes} scrapes each of warden and postgres_exporter with "
              "the database down …", file=sys.stderr)
        order = list(views)
        for _ in range(args.pg_down_scrapes):
            rng.shuffle(order)
            for v in order:
                v.scrape()
        for v in views:
            down[v.name.removesuffix("-down")] = {
                "scrapes": len(v.latencies),
                "p50": percentile(v.latencies, 50), "p90": percentile(v.latencies, 90),
                "p99": percentile(v.latencies, 99), "max": max(v.latencies),
                "pg_up": pg_up_values(v.last_body),
                "series": exposition_stats(v.last_body)["series"],
            }
            v.close()

    w, ns, px = rows["warden"], rows["node-same"], rows["postgres_exporter"]
    pair_cpu = ns["cpu_seconds_per_scrape"] + px["cpu_seconds_per_scrape"]
    refreshes_idle = (w.get("idle_window_seconds") or 0) / interval
    refresh_cpu = (w["idle_sched_seconds"] / refreshes_idle) if refreshes_idle >= 1 else None
    if probe is not None and probe["sched_seconds_per_refresh"] is not None:
        refresh_cpu = probe["sched_seconds_per_refresh"]
    # warden's cost at Prometheus' pace (one scrape per interval, so one refresh per scrape),
    # from schedstat (ns): the run's CPU minus the refreshes inside it gives the scrape alone.
    prom_pace = None
    if refresh_cpu is not None and all(r.get("sched_seconds_per_scrape") for r in (w, ns, px)):
        scrape_only = max(0.0, w["sched_seconds_per_scrape"] - (wall / interval) * refresh_cpu / n)
        prom_pace = {"scrape_only_seconds": scrape_only,
                     "per_scrape_seconds": scrape_only + refresh_cpu,
                     "pair_sched_seconds_per_scrape": ns["sched_seconds_per_scrape"]
                     + px["sched_seconds_per_scrape"]}
    facts["loadavg_end"] = open("/proc/loadavg", encoding="ascii").read().split()[:3]
    report = {
        "mode": "postgres",
        "machine": facts,
        "versions": {"warden": version_of([args.warden]), "warden_git": git_revision(),
                     "node_exporter": version_of([args.node_exporter]),
                     "postgres_exporter": version_of([args.postgres_exporter]),
                     "postgresql": pg_version},
        "paths": {"warden": args.warden, "node_exporter": args.node_exporter,
                  "postgres_exporter": args.postgres_exporter, "postgresql_bin": bin_dir},
        "warden_config": open(config_path, encoding="utf-8").read(),
        "scrapes": n, "warmup": args.warmup, "seed": args.seed, "clk_tck": CLK_TCK,
        "pg_interval_seconds": interval, "min_duration_seconds": duration, "wall_seconds": wall,
        "refreshes_in_run": wall / interval, "runs_rows": runs_rows,
        "results": rows,
        "pair": {"cpu_seconds_per_scrape": pair_cpu,
                 "cpu_seconds_per_wall_second": ns["cpu_seconds_per_wall_second"]
                 + px["cpu_seconds_per_wall_second"],
                 "series": ns["series"] + px["series"],
                 "hwm_bytes": ns["hwm_bytes"] + px["hwm_bytes"]},
        "warden_refresh_cpu_seconds": refresh_cpu,
        "refresh_probe": probe,
        "warden_at_one_scrape_per_interval": prom_pace,
        "db": {"samples": [{k: v for k, v in s.items() if k != "backends"} for s in samples],
               "sample_backends": [s["backends"] for s in samples],
               "warden_backends_max": max((s["warden"] for s in samples), default=None),
               "other_backends_max": max((s["other"] for s in samples), default=None),
               "distinct_backend_pids": {
                   who: sorted({b["pid"] for s in samples for b in s["backends"]
                                if (b["app"] == PG_APP) == (who == "warden")})
                   for who in ("warden", "postgres_exporter")},
               "connections_opened_in_run": conns,
               "connections_opened_since_cluster_start": conns_since_start,
               "backend_pids_at_start": backend_pids,
               "backend_cpu_seconds": {
                   who: None if bc0[who] is None or bc1[who] is None else bc1[who] - bc0[who]
                   for who in backend_pids},
               "cluster_cpu_seconds": None if db0 is None or db1 is None else db1 - db0},
        "down": down,
    }
    report["targets"] = pg_targets(report)
    text = render_postgres(report)
    return publish(report, text, args)


def pg_targets(report: dict) -> list[dict]:
    rows = report["results"]
    w, ns, px = rows["warden"], rows["node-same"], rows["postgres_exporter"]
    pair = report["pair"]
    out = []
    pp = report.get("warden_at_one_scrape_per_interval")
    if pp:
        r = ratio(pp["per_scrape_seconds"], pp["pair_sched_seconds_per_scrape"])
        out.append({"target": f"CPU at one scrape per refresh interval ≤ {PG_TARGET_CPU_RATIO}× "
                              "node-same + postgres_exporter",
                    "measured": f"{pp['scrape_only_seconds'] * 1e3:.3f} ms scrape + "
                                f"{report['warden_refresh_cpu_seconds'] * 1e3:.3f} ms refresh vs "
                                f"{pp['pair_sched_seconds_per_scrape'] * 1e3:.3f} ms → {fmt_ratio(r)}",
                    "pass": r is not None and r <= PG_TARGET_CPU_RATIO})
    else:
        out.append({"target": f"CPU at one scrape per refresh interval ≤ {PG_TARGET_CPU_RATIO}×",
                    "measured": "not measured (--refresh-probe 0 and no idle-window figure)",
                    "pass": False})
    r = ratio(w["cpu_seconds_per_scrape"], pair["cpu_seconds_per_scrape"])
    out.append({"target": f"CPU per scrape ≤ {PG_TARGET_CPU_RATIO}× node-same + postgres_exporter",
                "measured": f"{w['cpu_seconds_per_scrape'] * 1e3:.3f} ms vs "
                            f"{ns['cpu_seconds_per_scrape'] * 1e3:.3f} + "
                            f"{px['cpu_seconds_per_scrape'] * 1e3:.3f} = "
                            f"{pair['cpu_seconds_per_scrape'] * 1e3:.3f} ms → {fmt_ratio(r)}",
                "pass": r is not None and r <= PG_TARGET_CPU_RATIO})
    p50 = w["latency_seconds"]["p50"]
    out.append({"target": f"p50 latency ≤ {PG_TARGET_P50_SECONDS * 1e3:g} ms",
                "measured": f"{fmt_ms(p50)} ms (node-same {fmt_ms(ns['latency_seconds']['p50'])}, "
                            f"postgres_exporter {fmt_ms(px['latency_seconds']['p50'])})",
                "pass": p50 <= PG_TARGET_P50_SECONDS})
    out.append({"target": f"RSS ≤ {PG_TARGET_RSS_BYTES / 1048576:g} MiB (peak, VmHWM)",
                "measured": f"{fmt_mib(w['hwm_bytes'])} MiB (pair {fmt_mib(pair['hwm_bytes'])} MiB)",
                "pass": w["hwm_bytes"] <= PG_TARGET_RSS_BYTES})
    db = report["db"]
    opened = db["connections_opened_in_run"].get(PG_APP, 0)
    held = db["warden_backends_max"]
    out.append({"target": f"backends held by warden ≤ {PG_TARGET_BACKENDS}",
                "measured": f"max {held} in {len(db['samples'])} samples of pg_stat_activity; "
                            f"{opened} connections opened during the run",
                "pass": held is not None and held <= PG_TARGET_BACKENDS and opened == 0})
    d = report["down"]
    if d:
        wd, pd = d["warden"], d["postgres_exporter"]
        ok = wd["p50"] <= PG_TARGET_DOWN_P50_SECONDS and wd["pg_up"] == [0.0]
        out.append({"target": f"database down: p50 ≤ {PG_TARGET_DOWN_P50_SECONDS * 1e3:g} ms, pg_up 0",
                    "measured": f"{fmt_ms(wd['p50'])} ms, pg_up {wd['pg_up']} "
                                f"(postgres_exporter {fmt_ms(pd['p50'])} ms, pg_up {pd['pg_up']})",
                    "pass": ok})
    out.append({"target": f"series < {PG_TARGET_SERIES} (default config, one database)",
                "measured": f"{w['series']} ({w['pg_series']} pg_*; pair {pair['series']})",
                "pass": w["series"] < PG_TARGET_SERIES})
    return out


def render_postgres(report: dict) -> str:
    m = report["machine"]
    rows = report["results"]
    w, ns, px = rows["warden"], rows["node-same"], rows["postgres_exporter"]
    pair = report["pair"]
    v = report["versions"]
    out = [f"## PostgreSQL run {m['date']}\n"]
    out.append(f"- machine: {m['hostname']}, {m['nproc']} CPU ({m['cpu_model']}), "
               f"{fmt_mib(m['mem_total_bytes'])} MiB RAM, kernel {m['kernel']}, "
               f"load at start {' '.join(m['loadavg_start'])}, at end {' '.join(m['loadavg_end'])}")
    out.append(f"- warden: {v['warden']} (git {v['warden_git']}); node_exporter: {v['node_exporter']}; "
               f"postgres_exporter: {v['postgres_exporter']}; PostgreSQL {v['postgresql']} "
               f"(`app` with {report['runs_rows']} `runs` rows + 3 small tables)")
    out.append(f"- {report['scrapes']} measured scrapes per exporter after {report['warmup']} warm-up "
               f"rounds, interleaved round-robin (shuffled, seed {report['seed']}), paced over "
               f"{report['wall_seconds']:.1f} s; warden's PostgreSQL interval "
               f"{report['pg_interval_seconds']:g} s, so ≈ {report['refreshes_in_run']:.1f} background "
               "refreshes fall inside the run and are in warden's CPU figure\n")
    out.append("| exporter | series | pg_* series | bytes | p50 ms | p90 ms | p99 ms | max ms "
               "| CPU ms/scrape | CPU ms per s of wall | peak RSS MiB | threads | idle CPU ms |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        lat = r["latency_seconds"]
        idle = r.get("idle_cpu_seconds")
        out.append(f"| {name} | {r['series']} | {r['pg_series']} | {r['payload_bytes']} | "
                   f"{fmt_ms(lat['p50'])} | {fmt_ms(lat['p90'])} | {fmt_ms(lat['p99'])} | "
                   f"{fmt_ms(lat['max'])} | {r['cpu_seconds_per_scrape'] * 1e3:.3f} | "
                   f"{r['cpu_seconds_per_wall_second'] * 1e3:.2f} | {fmt_mib(r['hwm_bytes'])} | "
                   f"{r['threads']} | {'—' if idle is None else f'{idle * 1e3:.0f}'} |")
    out.append(f"| **pair** (node-same + postgres_exporter) | {pair['series']} | {px['pg_series']} | "
               f"{ns['payload_bytes'] + px['payload_bytes']} | — | — | — | — | "
               f"{pair['cpu_seconds_per_scrape'] * 1e3:.3f} | "
               f"{pair['cpu_seconds_per_wall_second'] * 1e3:.2f} | {fmt_mib(pair['hwm_bytes'])} | — | — |")
    out.append("")
    out.append("Ratios, warden / pair:\n")
    out.append(f"- CPU per scrape: {fmt_ratio(ratio(w['cpu_seconds_per_scrape'], pair['cpu_seconds_per_scrape']))}"
               + (f" (schedstat cross-check: "
                  f"{fmt_ratio(ratio(w['sched_seconds_per_scrape'], ns['sched_seconds_per_scrape'] + px['sched_seconds_per_scrape']))})"
                  if w.get("sched_seconds_per_scrape") and ns.get("sched_seconds_per_scrape")
                  and px.get("sched_seconds_per_scrape") else ""))
    out.append(f"- CPU per second of wall time at this scrape rate: "
               f"{fmt_ratio(ratio(w['cpu_seconds_per_wall_second'], pair['cpu_seconds_per_wall_second']))}")
    out.append(f"- p50 latency: {fmt_ratio(ratio(w['latency_seconds']['p50'], ns['latency_seconds']['p50']))} "
               f"of node-same's, {fmt_ratio(ratio(w['latency_seconds']['p50'], px['latency_seconds']['p50']))} "
               "of postgres_exporter's")
    out.append(f"- peak RSS: {fmt_ratio(ratio(w['hwm_bytes'], pair['hwm_bytes']))}; "
               f"series: {fmt_ratio(ratio(w['series'], pair['series']))}")
    rc = report["warden_refresh_cpu_seconds"]
    if rc is not None:
        probe = report.get("refresh_probe")
        if probe:
            out.append(f"- warden's background refresh, measured by a second warden refreshing every "
                       f"{PROBE_INTERVAL:g} s with no host collectors and no scrapes (schedstat ÷ "
                       f"{probe['refreshes']:.0f} refreshes): {rc * 1e3:.3f} ms each "
                       f"(utime+stime: {probe['cpu_seconds_per_refresh'] * 1e3:.3f} ms)")
        else:
            out.append(f"- warden's background refresh, measured alone in the idle window (schedstat "
                       f"of its threads ÷ {w['idle_window_seconds'] / report['pg_interval_seconds']:.1f} "
                       f"refreshes): {rc * 1e3:.3f} ms each")
    pp = report.get("warden_at_one_scrape_per_interval")
    if pp:
        out.append(f"- at Prometheus' pace (one scrape per {report['pg_interval_seconds']:g} s "
                   f"interval, so a whole refresh per scrape; schedstat): scrape alone "
                   f"{pp['scrape_only_seconds'] * 1e3:.3f} ms + refresh {rc * 1e3:.3f} ms = "
                   f"{pp['per_scrape_seconds'] * 1e3:.3f} ms vs the pair's "
                   f"{pp['pair_sched_seconds_per_scrape'] * 1e3:.3f} ms = "
                   f"{fmt_ratio(ratio(pp['per_scrape_seconds'], pp['pair_sched_seconds_per_scrape']))}")
    out.append("")
    db = report["db"]
    out.append("Database load:\n")
    out.append(f"- backends in pg_stat_activity over {len(db['samples'])} samples: warden max "
               f"{db['warden_backends_max']}, everyone else (postgres_exporter) max "
               f"{db['other_backends_max']}")
    out.append(f"- distinct backend pids seen: warden {db['distinct_backend_pids']['warden']}, "
               f"postgres_exporter {db['distinct_backend_pids']['postgres_exporter']}")

    def conn_list(d: dict) -> str:
        return ", ".join(f"{'postgres_exporter (no application_name)' if not k else k} {c}"
                         for k, c in sorted(d.items())) or "none"
    out.append(f"- connections opened (server log, log_connections; this script's psql excluded): "
               f"during the run: {conn_list(db['connections_opened_in_run'])}; since the cluster "
               f"started: {conn_list(db['connections_opened_since_cluster_start'])}")
    bc = db["backend_cpu_seconds"]
    n_scr = report["scrapes"]
    out.append("- CPU of each exporter's backends during the run (schedstat): "
               + ", ".join(f"{who} {'n/a' if v is None else f'{v * 1e3:.1f} ms ({v / n_scr * 1e3:.3f} ms/scrape)'}"
                           for who, v in bc.items())
               + (f"; whole cluster (all processes, reaped backends included, this script's psql "
                  f"samples too): {db['cluster_cpu_seconds'] * 1e3:.0f} ms"
                  if db["cluster_cpu_seconds"] is not None else ""))
    out.append("")
    d = report["down"]
    if d:
        out.append("Database down (pg_ctl stop -m fast, 3 s later):\n")
        out.append("| exporter | scrapes | p50 ms | p90 ms | p99 ms | max ms | pg_up | series |")
        out.append("|---|---:|---:|---:|---:|---:|---|---:|")
        for name, r in d.items():
            out.append(f"| {name} | {r['scrapes']} | {fmt_ms(r['p50'])} | {fmt_ms(r['p90'])} | "
                       f"{fmt_ms(r['p99'])} | {fmt_ms(r['max'])} | {r['pg_up']} | {r['series']} |")
        out.append("")
    out.append("Targets (warden, host + one PostgreSQL, against the pair):\n")
    out.append("| target | measured | result |")
    out.append("|---|---|---|")
    for t in report["targets"]:
        out.append(f"| {t['target']} | {t['measured']} | {'PASS' if t['pass'] else 'FAIL'} |")
    out.append("")
    for name, r in rows.items():
        durs = r["collector_duration_p50_seconds"]
        if durs:
            top = sorted(durs.items(), key=lambda kv: -kv[1])
            out.append(f"{name}: median self-reported collector duration (ms): "
                       + ", ".join(f"{k} {val * 1e3:.3f}" for k, val in top))
            if r["collector_failures"]:
                out.append(f"  failures: {r['collector_failures']}")
            out.append("")
    if px.get("self_reported_last_scrape_seconds") is not None:
        out.append(f"postgres_exporter: pg_exporter_last_scrape_duration_seconds "
                   f"{px['self_reported_last_scrape_seconds'] * 1e3:.3f} ms (last scrape)\n")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Main


def default_warden() -> str:
    candidates = []
    if os.environ.get("CARGO_TARGET_DIR"):
        candidates.append(os.path.join(os.environ["CARGO_TARGET_DIR"], "release", "warden"))
    candidates.append(os.path.join(REPO, "target", "release", "warden"))
    for c in candidates:
        if os.access(c, os.X_OK):
            return c
    return candidates[-1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scrapes", type=int, default=None,
                   help="measured scrapes per exporter (500; 300 with --postgres)")
    p.add_argument("--warmup", type=int, default=10, help="unmeasured scrapes first (10)")
    p.add_argument("--idle", type=float, default=None,
                   help="idle window in seconds (20; with --postgres, 2 x --pg-interval)")
    p.add_argument("--warden", default=default_warden(),
                   help="the warden binary ($CARGO_TARGET_DIR or ./target /release/warden)")
    p.add_argument("--node-exporter", default=shutil.which("prometheus-node-exporter")
                   or "/usr/bin/prometheus-node-exporter", help="the node_exporter binary")
    p.add_argument("--no-node-default", action="store_true",
                   help="skip node_exporter with its default collectors")
    p.add_argument("--no-openmetrics", action="store_true",
                   help="skip the second warden pass with the OpenMetrics Accept header")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.add_argument("--markdown", metavar="FILE", help="also write the report as markdown")
    p.add_argument("--seed", type=int, default=1, help="seed for the round-robin shuffle (1)")
    p.add_argument("--keep-logs", action="store_true", help="keep the temp dir with exporter logs")
    pg = p.add_argument_group("--postgres mode: warden (host + one PostgreSQL) against "
                              "node_exporter + postgres_exporter")
    pg.add_argument("--postgres", action="store_true",
                    help="start a throwaway PostgreSQL cluster and run the PostgreSQL benchmark "
                         "(default --scrapes 300)")
    pg.add_argument("--postgres-exporter", default=shutil.which("prometheus-postgres-exporter")
                    or "/usr/bin/prometheus-postgres-exporter", help="the postgres_exporter binary")
    pg.add_argument("--pg-interval", type=float, default=15.0,
                    help="warden's PostgreSQL refresh interval in seconds (15, its default)")
    pg.add_argument("--pg-duration", type=float, default=60.0,
                    help="the interleaved run is paced to last at least this many seconds (60)")
    pg.add_argument("--pg-samples", type=int, default=12,
                    help="pg_stat_activity samples during the run (12)")
    pg.add_argument("--refresh-probe", type=float, default=20.0,
                    help="seconds a second warden refreshes every 0.25 s, unscraped, to time one "
                         "refresh (20; 0 skips it)")
    pg.add_argument("--pg-down-scrapes", type=int, default=50,
                    help="scrapes of warden and postgres_exporter each with the database down (50)")
    args = p.parse_args(argv)
    if args.scrapes is None:
        args.scrapes = 300 if args.postgres else 500
    if args.idle is None and not args.postgres:
        args.idle = 20.0
    if not 1 <= args.scrapes <= 1_000_000:
        p.error("--scrapes must be between 1 and 1000000")
    if not 0 <= args.warmup <= 10_000:
        p.error("--warmup must be between 0 and 10000")
    if args.idle is not None and not 0 <= args.idle <= 3600:
        p.error("--idle must be between 0 and 3600 seconds")
    if not 1 <= args.pg_interval <= 3600:
        p.error("--pg-interval must be between 1 and 3600 seconds")
    if not 0 <= args.pg_duration <= 3600:
        p.error("--pg-duration must be between 0 and 3600 seconds")
    if not 1 <= args.pg_samples <= 1000:
        p.error("--pg-samples must be between 1 and 1000")
    if not 0 <= args.pg_down_scrapes <= 10_000:
        p.error("--pg-down-scrapes must be between 0 and 10000")
    return args


def measure(exporters: list[Exporter], n: int, rng: random.Random) -> dict[str, tuple]:
    """Scrapes every exporter n times, round-robin in shuffled order; returns CPU deltas."""
    for e in exporters:
        e.connections = 0  # from here on, a new connection means the server closed one
    before = {e.name: (cpu_seconds(e.pid), sched_seconds(e.pid)) for e in exporters}
    order = list(exporters)
    for _ in range(n):
        rng.shuffle(order)
        for e in order:
            e.scrape()
    after = {e.name: (cpu_seconds(e.pid), sched_seconds(e.pid)) for e in exporters}
    out = {}
    for e in exporters:
        c0, s0 = before[e.name]
        c1, s1 = after[e.name]
        out[e.name] = (c1 - c0, None if s0 is None or s1 is None else s1 - s0)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tools = [(args.warden, "build it: cargo build --release"),
             (args.node_exporter, "install it: apt-get install prometheus-node-exporter")]
    if args.postgres:
        tools.append((args.postgres_exporter,
                      "install it: apt-get install prometheus-postgres-exporter"))
    for path, hint in tools:
        if not os.access(path, os.X_OK):
            print(f"bench: {path} is not executable; {hint}", file=sys.stderr)
            return 2

    atexit.register(_stop_all)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    tmp = tempfile.mkdtemp(prefix="warden-bench-")
    try:
        return run_postgres(args, tmp) if args.postgres else run(args, tmp)
    except KeyboardInterrupt as err:
        print(f"bench: interrupted ({err}); stopping the exporters", file=sys.stderr)
        return 130
    finally:
        _stop_all()
        if args.keep_logs:
            print(f"bench: logs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, tmp: str) -> int:
    rng = random.Random(args.seed)
    facts = machine_facts()

    w_port = free_port()
    config_path = os.path.join(tmp, "warden.yml")
    with open(config_path, "w", encoding="utf-8") as f:
        f.write(f"listen: 127.0.0.1:{w_port}\nstate_dir: {os.path.join(tmp, 'warden-state')}\n")
    warden = Exporter("warden", [args.warden, "serve", "--config", config_path,
                                 "--listen", f"127.0.0.1:{w_port}"],
                      w_port, os.path.join(tmp, "warden.log"))

    def node(name: str, extra: list[str]) -> Exporter:
        port = free_port()
        return Exporter(name, [args.node_exporter, f"--web.listen-address=127.0.0.1:{port}",
                               "--log.level=warn", *extra],
                        port, os.path.join(tmp, f"{name}.log"))

    # node-same runs the collectors warden runs, read from warden itself.
    warden.start()
    warden.wait_ready()
    node_same = node("node-same", ["--collector.disable-defaults"]
                     + [f"--collector.{c}" for c in host_collectors(warden)])
    exporters = [warden, node_same]
    if not args.no_node_default:
        # The systemd collector has no warden counterpart and needs a system bus.
        exporters.append(node("node-default", ["--no-collector.systemd"]))

    for e in exporters:
        if e.proc is None:
            e.start()
    for e in exporters:
        e.wait_ready()
    print(f"bench: started {', '.join(f'{e.name} (pid {e.pid}, port {e.port})' for e in exporters)}",
          file=sys.stderr)

    for _ in range(args.warmup):
        for e in exporters:
            e.scrape(record=False)

    # The compared pair is interleaved with each other only; node_exporter with its default
    # collectors (about 2.5x the work) gets its own pass, so its load does not land on the
    # pair's caches and CPU frequency in between their scrapes.
    print(f"bench: {args.scrapes} scrapes each of warden and node-same, interleaved …",
          file=sys.stderr)
    t0 = time.monotonic()
    cpu = measure([warden, node_same], args.scrapes, rng)
    for extra in exporters[2:]:
        print(f"bench: {args.scrapes} scrapes of {extra.name} …", file=sys.stderr)
        cpu.update(measure([extra], args.scrapes, rng))
    print(f"bench: scraping took {time.monotonic() - t0:.1f} s", file=sys.stderr)

    results = {}
    for e in exporters:
        results[e.name] = (e, cpu[e.name])

    om = None
    if not args.no_openmetrics:
        om = Exporter("warden-openmetrics", warden.argv, warden.port, warden.log_path,
                      accept=OPENMETRICS_ACCEPT, proc=warden.proc)
        # Interleave with node-same again (its figures are not reported) so that warden sees
        # the same neighbour activity as in the main pass.
        partner = Exporter("node-same-partner", node_same.argv, node_same.port,
                           node_same.log_path, proc=node_same.proc)
        for _ in range(args.warmup):
            om.scrape(record=False)
            partner.scrape(record=False)
        print(f"bench: {args.scrapes} OpenMetrics scrapes of warden, interleaved with node-same …",
              file=sys.stderr)
        om_cpu = measure([om, partner], args.scrapes, rng)[om.name]
        om.close()
        partner.close()

    for e in exporters:
        e.close()
    idle = {}
    if args.idle > 0:
        print(f"bench: idle for {args.idle:g} s …", file=sys.stderr)
        before = {e.name: (cpu_seconds(e.pid), thread_counters(e.pid)) for e in exporters}
        t_idle = time.monotonic()
        time.sleep(args.idle)
        window = time.monotonic() - t_idle
        for e in exporters:
            wakeups, sched = idle_delta(before[e.name][1], thread_counters(e.pid))
            idle[e.name] = {"idle_cpu_seconds": cpu_seconds(e.pid) - before[e.name][0],
                            "idle_window_seconds": window,
                            "idle_wakeups": wakeups,
                            "idle_sched_seconds": sched}

    rows = {}
    for e in exporters:
        c, s = cpu[e.name]
        rows[e.name] = summarize(e, c, s, args.scrapes, proc_status(e.pid))
        rows[e.name].update(idle.get(e.name, {}))
    if om is not None:
        c, s = om_cpu
        rows[om.name] = summarize(om, c, s, args.scrapes, proc_status(om.pid))
    # Keep a stable row order: warden first, then the anchor.
    order = ["warden", "warden-openmetrics", "node-same", "node-default"]
    rows = {k: rows[k] for k in order if k in rows}

    facts["loadavg_end"] = open("/proc/loadavg", encoding="ascii").read().split()[:3]
    skip = re.compile(r"^node_(scrape_|exporter_|textfile_)")
    w_fam = {f for f in rows["warden"]["_family_names"] if f.startswith("node_") and not skip.match(f)}
    n_fam = {f for f in rows["node-same"]["_family_names"] if f.startswith("node_") and not skip.match(f)}
    for r in rows.values():
        r.pop("_family_names", None)

    report = {
        "machine": facts,
        "versions": {"warden": version_of([args.warden]), "warden_git": git_revision(),
                     "node_exporter": version_of([args.node_exporter])},
        "paths": {"warden": args.warden, "node_exporter": args.node_exporter},
        "scrapes": args.scrapes, "warmup": args.warmup, "idle_seconds": args.idle,
        "seed": args.seed, "clk_tck": CLK_TCK,
        "results": rows,
        "family_diff": {"missing_in_warden": sorted(n_fam - w_fam),
                        "extra_in_warden": sorted(w_fam - n_fam)},
    }
    report["targets"] = targets(rows)
    text = render(report)
    return publish(report, text, args)


if __name__ == "__main__":
    sys.exit(main())
