#!/usr/bin/env python3
"""Webhook ingestion benchmark: warden's `POST /alerts` against Debian's `webhook` (adnanh/webhook).

Usage:
    python3 scripts/bench_webhook.py --warden target/release/warden [--rounds N] [--json FILE]

What it does (see BENCHMARKS.md, "Webhook ingestion", for the method and the recorded figures):

1. **Saturation** (`wrk`, the same Lua script and connections for both servers): every request is
   one Alertmanager version-4 notification with one firing alert whose fingerprint is distinct
   (a per-thread counter in the body). Three servers, each started fresh for its run, the order
   rotated every round:
   - `webhook`: Debian's webhook with one hook, `execute-command: /bin/true`;
   - `warden-dry`: warden with one route to the action `noop` (`command: [/bin/true]`,
     `dry_run: true`): every alert becomes a durable job, the job only records its plan;
   - `warden-true`: the same action without `dry_run`: the job forks `/bin/true`.
   warden: `host.enabled: false`, `log.level: warn`, its state directory on the root disk (not
   tmpfs), no authentication (loopback; the webhook side has none either).
   Per run: requests/s, wrk's latency p50/p99, socket errors and non-2xx answers, the server's
   RSS sampled every 0.5 s from /proc (VmRSS max, VmHWM at the end), its CPU seconds (and its
   reaped children's), and for warden its own counters afterwards
   (`warden_webhook_notifications_total`, `warden_action_runs_total`) and the jobs in its store,
   read with sqlite3 after it stopped.
2. **Fixed rate** (`--rate`, default 1,000 requests/s): this script's own paced client (a
   subprocess of this script, asyncio, keep-alive connections each sending at rate/N on a fixed
   schedule; latency is measured from the *scheduled* send time, so a stall is not hidden by
   coordinated omission). Same servers, same rotation.
3. **Burst**: 10,000 deliveries of one identical alert (same fingerprint and startsAt) over 16
   connections to a fresh warden-dry; afterwards `warden_action_runs_total{action="noop"}` summed
   over results must be 1 and `warden_action_skipped_total{reason="deduplicated"}` 9,999.
4. **Scrapes under load**: warden with its default host collectors (and the same route/action),
   `/metrics` timed over one keep-alive connection: idle, during a fixed-rate run, idle, during a
   wrk saturation run, and idle while the backlog that left drains; with warden's self-reported
   collector durations (the `actions` collector counts the queued jobs) and the queue depth.

Python 3 standard library only (it imports helpers from scripts/bench.py). It installs nothing:
it fails with the apt-get command when `wrk` or `webhook` is missing. Loopback only, every loop
bounded; every process it starts is stopped on exit, also on Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (scripts/bench.py: process stats, percentile, free_port, facts)
from bench import (  # noqa: E402
    CLK_TCK, cpu_seconds, fmt_mib, free_port, git_revision, machine_facts, percentile, proc_status,
)

ALERTNAME = "WardenBench"
STARTS_AT = "2026-12-02T07:00:00.000Z"
READY_TIMEOUT = 20.0
RSS_SAMPLE_SECONDS = 0.5
CLIENT_TIMEOUT = 30.0

# The targets.
TARGET_RSS_BYTES = 30 * 1024 * 1024       # warden RSS <= 30 MB under the saturating load
TARGET_P99_SECONDS = 0.020                # p99 <= 20 ms at the fixed rate
BURST_N = 10_000
TARGET_SCRAPE_P50_SECONDS = 0.002         # BENCHMARKS.md's host target, kept under load

# One notification: Alertmanager's version-4 shape, one firing alert. FP is replaced by the
# fingerprint (the instance label carries it too, so the label sets differ as well).
BODY_HEAD = (
    '{"receiver":"warden","status":"firing","alerts":[{"status":"firing","labels":'
    '{"alertname":"' + ALERTNAME + '","instance":"bench-'
)
BODY_MID = (
    '","job":"bench","severity":"none"},"annotations":{"summary":"webhook benchmark"},'
    '"startsAt":"' + STARTS_AT + '","endsAt":"0001-01-01T00:00:00Z",'
    '"generatorURL":"http://prometheus/graph","fingerprint":"'
)
BODY_TAIL = (
    '"}],"groupLabels":{"alertname":"' + ALERTNAME + '"},"commonLabels":{"alertname":"'
    + ALERTNAME + '"},"commonAnnotations":{},"externalURL":"http://alertmanager:9093",'
    '"version":"4","groupKey":"{}:{alertname=\\"' + ALERTNAME + '\\"}","truncatedAlerts":0}'
)


def body_for(fingerprint: str) -> bytes:
    return (BODY_HEAD + fingerprint + BODY_MID + fingerprint + BODY_TAIL).encode()


def lua_string(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


# The wrk script: a distinct fingerprint per request (thread number + per-thread counter), and a
# JSON summary line from done().
WRK_LUA = f"""
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local counter = 0
local prefix = "00"
local head = {lua_string(BODY_HEAD)}
local mid = {lua_string(BODY_MID)}
local tail = {lua_string(BODY_TAIL)}
local headers = {{["Content-Type"] = "application/json"}}
function init(args)
  prefix = string.format("%02x", tid or 0)
end
function request()
  counter = counter + 1
  local fp = string.format("%s%014x", prefix, counter)
  return wrk.format("POST", nil, headers, head .. fp .. mid .. fp .. tail)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


# --------------------------------------------------------------------------------------------
# Processes


def children_cpu_seconds(pid: int) -> float:
    """cutime+cstime: CPU of the children the process has reaped (webhook's /bin/true)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        data = f.read()
    fields = data[data.rindex(")") + 2:].split()
    return (int(fields[13]) + int(fields[14])) / CLK_TCK


class RssSampler(threading.Thread):
    """Samples VmRSS of one process every 0.5 s until stopped (bounded by max_seconds)."""

    def __init__(self, pid: int, max_seconds: float):
        super().__init__(daemon=True)
        self.pid = pid
        self.max_seconds = max_seconds
        self.samples: list[int] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            try:
                self.samples.append(proc_status(self.pid).get("VmRSS", 0))
            except OSError:
                return
            self.stop_event.wait(RSS_SAMPLE_SECONDS)

    def stop(self) -> list[int]:
        self.stop_event.set()
        self.join(timeout=5)
        return self.samples


class Server:
    """One server under test: warden (a variant) or webhook, on a free loopback port."""

    def __init__(self, name: str, kind: str, tmp: str, args: argparse.Namespace,
                 dry_run: bool = True, host: bool = False):
        self.name, self.kind = name, kind
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix=f"{name}-", dir=tmp)
        self.log_path = os.path.join(self.dir, "server.log")
        self.proc: subprocess.Popen | None = None
        if kind == "webhook":
            hooks = os.path.join(self.dir, "hooks.json")
            with open(hooks, "w", encoding="utf-8") as f:
                json.dump([{"id": "alerts", "execute-command": "/bin/true",
                            "response-message": "ok"}], f)
            self.argv = [args.webhook, "-hooks", hooks, "-ip", "127.0.0.1",
                         "-port", str(self.port)]
            self.path = "/hooks/alerts"
        else:
            self.state_dir = os.path.join(self.dir, "state")
            config = os.path.join(self.dir, "warden.yml")
            with open(config, "w", encoding="utf-8") as f:
                f.write(
                    f"listen: 127.0.0.1:{self.port}\n"
                    f"state_dir: {self.state_dir}\n"
                    "log: {level: warn}\n"
                    f"host: {{enabled: {'true' if host else 'false'}}}\n"
                    "actions:\n"
                    f"  - {{name: noop, command: [/bin/true], dry_run: {str(dry_run).lower()}}}\n"
                    "routes:\n"
                    f"  - {{name: bench, match: {{alertname: {ALERTNAME}}}, actions: [noop]}}\n")
            self.argv = [args.warden, "serve", "--config", config]
            self.path = "/alerts"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def start(self) -> None:
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed right after the fork
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, cwd=self.dir)
        log.close()
        bench._STARTED.append(self.proc)
        deadline = time.monotonic() + READY_TIMEOUT
        probe = "/healthz" if self.kind == "warden" else "/"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{probe}", timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # it answers
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {READY_TIMEOUT}s:\n{self.log_tail()}")

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        return self.proc.returncode

    def log_tail(self, n: int = 20) -> str:
        return bench.file_tail(self.log_path, n)

    def log_bytes(self) -> int:
        return bench.file_size(self.log_path)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=30) as r:
            return r.read().decode()

    def store_counts(self) -> dict:
        """Jobs by state and notifications in warden's store (read after it stopped)."""
        db = os.path.join(self.state_dir, "warden.db")
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            jobs = dict(conn.execute(
                "SELECT state, count(*) FROM action_jobs GROUP BY state").fetchall())
            events = dict(conn.execute(
                "SELECT event, count(*) FROM audit_log GROUP BY event").fetchall())
            dedup = conn.execute("SELECT count(*) FROM action_dedup").fetchone()[0]
        finally:
            conn.close()
        return {"jobs_by_state": jobs, "audit_events": events, "dedup_keys": dedup}


def metric_sum(text: str, name: str, match: dict[str, str] | None = None) -> float:
    """Sum of the samples of `name` whose labels include `match`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        rest = line[len(name):]
        if rest[:1] not in ("{", " "):
            continue
        labels = {}
        if rest.startswith("{"):
            end = rest.index("}")
            for part in rest[1:end].split(","):
                if "=" in part:
                    k, v = part.split("=", 1)
                    labels[k.strip()] = v.strip().strip('"')
            rest = rest[end + 1:]
        if match and any(labels.get(k) != v for k, v in match.items()):
            continue
        total += float(rest.split()[0])
    return total


def warden_counters(server: Server) -> dict:
    text = server.metrics()
    n = "warden_webhook_notifications_total"
    return {
        "accepted": metric_sum(text, n, {"result": "accepted"}),
        "notifications_other": metric_sum(text, n) - metric_sum(text, n, {"result": "accepted"}),
        "runs": metric_sum(text, "warden_action_runs_total", {"action": "noop"}),
        "deduplicated": metric_sum(text, "warden_action_skipped_total",
                                   {"action": "noop", "reason": "deduplicated"}),
        "queue_depth": metric_sum(text, "warden_action_queue_depth"),
    }


# --------------------------------------------------------------------------------------------
# Load generators


def run_wrk(args: argparse.Namespace, url: str, seconds: float, lua: str) -> dict:
    argv = [args.wrk, "-t", str(args.threads), "-c", str(args.connections), "-d", f"{seconds:g}s",
            "--timeout", "10s", "-s", lua, url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            r = json.loads(line[len("WRKJSON "):])
            r["rate"] = r["requests"] / (r["duration_us"] / 1e6)
            r["errors"] = r["connect"] + r["read"] + r["write"] + r["timeout"]
            return r
    raise RuntimeError(f"wrk gave no summary (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")


def run_client(url: str, mode: str, *, rate: float = 0, seconds: float = 0, n: int = 0,
               connections: int = 16, prefix: str = "p", same: bool = False) -> dict:
    """Runs this script's paced/count client in a subprocess (its own interpreter, so it does
    not share a GIL with the scraper) and returns its JSON summary."""
    argv = [sys.executable, os.path.abspath(__file__), "--client", mode, "--url", url,
            "--rate", str(rate), "--seconds", str(seconds), "--count", str(n),
            "--connections", str(connections), "--prefix", prefix]
    if same:
        argv.append("--same")
    limit = (seconds or 0) + 120 + n / 200
    out = subprocess.run(argv, capture_output=True, text=True, timeout=limit)
    if out.returncode != 0:
        raise RuntimeError(f"client failed ({out.returncode}): {out.stderr[-2000:]}")
    return json.loads(out.stdout)


async def _exchange(reader, writer, request: bytes) -> tuple[int, bool]:
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip().lower()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        for _ in range(100_000):
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status, headers.get("connection") == "close"


async def _client(args) -> dict:
    host, rest = args.url[len("http://"):].split("/", 1)
    ip, port = host.split(":")
    path = "/" + rest
    conns = args.connections
    statuses: collections.Counter = collections.Counter()
    latencies: list[float] = []
    errors = 0
    late = 0

    def request(i: int) -> bytes:
        fp = "00000000cafe0001" if args.same else f"{args.prefix}{i:014x}"
        body = body_for(fp)
        return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    t0 = time.perf_counter() + 0.2
    end = t0 + args.seconds

    async def worker(k: int) -> None:
        nonlocal errors, late
        reader = writer = None
        i = 0
        per_conn = args.count // conns + (1 if k < args.count % conns else 0)
        while True:
            if args.client == "paced":
                scheduled = t0 + (k + i * conns) / args.rate
                if scheduled >= end:
                    break
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -0.001:
                    late += 1
                seq = k + i * conns
            else:
                if i >= per_conn:
                    break
                scheduled = time.perf_counter()
                seq = k + i * conns
            i += 1
            for attempt in range(2):
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection(ip, int(port))
                    status, close = await asyncio.wait_for(
                        _exchange(reader, writer, request(seq)), CLIENT_TIMEOUT)
                    latencies.append(time.perf_counter() - scheduled)
                    statuses[status] += 1
                    if close:
                        writer.close()
                        writer = None
                    break
                except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError,
                        ValueError, IndexError):
                    if writer is not None:
                        writer.close()
                    writer = None
                    if attempt:
                        errors += 1
        if writer is not None:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(conns)))
    elapsed = time.perf_counter() - started
    n = len(latencies)
    return {
        "mode": args.client, "rate_asked": args.rate, "connections": conns,
        "requests": n, "elapsed": elapsed, "rate": n / max(elapsed - 0.2, 1e-9)
        if args.client == "paced" else n / elapsed,
        "statuses": {str(k): v for k, v in sorted(statuses.items())}, "errors": errors,
        "late_sends": late,
        "p50": percentile(latencies, 50), "p90": percentile(latencies, 90),
        "p99": percentile(latencies, 99), "p999": percentile(latencies, 99.9),
        "max": max(latencies) if latencies else float("nan"),
        "mean": statistics.fmean(latencies) if latencies else float("nan"),
    }


def client_main(args) -> int:
    if not (0 < args.connections <= 256) or args.count > 1_000_000 or args.seconds > 3600:
        print("client: bounds exceeded", file=sys.stderr)
        return 2
    if args.client == "paced" and not 0 < args.rate <= 100_000:
        print("client: --rate must be in (0, 100000]", file=sys.stderr)
        return 2
    print(json.dumps(asyncio.run(_client(args))))
    return 0


# --------------------------------------------------------------------------------------------
# One run


def measured(server: Server, load, max_seconds: float) -> dict:
    """Starts `server`, runs `load(server)`, samples RSS and CPU meanwhile, stops it."""
    server.start()
    time.sleep(0.5)
    loadavg0 = open("/proc/loadavg", encoding="ascii").read().split()[0]
    sampler = RssSampler(server.pid, max_seconds)
    cpu0, ccpu0 = cpu_seconds(server.pid), children_cpu_seconds(server.pid)
    status0 = proc_status(server.pid)
    sampler.start()
    try:
        result = load(server)
    finally:
        samples = sampler.stop()
    cpu1, ccpu1 = cpu_seconds(server.pid), children_cpu_seconds(server.pid)
    status1 = proc_status(server.pid)
    row = {
        "server": server.name, "load": result,
        "cpu_seconds": cpu1 - cpu0, "children_cpu_seconds": ccpu1 - ccpu0,
        "rss_start_bytes": status0.get("VmRSS"), "rss_max_sampled_bytes": max(samples or [0]),
        "rss_end_bytes": status1.get("VmRSS"), "hwm_bytes": status1.get("VmHWM"),
        "threads_end": status1.get("Threads"), "rss_samples": len(samples),
        "loadavg_start": loadavg0,
        "loadavg_end": open("/proc/loadavg", encoding="ascii").read().split()[0],
    }
    if server.kind == "warden":
        # Counters once the requests still in flight when the load generator stopped (wrk
        # does not count those) have been answered.
        time.sleep(1.0)
        row["counters"] = warden_counters(server)
    code = server.stop()
    row["exit_code"] = code
    row["log_bytes"] = server.log_bytes()
    if server.kind == "warden":
        row["store"] = server.store_counts()
    return row


def check_warden_row(row: dict, requests: int, connections: int) -> list[str]:
    """Problems with a warden run: every request the client counted was answered 200 and is in
    the store. A request still in flight when wrk stops is committed but never answered (wrk
    closes the connection, the handler is dropped before it counts the answer), so the store
    may hold up to one notification per connection more than warden counted as accepted."""
    problems = []
    c = row["counters"]
    if c["notifications_other"]:
        problems.append(f"{c['notifications_other']:.0f} notifications not accepted")
    if c["accepted"] < requests:
        problems.append(f"accepted {c['accepted']:.0f} < requests counted {requests}")
    jobs = sum(row["store"]["jobs_by_state"].values())
    notes = row["store"]["audit_events"].get("notification", 0)
    if not (c["accepted"] <= jobs == notes <= c["accepted"] + connections):
        problems.append(f"jobs {jobs} and notifications {notes} in the store, "
                        f"accepted {c['accepted']:.0f}")
    return problems


# --------------------------------------------------------------------------------------------
# Report


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def spread(values, fmt="{:.0f}"):
    values = [v for v in values if v is not None]
    return f"{fmt.format(min(values))}–{fmt.format(max(values))}" if values else "n/a"


def render(report: dict) -> str:
    m = report["machine"]
    out = [f"## Webhook ingestion run {m['date']}\n"]
    out.append(f"- machine: {m['hostname']}, {m['nproc']} CPU ({m['cpu_model']}), "
               f"{fmt_mib(m['mem_total_bytes'])} MiB RAM, kernel {m['kernel']}, load at start "
               f"{' '.join(m['loadavg_start'])}, at end {' '.join(m['loadavg_end'])}")
    v = report["versions"]
    out.append(f"- warden {v['warden']} (git {v['warden_git']}); {v['webhook']}; {v['wrk']}")
    out.append(f"- state directory filesystem: {report['state_fs']}")
    p = report["params"]
    out.append(f"- wrk: {p['threads']} threads, {p['connections']} connections, {p['seconds']:g} s "
               f"per run; fixed rate {p['rate']:g}/s for {p['rate_seconds']:g} s over "
               f"{p['connections']} connections; {p['rounds']} rounds, order rotated\n")

    sat = report["saturation"]
    out.append("### Saturation (wrk)\n")
    out.append("| round | server | req/s | p50 ms | p99 ms | max ms | non-2xx | socket errors "
               "| CPU s | children CPU s | CPU ms/1k req | RSS max MiB | VmHWM MiB | jobs run | "
               "queued at end |")
    out.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in sat:
        w = row["load"]
        c = row.get("counters", {})
        jobs = row.get("store", {}).get("jobs_by_state", {})
        out.append(
            f"| {row['round']} | {row['server']} | {w['rate']:.0f} | {w['p50_us'] / 1e3:.2f} | "
            f"{w['p99_us'] / 1e3:.2f} | {w['max_us'] / 1e3:.1f} | {w['status']} | {w['errors']} | "
            f"{row['cpu_seconds']:.1f} | {row['children_cpu_seconds']:.1f} | "
            f"{row['cpu_seconds'] / max(w['requests'], 1) * 1e6:.0f} | "
            f"{fmt_mib(row['rss_max_sampled_bytes'])} | {fmt_mib(row['hwm_bytes'])} | "
            f"{'—' if not c else format(c['runs'], '.0f')} | "
            f"{'—' if not jobs else jobs.get('queued', 0)} |")
    out.append("")
    names = list(dict.fromkeys(r["server"] for r in sat))
    out.append("| server | req/s median (min–max) | p99 ms median | peak RSS MiB median (min–max) "
               "| req/s vs webhook | peak RSS vs webhook |")
    out.append("|---|---:|---:|---:|---:|---:|")
    base = [r for r in sat if r["server"] == "webhook"]
    b_rate = med([r["load"]["rate"] for r in base])
    b_hwm = med([r["hwm_bytes"] for r in base])
    for name in names:
        rows = [r for r in sat if r["server"] == name]
        rate = [r["load"]["rate"] for r in rows]
        hwm = [r["hwm_bytes"] / 1048576 for r in rows]
        out.append(f"| {name} | {med(rate):.0f} ({spread(rate)}) | "
                   f"{med([r['load']['p99_us'] / 1e3 for r in rows]):.2f} | "
                   f"{med(hwm):.1f} ({spread(hwm, '{:.1f}')}) | {med(rate) / b_rate:.2f}× | "
                   f"{med(hwm) * 1048576 / b_hwm:.2f}× |")
    out.append("")

    paced = report["paced"]
    out.append(f"### Fixed rate ({p['rate']:g} requests/s, latency from the scheduled send)\n")
    out.append("| round | server | achieved req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | "
               "statuses | errors | late sends | CPU s | VmHWM MiB | jobs run | queued at end |")
    out.append("|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for row in paced:
        w = row["load"]
        out.append(
            f"| {row['round']} | {row['server']} | {w['rate']:.0f} | {w['p50'] * 1e3:.2f} | "
            f"{w['p90'] * 1e3:.2f} | {w['p99'] * 1e3:.2f} | {w['p999'] * 1e3:.2f} | "
            f"{w['max'] * 1e3:.1f} | {w['statuses']} | {w['errors']} | {w['late_sends']} | "
            f"{row['cpu_seconds']:.1f} | {fmt_mib(row['hwm_bytes'])} | "
            f"{format(row['counters']['runs'], '.0f') if 'counters' in row else '—'} | "
            f"{row['store']['jobs_by_state'].get('queued', 0) if 'store' in row else '—'} |")
    out.append("")
    out.append("| server | p99 ms median (min–max) | p50 ms median |")
    out.append("|---|---:|---:|")
    for name in dict.fromkeys(r["server"] for r in paced):
        rows = [r for r in paced if r["server"] == name]
        p99 = [r["load"]["p99"] * 1e3 for r in rows]
        out.append(f"| {name} | {med(p99):.2f} ({spread(p99, '{:.2f}')}) | "
                   f"{med([r['load']['p50'] * 1e3 for r in rows]):.2f} |")
    out.append("")

    out.append("### Burst: one alert delivered 10,000 times\n")
    out.append("| round | requests | statuses | errors | req/s | runs of noop | deduplicated | "
               "jobs in store |")
    out.append("|---:|---:|---|---:|---:|---:|---:|---:|")
    for row in report["burst"]:
        w, c = row["load"], row["counters"]
        out.append(f"| {row['round']} | {w['requests']} | {w['statuses']} | {w['errors']} | "
                   f"{w['rate']:.0f} | {c['runs']:.0f} | {c['deduplicated']:.0f} | "
                   f"{sum(row['store']['jobs_by_state'].values())} |")
    out.append("")

    out.append("### Scrapes of warden (host collectors on) with and without webhook load\n")
    out.append("| round | phase | scrapes | p50 ms | p90 ms | p99 ms | max ms | webhook req/s "
               "meanwhile | actions collector p50 ms | host collectors p50 ms (sum) | "
               "queue depth max |")
    out.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in report["scrapes"]:
        for ph in row["phases"]:
            cp = ph.get("collector_p50", {})
            host = sum(v for k, v in cp.items() if k not in ("actions", "process"))
            out.append(f"| {row['round']} | {ph['phase']} | {ph['scrapes']} | {ph['p50'] * 1e3:.3f} "
                       f"| {ph['p90'] * 1e3:.3f} | {ph['p99'] * 1e3:.3f} | {ph['max'] * 1e3:.1f} | "
                       f"{'—' if ph.get('rate') is None else format(ph['rate'], '.0f')} | "
                       f"{cp.get('actions', float('nan')) * 1e3:.3f} | {host * 1e3:.3f} | "
                       f"{ph.get('queue_depth_max', 0):.0f} |")
    out.append("")

    out.append("### Targets\n")
    out.append("| target | measured | result |")
    out.append("|---|---|---|")
    for t in report["targets"]:
        out.append(f"| {t['target']} | {t['measured']} | {'PASS' if t['pass'] else 'FAIL'} |")
    out.append("")
    if report["problems"]:
        out.append("Problems found in the runs:\n")
        out.extend(f"- {p}" for p in report["problems"])
        out.append("")
    return "\n".join(out)


def targets(report: dict) -> list[dict]:
    out = []
    sat, paced = report["saturation"], report["paced"]
    wh = med([r["load"]["rate"] for r in sat if r["server"] == "webhook"])
    for name in ("warden-dry", "warden-true"):
        rows = [r for r in sat if r["server"] == name]
        if not rows:
            continue
        rate = med([r["load"]["rate"] for r in rows])
        out.append({"target": f"{name}: durable ingestion ≥ webhook's rate (medians)",
                    "measured": f"{rate:.0f} vs {wh:.0f} req/s = {rate / wh:.2f}×",
                    "pass": rate >= wh})
        hwm = max(r["hwm_bytes"] for r in rows)
        out.append({"target": f"{name}: RSS ≤ 30 MiB under that load (largest VmHWM)",
                    "measured": f"{fmt_mib(hwm)} MiB", "pass": hwm <= TARGET_RSS_BYTES})
    for name in ("warden-dry", "warden-true"):
        rows = [r for r in paced if r["server"] == name]
        if rows:
            p99 = med([r["load"]["p99"] for r in rows])
            worst = max(r["load"]["p99"] for r in rows)
            out.append({"target": f"{name}: p99 ≤ 20 ms at {report['params']['rate']:g}/s "
                                  f"(median of runs)",
                        "measured": f"{p99 * 1e3:.2f} ms (worst run {worst * 1e3:.2f} ms)",
                        "pass": p99 <= TARGET_P99_SECONDS})
    for row in report["scrapes"]:
        idle = next(ph for ph in row["phases"] if ph["phase"] == "idle, before")
        for ph in row["phases"]:
            if ph["phase"].startswith("during"):
                out.append({"target": f"scrapes round {row['round']} {ph['phase']}: p50 ≤ 2 ms "
                                      f"(the host target; idle in the same run for reference)",
                            "measured": f"p50 {ph['p50'] * 1e3:.2f} ms vs idle "
                                        f"{idle['p50'] * 1e3:.2f} ms; actions collector "
                                        f"{ph['collector_p50'].get('actions', 0) * 1e3:.2f} ms at "
                                        f"up to {ph['queue_depth_max']:.0f} queued jobs",
                            "pass": ph["p50"] <= TARGET_SCRAPE_P50_SECONDS})
    for row in report["burst"]:
        c = row["counters"]
        ok = (c["runs"] == 1 and c["deduplicated"] == BURST_N - 1
              and row["load"]["statuses"] == {"200": BURST_N})
        out.append({"target": f"burst round {row['round']}: 10,000 deliveries run the action once",
                    "measured": f"runs {c['runs']:.0f}, deduplicated {c['deduplicated']:.0f}, "
                                f"answers {row['load']['statuses']}", "pass": ok})
    return out


# --------------------------------------------------------------------------------------------
# Main


def scrape_loop(port: int, stop: threading.Event, every: float, max_n: int,
                durations: dict | None = None) -> list[float]:
    """Times GET /metrics over one keep-alive connection, every `every` s, until `stop`;
    collects warden's self-reported collector durations into `durations`."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    lat = []
    try:
        for _ in range(max_n):
            if stop.is_set():
                break
            t = time.perf_counter()
            conn.request("GET", "/metrics", headers={"Accept": "text/plain"})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"scrape: HTTP {resp.status}")
            lat.append(time.perf_counter() - t)
            if durations is not None:
                for name, value in bench.collector_durations(body):
                    durations.setdefault(name, []).append(value)
                depth = metric_sum(body.decode(), "warden_action_queue_depth")
                durations.setdefault("_queue_depth", []).append(depth)
            if every:
                stop.wait(max(0.0, every - (time.perf_counter() - t)))
    finally:
        conn.close()
    return lat


def scrape_phase(name: str, lat: list[float], durations: dict, rate: float | None = None) -> dict:
    return {"phase": name, "scrapes": len(lat), "p50": percentile(lat, 50),
            "p90": percentile(lat, 90), "p99": percentile(lat, 99), "max": max(lat),
            "rate": rate,
            "collector_p50": {k: statistics.median(v) for k, v in sorted(durations.items())
                              if not k.startswith("_")},
            "queue_depth_max": max(durations.get("_queue_depth", [0]))}


def run_scrapes(args, tmp: str, lua: str, rnd: int) -> dict:
    """Scrapes idle, during the fixed rate, idle, during wrk saturation, and idle while the
    backlog that saturation left drains (in that order, so that the fixed-rate phase does not
    inherit a backlog)."""
    server = Server("warden-host", "warden", tmp, args, dry_run=True, host=True)
    server.start()

    def idle(label: str) -> dict:
        d: dict = {}
        return scrape_phase(label, scrape_loop(server.port, threading.Event(), 0,
                                               args.idle_scrapes, d), d)

    def loaded(label: str, load) -> dict:
        stop, box, d = threading.Event(), {}, {}
        t = threading.Thread(target=lambda: box.setdefault(
            "lat", scrape_loop(server.port, stop, args.scrape_every, 100_000, d)), daemon=True)
        t.start()
        result = load()
        stop.set()
        t.join(timeout=60)
        return scrape_phase(label, box.get("lat", [float("nan")]), d, result["rate"])

    try:
        scrape_loop(server.port, threading.Event(), 0, 20)  # warm-up
        phases = [idle("idle, before")]
        phases.append(loaded(f"during {args.rate:g}/s", lambda: run_client(
            server.url, "paced", rate=args.rate, seconds=args.rate_seconds,
            connections=args.connections, prefix=f"s{rnd}")))
        time.sleep(2)
        phases.append(idle(f"idle, after {args.rate:g}/s"))
        phases.append(loaded("during wrk saturation",
                             lambda: run_wrk(args, server.url, args.seconds, lua)))
        time.sleep(1)
        phases.append(idle("idle, backlog draining"))
        hwm = proc_status(server.pid).get("VmHWM")
    finally:
        server.stop()
    return {"round": rnd, "phases": phases, "hwm_bytes": hwm}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--warden", default=bench.default_warden())
    p.add_argument("--webhook", default=shutil.which("webhook") or "/usr/bin/webhook")
    p.add_argument("--wrk", default=shutil.which("wrk") or "/usr/bin/wrk")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    p.add_argument("--seconds", type=float, default=20.0, help="wrk run length (20)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    p.add_argument("--connections", type=int, default=16, help="connections (16)")
    p.add_argument("--rate", type=float, default=1000.0, help="fixed rate per second (1000)")
    p.add_argument("--rate-seconds", type=float, default=20.0, help="fixed-rate run length (20)")
    p.add_argument("--idle-scrapes", type=int, default=300, help="scrapes without load (300)")
    p.add_argument("--scrape-every", type=float, default=0.05,
                   help="seconds between scrapes during load (0.05)")
    p.add_argument("--servers", default="webhook,warden-dry,warden-true",
                   help="which servers (webhook,warden-dry,warden-true)")
    p.add_argument("--skip", default="", help="comma list of parts to skip: saturation,paced,"
                                              "burst,scrapes")
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--markdown", metavar="FILE")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, stores)")
    # The client subprocess (internal).
    p.add_argument("--client", choices=["paced", "count"], help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--prefix", default="p", help=argparse.SUPPRESS)
    p.add_argument("--same", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.client is None:
        if not 1 <= args.rounds <= 20:
            p.error("--rounds must be 1..20")
        if not 1 <= args.seconds <= 600 or not 1 <= args.rate_seconds <= 600:
            p.error("run lengths must be 1..600 s")
        if not 1 <= args.connections <= 256 or not 1 <= args.threads <= args.connections:
            p.error("--connections 1..256, --threads 1..connections")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.client:
        return client_main(args)
    args.warden, args.webhook, args.wrk = (os.path.abspath(x)
                                           for x in (args.warden, args.webhook, args.wrk))
    missing = [(args.wrk, "apt-get install -y wrk"), (args.webhook, "apt-get install -y webhook"),
               (args.warden, "cargo build --release")]
    for path, fix in missing:
        if not os.access(path, os.X_OK):
            print(f"bench_webhook: {path} is missing; {fix}", file=sys.stderr)
            return 2
    import atexit
    atexit.register(bench._stop_all)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, bench._on_signal)
    tmp = tempfile.mkdtemp(prefix="warden-bench-webhook-", dir="/var/tmp")
    try:
        return run(args, tmp)
    except KeyboardInterrupt as err:
        print(f"bench_webhook: interrupted ({err}); stopping the servers", file=sys.stderr)
        return 130
    finally:
        bench._stop_all()
        if args.keep:
            print(f"bench_webhook: kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def fs_of(path: str) -> str:
    try:
        out = subprocess.run(["findmnt", "-n", "-o", "SOURCE,FSTYPE,TARGET", "-T", path],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        return f"{path} on {out}" if out else path
    except (OSError, subprocess.TimeoutExpired):
        return path


def run(args, tmp: str) -> int:
    facts = machine_facts()
    lua = os.path.join(tmp, "distinct.lua")
    with open(lua, "w", encoding="utf-8") as f:
        f.write(WRK_LUA)
    servers = [s for s in args.servers.split(",") if s]
    skip = set(args.skip.split(","))
    report: dict = {"machine": facts, "saturation": [], "paced": [], "burst": [], "scrapes": [],
                    "problems": []}

    def make(name: str) -> Server:
        if name == "webhook":
            return Server(name, "webhook", tmp, args)
        return Server(name, "warden", tmp, args, dry_run=(name == "warden-dry"))

    def log(msg: str) -> None:
        print(f"bench_webhook: {msg}", file=sys.stderr, flush=True)

    for rnd in range(1, args.rounds + 1):
        order = servers[rnd - 1:] + servers[:rnd - 1]
        if "saturation" not in skip:
            for name in order:
                log(f"round {rnd}: wrk saturation, {name}")
                row = measured(make(name), lambda s: run_wrk(args, s.url, args.seconds, lua),
                               args.seconds + 120)
                row["round"] = rnd
                if name != "webhook":
                    for prob in check_warden_row(row, row["load"]["requests"], args.connections):
                        report["problems"].append(f"round {rnd} saturation {name}: {prob}")
                if row["load"]["status"] or row["load"]["errors"]:
                    report["problems"].append(f"round {rnd} saturation {name}: "
                                              f"{row['load']['status']} non-2xx, "
                                              f"{row['load']['errors']} socket errors")
                report["saturation"].append(row)
        if "paced" not in skip:
            for name in order:
                log(f"round {rnd}: {args.rate:g}/s, {name}")
                row = measured(make(name), lambda s: run_client(
                    s.url, "paced", rate=args.rate, seconds=args.rate_seconds,
                    connections=args.connections, prefix=f"r{rnd}"), args.rate_seconds + 120)
                row["round"] = rnd
                ok = row["load"]["statuses"].get("200", 0)
                if ok != row["load"]["requests"] or row["load"]["errors"]:
                    report["problems"].append(f"round {rnd} paced {name}: statuses "
                                              f"{row['load']['statuses']}, errors "
                                              f"{row['load']['errors']}")
                if name != "webhook":
                    for prob in check_warden_row(row, ok, 0):
                        report["problems"].append(f"round {rnd} paced {name}: {prob}")
                report["paced"].append(row)
        if "burst" not in skip:
            log(f"round {rnd}: burst of {BURST_N}, warden-dry")

            def burst(s: Server) -> dict:
                r = run_client(s.url, "count", n=BURST_N, connections=args.connections,
                               same=True)
                # Let the dispatcher run the one job (bounded wait).
                for _ in range(100):
                    c = warden_counters(s)
                    if c["runs"] >= 1 and c["queue_depth"] == 0:
                        break
                    time.sleep(0.1)
                return r
            row = measured(make("warden-dry"), burst, 300)
            row["round"] = rnd
            report["burst"].append(row)
        if "scrapes" not in skip:
            log(f"round {rnd}: scrapes with and without load")
            report["scrapes"].append(run_scrapes(args, tmp, lua, rnd))

    facts["loadavg_end"] = open("/proc/loadavg", encoding="ascii").read().split()[:3]
    report["versions"] = {
        "warden": bench.version_of([args.warden]), "warden_git": git_revision(),
        "webhook": subprocess.run([args.webhook, "-version"], capture_output=True, text=True,
                                  timeout=10).stdout.strip(),
        "wrk": (subprocess.run([args.wrk, "-v"], capture_output=True, text=True, timeout=10)
                .stdout.splitlines() or ["wrk"])[0].strip(),
    }
    report["state_fs"] = fs_of(tmp)
    report["params"] = {"threads": args.threads, "connections": args.connections,
                        "seconds": args.seconds, "rate": args.rate,
                        "rate_seconds": args.rate_seconds, "rounds": args.rounds}
    report["targets"] = targets(report)
    text = render(report)
    print(text)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, ensure_ascii=False)
            f.write("\n")
    return 0 if all(t["pass"] for t in report["targets"]) and not report["problems"] else 1


if __name__ == "__main__":
    sys.exit(main())
