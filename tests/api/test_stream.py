"""``GET /v1/alerts/stream`` (docs/live-stream.md): Server-Sent Events through a real HTTP
server on both databases (posts and cancels arrive, nothing from outside the area, heartbeats,
reconnects with Last-Event-ID that miss nothing), 422s before anything is streamed, the
operation fuzzed from its own documentation, and two gunicorn processes over PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from werkzeug.serving import make_server

from api import create_app
from blockwatch import accounts, alerts, live
from blockwatch.config import Settings
from blockwatch.db import Database
from tests.api.helpers import assert_problem, box, fresh_database, make_alert, make_group

ROOT = Path(__file__).resolve().parents[2]
HEARTBEAT_S = 0.2
WAIT_S = 10.0  # the longest any test waits for an event that should come at once
BLOCK = (-122.33, 47.60, -122.30, 47.63)
HOME = (-122.31512, 47.61537)  # inside BLOCK
FAR_BLOCK = (-122.40, 47.50, -122.39, 47.51)  # about 14 km from HOME
FAR = (-122.395, 47.505)
STREAM = "/v1/alerts/stream"
AREA = {"lat": HOME[1], "lon": HOME[0], "radius_m": 1000}


@pytest.fixture
def app(database_url):
    """tests/api/conftest.py's app, with heartbeats every HEARTBEAT_S."""
    database = Database(database_url, Settings(
        database_url=database_url, index_staleness_s=0.0, stream_heartbeat_s=HEARTBEAT_S,
    ))
    application = create_app(
        {"TESTING": True, "database": database, "BLOCKWATCH_RATE_LIMIT_WRITES": "off"}
    )
    yield application
    database.dispose()


@pytest.fixture
def server(app) -> Iterator[str]:
    """The app behind a real threaded HTTP server; its base URL."""
    http_server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http_server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http_server.server_port}"
    http_server.shutdown()
    thread.join(WAIT_S)


@pytest.fixture
def area(db, tokens):
    """A group at HOME and one far away, with a coordinator's headers for each."""
    home = make_group(db, "Capitol Hill", box(*BLOCK))
    far = make_group(db, "Far away", box(*FAR_BLOCK))
    return {"group": home, "far_group": far, "coordinator": tokens("coordinator", home.id),
            "far_coordinator": tokens("coordinator", far.id)}


class EventStream:
    """A ``text/event-stream`` response read block by block."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()

    def block(self) -> dict[str, str]:
        """The next block: its fields (a comment under ``:``), at the blank line ending it."""
        fields: dict[str, str] = {}
        for line in self._lines:
            if not line:
                if fields:
                    return fields
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        raise EOFError("the stream ended")

    def next_event(self, timeout_s: float = WAIT_S) -> dict[str, str]:
        """The next event (heartbeats skipped; they arrive often, so the wait is bounded)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            fields = self.block()
            if "event" in fields:
                return fields
        raise AssertionError(f"no event within {timeout_s} s")

    def rest(self) -> list[dict[str, str]]:
        """Every block until the stream ends (a stream with ``timeout_s``)."""
        blocks = []
        with contextlib.suppress(EOFError):
            while True:
                blocks.append(self.block())
        return blocks


@contextlib.contextmanager
def stream(base_url: str, params: dict | None = None,
           headers: dict | None = None) -> Iterator[tuple[EventStream, dict[str, str]]]:
    """An open stream and its first block (``retry`` and the position it starts at)."""
    with httpx.Client(base_url=base_url, timeout=WAIT_S) as client, client.stream(
        "GET", STREAM, params={**AREA, **(params or {})}, headers=headers or {}
    ) as response:
        assert response.status_code == 200, response.read()
        events = EventStream(response)
        first = events.block()
        yield events, first


def post(base_url: str, group_id: str, headers: dict, location=HOME, **fields) -> dict:
    point = None if location is None else {"lon": location[0], "lat": location[1]}
    body = {"category": "burglary", "title": "Break-in on 15th Ave E", "location": point,
            **fields}
    response = httpx.post(f"{base_url}/v1/groups/{group_id}/alerts", json=body,
                          headers=headers, timeout=WAIT_S)
    assert response.status_code == 201, response.text
    return response.json()


def cancel(base_url: str, alert_id: str, headers: dict) -> dict:
    response = httpx.post(f"{base_url}/v1/alerts/{alert_id}/cancel", headers=headers,
                          timeout=WAIT_S)
    assert response.status_code == 200, response.text
    return response.json()


def public(base_url: str, alert_id: str) -> str:
    """The alert as a public GET renders it: the text an event's data must be."""
    response = httpx.get(f"{base_url}/v1/alerts/{alert_id}", timeout=WAIT_S)
    assert response.status_code == 200
    return response.text


def summary(events: list[dict[str, str]]) -> list[tuple[int, str, str]]:
    return [(int(e["id"]), e["event"], json.loads(e["data"])["id"]) for e in events]


# -- parsing: a 422 naming the field before anything is streamed --------------------------------
@pytest.mark.parametrize(("query", "headers", "field"), [
    ({"lon": HOME[0]}, {}, "lat"),
    ({"lat": 91, "lon": HOME[0]}, {}, "lat"),
    ({"lat": HOME[1], "lon": "east"}, {}, "lon"),
    ({**AREA, "radius_m": 0}, {}, "radius_m"),
    ({**AREA, "radius_m": 50_001}, {}, "radius_m"),
    ({**AREA, "last_event_id": -1}, {}, "last_event_id"),
    ({**AREA, "last_event_id": 2**63}, {}, "last_event_id"),
    ({**AREA, "last_event_id": "1.5"}, {}, "last_event_id"),
    ({**AREA, "timeout_s": -1}, {}, "timeout_s"),
    ({**AREA, "timeout_s": 3601}, {}, "timeout_s"),
    (AREA, {"Last-Event-ID": "abc"}, "Last-Event-ID"),
    (AREA, {"Last-Event-ID": str(2**63)}, "Last-Event-ID"),
])
def test_bad_parameters_are_a_422_naming_the_field(client, query, headers, field):
    assert_problem(client.get(STREAM, query_string=query, headers=headers), 422, field)


# -- what a stream sends -------------------------------------------------------------------------
def test_the_backlog_is_each_alert_as_a_public_read_renders_it(client, db, area):
    author = accounts.authenticate(db, area["coordinator"]["Authorization"].split()[1])
    posted = make_alert(db, author, area["group"].id, location=HOME)
    cancelled = make_alert(db, author, area["group"].id, location=HOME)
    cancelled = alerts.cancel_alert(db, author, cancelled.id)
    now = datetime.now(UTC)
    lapsed = make_alert(db, author, area["group"].id, location=None, now=now - timedelta(hours=2),
                        expires_at=now - timedelta(hours=1))

    response = client.get(STREAM, query_string={**AREA, "last_event_id": 0, "timeout_s": 0})
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Accel-Buffering"] == "no"
    text = response.get_data(as_text=True)
    blocks = [block.split("\n") for block in text.split("\n\n") if block]
    assert blocks[0] == ["retry: 3000", "id: 0"]
    seen = [dict(line.split(": ", 1) for line in block) for block in blocks[1:]]
    assert summary(seen) == [
        (posted.version, "alert", posted.id),
        (cancelled.version, "cancel", cancelled.id),
        (lapsed.version, "expire", lapsed.id),
    ]
    for event in seen:
        alert_id = json.loads(event["data"])["id"]
        assert event["data"] == client.get(f"/v1/alerts/{alert_id}").get_data(as_text=True)
    assert '"location_precision": "approximate"' in seen[0]["data"]


def test_the_header_wins_over_the_query_parameter(client, db, area):
    author = accounts.authenticate(db, area["coordinator"]["Authorization"].split()[1])
    first = make_alert(db, author, area["group"].id, location=HOME)
    second = make_alert(db, author, area["group"].id, location=HOME)
    response = client.get(
        STREAM, query_string={**AREA, "last_event_id": 0, "timeout_s": 0},
        headers={"Last-Event-ID": str(first.version)},
    )
    text = response.get_data(as_text=True)
    assert f"id: {first.version}\n\n" in text  # the position it resumed from
    assert f"id: {second.version}\nevent: alert" in text
    assert f"id: {first.version}\nevent" not in text


def test_posts_and_cancels_arrive_as_they_happen_and_nothing_from_outside(server, area):
    with stream(server) as (events, first):
        assert first["retry"] == "3000" and int(first["id"]) >= 0
        post(server, area["far_group"].id, area["far_coordinator"], location=FAR)
        posted = post(server, area["group"].id, area["coordinator"])
        event = events.next_event()  # the far alert came first and was not sent
        assert (event["event"], int(event["id"])) == ("alert", posted["version"])
        assert event["data"] == public(server, posted["id"])

        cancelled = cancel(server, posted["id"], area["coordinator"])
        event = events.next_event()
        assert (event["event"], int(event["id"])) == ("cancel", cancelled["version"])
        assert event["data"] == public(server, posted["id"])

        post(server, area["far_group"].id, area["far_coordinator"], location=FAR)
        marker = post(server, area["group"].id, area["coordinator"], location=None)
        event = events.next_event()
        assert (event["event"], int(event["id"])) == ("alert", marker["version"])


def test_heartbeats_keep_a_quiet_stream_talking(server):
    with stream(server) as (events, _):
        assert events.block() == {"": "heartbeat"}
        assert events.block() == {"": "heartbeat"}


def test_a_client_that_goes_away_ends_its_stream(server, db):
    feed = live.change_feed(db)
    with stream(server) as (events, _):
        assert events.block() == {"": "heartbeat"}
        assert feed.users
    deadline = time.monotonic() + WAIT_S
    while feed.users:  # noticed at the next heartbeat it fails to write
        assert time.monotonic() < deadline, "the stream outlived its client"
        time.sleep(0.02)


def test_a_reconnect_with_last_event_id_gets_exactly_what_was_missed(server, area):
    home, coordinator = area["group"].id, area["coordinator"]
    with stream(server) as (events, first):
        posted = post(server, home, coordinator)
        last_id = events.next_event()["id"]
        assert int(last_id) == posted["version"] > int(first["id"])
    # While away: two posts, a cancel of the alert seen, and one far away.
    missed_one = post(server, home, coordinator)
    post(server, area["far_group"].id, area["far_coordinator"], location=FAR)
    cancelled = cancel(server, posted["id"], coordinator)
    missed_two = post(server, home, coordinator, location=None)

    with stream(server, {"timeout_s": 0}, {"Last-Event-ID": last_id}) as (events, first):
        assert first["id"] == last_id
        backlog = [block for block in events.rest() if "event" in block]
    assert summary(backlog) == [
        (missed_one["version"], "alert", missed_one["id"]),
        (cancelled["version"], "cancel", posted["id"]),
        (missed_two["version"], "alert", missed_two["id"]),
    ]
    # Resumed (through the polyfill's parameter), it goes on live from there, repeating nothing.
    with stream(server, {"last_event_id": backlog[-1]["id"]}) as (events, _):
        fresh = post(server, home, coordinator)
        assert summary([events.next_event()]) == [(fresh["version"], "alert", fresh["id"])]


# -- two gunicorn processes over PostgreSQL ------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """``blockwatch serve`` (gunicorn, gthread) with one worker on a free port, in a process
    group of its own so it stops whole."""

    def __init__(self, database_url: str, log_path: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {**os.environ, "BLOCKWATCH_DATABASE_URL": database_url,
               "BLOCKWATCH_STREAM_HEARTBEAT_S": str(HEARTBEAT_S),
               "BLOCKWATCH_RATE_LIMIT_WRITES": "off"}
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from api.serving import main; raise SystemExit(main())",
                 "serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
                 "--threads", "8"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text(errors="replace")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/v1/health", timeout=5).status_code == 200:
                    return
            time.sleep(0.05)
        raise AssertionError(f"not serving after {timeout_s} s:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)


def test_two_gunicorn_workers_on_postgresql(request, tmp_path_factory, tmp_path):
    """A stream held by one gunicorn worker sees an alert posted through another, both ways, and
    a reconnect with Last-Event-ID, to either worker, misses nothing.

    Two gunicorn masters with one worker each, on two ports over the same PostgreSQL schema,
    rather than one master with ``--workers 2``: which worker accepts a connection is the
    kernel's choice, so with one master a post could land on the worker holding the stream and
    prove nothing. With two masters the port decides the process, so the post provably goes
    through another process than the stream, and only PostgreSQL's LISTEN/NOTIFY (or its 2 s
    safety poll) can carry it across.
    """
    database = fresh_database(request, tmp_path_factory, "postgresql")
    try:
        home = make_group(database, "Capitol Hill", box(*BLOCK))
        far = make_group(database, "Far away", box(*FAR_BLOCK))
        coordinator = {"Authorization": "Bearer " + accounts.create_token(
            database, "Captain", "coordinator", home.id)}
        far_coordinator = {"Authorization": "Bearer " + accounts.create_token(
            database, "Far captain", "coordinator", far.id)}
        url = database.url
    finally:
        database.dispose()
    servers = [Gunicorn(url, tmp_path / f"gunicorn-{name}.log") for name in ("a", "b")]
    try:
        for server in servers:
            server.wait_ready()
        a, b = (server.url for server in servers)
        with stream(a) as (on_a, _), stream(b) as (on_b, _):
            through_b = post(b, home.id, coordinator)
            for events in (on_a, on_b):
                assert summary([events.next_event()]) == [
                    (through_b["version"], "alert", through_b["id"])]
            through_a = post(a, home.id, coordinator, location=None)
            for events in (on_b, on_a):
                assert summary([events.next_event()]) == [
                    (through_a["version"], "alert", through_a["id"])]
            last_id = str(through_a["version"])
        # Both streams closed; meanwhile, through both workers:
        missed = [post(b, home.id, coordinator), post(a, far.id, far_coordinator, location=FAR),
                  cancel(a, through_b["id"], coordinator), post(a, home.id, coordinator)]
        expected = [(missed[0]["version"], "alert", missed[0]["id"]),
                    (missed[2]["version"], "cancel", through_b["id"]),
                    (missed[3]["version"], "alert", missed[3]["id"])]
        for server_url in (a, b):
            with stream(server_url, {"timeout_s": 0}, {"Last-Event-ID": last_id}) as (events, _):
                assert summary([e for e in events.rest() if "event" in e]) == expected
        # Resumed live on one worker, a post through the other arrives next.
        with stream(b, headers={"Last-Event-ID": str(missed[3]["version"])}) as (events, _):
            latest = post(a, home.id, coordinator)
            assert summary([events.next_event()]) == [(latest["version"], "alert", latest["id"])]
    finally:
        for server in servers:
            server.stop()
