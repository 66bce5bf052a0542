"""Fixtures of the delivery tests: a database whose webhooks may reach this machine, devices
registered through the service, and a local webhook receiver that records what it gets."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from blockwatch.config import Settings
from blockwatch.db import Database
from blockwatch.delivery import devices
from blockwatch.models import Delivery

WEBHOOK_SECRET = "whsec-" + "x" * 26


@pytest.fixture
def delivery_db(database_url) -> Iterator[Database]:
    """The storage fixture's database (SQLite and PostgreSQL in turn), with webhooks allowed to
    reach 127.0.0.1 over http (the local receiver)."""
    database = Database(database_url, Settings(
        database_url=database_url, index_staleness_s=0.0, webhook_allow_private=True,
    ))
    yield database
    database.dispose()


def subscribe(db: Database, *, area: tuple[float, float, float] | None = None,
              group_ids: tuple[str, ...] = (), categories: tuple[str, ...] = (),
              min_severity: str = "minor", quiet: tuple[str, str, str] | None = None,
              url: str = "http://127.0.0.1:9/hook") -> str:
    """Register a webhook device; ``area`` is (lon, lat, radius_m); returns its id."""
    subscription = {
        "area": None if area is None else {"lon": area[0], "lat": area[1],
                                           "radius_m": area[2]},
        "group_ids": list(group_ids), "categories": list(categories),
        "min_severity": min_severity,
        "quiet_hours": None if quiet is None else dict(zip(("start", "end", "tz"), quiet,
                                                          strict=True)),
    }
    device, _ = devices.register_device(
        db, "webhook", {"url": url, "secret": WEBHOOK_SECRET}, subscription
    )
    return device.id


def deliveries(db: Database, kind: str | None = None) -> list:
    """Every outbox row (id, alert, device, kind, state, due_at, attempts), oldest first."""
    query = select(Delivery.id, Delivery.alert_id, Delivery.device_id, Delivery.kind,
                   Delivery.state, Delivery.due_at, Delivery.attempts, Delivery.last_error)
    if kind is not None:
        query = query.where(Delivery.kind == kind)
    with db.read() as session:
        return session.execute(query.order_by(Delivery.id)).all()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int = 0

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: records every request; answers with the status set for
    its path (default 204), optionally with a Retry-After."""

    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    statuses: dict[str, tuple[int, dict[str, str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Seconds to wait before answering (a slow receiver keeps a worker mid-batch).
    delay_s: float = 0.0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, name: str) -> str:
        return f"{self.base_url}/hook/{name}"

    def answer(self, name: str, status: int, **headers: str) -> None:
        self.statuses[f"/hook/{name}"] = (status, headers)

    def requests(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def keys(self) -> list[str]:
        return [item.headers["Idempotency-Key"] for item in self.requests()]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            found = holder["receiver"]
            # Recorded on arrival, then answered after the delay: a worker killed while it
            # waits has sent what is recorded here.
            with found.lock:
                found.received.append(Received(self.path, dict(self.headers.items()), body,
                                               self.client_address[1]))
            if found.delay_s:
                time.sleep(found.delay_s)
            status, headers = found.statuses.get(self.path, (204, {}))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            """Quiet: the tests read what was received, not the server's log."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    holder["receiver"] = Receiver(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder["receiver"]
    server.shutdown()
    server.server_close()
