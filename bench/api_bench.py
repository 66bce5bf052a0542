"""Benchmark the HTTP API under gunicorn: nearby groups against a bare Flask endpoint, and alerts
posted per second on PostgreSQL.

What it measures:

* **``GET /v1/groups/nearby`` against bare Flask.** A SQLite database (in a temporary
  directory) gets N synthetic city blocks (``geo_bench.make_blocks``, default 100,000) through
  ``blockwatch.groups.create_groups`` in chunks of 10,000; the build is timed. Two gunicorn
  servers run side by side with the same setup (gthread, 2 workers, 4 threads, 127.0.0.1, no
  access log; ``blockwatch serve`` gives each worker more threads, for live streams): (a) our
  app, ``api:create_app()``,
  and (b) a bare Flask app with one route that ``json.dumps`` a captured response of (a) on
  every request (the response of median size over the first query points), so both send the
  same bytes. Both are warmed up on fresh connections (each worker builds its spatial index on
  its first query; 4 requests per query point, so whatever ours caches is warm: the runs
  measure a hot working set, which ``--points`` widens), then loaded in turn, A, B, A, B, by
  the same load generator: C client processes, each with one keep-alive ``http.client``
  connection (reopened every 100 requests, so the kernel's choice of worker averages out),
  asking the same query points (radius_m=1000, limit=20), bounded by a request count and a
  time. Reported: requests/s, p50 and p99 latency, server CPU per request (the workers' utime
  + stime from /proc, the figure least disturbed by a noisy machine), each as the median over
  the runs, and the ratio ours / bare.
* **Alerts posted per second on PostgreSQL.** A fresh schema (``search_path`` set through the
  URL's ``options``), ``Database.migrate()``, 8 groups and 8 coordinator tokens; our app under
  the same gunicorn setup; 8 client processes, one per coordinator, each posting alerts with
  fresh client ids to its group. Reported: alerts/s, p50 and p99, server CPU per post (and
  that of its PostgreSQL backends), what those sessions were doing (sampled from
  ``pg_stat_activity``), the SQL of one post (which statements run under the change counter's
  row lock), and whether the number of alerts stored equals the number of 201 answers. The
  schema is dropped at the end.
* **Where the time goes** (when ours reaches less than 0.8 of bare, or with
  ``--profile always``): the same requests through Flask's test client in-process, one
  thread: stage timings interleaved round by round (ours and bare whole, query parsing, the
  service call, the index query), then cProfile over ``--profile-requests`` requests: named
  functions of the hot path (those the current code calls), the project's own functions by
  cumulative time, and the top by own time.

Nothing asserts a timing: the machine is shared. The report (a Markdown table for
docs/performance.md) goes to stdout, progress to stderr. Every server started here runs in its
own process group and is killed on the way out, errors included. Run it from the repository
root::

    .venv/bin/python bench/api_bench.py --quick     # smoke run: 10k groups, 5 s loads
    .venv/bin/python bench/api_bench.py             # 100k groups, 20 s loads: a few minutes
    .venv/bin/python bench/api_bench.py --clients 8 --seconds 30 --postgres-url postgresql://...

The module is also the WSGI module of the bare server (``api_bench:bare_app()``), so it imports
nothing heavy at the top.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import http.client
import io
import json
import math
import multiprocessing as mp
import os
import pstats
import secrets
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
for _path in (str(ROOT), str(BENCH)):
    if _path not in sys.path:  # run as a script from a checkout, without installing
        sys.path.insert(0, _path)

NEARBY_PATH = "/v1/groups/nearby"
RADIUS_M = 1000
LIMIT = 20
CHUNK = 10_000
ALERT_COORDINATORS = 8
TARGET_RATIO = 0.8
TARGET_ALERTS_PER_S = 1000.0
PEER_NOTE = "Kinto, a peer, writes about 70 records/s"
PAYLOAD_ENV = "API_BENCH_PAYLOAD"
READY_TIMEOUT_S = 300.0  # the first query of a worker builds its index: minutes at worst
REQUEST_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0
PG_SAMPLE_EVERY_S = 0.1
WARM_UP_PASSES = 4  # warm-up requests per query point (spread over the workers)
START_S = time.perf_counter()


def log(message: str) -> None:
    """Progress to stderr, so stdout holds only the report."""
    print(f"[{time.perf_counter() - START_S:7.1f} s] {message}", file=sys.stderr, flush=True)


# -- the bare server -----------------------------------------------------------------------
def bare_app():
    """gunicorn's ``api_bench:bare_app()``: one route that ``json.dumps`` the same captured
    payload on every request (the file named by ``API_BENCH_PAYLOAD``)."""
    from flask import Flask, Response

    payload = json.loads(Path(os.environ[PAYLOAD_ENV]).read_text())
    app = Flask("bare")

    @app.get(NEARBY_PATH)
    def nearby():
        return Response(json.dumps(payload), mimetype="application/json")

    return app


# -- servers -------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name sits in parentheses and may hold spaces: split after the last ')'.
    return text[text.rindex(")") + 2:].split()


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds (0 when it is gone)."""
    fields = _stat_fields(pid)
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry))
    return sorted(found)


def stop_process(proc: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the process's group (it was started in a session of its own), SIGKILL it if it
    lingers past ``grace_s``."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace_s)


@dataclass
class Server:
    """A gunicorn master serving ``app_spec`` on a free loopback port, in its own session (so
    its process group can be killed whole)."""

    label: str
    app_spec: str
    env: dict[str, str]
    workers: int
    threads: int
    log_path: Path
    port: int = 0
    proc: subprocess.Popen | None = None

    def start(self) -> Server:
        self.port = free_port()
        command = [
            sys.executable, "-m", "gunicorn", "--pythonpath", f"{ROOT},{BENCH}",
            "--worker-class", "gthread", "--workers", str(self.workers),
            "--threads", str(self.threads), "--bind", f"127.0.0.1:{self.port}",
            "--timeout", "120", "--graceful-timeout", "5", self.app_spec,
        ]
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        log(f"{self.label}: gunicorn pid {self.proc.pid} on 127.0.0.1:{self.port}")
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        workers = children_of(proc.pid)
        # The master and its workers share their own process group: signal the group.
        stop_process(proc, STOP_GRACE_S)
        for pid in workers:  # a worker that outlived its master (still ours: same group)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if os.getpgid(pid) == proc.pid:
                    os.kill(pid, signal.SIGKILL)
        log(f"{self.label}: stopped")

    def worker_cpu_s(self) -> dict[int, float]:
        if self.proc is None:
            return {}
        return {pid: cpu_s(pid) for pid in children_of(self.proc.pid)}

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def get(self, path: str, timeout: float = REQUEST_TIMEOUT_S) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def wait_ready(self, path: str) -> bytes:
        """Block until ``path`` answers 200 (bounded); returns its body."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited:\n{self.log_tail()}")
            try:
                status, body = self.get(path)
            except (ConnectionError, OSError, http.client.HTTPException):
                time.sleep(0.2)
                continue
            if status == 200:
                return body
            raise RuntimeError(f"{self.label}: {path} answered {status}: {body[:500]!r}")
        raise RuntimeError(f"{self.label} not ready after {READY_TIMEOUT_S:.0f} s")


# -- the load generator --------------------------------------------------------------------
@dataclass
class Workload:
    """What client ``c`` sends as its ``i``-th request: method, path, body, headers; and the
    status that counts as success."""

    expect: int
    paths: list[str]
    method: str = "GET"
    tokens: list[str] = field(default_factory=list)
    locations: list[tuple[float, float]] = field(default_factory=list)

    def request(self, client: int, i: int) -> tuple[str, str, bytes | None, dict[str, str]]:
        if self.method == "GET":
            # Each client walks the same list from its own starting point.
            return "GET", self.paths[(client * 101 + i) % len(self.paths)], None, {}
        lon, lat = self.locations[client]
        body = json.dumps({
            "id": str(uuid.uuid4()), "category": "suspicious-activity",
            "title": f"api_bench client {client} alert {i}",
            "location": {"lat": lat, "lon": lon},
        }).encode()
        headers = {"Content-Type": "application/json",
                   "Authorization": f"Bearer {self.tokens[client]}"}
        return "POST", self.paths[client], body, headers


@dataclass
class ClientResult:
    latencies_s: array
    statuses: Counter
    body_bytes: int
    started: float
    ended: float
    cpu_s: float
    errors: list[str]


def _client(client: int, port: int, work: Workload, max_requests: int, seconds: float,
            reconnect_every: int, barrier, queue) -> None:
    """One client process: keep-alive requests, one at a time, until its share of the count or
    the time runs out; then its figures go to ``queue``."""
    latencies, statuses, errors, body_bytes = array("d"), Counter(), [], 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
    started = ended = time.monotonic()
    cpu0 = sum(os.times()[:2])
    try:
        conn.connect()
        barrier.wait()
        started = time.monotonic()
        deadline = started + seconds
        for i in range(max_requests):
            if time.monotonic() >= deadline:
                break
            if reconnect_every and i and i % reconnect_every == 0:
                conn.close()
            method, path, body, headers = work.request(client, i)
            t0 = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as error:
                conn.close()
                statuses["error"] += 1
                if len(errors) < 5:
                    errors.append(repr(error))
                continue
            latencies.append(time.perf_counter() - t0)
            statuses[response.status] += 1
            body_bytes += len(data)
            if response.status != work.expect and len(errors) < 5:
                errors.append(f"{response.status}: {data[:300]!r}")
            if response.will_close:
                conn.close()
        ended = time.monotonic()
    except Exception as error:  # report it: the parent must not wait for a dead client
        errors.append(f"client {client} failed: {error!r}")
    finally:
        conn.close()
        queue.put(ClientResult(latencies, statuses, body_bytes, started, ended,
                               sum(os.times()[:2]) - cpu0, errors))


@dataclass
class LoadResult:
    label: str
    requests: int
    ok: int
    statuses: Counter
    seconds: float
    per_s: float
    p50_ms: float
    p99_ms: float
    mean_bytes: float
    server_cpu_us: float
    worker_split: list[float]
    client_cpu_us: float
    errors: list[str]
    extra_cpu_us: float = math.nan

    def line(self) -> str:
        other = {k: v for k, v in self.statuses.items() if k != 200 and k != 201}
        split = "/".join(f"{share:.0%}" for share in self.worker_split)
        return (f"{self.label}: {self.per_s:,.0f}/s, p50 {self.p50_ms:.2f} ms, p99 "
                f"{self.p99_ms:.2f} ms, {self.ok:,} ok of {self.requests:,} in "
                f"{self.seconds:.1f} s, server CPU {self.server_cpu_us:,.0f} µs/req (workers "
                f"{split}), client CPU {self.client_cpu_us:,.0f} µs/req"
                + ("" if math.isnan(self.extra_cpu_us) else
                   f", PostgreSQL backends' CPU {self.extra_cpu_us:,.0f} µs/req")
                + (f", other statuses {dict(other)}" if other else ""))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by the nearest-rank method; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def run_load(label: str, server: Server, work: Workload, clients: int, max_requests: int,
             seconds: float, reconnect_every: int,
             extra_cpu: Callable[[], dict[int, float]] | None = None) -> LoadResult:
    """``clients`` processes against ``server``, at most ``max_requests`` in all and
    ``seconds`` each; the processes stop by themselves and are terminated if they do not.
    ``extra_cpu`` reads the CPU seconds of other processes to count (database backends)."""
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(clients + 1, timeout=60)
    queue = ctx.Queue()
    share = math.ceil(max_requests / clients)
    procs = [
        ctx.Process(target=_client, daemon=True, args=(
            c, server.port, work, share, seconds, reconnect_every, barrier, queue))
        for c in range(clients)
    ]
    results: list[ClientResult] = []
    try:
        for proc in procs:
            proc.start()
        barrier.wait()
        cpu_before = server.worker_cpu_s()
        extra_before = extra_cpu() if extra_cpu else {}
        for _ in procs:
            results.append(queue.get(timeout=seconds + REQUEST_TIMEOUT_S + 60))
        cpu_after = server.worker_cpu_s()
        extra_after = extra_cpu() if extra_cpu else {}
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
    latencies = [x for r in results for x in r.latencies_s]
    statuses = sum((r.statuses for r in results), Counter())
    requests = sum(statuses.values())
    ok = statuses.get(work.expect, 0)
    elapsed = max(r.ended for r in results) - min(r.started for r in results)
    used = {pid: cpu_after[pid] - cpu_before.get(pid, 0.0) for pid in cpu_after}
    total_cpu = sum(used.values())
    return LoadResult(
        label=label, requests=requests, ok=ok, statuses=statuses, seconds=elapsed,
        per_s=ok / elapsed if elapsed > 0 else math.nan,
        p50_ms=percentile(latencies, 0.5) * 1e3, p99_ms=percentile(latencies, 0.99) * 1e3,
        mean_bytes=sum(r.body_bytes for r in results) / max(1, requests),
        server_cpu_us=total_cpu / max(1, requests) * 1e6,
        worker_split=sorted((v / total_cpu for v in used.values()), reverse=True)
        if total_cpu > 0 else [],
        client_cpu_us=sum(r.cpu_s for r in results) / max(1, requests) * 1e6,
        errors=[e for r in results for e in r.errors][:5],
        extra_cpu_us=sum(v - extra_before.get(pid, 0.0) for pid, v in extra_after.items())
        / max(1, requests) * 1e6 if extra_cpu else math.nan,
    )


# -- part 1: nearby groups against bare Flask ----------------------------------------------
def build_sqlite(path: Path, n_groups: int, seed: int):
    """A SQLite database of ``n_groups`` synthetic blocks; returns (url, blocks, seconds)."""
    import geo_bench

    from blockwatch import groups
    from blockwatch.db import Database
    from blockwatch.domain import OPERATOR, GroupDraft

    url = f"sqlite:///{path}"
    db = Database(url)
    db.migrate()
    blocks = geo_bench.make_blocks(n_groups, seed)
    t0 = time.perf_counter()
    for start in range(0, n_groups, CHUNK):
        drafts = [GroupDraft(name=f"Block {i}", boundary=blocks.geoms[i])
                  for i in range(start, min(n_groups, start + CHUNK))]
        groups.create_groups(db, OPERATOR, drafts)
        log(f"created {min(n_groups, start + CHUNK):,} / {n_groups:,} groups")
    seconds = time.perf_counter() - t0
    db.dispose()
    return url, blocks, seconds


def nearby_paths(blocks, n_points: int, seed: int) -> tuple[list[str], int]:
    """The query paths, and how many distinct groups their answers name (the working set)."""
    import geo_bench

    import geo

    lons, lats = geo_bench.make_query_points(blocks, n_points, seed)
    index = geo.PolygonIndex(list(enumerate(blocks.geoms)))
    named = set()
    for lon, lat in zip(lons, lats, strict=True):
        named.update(key for key, _ in index.within(lon=lon, lat=lat, radius_m=RADIUS_M)[:LIMIT])
    paths = [f"{NEARBY_PATH}?lat={lat:.7f}&lon={lon:.7f}&radius_m={RADIUS_M}&limit={LIMIT}"
             for lon, lat in zip(lons, lats, strict=True)]
    return paths, len(named)


@dataclass
class Typical:
    body: bytes
    items: int
    sizes: list[int]
    item_counts: list[int]


def capture_typical(server: Server, paths: Sequence[str], n: int) -> Typical:
    """Ask the first ``n`` query points; the body of median size stands for them all."""
    answers = []
    for path in paths[:n]:
        status, body = server.get(path)
        if status != 200:
            raise RuntimeError(f"{path} answered {status}: {body[:300]!r}")
        answers.append((len(body), len(json.loads(body)["items"]), body))
    answers.sort(key=lambda a: a[0])
    _size, items, body = answers[len(answers) // 2]
    return Typical(body, items, [a[0] for a in answers], [a[1] for a in answers])


@dataclass
class NearbyReport:
    groups: int
    build_s: float
    typical: Typical
    bare_bytes: int
    ours: list[LoadResult]
    bare: list[LoadResult]
    db_path: Path
    paths: list[str]
    working_set: int
    warm_up: LoadResult

    def median(self, runs: list[LoadResult], attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in runs)

    @property
    def ratio(self) -> float:
        return self.median(self.ours, "per_s") / self.median(self.bare, "per_s")


def bench_nearby(args: argparse.Namespace, tmp: Path, stack: contextlib.ExitStack) -> NearbyReport:
    log(f"building a SQLite database of {args.groups:,} groups")
    url, blocks, build_s = build_sqlite(tmp / "groups.db", args.groups, args.seed)
    log(f"built in {build_s:.1f} s ({args.groups / build_s:,.0f} groups/s)")
    paths, working_set = nearby_paths(blocks, args.points, args.seed)
    log(f"{len(paths):,} query points; their answers name {working_set:,} distinct groups")
    env = {**os.environ, "BLOCKWATCH_DATABASE_URL": url, PAYLOAD_ENV: str(tmp / "payload.json")}
    ours = Server("ours", "api:create_app()", env, args.workers, args.threads, tmp / "ours.log")
    stack.callback(ours.stop)
    ours.start()
    log("ours: waiting for the first answer (it builds the spatial index)")
    ours.wait_ready(paths[0])
    typical = capture_typical(ours, paths, min(args.points, 101))
    (tmp / "payload.json").write_bytes(typical.body)
    log(f"typical answer: {len(typical.body):,} B, {typical.items} groups (median size of "
        f"{len(typical.sizes)} points; sizes {min(typical.sizes):,} to {max(typical.sizes):,} B)")
    bare = Server("bare", "api_bench:bare_app()", env, args.workers, args.threads,
                  tmp / "bare.log")
    stack.callback(bare.stop)
    bare.start()
    bare_body = bare.wait_ready(paths[0])
    if len(bare_body) != len(typical.body):
        log(f"WARNING: bare sends {len(bare_body)} B, ours {len(typical.body)} B")
    ours_work, bare_work = Workload(200, paths), Workload(200, paths)
    for server, work in ((ours, ours_work), (bare, bare_work)):
        # Fresh connections every 10 requests: every worker answers (and builds its index, and
        # meets the query points) before timing.
        warm = run_load(f"{server.label} warm-up", server, work, args.clients,
                        max(args.warmup_requests, WARM_UP_PASSES * len(paths)),
                        args.warmup_seconds, 10)
        log(warm.line())
        if server is ours:
            warm_ours = warm
    runs: dict[str, list[LoadResult]] = {"ours": [], "bare": []}
    for round_no in range(1, args.rounds + 1):
        for server, work in ((ours, ours_work), (bare, bare_work)):
            result = run_load(f"{server.label} run {round_no}", server, work, args.clients,
                              args.requests, args.seconds, args.reconnect_every)
            log(result.line())
            for error in result.errors:
                log(f"  {error}")
            runs[server.label].append(result)
    ours.stop()
    bare.stop()
    return NearbyReport(args.groups, build_s, typical, len(bare_body), runs["ours"],
                        runs["bare"], tmp / "groups.db", paths, working_set, warm_ours)


# -- where the time goes -------------------------------------------------------------------
@dataclass
class Stage:
    name: str
    us: float
    note: str = ""


WHOLE_OURS = "whole request, ours (test client)"
WHOLE_BARE = "whole request, bare Flask (test client, the typical payload)"
QUERY_LOAD = "query string: marshmallow load"
SERVICE = "`groups.find_groups_near` (index, views: cached or from the DB)"
INDEX = "  of which the index query `PolygonIndex.within`"
STDLIB_JSON = "`json.dumps` of the typical payload (stdlib, as bare does)"

# Functions of interest, by (label, file suffix, function name): their cumulative time in the
# profile (nested, so they overlap). Whichever the current code does not call are left out.
PROFILE_FUNCTIONS = (
    ("request through the test client", "werkzeug/test.py", "open"),
    ("flask-restx `Resource.dispatch_request`", "flask_restx/resource.py", "dispatch_request"),
    ("query string: `http.query` (marshmallow load)", "api/http.py", "query"),
    ("`groups.find_groups_near`", "blockwatch/groups.py", "find_groups_near"),
    ("index query `PolygonIndex.within`", "geo/index.py", "within"),
    ("index catch-up check", "blockwatch/spatial.py", "_catch_up_if_due"),
    ("cached views lookup", "blockwatch/spatial.py", "cached_views"),
    ("DB reads and views `groups._load`", "blockwatch/groups.py", "_load"),
    ("member counts", "blockwatch/groups.py", "_member_counts"),
    ("SQLAlchemy `Session._execute_internal`", "sqlalchemy/orm/session.py",
     "_execute_internal"),
    ("`shapely.from_geojson`", "shapely/io.py", "from_geojson"),
    ("`http.respond_page`", "api/http.py", "respond_page"),
    ("rendered-JSON cache `_RenderedCache.text`", "api/http.py", "text"),
    ("marshmallow dump `http.dump`", "api/http.py", "dump"),
    ("marshmallow `Schema.dump`", "marshmallow/schema.py", "dump"),
    ("`geo.to_geojson`", "geo/geojson.py", "to_geojson"),
    ("`http.respond` (json.dumps, Response)", "api/http.py", "respond"),
    ("stdlib `json.dumps`", "json/__init__.py", "dumps"),
    ("flask-compress `after_request`", "flask_compress/flask_compress.py", "after_request"),
)


@dataclass
class Profile:
    stages: list[Stage]
    named: list[tuple[str, float, int]]
    ours_top: list[tuple[str, float, float, int]]
    listing: str
    mean_items: float
    points: int
    distinct_groups: int


def profile_nearby(db_path: Path, paths: Sequence[str], typical: Typical, n_requests: int,
                   top: int) -> Profile:
    """Our request in-process (Flask test client, one thread, caches warmed like a worker's):
    stage timings interleaved round by round, then cProfile over the same requests."""
    from api import create_app, http, schemas
    from blockwatch import groups
    from blockwatch.db import Database

    db = Database(f"sqlite:///{db_path}")
    app = create_app({"database": db})
    client = app.test_client()
    os.environ[PAYLOAD_ENV] = str(db_path.parent / "payload.json")
    bare_client = bare_app().test_client()
    raw_args = [dict(part.split("=") for part in path.split("?", 1)[1].split("&"))
                for path in paths]
    points = [(float(a["lon"]), float(a["lat"])) for a in raw_args]
    n = len(points)
    for path in paths:  # builds the index, then warms whatever the app caches
        client.get(path)
    pages = [groups.find_groups_near(db, lon, lat, RADIUS_M, LIMIT) for lon, lat in points]
    mean_items = statistics.fmean(len(page.items) for page in pages)
    distinct = len({hit.group.id for page in pages for hit in page.items})
    load_schema = http.schema(schemas.NearbyGroupsQuery)
    typical_payload = json.loads(typical.body)

    def within(i: int) -> Any:
        lon, lat = points[i % n]
        return db.spatial.groups.within(lon=lon, lat=lat, radius_m=RADIUS_M)

    # Every stage once per round, in turn, so the machine's noise falls on all of them alike.
    timed: list[tuple[str, Callable[[int], Any]]] = [
        (WHOLE_OURS, lambda i: client.get(paths[i % n])),
        (WHOLE_BARE, lambda i: bare_client.get(NEARBY_PATH)),
        (QUERY_LOAD, lambda i: load_schema.load(raw_args[i % n])),
        (SERVICE, lambda i: groups.find_groups_near(db, *points[i % n], RADIUS_M, LIMIT)),
        (INDEX, within),
        (STDLIB_JSON, lambda i: json.dumps(typical_payload)),
    ]
    samples: dict[str, list[float]] = {name: [] for name, _ in timed}
    for i in range(n_requests):
        for name, fn in timed:
            t0 = time.perf_counter()
            fn(i)
            samples[name].append(time.perf_counter() - t0)
    us = {name: statistics.median(values) * 1e6 for name, values in samples.items()}
    stages = [Stage(name, us[name]) for name, _ in timed]
    stages.insert(2, Stage(
        "ours − bare", us[WHOLE_OURS] - us[WHOLE_BARE], "what our endpoint adds in-process"))
    stages.append(Stage(
        "the rest: rendering the response, Flask, flask-restx, test client",
        us[WHOLE_OURS] - us[QUERY_LOAD] - us[SERVICE],
        "whole − query load − service (medians: approximate)"))

    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(n_requests):
        client.get(paths[i % n])
    profiler.disable()
    stats = pstats.Stats(profiler)
    named = []
    for label, suffix, name in PROFILE_FUNCTIONS:
        total, calls = 0.0, 0
        for (filename, _line, func), (_cc, nc, _tt, ct, _callers) in stats.stats.items():
            if func == name and filename.replace(os.sep, "/").endswith(suffix):
                total, calls = total + ct, calls + nc
        if calls:
            named.append((label, total / n_requests * 1e6, calls))
    ours_top = []  # the project's own functions, by cumulative time
    for (filename, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():
        path = Path(filename)
        if path.is_relative_to(ROOT) and not path.is_relative_to(BENCH) and \
                ".venv" not in path.parts:
            ours_top.append((f"{path.relative_to(ROOT)}:{line}({func})",
                             ct / n_requests * 1e6, tt / n_requests * 1e6, nc))
    ours_top.sort(key=lambda row: -row[1])
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    db.dispose()
    return Profile(stages, named, ours_top[:15], text.getvalue(), mean_items, n, distinct)


# -- part 2: alerts posted on PostgreSQL ---------------------------------------------------
@dataclass
class AlertReport:
    runs: list[LoadResult]
    posted_201: int
    stored: int
    activity: dict[str, float]
    samples: int
    server_version: str
    settings: dict[str, str]
    trace: list[str]


def _conninfo(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _sample_activity(conninfo: str, app_name: str, stop: threading.Event,
                     tally: Counter, max_samples: int) -> None:
    """What the server's sessions are doing, every PG_SAMPLE_EVERY_S, until ``stop``."""
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        for _ in range(max_samples):
            if stop.wait(PG_SAMPLE_EVERY_S):
                break
            rows = conn.execute(
                "SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
                "WHERE application_name = %s", (app_name,)).fetchall()
            tally["samples"] += 1
            for state, wait_type, wait_event in rows:
                if state == "active":
                    key = f"active, waiting {wait_type}:{wait_event}" if wait_type else \
                        "active, running"
                else:
                    key = state or "unknown"
                tally[key] += 1


def bench_alerts(args: argparse.Namespace, tmp: Path, stack: contextlib.ExitStack) -> AlertReport:
    import geo_bench
    import psycopg
    from sqlalchemy.engine import make_url

    from blockwatch import accounts, groups
    from blockwatch.db import Database
    from blockwatch.domain import OPERATOR, GroupDraft

    conninfo = _conninfo(args.postgres_url)
    schema = f"api_bench_{os.getpid()}_{secrets.token_hex(3)}"
    app_name = schema
    with psycopg.connect(conninfo, autocommit=True) as conn:
        server_version = conn.execute("SHOW server_version").fetchone()[0]
        settings = {name: conn.execute(f"SHOW {name}").fetchone()[0]
                    for name in ("synchronous_commit", "fsync", "max_connections")}
        conn.execute(f'CREATE SCHEMA "{schema}"')
    log(f"PostgreSQL {server_version}: schema {schema}")

    def drop_schema() -> None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        log(f"dropped schema {schema}")

    stack.callback(drop_schema)
    url = make_url(args.postgres_url).update_query_dict({
        "options": f"-csearch_path={schema}", "application_name": app_name,
    }).render_as_string(hide_password=False)
    db = Database(url)
    stack.callback(db.dispose)
    db.migrate()
    blocks = geo_bench.make_blocks(ALERT_COORDINATORS, args.seed)
    group_ids = groups.create_groups(db, OPERATOR, [
        GroupDraft(name=f"Bench group {i}", boundary=geom) for i, geom in enumerate(blocks.geoms)
    ])
    tokens = [accounts.create_token(db, f"api_bench coordinator {i}", "coordinator", gid)
              for i, gid in enumerate(group_ids)]
    db.dispose()
    work = Workload(
        201, [f"/v1/groups/{gid}/alerts" for gid in group_ids], method="POST", tokens=tokens,
        locations=[(float(lon), float(lat)) for lon, lat in
                   zip(blocks.centre_lon_deg, blocks.centre_lat_deg, strict=True)],
    )
    # The bench measures throughput, not the per-token write limit (which would answer 429).
    env = {**os.environ, "BLOCKWATCH_DATABASE_URL": url, "BLOCKWATCH_RATE_LIMIT_WRITES": "off"}
    server = Server("ours on PostgreSQL", "api:create_app()", env, args.workers, args.threads,
                    tmp / "ours-pg.log")
    stack.callback(server.stop)
    server.start()
    server.wait_ready("/v1/health")
    warm = run_load("alerts warm-up", server, work, ALERT_COORDINATORS,
                    args.warmup_requests, args.warmup_seconds, args.reconnect_every)
    log(warm.line())

    def backend_cpu() -> dict[int, float]:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            pids = [row[0] for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (app_name,))]
        return {pid: cpu_s(pid) for pid in pids if Path(f"/proc/{pid}").exists()}

    runs, posted = [], warm.statuses.get(201, 0)
    tally: Counter = Counter()
    for round_no in range(1, args.rounds + 1):
        stop = threading.Event()
        sampler = threading.Thread(
            target=_sample_activity, daemon=True,
            args=(conninfo, app_name, stop, tally,
                  int((args.seconds + 60) / PG_SAMPLE_EVERY_S)))
        sampler.start()
        try:
            result = run_load(f"alerts run {round_no}", server, work, ALERT_COORDINATORS,
                              args.alert_requests, args.seconds, args.reconnect_every,
                              backend_cpu)
        finally:
            stop.set()
            sampler.join(timeout=10)
        log(result.line())
        for error in result.errors:
            log(f"  {error}")
        runs.append(result)
        posted += result.statuses.get(201, 0)
    server.stop()
    trace, status = trace_post(url, work)
    posted += status == 201
    with psycopg.connect(conninfo, autocommit=True) as conn:
        stored = conn.execute(f'SELECT count(*) FROM "{schema}".alerts').fetchone()[0]
    samples = tally.pop("samples", 0)
    activity = {k: v / samples for k, v in sorted(tally.items())} if samples else {}
    return AlertReport(runs, posted, stored, activity, samples, server_version, settings, trace)


def trace_post(url: str, work: Workload) -> tuple[list[str], int]:
    """The database traffic of one ``POST .../alerts``, in-process: statements in order,
    ``*`` on those made while holding the change counter's row lock (from ``UPDATE
    sync_state`` to the commit)."""
    from sqlalchemy import event

    from api import create_app
    from blockwatch.db import Database

    db = Database(url)
    trace: list[str] = []

    @event.listens_for(db.engine, "checkout")
    def _checkout(*_args) -> None:
        trace.append("(pool checkout; pool_pre_ping pings here)")

    @event.listens_for(db.engine, "before_cursor_execute")
    def _statement(_conn, _cursor, statement, *_args) -> None:
        trace.append(" ".join(statement.split())[:90])

    @event.listens_for(db.engine, "commit")
    def _commit(_conn) -> None:
        trace.append("COMMIT")

    @event.listens_for(db.engine, "rollback")
    def _rollback(_conn) -> None:
        trace.append("ROLLBACK (end of a read)")

    try:
        client = create_app({"database": db}).test_client()
        client.get("/v1/health")
        _method, path, body, headers = work.request(0, 10**9)
        trace.clear()
        response = client.post(path, data=body, headers=headers)
    finally:
        db.dispose()
    marked, locked = [], False
    for line in trace:
        locked = locked or line.startswith("UPDATE sync_state")
        marked.append(("* " if locked else "") + line)
        if line == "COMMIT":
            locked = False
    return marked, response.status_code


# -- the report ----------------------------------------------------------------------------
API_PACKAGES = ("flask", "flask-restx", "werkzeug", "gunicorn", "marshmallow", "sqlalchemy",
                "shapely", "psycopg", "flask-compress")


def versions(packages: tuple[str, ...] = API_PACKAGES, with_sqlite: bool = True) -> str:
    """Python's version and those of ``packages`` (and SQLite's), for a report's header."""
    import sqlite3
    from importlib.metadata import PackageNotFoundError, version

    parts = [f"Python {sys.version.split()[0]}"]
    for name in packages:
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name} (not installed)")
    if with_sqlite:
        parts.append(f"SQLite {sqlite3.sqlite_version}")
    return ", ".join(parts)


def fmt(value: float, digits: int = 0) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def report(args: argparse.Namespace, command: Sequence[str], started: str, load_before: str,
           nearby: NearbyReport | None, alerts: AlertReport | None, alert_error: str | None,
           profile) -> str:
    lines = [
        f"API benchmark, {started}: {versions()}; nproc {os.cpu_count()} (usable "
        f"{len(os.sched_getaffinity(0))}); load average {load_before} at the start, "
        f"{loadavg()} at the end",
        f"Command: `{shlex.join(command)}`",
        f"gunicorn: gthread, {args.workers} workers × {args.threads} threads, 127.0.0.1, no "
        f"access log; load: {args.clients} client processes × 1 keep-alive `http.client` "
        f"connection (reopened every {args.reconnect_every} requests), at most "
        f"{args.requests:,} requests or {args.seconds:g} s a run, {args.rounds} runs each, "
        "alternating",
        "",
        "| measure | ours | bare Flask | ours / bare | target |",
        "|---|---:|---:|---:|---|",
    ]
    if nearby is not None:
        m = nearby.median
        ratio = nearby.ratio
        status = "met" if ratio >= TARGET_RATIO else "**MISSED**"
        lines += [
            f"| `/v1/groups/nearby` requests/s ({nearby.groups:,} groups, radius_m={RADIUS_M}, "
            f"limit={LIMIT}; median of {len(nearby.ours)} runs) | "
            f"{fmt(m(nearby.ours, 'per_s'))} | {fmt(m(nearby.bare, 'per_s'))} | "
            f"{ratio:.2f} | ≥ {TARGET_RATIO} — {status} |",
            f"| p50 latency, ms | {fmt(m(nearby.ours, 'p50_ms'), 2)} | "
            f"{fmt(m(nearby.bare, 'p50_ms'), 2)} | "
            f"{m(nearby.ours, 'p50_ms') / m(nearby.bare, 'p50_ms'):.2f} | |",
            f"| p99 latency, ms | {fmt(m(nearby.ours, 'p99_ms'), 2)} | "
            f"{fmt(m(nearby.bare, 'p99_ms'), 2)} | "
            f"{m(nearby.ours, 'p99_ms') / m(nearby.bare, 'p99_ms'):.2f} | |",
            f"| server CPU per request, µs (workers' utime + stime) | "
            f"{fmt(m(nearby.ours, 'server_cpu_us'))} | {fmt(m(nearby.bare, 'server_cpu_us'))} | "
            f"{m(nearby.ours, 'server_cpu_us') / m(nearby.bare, 'server_cpu_us'):.2f} | |",
            f"| mean response body, bytes | {fmt(m(nearby.ours, 'mean_bytes'))} | "
            f"{fmt(m(nearby.bare, 'mean_bytes'))} | | bare: the typical answer, "
            f"{len(nearby.typical.body):,} B, {nearby.typical.items} groups |",
        ]
    if alerts is not None:
        a = alerts.runs
        rate = statistics.median(r.per_s for r in a)
        status = "met" if rate >= TARGET_ALERTS_PER_S else "**MISSED**"
        lines += [
            f"| alerts posted/s, PostgreSQL {alerts.server_version}, {ALERT_COORDINATORS} "
            f"coordinators (median of {len(a)} runs) | {fmt(rate)} | | | "
            f"≥ {TARGET_ALERTS_PER_S:,.0f}/s — {status} ({PEER_NOTE}) |",
            f"| alert p50 / p99 latency, ms | {statistics.median(r.p50_ms for r in a):.2f} / "
            f"{statistics.median(r.p99_ms for r in a):.2f} | | | |",
            f"| server CPU per alert, µs (workers; PostgreSQL not counted) | "
            f"{fmt(statistics.median(r.server_cpu_us for r in a))} | | | |",
            f"| alerts stored = 201 answers | {alerts.stored:,} = {alerts.posted_201:,}: "
            f"{'yes' if alerts.stored == alerts.posted_201 else '**NO**'} | | | |",
        ]
    elif alert_error:
        lines.append(f"| alerts posted/s, PostgreSQL | not measured: {alert_error} | | | |")
    lines.append("")
    if nearby is not None:
        lines.append("Runs, in order (A, B, A, B):")
        for ours, bare in zip(nearby.ours, nearby.bare, strict=True):
            lines += [f"- {ours.line()}", f"- {bare.line()}",
                      f"  - ratio this round: {ours.per_s / bare.per_s:.2f}"]
        t = nearby.typical
        lines += [
            f"- Database build: {nearby.groups:,} groups through `groups.create_groups` in "
            f"chunks of {CHUNK:,}: {nearby.build_s:.1f} s ({nearby.groups / nearby.build_s:,.0f}"
            " groups/s).",
            f"- Answers over the first {len(t.sizes)} query points: "
            f"{statistics.fmean(t.sizes):,.0f} B and {statistics.fmean(t.item_counts):.1f} "
            "groups on average (from "
            f"{min(t.sizes):,} to {max(t.sizes):,} B); bare sends the median one "
            f"({len(t.body):,} B; measured {nearby.bare_bytes:,} B). No `Accept-Encoding`: "
            "neither side compresses.",
            f"- {len(nearby.paths):,} query points (`geo_bench.make_query_points`), the same for "
            f"both; their answers name {nearby.working_set:,} distinct groups. Before timing, "
            f"each server had a warm-up of up to {WARM_UP_PASSES * len(nearby.paths):,} requests "
            f"or {args.warmup_seconds:g} s on fresh "
            f"connections (ours: {nearby.warm_up.line()}), so every worker has built its index "
            "and met the points: the runs measure a warm working set (`--points` widens it).",
        ]
    if alerts is not None:
        lines.append(f"- Alert runs: {'; '.join(r.line() for r in alerts.runs)}")
        settings = ", ".join(f"{k}={v}" for k, v in alerts.settings.items())
        lines.append(f"- PostgreSQL settings: {settings}")
        if alerts.activity:
            busy = ", ".join(f"{k} {v:.2f}" for k, v in alerts.activity.items())
            lines.append(f"- The server's PostgreSQL sessions during the alert runs (mean count "
                         f"per sample, {alerts.samples} samples of pg_stat_activity): {busy}")
        under_lock = sum(line.startswith("* ") for line in alerts.trace)
        lines += [f"- Database traffic of one POST (in-process; `*`: while holding the change "
                  f"counter's row lock, {under_lock} of {len(alerts.trace)}):", "", "```",
                  *alerts.trace, "```"]
    if profile is not None:
        lines += ["", f"Where the time goes: our request in-process (Flask test client, one "
                  f"thread, after one pass over the {profile.points:,} query points; they name "
                  f"{profile.distinct_groups:,} distinct groups, {profile.mean_items:.1f} per "
                  f"answer on average): median µs over {args.profile_requests:,} rounds", "",
                  "| stage | µs per request | note |", "|---|---:|---|"]
        lines += [f"| {s.name} | {fmt(s.us)} | {s.note} |" for s in profile.stages]
        lines += ["", f"cProfile over {args.profile_requests:,} requests: cumulative µs per "
                  "request (nested; the profiler's overhead included, heaviest on many small "
                  "Python calls)", "",
                  "| function | cumulative µs/request | calls |", "|---|---:|---:|"]
        lines += [f"| {label} | {fmt(us)} | {calls:,} |" for label, us, calls in profile.named]
        lines += ["", "The project's own functions by cumulative time (µs per request):", "",
                  "| function | cumulative | own | calls |", "|---|---:|---:|---:|"]
        lines += [f"| `{name}` | {fmt(cum)} | {fmt(own)} | {calls:,} |"
                  for name, cum, own, calls in profile.ours_top]
        lines += ["", "<details><summary>cProfile, top by own time</summary>", "", "```",
                  profile.listing.strip(), "```", "", "</details>", ""]
    lines.append(f"- total run {time.perf_counter() - START_S:.0f} s")
    return "\n".join(lines)


def loadavg() -> str:
    """The load averages of 1, 5 and 15 minutes, or "?" where /proc has none."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 10k groups, 5 s loads")
    parser.add_argument("--groups", type=int, help="groups in the database (default 100,000)")
    parser.add_argument("--seconds", type=float, help="seconds per load run (default 20)")
    parser.add_argument("--requests", type=int, default=20_000,
                        help="at most this many requests per nearby run (default: %(default)s)")
    parser.add_argument("--alert-requests", type=int, default=40_000,
                        help="at most this many alerts per alert run (default: %(default)s)")
    parser.add_argument("--clients", type=int, default=4,
                        help="client processes for the nearby runs (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="A/B rounds; medians are reported (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
    parser.add_argument("--reconnect-every", type=int, default=100,
                        help="reopen each client connection after this many requests, so "
                        "connections spread over the workers (0: never; default %(default)s)")
    parser.add_argument("--points", type=int, default=1000,
                        help="query points, the same for both servers (default: %(default)s)")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="PostgreSQL for the alert runs (default: %(default)s)")
    parser.add_argument("--no-alerts", action="store_true", help="skip the PostgreSQL part")
    parser.add_argument("--no-nearby", action="store_true", help="skip the nearby part")
    parser.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                        help=f"profile our request in-process: auto = when ours < "
                        f"{TARGET_RATIO} of bare (default)")
    parser.add_argument("--profile-requests", type=int, default=2000,
                        help="requests for the in-process profile (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="data seed (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.groups is None:
        args.groups = 10_000 if args.quick else 100_000
    if args.seconds is None:
        args.seconds = 5.0 if args.quick else 20.0
    args.warmup_seconds = 5.0 if args.quick else 15.0
    args.warmup_requests = 2_000
    if (args.groups < 100 or args.seconds <= 0 or args.clients < 1 or args.rounds < 1
            or args.requests < args.clients or args.points < 1 or args.profile_requests < 1):
        parser.error("need groups >= 100, seconds > 0, clients >= 1, rounds >= 1, "
                     "requests >= clients, points >= 1")
    return args


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)  # runs the finally blocks: servers and schema go


def main(argv: Sequence[str]) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    command = getattr(sys, "orig_argv", [sys.executable, *sys.argv])
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = loadavg()
    nearby = alerts = profile = None
    alert_error = None
    with tempfile.TemporaryDirectory(prefix="api_bench_") as tmp_name, \
            contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        if not args.no_nearby:
            nearby = bench_nearby(args, tmp, stack)
            log(f"nearby: ours / bare = {nearby.ratio:.2f}")
        if not args.no_alerts:
            try:
                with contextlib.ExitStack() as pg_stack:
                    alerts = bench_alerts(args, tmp, pg_stack)
            except Exception as error:  # PostgreSQL missing: say so in the report
                alert_error = " ".join(f"{type(error).__name__}: {error}".split())
                alert_error = alert_error.replace("|", "\\|")
                log(f"alerts: {alert_error}")
        if nearby is not None and (args.profile == "always" or (
                args.profile == "auto" and nearby.ratio < TARGET_RATIO)):
            log(f"profiling our request in-process ({args.profile_requests:,} requests)")
            profile = profile_nearby(nearby.db_path, nearby.paths, nearby.typical,
                                     args.profile_requests, 30)
        print(report(args, command, started, load_before, nearby, alerts, alert_error, profile))


if __name__ == "__main__":
    main(sys.argv[1:])
