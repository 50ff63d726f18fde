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

# The families warden's host collector exposes, by node_exporter collector name.
SAME_COLLECTORS = [
    "cpu", "meminfo", "filesystem", "diskstats", "netdev", "loadavg", "stat", "time", "uname",
    "pressure", "filefd", "vmstat",
]

# The issue's targets for warden's host-only scrape.
TARGET_CPU_RATIO = 0.25          # warden CPU per scrape <= 0.25 x node_exporter's
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


def _stop_all() -> None:
    """Stops every process this script started: SIGTERM, then SIGKILL after a grace period."""
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

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=os.path.dirname(self.log_path),
        )
        log.close()
        _STARTED.append(self.proc)

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

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
    rb'^(?:warden_collector_duration_seconds|node_scrape_collector_duration_seconds)'
    rb'\{[^}]*collector="([^"]+)"[^}]*\} (\S+)', re.M)
_SUCCESS_RE = re.compile(
    rb'^(?:warden_collector_success|node_scrape_collector_success)'
    rb'\{[^}]*collector="([^"]+)"[^}]*\} (\S+)', re.M)


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
    p.add_argument("--scrapes", type=int, default=500, help="measured scrapes per exporter (500)")
    p.add_argument("--warmup", type=int, default=10, help="unmeasured scrapes first (10)")
    p.add_argument("--idle", type=float, default=20.0, help="idle window in seconds (20)")
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
    args = p.parse_args(argv)
    if not 1 <= args.scrapes <= 1_000_000:
        p.error("--scrapes must be between 1 and 1000000")
    if not 0 <= args.warmup <= 10_000:
        p.error("--warmup must be between 0 and 10000")
    if not 0 <= args.idle <= 3600:
        p.error("--idle must be between 0 and 3600 seconds")
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
    for path, hint in ((args.warden, "build it: cargo build --release"),
                       (args.node_exporter, "install it: apt-get install prometheus-node-exporter")):
        if not os.access(path, os.X_OK):
            print(f"bench: {path} is not executable; {hint}", file=sys.stderr)
            return 2

    atexit.register(_stop_all)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    tmp = tempfile.mkdtemp(prefix="warden-bench-")
    try:
        return run(args, tmp)
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

    node_same = node("node-same", ["--collector.disable-defaults"]
                     + [f"--collector.{c}" for c in SAME_COLLECTORS])
    exporters = [warden, node_same]
    if not args.no_node_default:
        # The systemd collector has no warden counterpart and needs a system bus.
        exporters.append(node("node-default", ["--no-collector.systemd"]))

    for e in exporters:
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
