"""Benchmark offline sync: a device's first full sync, a pull with nothing new and a push of
100 alerts, on SQLite and PostgreSQL, against Kinto (PostgreSQL backend) holding the same alerts.

What it measures:

* **The city.** ``--groups`` (5,000) square blocks of about 200 m on a grid around Seattle's
  centre, ``--alerts`` (50,000) alerts spread over them at random (seeded), the demo safety tips;
  loaded in bulk, then rendered into their rows as ``blockwatch serve`` does at start (timed
  and reported, not part of any pull). The device's scope: 3 km around the centre (about 700 groups,
  7,000 alerts and 35 English tips).
* **Our server**: ``api.wsgi:app`` (what ``blockwatch serve`` runs) under gunicorn (gthread,
  1 worker, 1 thread, loopback); each pull on a keep-alive connection of its own through
  ``http.client``, the client Kinto is pulled with, asking ``Accept-Encoding: identity`` (raw
  JSON bytes, as for Kinto). The tables are analysed after the bulk load (``VACUUM (ANALYZE)``
  on PostgreSQL, as Kinto's get). For each page size (100, 500, 1,000, 5,000) the server is
  restarted and after a warm-up away from the scope (the spatial index built, queries
  compiled), devices sync in turn from no cursor to ``has_more == false``, each sending its
  ``have_groups`` as a real client would: the first meets a cold server (nothing kept in its
  memory yet: alerts come from the renderings stored with their rows), five more a warm one
  (the median of those is "warm", as Kinto's figure is the median of its five pulls after a
  warm-up). Reported: entities per second (entities / wall time of
  the whole pull, ``json.loads`` of every page included, as for Kinto), bytes per entity raw
  and gzipped (``gzip.compress`` of the same bodies, the encoding the server uses when asked).
* **Time to a complete replica**: :class:`blockwatch.sync.SyncClient` (default page size 500)
  from an empty replica file to ``has_more == false``, local transactions included, against a
  server started and warmed up as for a cold pull (nothing of the scope kept in its memory).
* **A pull with nothing new**: 200 pulls with the final cursor; the median of the server's own
  ``Server-Timing`` (time inside the app) and of the round trip.
* **A push of 100 alerts**: a coordinator's client queues 100 alerts offline, then one
  ``push()``; its wall time and ``Server-Timing``.
* **Kinto** (``bench/kinto_peer.py``): the same 50,000 alerts (as our public Alert objects) as
  records of one collection on its PostgreSQL backend, pulled with ``_since`` paging at the
  same page sizes by the same kind of client. Kinto's sync unit is a whole collection, so it
  pulls all 50,000 records where we pull the 3 km scope; entities per second is the rate both
  deliver. **Paired**: our warm pulls on the database Kinto is compared with (PostgreSQL) run
  right before each of Kinto's timed pulls of the same page size, five rounds, on our servers
  left up for it, so both sides' medians come from the same minutes of a noisy machine. The
  bench process freezes its heap before timing (``gc.freeze()``), so neither client's parsing
  sets off collections that walk the records this process holds.

Nothing asserts a timing: the machine is shared. The report (Markdown for
docs/performance.md) goes to stdout, progress to stderr. Run from the repository root::

    .venv/bin/python bench/sync_bench.py                 # everything (about 3 minutes)
    .venv/bin/python bench/sync_bench.py --quick         # 1,000 groups, 10,000 alerts
    .venv/bin/python bench/sync_bench.py --no-kinto      # ours only
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import gzip
import http.client
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(BENCH)]

import httpx  # noqa: E402
import shapely  # noqa: E402
from api_bench import Server, log  # noqa: E402
from scratch_database import analyse, open_database  # noqa: E402
from sqlalchemy import select  # noqa: E402

from api.http import alert_renderer  # noqa: E402
from blockwatch import accounts, changelog, groups, renderings, tips  # noqa: E402
from blockwatch.config import Settings  # noqa: E402
from blockwatch.db import Database  # noqa: E402
from blockwatch.domain import OPERATOR, GroupDraft  # noqa: E402
from blockwatch.models import Account, Alert  # noqa: E402
from blockwatch.sync import SyncClient  # noqa: E402
from blockwatch.sync.scope import Area, Scope  # noqa: E402

CENTRE = (-122.33, 47.61)  # (lon, lat)
SCOPE_RADIUS_M = 3000.0
CELL_DEG = 0.0027  # about 200 m of longitude here; latitude cells are scaled to be square
PAGE_SIZES = (100, 500, 1000, 5000)
NO_CHANGE_PULLS = 200
PUSHED_ALERTS = 100
WARM_RUNS = 5  # warm pulls per page size, and Kinto's pulls; each side's median is reported


# -- the city ------------------------------------------------------------------------------
def make_city(db: Database, n_groups: int, n_alerts: int, seed: int = 7) -> list[str]:
    """Blocks on a grid around the centre, alerts spread over them, the demo tips."""
    rnd = random.Random(seed)
    side = math.ceil(math.sqrt(n_groups))
    lat_cell = CELL_DEG * math.cos(math.radians(CENTRE[1]))
    lon0 = CENTRE[0] - side * CELL_DEG / 2
    lat0 = CENTRE[1] - side * lat_cell / 2
    drafts = []
    for i in range(n_groups):
        x, y = i % side, i // side
        min_lon, min_lat = lon0 + x * CELL_DEG, lat0 + y * lat_cell
        drafts.append(GroupDraft(
            name=f"Block {i}", id=str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
            boundary=shapely.box(min_lon, min_lat, min_lon + CELL_DEG * 0.98,
                                 min_lat + lat_cell * 0.98),
        ))
    ids: list[str] = []
    for start in range(0, n_groups, 2500):
        ids += groups.create_groups(db, OPERATOR, drafts[start:start + 2500])
    now = datetime.now(UTC)
    with db.write() as session:
        author = Account(id=str(uuid.uuid4()), display_name="Bench Coordinator",
                         is_admin=False, created_at=now)
        session.add(author)
        session.flush()
        seqs = changelog.allocate(session, n_alerts)
        rows = []
        for k in range(n_alerts):
            where = drafts[rnd.randrange(n_groups)]
            centre = where.boundary.centroid
            rows.append({
                "id": str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
                "group_id": where.id, "category": rnd.choice(["burglary", "vehicle-prowl",
                                                               "suspicious-activity"]),
                "severity": "moderate", "urgency": "expected", "certainty": "likely",
                "title": f"Alert {k}: car prowl reported on the block",
                "body": "A neighbour saw someone trying car doors on the block around 2 am; "
                        "lock up and call 911 if you see it happen.",
                "lon": centre.x + rnd.uniform(-0.0008, 0.0008),
                "lat": centre.y + rnd.uniform(-0.0005, 0.0005),
                "sent_at": now - timedelta(minutes=k % 10_000),
                "expires_at": now + timedelta(days=7), "status": "active",
                "author_id": author.id, "draft_sha256": "0" * 64, "seq": seqs[k],
                "updated_at": now,
            })
        session.execute(Alert.__table__.insert(), rows)
    tips.upsert_tips(db, json.loads((ROOT / "fixtures" / "safety_tips.json").read_text()))
    return ids


def scope_json() -> dict[str, Any]:
    return Scope(area=Area(CENTRE[0], CENTRE[1], SCOPE_RADIUS_M)).as_json()


# -- one device's pull -----------------------------------------------------------------------
@dataclass
class Pull:
    entities: int = 0
    pages: int = 0
    seconds: float = 0.0
    raw_bytes: int = 0
    gzip_bytes: int = 0
    server_ms: list[float] = field(default_factory=list)
    cursor: str | None = None
    have_groups: list[str] = field(default_factory=list)

    @property
    def per_s(self) -> float:
        return self.entities / self.seconds if self.seconds else 0.0


def server_ms(response: httpx.Response) -> float:
    return duration_ms(response.headers.get("Server-Timing"))


def duration_ms(server_timing: str | None) -> float:
    """The ``dur`` of a ``Server-Timing`` header (NaN without one)."""
    header = server_timing or ""
    return float(header.split("dur=")[1]) if "dur=" in header else float("nan")


def warm_up(base_url: str) -> None:
    """What a server does once after it starts (build its spatial index, open connections,
    compile queries), done with a pull of a few metres far from the scope: "cold" then means
    only that no entity of the scope has been rendered yet."""
    far = {"area": {"lat": CENTRE[1], "lon": CENTRE[0] + 0.2, "radius_m": 1.0}}
    connection = Connection(base_url)
    try:
        for _ in range(3):
            connection.post_json("/v1/sync/pull", {"cursor": None, "scope": far, "limit": 1})
    finally:
        connection.close()


class Connection:
    """One keep-alive HTTP/1.1 connection through ``http.client``: the client Kinto's pulls use
    (bench/kinto_peer.py), so both servers are measured through the same client code."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self._http = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)

    def post_json(self, path: str, body: dict[str, Any]) -> tuple[bytes, float]:
        """The response body and its ``Server-Timing`` in ms; an error status raises."""
        self._http.request("POST", path, body=json.dumps(body).encode(), headers={
            "Content-Type": "application/json", "Accept": "application/json",
            "Accept-Encoding": "identity",
        })
        response = self._http.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"POST {path}: {response.status} {data[:500]!r}")
        return data, duration_ms(response.getheader("Server-Timing"))

    def close(self) -> None:
        self._http.close()


def full_pull(base_url: str, limit: int) -> Pull:
    """A device's first sync: from no cursor until ``has_more`` is false, on a connection of
    its own (as each Kinto pull has)."""
    result = Pull()
    have: set[str] = set()
    bodies = []
    connection = Connection(base_url)
    try:
        started = time.perf_counter()
        while True:
            data, server_time = connection.post_json("/v1/sync/pull", {
                "cursor": result.cursor, "scope": scope_json(), "have_groups": sorted(have),
                "limit": limit,
            })
            page = json.loads(data)
            bodies.append(data)
            result.server_ms.append(server_time)
            result.pages += 1
            for gone in (*page["removed_groups"], *page["groups"]["deleted"]):
                have.discard(gone)
            have.update(group["id"] for group in page["groups"]["upserted"])
            result.entities += sum(len(page[k]["upserted"]) + len(page[k]["deleted"])
                                   for k in ("groups", "alerts", "tips"))
            result.cursor = page["cursor"]
            if not page["has_more"]:
                break
        result.seconds = time.perf_counter() - started
    finally:
        connection.close()
    result.raw_bytes = sum(len(body) for body in bodies)
    result.gzip_bytes = sum(len(gzip.compress(body, 6)) for body in bodies)
    result.have_groups = sorted(have)
    return result


# -- one database ----------------------------------------------------------------------------
@dataclass
class DatabaseReport:
    kind: str
    url: str
    build_s: float
    render_s: float
    scope: dict[str, int]
    cold: dict[int, Pull]
    warm: dict[int, Pull]
    replica_s: float
    replica_entities: int
    no_change_server_ms: float
    no_change_round_trip_ms: float
    push_s: float
    push_server_ms: float
    servers: dict[int, str] = field(default_factory=dict)




def bench_database(kind: str, args: argparse.Namespace, tmp: Path,
                   stack: contextlib.ExitStack, paired: contextlib.ExitStack | None = None
                   ) -> tuple[DatabaseReport, str]:
    """Build the city in ``kind`` and measure it. With ``paired``, the warm pulls are left for
    later: each page size's server stays up in ``paired`` (its base URL in the report's
    ``servers``), for :func:`pair_with_kinto` to pull right before each of Kinto's pulls."""
    url = open_database(kind, "sync-bench", tmp, args.postgres_url, stack)
    db = Database(url, Settings(database_url=url))
    db.migrate()
    started = time.perf_counter()
    group_ids = make_city(db, args.groups, args.alerts)
    build_s = time.perf_counter() - started
    log(f"{kind}: {args.groups} groups, {args.alerts} alerts in {build_s:.1f} s")
    # The alerts were loaded in bulk, past the renderer: render them into their rows, as
    # `blockwatch serve` does at start.
    renderings.install(db, alert_renderer())
    started = time.perf_counter()
    rendered = renderings.render_stale(db, batch_size=5000)
    render_s = time.perf_counter() - started
    log(f"{kind}: {rendered} alerts rendered into their rows in {render_s:.1f} s")
    analyse(db, vacuum=True)
    in_scope = db.spatial.groups.keys_within(lon=CENTRE[0], lat=CENTRE[1],
                                             radius_m=SCOPE_RADIUS_M)
    coordinator = accounts.create_token(db, "Bench Pusher", "coordinator", in_scope[0])
    db.dispose()
    env = {**os.environ, "BLOCKWATCH_DATABASE_URL": url, "BLOCKWATCH_RATE_LIMIT_WRITES": "off"}
    cold: dict[int, Pull] = {}
    warm: dict[int, Pull] = {}
    servers: dict[int, str] = {}
    gc.freeze()  # what this process holds so far is not the client's: keep collections off it
    for limit in args.page_sizes:
        with contextlib.ExitStack() as own:
            base = (paired or own).enter_context(serving(kind, env, tmp, f"-{limit}"))
            warm_up(base)
            cold[limit] = full_pull(base, limit)
            log(f"{kind} limit {limit}: cold {cold[limit].per_s:,.0f}/s")
            if paired is not None:
                servers[limit] = base
                continue
            warm[limit] = median_pull([full_pull(base, limit) for _ in range(WARM_RUNS)])
        log_warm(kind, limit, warm[limit])
    last = cold[args.page_sizes[-1]]
    scope = {"entities": last.entities, "groups": len(last.have_groups)}
    with serving(kind, env, tmp) as base:
        warm_up(base)  # as for a cold pull: the index built, nothing of the scope kept
        replica_path = tmp / f"replica-{kind}.db"
        with SyncClient(base, replica_path, scope=Scope(area=Area(
                CENTRE[0], CENTRE[1], SCOPE_RADIUS_M))) as client:
            started = time.perf_counter()
            summary = client.pull()
            replica_s = time.perf_counter() - started
        connection = Connection(base)
        try:
            body = {"cursor": last.cursor, "scope": scope_json(),
                    "have_groups": last.have_groups, "limit": 500}
            for _ in range(20):  # warm this worker's index and connection
                connection.post_json("/v1/sync/pull", body)
            timings, trips = [], []
            cursor = last.cursor
            for _ in range(NO_CHANGE_PULLS):
                began = time.perf_counter()
                data, server_time = connection.post_json("/v1/sync/pull",
                                                         {**body, "cursor": cursor})
                trips.append((time.perf_counter() - began) * 1000)
                page = json.loads(data)
                assert not page["has_more"] and not page["alerts"]["upserted"], page
                cursor = page["cursor"]
                timings.append(server_time)
        finally:
            connection.close()
        with SyncClient(base, tmp / f"pusher-{kind}.db", token=coordinator,
                        scope=Scope(group_ids=(in_scope[0],))) as pusher:
            for k in range(PUSHED_ALERTS):
                pusher.post_alert(in_scope[0], "suspicious-activity", f"Offline alert {k}",
                                  location=(CENTRE[0], CENTRE[1]))
            push_timing: list[float] = []
            original = pusher._http.post

            def timed_post(*a, **kw):
                response = original(*a, **kw)
                push_timing.append(server_ms(response))
                return response

            pusher._http.post = timed_post
            started = time.perf_counter()
            results = pusher.push()
            push_s = time.perf_counter() - started
            assert [r["status"] for r in results] == ["applied"] * PUSHED_ALERTS, results[:3]
    log(f"{kind}: replica {replica_s:.2f} s, no-change {statistics.median(timings):.2f} ms, "
        f"push {push_s * 1000:.0f} ms")
    del group_ids
    return DatabaseReport(
        kind=kind, url=url, build_s=build_s, render_s=render_s, servers=servers, scope=scope,
        cold=cold, warm=warm, replica_s=replica_s,
        replica_entities=summary.upserted, no_change_server_ms=statistics.median(timings),
        no_change_round_trip_ms=statistics.median(trips), push_s=push_s,
        push_server_ms=push_timing[0] if push_timing else float("nan"),
    ), url


def median_pull(runs: list[Pull]) -> Pull:
    return sorted(runs, key=lambda pull: pull.seconds)[len(runs) // 2]


def log_warm(kind: str, limit: int, pull: Pull) -> None:
    log(f"{kind} limit {limit}: warm {pull.per_s:,.0f}/s (wall {pull.seconds * 1000:.0f} ms, "
        f"server {sum(pull.server_ms):.0f} ms, {pull.pages} pages)")


def pair_with_kinto(args: argparse.Namespace, ours: DatabaseReport, postgres_url: str,
                    paired: contextlib.ExitStack) -> dict[str, Any]:
    """Kinto's pulls, each right after ours of the same page size (on our server left up for
    it): the two are measured in the same minutes, so the machine's drift (other work on a
    shared host) moves both alike. The median of each side's rounds is reported."""
    import kinto_peer

    runs: dict[int, list[Pull]] = {limit: [] for limit in args.page_sizes}

    def before_pull(limit: int, round_no: int) -> None:
        runs[limit].append(full_pull(ours.servers[limit], limit))

    records = kinto_records(ours.url)
    log(f"kinto: {len(records)} records")
    # This process now holds Kinto's 50,000 records; both clients' parsing would otherwise
    # trigger collections that walk them (a cost of this bench's heap, not of either server).
    gc.freeze()
    kinto = kinto_peer.measure_kinto(records, args.page_sizes, postgres_url,
                                     repeats=WARM_RUNS, before_pull=before_pull)
    paired.close()
    for limit in args.page_sizes:
        ours.warm[limit] = median_pull(runs[limit])
        log_warm(ours.kind, limit, ours.warm[limit])
        log("  each round, ours / Kinto's, s: " + ", ".join(
            f"{run.seconds:.3f} / {theirs:.3f}" for run, theirs in
            zip(runs[limit], kinto["pulls"][limit]["seconds_all"], strict=True)))
    return kinto


@contextlib.contextmanager
def serving(kind: str, env: dict[str, str], tmp: Path, suffix: str = ""):
    server = Server(f"blockwatch-{kind}{suffix}", "api.wsgi:app", env, workers=1, threads=1,
                    log_path=tmp / f"gunicorn-{kind}{suffix}.log").start()
    try:
        server.wait_ready("/v1/health")
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def kinto_records(url: str) -> list[dict[str, Any]]:
    """Every alert of the city as our public Alert object (what Kinto will hold)."""
    from api import create_app

    app = create_app({"BLOCKWATCH_DATABASE_URL": url, "BLOCKWATCH_RATE_LIMIT_WRITES": "off"})
    db = app.extensions["blockwatch.db"]
    from api import schemas
    from blockwatch.alerts import views_of
    from blockwatch.domain import ANONYMOUS

    with db.read() as session:
        rows = session.execute(select(*Alert.__table__.columns)).all()
        views = views_of(session, ANONYMOUS, rows, datetime.now(UTC))
    dumped = schemas.Alert(many=True).dump(views)
    db.dispose()
    return dumped


# -- the report ------------------------------------------------------------------------------
def report(args, reports: list[DatabaseReport], kinto: dict[str, Any] | None,
           pair_kind: str | None = None) -> str:
    def ratio_head(r: DatabaseReport) -> str:
        return f"{r.kind} warm ÷ Kinto" + (" (paired)" if r.kind == pair_kind else "")

    lines = [
        f"Command: `.venv/bin/python bench/sync_bench.py {' '.join(args.argv)}`  ",
        f"City: {args.groups:,} groups, {args.alerts:,} alerts; scope 3 km: "
        f"{reports[0].scope['groups']} groups, {reports[0].scope['entities']:,} entities "
        f"(groups + alerts + tips). Server: gunicorn gthread 1×1, loopback, identity encoding.",
        "",
        "| page size | " + " | ".join(
            f"{r.kind} cold /s | {r.kind} warm /s" for r in reports)
        + (" | Kinto (PG) /s | " + " | ".join(ratio_head(r) for r in reports) + " |"
           if kinto else " |"),
        "|---|" + "---|---|" * len(reports) + ("---|" * (1 + len(reports)) if kinto else ""),
    ]
    for limit in args.page_sizes:
        cells = []
        for r in reports:
            cells += [f"{r.cold[limit].per_s:,.0f}", f"{r.warm[limit].per_s:,.0f}"]
        row = f"| {limit} | " + " | ".join(cells)
        if kinto:
            theirs = kinto["pulls"][limit]["records_per_s"]
            row += f" | {theirs:,.0f} | " + " | ".join(
                f"{r.warm[limit].per_s / theirs:.2f}×" for r in reports)
        lines.append(row + " |")
    lines += ["", "| | " + " | ".join(r.kind for r in reports)
              + (" | Kinto (PG) |" if kinto else " |"),
              "|---|" + "---|" * len(reports) + ("---|" if kinto else "")]

    def row(label: str, values: list[str], theirs: str = "") -> None:
        lines.append(f"| {label} | " + " | ".join(values) + (f" | {theirs} |" if kinto else " |"))

    mid = 500 if 500 in args.page_sizes else args.page_sizes[0]
    row(f"bytes per entity at page size {mid}, raw / gzip",
        [f"{r.warm[mid].raw_bytes / r.warm[mid].entities:.0f} / "
         f"{r.warm[mid].gzip_bytes / r.warm[mid].entities:.0f}" for r in reports],
        f"{kinto['pulls'][mid]['bytes_per_record']:.0f} / "
        f"{kinto['pulls'][mid]['gzip_bytes_per_record']:.0f}" if kinto else "")
    row("time to a complete replica (SyncClient, page 500, local writes included)",
        [f"{r.replica_s:.2f} s ({r.replica_entities / r.replica_s:,.0f} entities/s)"
         for r in reports])
    row("pull with nothing new: server time (median)",
        [f"{r.no_change_server_ms:.2f} ms" for r in reports],
        f"{kinto['no_change_server_ms']} ms (whole ms, its log)" if kinto else "")
    row("pull with nothing new: round trip (median)",
        [f"{r.no_change_round_trip_ms:.2f} ms" for r in reports],
        f"{kinto['no_change_median_ms']:.2f} ms" if kinto else "")
    row(f"push of {PUSHED_ALERTS} alerts (one request): wall / server",
        [f"{r.push_s * 1000:.0f} ms / {r.push_server_ms:.0f} ms" for r in reports])
    row(f"rendering the {args.alerts:,} bulk-loaded alerts into their rows "
        "(what `blockwatch serve` does at start)",
        [f"{r.render_s:.1f} s" for r in reports])
    if kinto:
        lines += ["", f"Kinto {kinto.get('version', '?')}: {kinto['records']:,} records "
                      "(the city's alerts), PostgreSQL storage, `_since` paging."]
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=int, default=5000)
    parser.add_argument("--alerts", type=int, default=50_000)
    parser.add_argument("--quick", action="store_true", help="1,000 groups, 10,000 alerts")
    parser.add_argument("--no-kinto", action="store_true", help="skip the Kinto peer")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--page-sizes", default=",".join(map(str, PAGE_SIZES)))
    parser.add_argument("--postgres-url", default=os.environ.get(
        "BLOCKWATCH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args(argv)
    if args.quick:
        args.groups, args.alerts = 1000, 10_000
    args.page_sizes = [int(v) for v in args.page_sizes.split(",")]
    args.argv = argv
    return args


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    kinds = args.databases.split(",")
    # Kinto runs on PostgreSQL, so it is paired with our PostgreSQL (else our only database).
    pair_kind = None if args.no_kinto else ("postgresql" if "postgresql" in kinds else kinds[0])
    reports = []
    kinto = None
    with tempfile.TemporaryDirectory(prefix="sync-bench-") as name, \
            contextlib.ExitStack() as stack, contextlib.ExitStack() as paired:
        tmp = Path(name)
        for kind in kinds:
            found, _ = bench_database(kind, args, tmp, stack,
                                      paired if kind == pair_kind else None)
            reports.append(found)
        if pair_kind is not None:
            ours = next(r for r in reports if r.kind == pair_kind)
            kinto = pair_with_kinto(args, ours, args.postgres_url, paired)
    print(report(args, reports, kinto, pair_kind))


if __name__ == "__main__":
    main(sys.argv[1:])
