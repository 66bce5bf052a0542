"""Benchmark push delivery: one alert in a dense area with 100,000 subscribed devices, on SQLite
and PostgreSQL; the time to work out its targets and write its outbox rows, and deliveries per
second from ``blockwatch worker`` processes to a local webhook receiver.

What it measures:

* **The area (not timed).** A fresh database (a SQLite file in a temporary directory; a fresh
  PostgreSQL schema, ``search_path`` set through the URL's ``options``, dropped at the end),
  ``Database.migrate()``, one group (a block of about 300 m in Seattle) and a coordinator token
  (``accounts.create_token``). Then ``--devices`` (100,000) webhook devices inserted in bulk
  straight into ``devices`` (and ``device_groups``): each row is what
  ``delivery.devices.register_device`` stores, built by the same steps (``check_push``,
  ``check_subscription``, ``_subscribe`` on a transient ``Device``), and checked against
  devices registered through the service before the bulk insert. Subscriptions (seeded): areas
  of radius 200 m to 3 km centred at a distance uniform in 0 to 2 km from the block (denser
  near it: a dense area), most for every category from ``minor``; 10 % with categories that
  exclude the alert's; 10 % with quiet hours that hold now in one of four time zones (their
  messages are due when the quiet hours end); 5 % following the group by id, no area. Every
  url is ``http://127.0.0.1:<receiver>/hook/<device index>``
  (``BLOCKWATCH_WEBHOOK_ALLOW_PRIVATE=1``). PostgreSQL tables are ANALYZEd after the load.
* **Targeting and the outbox (timed).** ``--reps`` (3) alerts, each posted through
  ``alerts.post_alert`` (one transaction: the alert, its change-log number, ``targets_of``,
  the outbox rows, the commit); wall time, the deliveries written, and the split inside the
  post: ``outbox.targets_of`` and ``outbox._insert`` are wrapped (module attributes, looked up
  at call time) and every SQL statement and the commit are timed with SQLAlchemy events.
  ``targets_of`` alone is then timed again in a read transaction. The deliveries are deleted
  between posts (not timed; PostgreSQL VACUUM ANALYZEs the table). The median is reported
  against the 1 s target. When it is over (``--profile auto``) one more post runs under
  cProfile and the report lists where its time goes.
* **Deliveries per second (timed).** A webhook receiver in its own process (asyncio, HTTP/1.1
  keep-alive parsed by hand) answers 204, checks each ``Blockwatch-Signature`` and counts
  requests and ``Idempotency-Key`` values. One more alert is posted (not timed) and its due
  deliveries are held back (a far ``claimed_until``) while the workers start:
  ``blockwatch worker --idle-s 0.1`` subprocesses (``--workers``, 2, on PostgreSQL; on
  SQLite, which serialises writers, one, then ``--workers`` to show what happens). The clock
  starts when the rows are released and stops when no pending delivery is due any more
  (polled every 0.1 s); deliveries/s = rows sent / that wall time. Then: every released key
  received exactly once? (duplicates, missing, unexpected), rows retried or dead, errors in the
  workers' logs, and CPU per delivery of the workers, their PostgreSQL backends and the
  receiver. The baseline, measured in the same run against the same receiver: a bare loop
  that POSTs the same signed bodies (``payload_bytes``, ``signature_header``) with one
  ``httpx.Client`` per thread, 2 threads, no database (``--baseline-requests``, 20,000);
  the report gives ours / bare. ``--deliver-limit`` caps the deliveries released (the rest
  are withdrawn before the workers start).

Nothing asserts a timing: the machine is shared. The report (Markdown for
docs/performance.md) goes to stdout, progress to stderr. Every process started here is
stopped by its id on the way out. Run from the repository root::

    .venv/bin/python bench/delivery_bench.py                      # both databases, ~6 minutes
    .venv/bin/python bench/delivery_bench.py --quick              # 10,000 devices
    .venv/bin/python bench/delivery_bench.py --databases postgresql --deliver-limit 20000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import datetime as dt
import io
import json
import math
import os
import pstats
import random
import re
import secrets
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
for _path in (str(ROOT), str(BENCH)):
    if _path not in sys.path:  # run as a script from a checkout, without installing
        sys.path.insert(0, _path)

import httpx  # noqa: E402
import shapely  # noqa: E402
from api_bench import cpu_s, loadavg, log, stop_process, versions  # noqa: E402
from scratch_database import analyse, open_database  # noqa: E402
from sqlalchemy import (  # noqa: E402
    delete,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session  # noqa: E402

from blockwatch import accounts, alerts, groups  # noqa: E402
from blockwatch.config import Settings  # noqa: E402
from blockwatch.db import Database  # noqa: E402
from blockwatch.delivery import devices, outbox  # noqa: E402
from blockwatch.delivery import worker as delivery_worker  # noqa: E402
from blockwatch.delivery.transports import (  # noqa: E402
    Message,
    payload_bytes,
    signature_header,
    verify_signature,
)
from blockwatch.domain import (  # noqa: E402
    ANONYMOUS,
    CATEGORIES,
    OPERATOR,
    SEVERITIES,
    AlertDraft,
    GroupDraft,
)
from blockwatch.models import Alert as AlertRow  # noqa: E402
from blockwatch.models import Delivery, Device, DeviceGroup, Group  # noqa: E402

CENTRE = (-122.33, 47.61)  # (lon, lat): Seattle
BLOCK_M = 300.0
AREA_SPREAD_M = 2000.0
RADIUS_M = (200.0, 3000.0)
SHARE_FOLLOWERS, SHARE_OTHER_CATEGORIES, SHARE_QUIET = 0.05, 0.10, 0.10
QUIET_ZONES = ("America/Los_Angeles", "America/New_York", "Europe/Berlin", "Asia/Tokyo")
ALERT_CATEGORY, ALERT_SEVERITY = "burglary", "moderate"  # moderate: quiet hours hold it back
TARGET_POST_S = 1.0
DEVICE_CHUNK = 5000
HOLD_BY = "delivery-bench-hold"
HOLD_UNTIL = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
WORKER_APP_NAME = "delivery_bench_worker"
POLL_S = 0.1
WORKER_IDLE_S = 0.1
M_PER_DEG_LAT = 111_320.0
#: Sends a worker round runs at once (1 before the worker sent concurrently).
SEND_CONCURRENCY = getattr(delivery_worker, "DEFAULT_CONCURRENCY", 1)


def webhook_secret(index: int) -> str:
    """Device ``index``'s webhook secret (the receiver derives it from the url's index)."""
    return f"delivery-bench-secret-{index:07d}"


# -- the receiver (its own process) --------------------------------------------------------
class _Counts:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.connections = 0
        self.bad_signature = 0
        self.keys: dict[str, int] = {}
        self.first = self.last = None

    def hook(self, path: bytes, headers: dict[bytes, bytes], body: bytes) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = now
        self.last = now
        self.requests += 1
        key = headers.get(b"idempotency-key", b"").decode()
        self.keys[key] = self.keys.get(key, 0) + 1
        index = int(path.rsplit(b"/", 1)[1])
        signature = headers.get(b"blockwatch-signature", b"").decode()
        if not verify_signature(webhook_secret(index), signature, body, now=time.time()):
            self.bad_signature += 1

    def summary(self) -> dict[str, Any]:
        return {"requests": self.requests, "connections": self.connections,
                "distinct": len(self.keys),
                "duplicate_keys": sum(1 for n in self.keys.values() if n > 1),
                "bad_signature": self.bad_signature, "first": self.first, "last": self.last}


async def _receive(counts: _Counts, reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter) -> None:
    counted = False  # connections that carry webhooks (not the bench's own queries)
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            request_line, _, rest = head.partition(b"\r\n")
            _method, path, _version = request_line.split(b" ", 2)
            headers = {}
            for line in rest.split(b"\r\n"):
                if line:
                    name, _, value = line.partition(b":")
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", b"0"))
            body = await reader.readexactly(length) if length else b""
            if path.startswith(b"/hook/"):
                if not counted:
                    counts.connections += 1
                    counted = True
                counts.hook(path, headers, body)
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            else:
                if path == b"/_reset":
                    counts.reset()
                    answer: Any = {"reset": True}
                elif path == b"/_keys":
                    answer = counts.keys
                else:
                    answer = counts.summary()
                data = json.dumps(answer).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
                await writer.drain()
            if headers.get(b"connection", b"").lower() == b"close":
                return
    finally:
        writer.close()


async def _serve_receiver() -> None:
    counts = _Counts()
    server = await asyncio.start_server(
        lambda reader, writer: _receive(counts, reader, writer), "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"ready {port}", flush=True)
    async with server:
        await server.serve_forever()


@dataclass
class Receiver:
    """The receiver process: started by this script with ``--receiver``."""

    log_path: Path
    port: int = 0
    proc: subprocess.Popen | None = None

    def start(self) -> Receiver:
        with open(self.log_path, "wb") as errors:
            self.proc = subprocess.Popen(
                [sys.executable, __file__, "--receiver"], cwd=ROOT, stdout=subprocess.PIPE,
                stderr=errors, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        line = self.proc.stdout.readline().decode()
        if not line.startswith("ready "):
            raise RuntimeError(f"the receiver did not start: {line!r}")
        self.port = int(line.split()[1])
        log(f"receiver: pid {self.proc.pid} on 127.0.0.1:{self.port}")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace_s=15.0)
            self.proc = None

    def _get(self, path: str) -> Any:
        with httpx.Client(timeout=60) as client:
            response = client.get(f"http://127.0.0.1:{self.port}{path}")
            response.raise_for_status()
            return response.json()

    def reset(self) -> None:
        self._get("/_reset")

    def stats(self) -> dict[str, Any]:
        return self._get("/_stats")

    def keys(self) -> dict[str, int]:
        return self._get("/_keys")

    def cpu_s(self) -> float:
        return cpu_s(self.proc.pid) if self.proc is not None else 0.0


# -- the area ------------------------------------------------------------------------------


def make_group(db: Database) -> str:
    """A block of about 300 m around the centre."""
    half_lat = BLOCK_M / 2 / M_PER_DEG_LAT
    half_lon = half_lat / math.cos(math.radians(CENTRE[1]))
    boundary = shapely.box(CENTRE[0] - half_lon, CENTRE[1] - half_lat,
                           CENTRE[0] + half_lon, CENTRE[1] + half_lat)
    [group_id] = groups.create_groups(db, OPERATOR, [GroupDraft(
        name="Bench Block", boundary=boundary, id=str(uuid.uuid4()))])
    return group_id


def quiet_now(zone: str, now: dt.datetime) -> dict[str, str]:
    """Quiet hours that began 2 hours ago in ``zone`` and last 8 hours."""
    local = now.astimezone(ZoneInfo(zone))
    start = (local.hour * 60 + local.minute - 120) % 1440
    end = (start + 480) % 1440
    return {"start": f"{start // 60:02d}:{start % 60:02d}",
            "end": f"{end // 60:02d}:{end % 60:02d}", "tz": zone}


def subscriptions(n: int, group_id: str, now: dt.datetime, seed: int) -> list[tuple[str, dict]]:
    """(kind, subscription) of each device, seeded."""
    rnd = random.Random(seed)
    others = [name for name in CATEGORIES if name != ALERT_CATEGORY]
    quiet = {zone: quiet_now(zone, now) for zone in QUIET_ZONES}
    m_per_deg_lon = M_PER_DEG_LAT * math.cos(math.radians(CENTRE[1]))
    found = []
    for _ in range(n):
        draw = rnd.random()
        if draw < SHARE_FOLLOWERS:
            found.append(("follows the group", {"group_ids": [group_id]}))
            continue
        distance, bearing = rnd.uniform(0, AREA_SPREAD_M), rnd.uniform(0, 2 * math.pi)
        area = {"lon": CENTRE[0] + distance * math.sin(bearing) / m_per_deg_lon,
                "lat": CENTRE[1] + distance * math.cos(bearing) / M_PER_DEG_LAT,
                "radius_m": round(rnd.uniform(*RADIUS_M), 1)}
        if draw < SHARE_FOLLOWERS + SHARE_OTHER_CATEGORIES:
            found.append(("other categories", {
                "area": area, "categories": rnd.sample(others, rnd.randint(1, 3)),
                "min_severity": "minor"}))
        elif draw < SHARE_FOLLOWERS + SHARE_OTHER_CATEGORIES + SHARE_QUIET:
            found.append(("quiet hours now", {
                "area": area, "min_severity": "minor",
                "quiet_hours": quiet[rnd.choice(QUIET_ZONES)]}))
        else:
            found.append(("area, every category", {"area": area, "min_severity": "minor"}))
    return found


def device_row(index: int, subscription: dict, port: int, now: dt.datetime, device_id: str
               ) -> tuple[dict[str, Any], list[str]]:
    """The ``devices`` row ``register_device`` would store (the same steps, no session), and
    the groups it follows."""
    platform = devices._check_platform("webhook")
    push = devices.check_push(platform, {"url": f"http://127.0.0.1:{port}/hook/{index}",
                                         "secret": webhook_secret(index)}, allow_private=True)
    subscription = devices.check_subscription(subscription)
    secret = devices.SECRET_PREFIX + secrets.token_urlsafe(32)
    row = Device(id=device_id, platform=platform, push=push,
                 secret_sha256=devices._sha256(secret), active=True, created_at=now,
                 updated_at=now)
    devices._subscribe(row, subscription)
    return ({column.key: getattr(row, column.key) for column in Device.__table__.columns},
            subscription["group_ids"])


def check_rows_match(db: Database, samples: list[tuple[str, dict]], port: int) -> int:
    """Register a few devices through the service and compare their stored columns with what
    :func:`device_row` builds from the same input. Returns how many were compared."""
    ignored = {"id", "secret_sha256", "created_at", "updated_at"}
    for k, (kind, subscription) in enumerate(samples):
        index = 9_000_000 + k
        view, secret = devices.register_device(db, "webhook", {
            "url": f"http://127.0.0.1:{port}/hook/{index}", "secret": webhook_secret(index),
        }, subscription)
        with db.read() as session:
            stored = session.get(Device, view.id)
            stored_cols = {c.key: getattr(stored, c.key) for c in Device.__table__.columns}
            follows = sorted(session.scalars(
                select(DeviceGroup.group_id).where(DeviceGroup.device_id == view.id)))
        mine, my_follows = device_row(index, subscription, port, dt.datetime.now(dt.UTC),
                                      str(uuid.uuid4()))
        differ = sorted(name for name in stored_cols if name not in ignored
                        and stored_cols[name] != mine[name])
        if differ or follows != sorted(my_follows):
            raise RuntimeError(f"bulk row differs from register_device for {kind}: "
                               f"{[(n, stored_cols[n], mine[n]) for n in differ]}")
        devices.delete_device(db, view.id, secret)
    return len(samples)


def make_devices(db: Database, n: int, group_id: str, port: int, seed: int
                 ) -> tuple[Counter, int]:
    """``n`` webhook devices in bulk; returns how many of each kind, and how many rows were
    checked against the service."""
    now = dt.datetime.now(dt.UTC)
    subs = subscriptions(n, group_id, now, seed)
    samples, seen = [], set()
    for kind, subscription in subs:
        if kind not in seen:
            seen.add(kind)
            samples.append((kind, subscription))
    checked = check_rows_match(db, samples, port)
    rnd = random.Random(seed + 1)
    kinds: Counter = Counter()
    rows: list[dict] = []
    follows: list[dict] = []

    def flush() -> None:
        with db.write() as session:
            session.execute(insert(Device), rows)
            if follows:
                session.execute(insert(DeviceGroup), follows)
        rows.clear()
        follows.clear()

    for index, (kind, subscription) in enumerate(subs):
        device_id = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
        row, group_ids = device_row(index, subscription, port, now, device_id)
        rows.append(row)
        follows.extend({"device_id": device_id, "group_id": key} for key in group_ids)
        kinds[kind] += 1
        if len(rows) == DEVICE_CHUNK:
            flush()
    if rows:
        flush()
    return kinds, checked


def analyse_postgresql(db: Database, *tables: str, vacuum: bool = False) -> None:
    """Statistics after a bulk load, on PostgreSQL only (the figures in docs/performance.md
    were measured with SQLite left to its own)."""
    if db.dialect == "postgresql":
        analyse(db, *tables, vacuum=vacuum)


# -- timing a post -------------------------------------------------------------------------
def statement_label(statement: str) -> str:
    s = " ".join(statement.lower().split())
    if s.startswith("insert into deliveries"):
        return "INSERT deliveries"
    if s.startswith("insert into alerts"):
        return "INSERT alert"
    if "device_groups" in s:
        return "SELECT followers"
    if "from devices" in s:
        return "SELECT candidates (box)"
    if "sync_state" in s:
        return "change counter"
    if "from groups" in s:
        return "SELECT group"
    return s.split(" ", 1)[0].upper() + " other"


class Probe:
    """Times the stages of a post without changing production code: wraps
    ``outbox.targets_of`` and ``outbox._insert`` (``enqueue_alert`` looks them up at call time)
    and times each SQL statement (cursor execute, rows fetched included for psycopg) and the
    commit with SQLAlchemy events."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.stage = "rest"
        self.wall: Counter = Counter()
        self.sql: Counter = Counter()
        self.statements: Counter = Counter()
        self.statement_counts: Counter = Counter()
        self._started: list[float] = []
        self._commit_started = 0.0
        self.commit_s = 0.0

    def reset(self) -> None:
        self.wall.clear()
        self.sql.clear()
        self.statements.clear()
        self.statement_counts.clear()
        self.commit_s = 0.0

    def _before(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self._started.append(time.perf_counter())

    def _after(self, conn, cursor, statement, parameters, context, executemany) -> None:
        took = time.perf_counter() - self._started.pop()
        self.sql[self.stage] += took
        label = statement_label(statement)
        self.statements[label] += took
        self.statement_counts[label] += 1

    def _commit(self, conn) -> None:
        self._commit_started = time.perf_counter()

    def _after_commit(self, session) -> None:
        if self._commit_started:
            self.commit_s += time.perf_counter() - self._commit_started
            self._commit_started = 0.0

    def _wrap(self, name: str, function):
        def timed(*args, **kwargs):
            outer, self.stage = self.stage, name
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.wall[name] += time.perf_counter() - started
                self.stage = outer
        return timed

    @contextlib.contextmanager
    def installed(self):
        originals = outbox.targets_of, outbox._insert
        outbox.targets_of = self._wrap("targets_of", originals[0])
        outbox._insert = self._wrap("insert", originals[1])
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)
        event.listen(self.engine, "commit", self._commit)
        event.listen(Session, "after_commit", self._after_commit)
        try:
            yield self
        finally:
            outbox.targets_of, outbox._insert = originals
            event.remove(self.engine, "before_cursor_execute", self._before)
            event.remove(self.engine, "after_cursor_execute", self._after)
            event.remove(self.engine, "commit", self._commit)
            event.remove(Session, "after_commit", self._after_commit)


@dataclass
class Post:
    alert_id: str
    wall_s: float
    written: int
    due_now: int
    later: int
    targets_of_s: float  # inside the post
    targets_sql_s: float
    insert_s: float
    insert_sql_s: float
    other_sql_s: float
    commit_s: float
    statements: dict[str, float]
    statement_counts: dict[str, int]
    targets_alone_s: float = 0.0

    @property
    def rest_s(self) -> float:
        return self.wall_s - self.targets_of_s - self.insert_s


def draft(k: int) -> AlertDraft:
    return AlertDraft(category=ALERT_CATEGORY, severity=ALERT_SEVERITY,
                      title=f"Break-in on the block ({k})",
                      body="A neighbour saw someone force the back door of a house on the "
                           "block around 2 am; lock up and call 911 if you see it happen.",
                      location=CENTRE)


def counts_of(db: Database, alert_id: str) -> tuple[int, int]:
    """(deliveries of the alert due now, due later)."""
    now = dt.datetime.now(dt.UTC)
    with db.read() as session:
        due = session.scalar(select(func.count()).select_from(Delivery).where(
            Delivery.alert_id == alert_id, Delivery.due_at <= now))
        total = session.scalar(select(func.count()).select_from(Delivery).where(
            Delivery.alert_id == alert_id))
    return due, total - due


def timed_post(db: Database, actor, group_id: str, k: int, probe: Probe) -> Post:
    probe.reset()
    with probe.installed():
        started = time.perf_counter()
        alert, created = alerts.post_alert(db, actor, group_id, draft(k))
        wall = time.perf_counter() - started
    assert created
    due, later = counts_of(db, alert.id)
    post = Post(
        alert_id=alert.id, wall_s=wall, written=due + later, due_now=due, later=later,
        targets_of_s=probe.wall["targets_of"], targets_sql_s=probe.sql["targets_of"],
        insert_s=probe.wall["insert"], insert_sql_s=probe.sql["insert"],
        other_sql_s=probe.sql["rest"], commit_s=probe.commit_s,
        statements=dict(probe.statements), statement_counts=dict(probe.statement_counts),
    )
    with db.read() as session:
        row = session.get(AlertRow, alert.id)
        started = time.perf_counter()
        targets = outbox.targets_of(session, row, dt.datetime.now(dt.UTC))
        post.targets_alone_s = time.perf_counter() - started
    assert len(targets) == post.written, (len(targets), post.written)
    return post


def clear_deliveries(db: Database) -> None:
    with db.write() as session:
        session.execute(delete(Delivery))
    analyse_postgresql(db, "deliveries", vacuum=True)


def audience(db: Database, group_id: str) -> dict[str, int]:
    """How many rows the candidate query of ``targets_of`` returns (its filters on the
    alert's category and severity and the boxes of the areas, the group's box holding the
    alert's point), and how many devices follow the group (for context)."""
    rank = SEVERITIES.index(ALERT_SEVERITY)
    bit = 1 << CATEGORIES.index(ALERT_CATEGORY)
    with db.read() as session:
        group = session.execute(select(Group.min_lon, Group.min_lat, Group.max_lon,
                                       Group.max_lat).where(Group.id == group_id)).one()
        candidates = session.scalar(select(func.count()).select_from(Device).where(
            Device.active.is_(True), Device.min_severity_rank <= rank,
            or_(Device.categories_mask == 0, Device.categories_mask.op("&")(bit) != 0),
            Device.min_lat <= group.max_lat,
            Device.max_lat >= group.min_lat, Device.min_lon <= group.max_lon,
            Device.max_lon >= group.min_lon))
        followers = session.scalar(select(func.count()).select_from(DeviceGroup).where(
            DeviceGroup.group_id == group_id))
        total = session.scalar(select(func.count()).select_from(Device))
    return {"devices": total, "candidates": candidates, "followers": followers}


# -- profile -------------------------------------------------------------------------------
@dataclass
class ProfileReport:
    wall_s: float
    written: int
    sections: list[tuple[str, float, list[tuple[str, float, int]]]]
    listing: str


def _label(key: tuple) -> str:
    filename, line, name = key
    if filename == "~":
        return name
    path = Path(filename)
    short = "/".join(path.parts[-2:]) if "site-packages" in filename or "lib/python" in \
        filename else str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
    return f"{short}:{line} {name}"


def profile_post(db: Database, actor, group_id: str) -> ProfileReport:
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    alert, _ = alerts.post_alert(db, actor, group_id, draft(99))
    profiler.disable()
    wall = time.perf_counter() - started
    due, later = counts_of(db, alert.id)
    stats = pstats.Stats(profiler)
    entries = stats.stats  # {key: (cc, nc, tt, ct, callers)}

    def find(module_file: str, name: str) -> tuple | None:
        for key in entries:
            if key[0].endswith(module_file) and key[2] == name:
                return key
        return None

    sections = []
    for module_file, name in (("blockwatch/alerts.py", "post_alert_in"),
                              ("blockwatch/delivery/outbox.py", "enqueue_alert"),
                              ("blockwatch/delivery/outbox.py", "targets_of"),
                              ("blockwatch/delivery/outbox.py", "_insert")):
        parent = find(module_file, name)
        if parent is None:
            continue
        cumulative = entries[parent][3]
        callees = []
        for key, (_cc, _nc, _tt, _ct, callers) in entries.items():
            if parent in callers:
                edge = callers[parent]
                callees.append((_label(key), edge[3], edge[0]))
        callees.sort(key=lambda item: -item[1])
        own = entries[parent][2]
        shown = [c for c in callees if c[1] >= 0.005 * cumulative][:14]
        callees = [("(own time: the function's own lines)", own, entries[parent][1]), *shown]
        sections.append((f"{name} ({module_file})", cumulative, callees))
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    listing = "\n".join(line for line in out.getvalue().splitlines()
                        if line.strip())[:6000]
    with db.write() as session:
        session.execute(delete(Delivery).where(Delivery.alert_id == alert.id))
    return ProfileReport(wall, due + later, sections, listing)


# -- deliveries per second -----------------------------------------------------------------
def hold(db: Database, alert_id: str, limit: int | None) -> int:
    """Hold back the alert's due deliveries (not claimable) and withdraw those over ``limit``;
    returns how many are held."""
    now = dt.datetime.now(dt.UTC)
    with db.write() as session:
        ids = list(session.scalars(select(Delivery.id).where(
            Delivery.alert_id == alert_id, Delivery.state == "pending",
            Delivery.due_at <= now).order_by(Delivery.id)))
        keep, drop = (ids, []) if limit is None else (ids[:limit], ids[limit:])
        for start in range(0, len(keep), 5000):
            session.execute(update(Delivery).where(Delivery.id.in_(keep[start:start + 5000]))
                            .values(claimed_by=HOLD_BY, claimed_until=HOLD_UNTIL)
                            .execution_options(synchronize_session=False))
        for start in range(0, len(drop), 5000):
            session.execute(update(Delivery).where(Delivery.id.in_(drop[start:start + 5000]))
                            .values(state="withdrawn", finished_at=now)
                            .execution_options(synchronize_session=False))
    return len(keep)


def release(db: Database) -> None:
    with db.write() as session:
        session.execute(update(Delivery).where(Delivery.claimed_by == HOLD_BY)
                        .values(claimed_by=None, claimed_until=None)
                        .execution_options(synchronize_session=False))


def due_pending(db: Database) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(Delivery).where(
            Delivery.state == "pending", Delivery.due_at <= dt.datetime.now(dt.UTC)))


def worker_command(batch_size: int) -> list[str]:
    script = Path(sys.executable).with_name("blockwatch")
    head = [str(script)] if script.exists() else [
        sys.executable, "-c", "import sys; from api.serving import main; sys.exit(main())"]
    return [*head, "worker", "--batch-size", str(batch_size), "--idle-s", str(WORKER_IDLE_S)]


def with_app_name(url: str) -> str:
    if not url.startswith("postgresql"):
        return url
    return f"{url}{'&' if '?' in url else '?'}application_name={WORKER_APP_NAME}"


def backend_pids(db: Database) -> list[int]:
    if db.dialect != "postgresql":
        return []
    with db.read() as session:
        return list(session.scalars(text(
            "SELECT pid FROM pg_stat_activity WHERE application_name = :name"
        ).bindparams(name=WORKER_APP_NAME)))


@dataclass
class Baseline:
    requests: int
    seconds: float
    errors: int
    received: int
    connections: int
    distinct: int
    bad_signature: int
    receiver_cpu_us: float

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds


def bare_sender(receiver: Receiver, alert: dict, n: int, threads: int = 2) -> Baseline:
    """POST ``n`` signed bodies like the worker's to the receiver: ``threads`` threads, one
    ``httpx.Client`` each, no database."""
    receiver.reset()
    errors = [0] * threads

    def run(t: int) -> None:
        with httpx.Client(timeout=10) as client:
            for i in range(t, n, threads):
                key = f"baseline:{i}"
                body = payload_bytes(Message("alert", alert, key))
                headers = {"Content-Type": "application/json", "Idempotency-Key": key,
                           "Blockwatch-Signature": signature_header(webhook_secret(i), body,
                                                                    t=int(time.time()))}
                response = client.post(f"http://127.0.0.1:{receiver.port}/hook/{i}",
                                       content=body, headers=headers)
                if not 200 <= response.status_code < 300:
                    errors[t] += 1

    pool = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    cpu_before = receiver.cpu_s()
    started = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    seconds = time.perf_counter() - started
    cpu = receiver.cpu_s() - cpu_before
    stats = receiver.stats()
    receiver.reset()
    return Baseline(n, seconds, sum(errors), stats["requests"], stats["connections"],
                    stats["distinct"],
                    stats["bad_signature"], cpu / n * 1e6)


@dataclass
class DeliveryRun:
    workers: int
    released: int
    sent: int
    seconds: float
    drained: bool
    received: int
    connections: int
    distinct: int
    duplicates: int
    extra_requests: int
    missing: int
    unexpected: int
    bad_signature: int
    retried_rows: int
    dead_rows: int
    still_pending: int
    log_errors: int
    rounds: int
    logged_sent: int
    worker_cpu_us: float
    backend_cpu_us: float | None
    receiver_cpu_us: float
    first_to_last_s: float | None
    post_s: float
    startup_s: float

    @property
    def per_s(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


ROUND = re.compile(r"delivery round: claimed=(\d+) sent=(\d+)")


def delivery_run(db: Database, url: str, actor, group_id: str, receiver: Receiver,
                 n_workers: int, args: argparse.Namespace, tmp: Path, k: int,
                 baseline_box: list) -> DeliveryRun:
    started = time.perf_counter()
    alert, _ = alerts.post_alert(db, actor, group_id, draft(100 + k))
    post_s = time.perf_counter() - started
    held = hold(db, alert.id, args.deliver_limit)
    log(f"{db.dialect}: alert posted in {post_s:.2f} s (not timed here); {held:,} due "
        f"deliveries held back")
    analyse_postgresql(db, "deliveries")
    if not baseline_box:
        view = alerts.views_by_id(db, ANONYMOUS, [alert.id], dt.datetime.now(dt.UTC))[alert.id]
        from api.serving import render_alert

        n = min(args.baseline_requests, max(held, 1))
        log(f"{db.dialect}: bare sender, {n:,} requests, 2 threads")
        baseline_box.append(bare_sender(receiver, render_alert(view), n))
        log(f"{db.dialect}: bare sender {baseline_box[0].per_s:,.0f}/s")
    receiver.reset()
    env = {**os.environ, "BLOCKWATCH_DATABASE_URL": with_app_name(url),
           "BLOCKWATCH_WEBHOOK_ALLOW_PRIVATE": "1", "PYTHONUNBUFFERED": "1"}
    logs = [tmp / f"worker-{db.dialect}-{n_workers}-{i}.log" for i in range(n_workers)]
    procs: list[subprocess.Popen] = []
    started = time.perf_counter()
    try:
        for path in logs:
            with open(path, "wb") as out:
                procs.append(subprocess.Popen(
                    worker_command(args.batch_size), cwd=ROOT, env=env, stdout=out,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True))
        deadline = time.monotonic() + 120
        while not all("delivering (Ctrl-C to stop)" in path.read_text(errors="replace")
                      for path in logs):
            if any(proc.poll() is not None for proc in procs) or time.monotonic() > deadline:
                raise RuntimeError("a worker did not start:\n" + "\n".join(
                    path.read_text(errors="replace")[-2000:] for path in logs))
            time.sleep(0.05)
        time.sleep(1.0)  # a few idle rounds: connections open, queries compiled
        startup_s = time.perf_counter() - started
        pids = backend_pids(db)
        backend_before = {pid: cpu_s(pid) for pid in pids}
        worker_before = sum(cpu_s(proc.pid) for proc in procs)
        receiver_before = receiver.cpu_s()
        log(f"{db.dialect}: {n_workers} worker(s) up in {startup_s:.1f} s; releasing "
            f"{held:,} deliveries")
        started = time.perf_counter()
        release(db)
        drained, last_log = False, started
        while time.perf_counter() - started < args.max_drain_s:
            remaining = due_pending(db)
            if remaining == 0:
                drained = True
                break
            if time.perf_counter() - last_log > 10:
                last_log = time.perf_counter()
                log(f"{db.dialect}: {remaining:,} still due after "
                    f"{last_log - started:.0f} s")
            time.sleep(POLL_S)
        seconds = time.perf_counter() - started
        worker_cpu = sum(cpu_s(proc.pid) for proc in procs) - worker_before
        backend_cpu = sum(cpu_s(pid) - before for pid, before in backend_before.items())
        receiver_cpu = receiver.cpu_s() - receiver_before
    finally:
        for proc in procs:
            stop_process(proc, grace_s=15.0)
    with db.read() as session:
        rows = session.execute(select(Delivery.device_id, Delivery.state, Delivery.attempts)
                               .where(Delivery.alert_id == alert.id,
                                      Delivery.state != "withdrawn",
                                      Delivery.due_at <= dt.datetime.now(dt.UTC))).all()
    released_keys = {outbox.idempotency_key(alert.id, row.device_id, "alert") for row in rows}
    sent = sum(row.state == "sent" for row in rows)
    stats = receiver.stats()
    keys = receiver.keys()
    receiver.reset()
    text_logs = [path.read_text(errors="replace") for path in logs]
    rounds = [(int(a), int(b)) for log_text in text_logs for a, b in ROUND.findall(log_text)]
    first_last = (stats["last"] - stats["first"]) if stats["first"] is not None else None
    return DeliveryRun(
        workers=n_workers, released=held, sent=sent, seconds=seconds, drained=drained,
        received=stats["requests"], connections=stats["connections"],
        distinct=stats["distinct"],
        duplicates=stats["duplicate_keys"], extra_requests=stats["requests"] - stats["distinct"],
        missing=len(released_keys - keys.keys()), unexpected=len(keys.keys() - released_keys),
        bad_signature=stats["bad_signature"],
        retried_rows=sum(row.attempts > 1 for row in rows),
        dead_rows=sum(row.state == "dead" for row in rows),
        still_pending=sum(row.state == "pending" for row in rows),
        log_errors=sum(log_text.count(" ERROR ") + log_text.count("Traceback")
                       for log_text in text_logs),
        rounds=len(rounds), logged_sent=sum(s for _, s in rounds),
        worker_cpu_us=worker_cpu / max(sent, 1) * 1e6,
        backend_cpu_us=backend_cpu / max(sent, 1) * 1e6 if pids else None,
        receiver_cpu_us=receiver_cpu / max(stats["requests"], 1) * 1e6,
        first_to_last_s=first_last, post_s=post_s, startup_s=startup_s,
    )


# -- one database --------------------------------------------------------------------------
@dataclass
class DatabaseReport:
    kind: str
    server: str
    setup_s: float
    kinds: Counter
    checked: int
    audience: dict[str, int]
    posts: list[Post]
    profile: ProfileReport | None
    baseline: Baseline | None
    runs: list[DeliveryRun] = field(default_factory=list)
    error: str | None = None

    def median_post(self) -> Post:
        return sorted(self.posts, key=lambda p: p.wall_s)[len(self.posts) // 2]


def server_version(db: Database) -> str:
    if db.dialect == "sqlite":
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"
    with db.read() as session:
        return "PostgreSQL " + session.scalar(text("SHOW server_version"))


def bench_database(kind: str, args: argparse.Namespace, tmp: Path, receiver: Receiver,
                   stack: contextlib.ExitStack) -> DatabaseReport:
    url = open_database(kind, "delivery-bench", tmp, args.postgres_url, stack)
    db = Database(url, Settings(database_url=url, webhook_allow_private=True))
    stack.callback(db.dispose)
    db.migrate()
    started = time.perf_counter()
    group_id = make_group(db)
    token = accounts.create_token(db, "Bench Coordinator", "coordinator", group_id)
    actor = accounts.authenticate(db, token)
    kinds, checked = make_devices(db, args.devices, group_id, receiver.port, args.seed)
    analyse_postgresql(db, "devices", "device_groups", "deliveries")
    setup_s = time.perf_counter() - started
    seen = audience(db, group_id)
    log(f"{kind}: {args.devices:,} devices in {setup_s:.1f} s ({checked} checked against "
        f"register_device); candidate rows {seen['candidates']:,}")
    report = DatabaseReport(kind, server_version(db), setup_s, kinds, checked, seen, [], None,
                            None)
    probe = Probe(db.engine)
    for k in range(args.reps):
        post = timed_post(db, actor, group_id, k, probe)
        report.posts.append(post)
        log(f"{kind}: post {k + 1}: {post.wall_s * 1000:.0f} ms, {post.written:,} deliveries "
            f"(targets_of {post.targets_of_s * 1000:.0f} ms, insert {post.insert_s * 1000:.0f}"
            f" ms, commit {post.commit_s * 1000:.0f} ms; targets_of alone "
            f"{post.targets_alone_s * 1000:.0f} ms)")
        clear_deliveries(db)
    if args.profile == "always" or (args.profile == "auto" and
                                    report.median_post().wall_s > TARGET_POST_S):
        log(f"{kind}: profiling one more post (cProfile)")
        report.profile = profile_post(db, actor, group_id)
        clear_deliveries(db)
    counts = [args.workers] if kind == "postgresql" else list(dict.fromkeys([1, args.workers]))
    baseline_box: list[Baseline] = []
    try:
        for k, n_workers in enumerate(counts):
            run = delivery_run(db, url, actor, group_id, receiver, n_workers, args, tmp, k,
                               baseline_box)
            report.runs.append(run)
            log(f"{kind}: {n_workers} worker(s): {run.sent:,} sent in {run.seconds:.1f} s = "
                f"{run.per_s:,.0f}/s; duplicates {run.duplicates}, missing {run.missing}")
            clear_deliveries(db)
    except Exception as error:  # report what was measured, and why the rest was not
        report.error = " ".join(f"{type(error).__name__}: {error}".split())[:500]
        log(f"{kind}: delivery runs stopped: {report.error}")
    report.baseline = baseline_box[0] if baseline_box else None
    return report


# -- the report ----------------------------------------------------------------------------
PACKAGES = ("sqlalchemy", "psycopg", "httpx", "numpy", "shapely", "marshmallow")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}"


def report(args: argparse.Namespace, command: list[str], started: str, load_before: str,
           found: list[DatabaseReport]) -> str:
    lines = [
        f"Delivery benchmark, {started}: {versions(PACKAGES, with_sqlite=False)}; "
        f"{os.cpu_count()} cores (usable "
        f"{len(os.sched_getaffinity(0))}); load average {load_before} at the start, "
        f"{loadavg()} at the end",
        f"Command: `{shlex.join(command)}`",
        "",
    ]
    first = found[0]
    kinds = ", ".join(f"{kind} {n:,}" for kind, n in first.kinds.most_common())
    lines += [
        f"{args.devices:,} webhook devices around a block of {BLOCK_M:.0f} m in Seattle "
        f"(areas of {RADIUS_M[0]:.0f} m to {RADIUS_M[1] / 1000:.0f} km centred within "
        f"{AREA_SPREAD_M / 1000:.0f} km; seed {args.seed}): {kinds}. Rows inserted in bulk, "
        f"each as `register_device` stores it ({first.checked} kinds checked against devices "
        f"registered through the service). The alert: {ALERT_CATEGORY}, {ALERT_SEVERITY}, at "
        "the block's centre.",
        "",
    ]
    for r in found:
        post = r.median_post()
        status = "met" if post.wall_s <= TARGET_POST_S else "**MISSED**"
        runs = ", ".join(ms(p.wall_s) for p in r.posts)
        alone = statistics.median(p.targets_alone_s for p in r.posts)
        lines += [
            f"### {r.kind} ({r.server})", "",
            "| measure | value | target / note |", "|---|---:|---|",
            f"| post one alert: `alerts.post_alert`, whole transaction (median of "
            f"{len(r.posts)}) | {ms(post.wall_s)} ms | ≤ {TARGET_POST_S * 1000:.0f} ms — "
            f"{status}; runs {runs} ms |",
            f"| … `outbox.targets_of` inside it | {ms(post.targets_of_s)} ms | SQL"
            f"{' (execute only: see below)' if r.kind == 'sqlite' else ''} "
            f"{ms(post.targets_sql_s)} ms, Python {ms(post.targets_of_s - post.targets_sql_s)}"
            " ms |",
            f"| … writing the outbox rows (`outbox._insert`) | {ms(post.insert_s)} ms | SQL "
            f"{ms(post.insert_sql_s)} ms, Python {ms(post.insert_s - post.insert_sql_s)} ms |",
            f"| … the rest: alert row, change counter, view, commit | {ms(post.rest_s)} ms | "
            f"commit {ms(post.commit_s)} ms, other SQL {ms(post.other_sql_s)} ms |",
            f"| `outbox.targets_of` alone, read transaction (median) | {ms(alone)} ms | |",
            f"| deliveries written per alert | {post.written:,} | due now {post.due_now:,}, "
            f"at the end of quiet hours {post.later:,}; the candidate query (boxes, category, "
            f"severity) returns {r.audience['candidates']:,} of {r.audience['devices']:,} "
            f"devices, {r.audience['followers']:,} follow the group |",
        ]
        b = r.baseline
        for run in r.runs:
            note = ""
            if r.kind == "sqlite":
                note = ("SQLite serialises writers: one worker is what it is for" if
                        run.workers == 1 else "two workers on SQLite, to show what happens")
            if not run.drained:
                note += f"; **not drained** after {args.max_drain_s:.0f} s"
            lines.append(
                f"| deliveries/s, {run.workers} `blockwatch worker` process"
                f"{'es' if run.workers > 1 else ''} (batch {args.batch_size}, "
                f"{SEND_CONCURRENCY} sends at a time) | "
                f"{run.per_s:,.0f} | {run.sent:,} sent of {run.released:,} released in "
                f"{run.seconds:.1f} s (the receiver's first to last request "
                f"{run.first_to_last_s or 0:.1f} s){'; ' + note if note else ''} |")
            if b is not None:
                lines.append(f"| … ours / bare sender | {run.per_s / b.per_s:.2f} | |")
            lines.append(
                f"| … received / distinct keys / duplicate keys / missing / unexpected | "
                f"{run.received:,} / {run.distinct:,} / {run.duplicates} / {run.missing} / "
                f"{run.unexpected} | TCP connections opened {run.connections:,}; bad "
                f"signatures {run.bad_signature}; rows retried "
                f"{run.retried_rows}, dead {run.dead_rows}, still pending {run.still_pending}; "
                f"errors in the workers' logs {run.log_errors} |")
            names, values = ["workers"], [run.worker_cpu_us]
            if run.backend_cpu_us is not None:
                names.append("their PostgreSQL backends")
                values.append(run.backend_cpu_us)
            names.append("receiver")
            values.append(run.receiver_cpu_us)
            lines.append(
                f"| … CPU per delivery, µs: {' / '.join(names)} | "
                f"{' / '.join(f'{v:,.0f}' for v in values)} | {run.rounds:,} rounds logged, "
                f"{run.logged_sent:,} sent by their count; workers up in {run.startup_s:.1f} s "
                "(not timed) |")
        if b is not None:
            lines.append(
                f"| bare sender: 2 threads × 1 `httpx.Client`, no database | {b.per_s:,.0f} "
                f"| {b.requests:,} requests in {b.seconds:.1f} s; received {b.received:,} "
                f"over {b.connections:,} TCP connections, errors {b.errors}, bad signatures "
                f"{b.bad_signature}; receiver CPU "
                f"{b.receiver_cpu_us:,.0f} µs/request |")
        if r.error:
            lines.append(f"| delivery runs | not completed | {r.error.replace('|', '/')} |")
        fetch = ("SQLite hands rows over while Python iterates, so fetching counts as Python "
                 "there; " if r.kind == "sqlite" else
                 "psycopg's own work per row (adapting parameters, its pipeline) counts as SQL; ")
        lines += ["", f"SQL of the median post ({r.kind}), ms (statements) — the time inside "
                  f"the driver's execute: {fetch}SQLAlchemy compiling and processing "
                  "parameters counts as Python:", ""]
        lines.append(", ".join(
            f"{label} {post.statements[label] * 1000:,.0f} ({post.statement_counts[label]})"
            for label in sorted(post.statements, key=lambda x: -post.statements[x])))
        lines += ["", f"Setup (not timed): {r.setup_s:.1f} s.", ""]
        if r.profile is not None:
            p = r.profile
            lines += [f"cProfile of one more post on {r.kind}: {ms(p.wall_s)} ms under the "
                      f"profiler, {p.written:,} deliveries (the profiler's overhead is "
                      "heaviest on many small Python calls). Direct callees, cumulative ms "
                      "(calls):", ""]
            for title, cumulative, callees in p.sections:
                lines += [f"- `{title}`: {ms(cumulative)} ms"]
                lines += [f"  - {label}: {ms(seconds)} ({calls:,})"
                          for label, seconds, calls in callees]
            lines += ["", "<details><summary>cProfile, top by own time</summary>", "", "```",
                      p.listing, "```", "", "</details>", ""]
    lines.append(f"Total run {time.perf_counter() - START_S:.0f} s.")
    return "\n".join(lines)


START_S = time.perf_counter()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--devices", type=int, help="devices (default 100,000)")
    parser.add_argument("--quick", action="store_true", help="10,000 devices")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--reps", type=int, default=3, help="timed posts (default 3)")
    parser.add_argument("--workers", type=int, default=2,
                        help="worker processes on PostgreSQL, and the second SQLite run "
                        "(default 2)")
    parser.add_argument("--batch-size", type=int, default=100,
                        help="blockwatch worker --batch-size (default: its own, 100)")
    parser.add_argument("--deliver-limit", type=int, default=None,
                        help="release at most this many deliveries to the workers (default: "
                        "every due delivery of the alert)")
    parser.add_argument("--baseline-requests", type=int, default=20_000,
                        help="requests of the bare sender (default 20,000)")
    parser.add_argument("--max-drain-s", type=float, default=600.0,
                        help="give up a delivery run after this long (default 600)")
    parser.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                        help="cProfile one more post: auto = when the median is over 1 s")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--postgres-url", default=os.environ.get(
        "BLOCKWATCH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args(argv)
    if args.devices is None:
        args.devices = 10_000 if args.quick else 100_000
    if args.devices < 100 or args.reps < 1 or args.workers < 1:
        parser.error("need devices >= 100, reps >= 1, workers >= 1")
    return args


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)  # runs the finally blocks: processes and schema go


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.receiver:
        asyncio.run(_serve_receiver())
        return
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    command = getattr(sys, "orig_argv", [sys.executable, *sys.argv])
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = loadavg()
    found = []
    with tempfile.TemporaryDirectory(prefix="delivery-bench-") as name, \
            contextlib.ExitStack() as stack:
        tmp = Path(name)
        receiver = Receiver(tmp / "receiver.log").start()
        stack.callback(receiver.stop)
        for kind in args.databases.split(","):
            with contextlib.ExitStack() as db_stack:
                found.append(bench_database(kind, args, tmp, receiver, db_stack))
    print(report(args, command, started, load_before, found))


if __name__ == "__main__":
    main(sys.argv[1:])
