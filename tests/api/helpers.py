"""Small helpers the API tests share: problem+json assertions, boundaries, arranging groups and
alerts through the services."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import datetime

import shapely

from blockwatch import alerts, groups
from blockwatch.domain import OPERATOR, Actor, AlertDraft, Group, GroupDraft

PROBLEM_JSON = "application/problem+json"
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def assert_problem(response, status: int, field: str | None = None) -> dict:
    """The response is an RFC 9457 problem of ``status``; with ``field``, ``errors`` names it."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_JSON, response.headers
    body = response.get_json(force=True)
    for key in ("type", "title", "status", "detail"):
        assert key in body, body
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str)
    if field is not None:
        assert field in body.get("errors", {}), body
        assert all(isinstance(m, str) and m for m in body["errors"][field]), body
    return body


def polygon(lon: float, lat: float, size_deg: float = 0.004) -> dict:
    """A square GeoJSON Polygon with its south-west corner at (lon, lat)."""
    east, north = round(lon + size_deg, 7), round(lat + size_deg, 7)
    return {
        "type": "Polygon",
        "coordinates": [[
            [lon, lat], [east, lat], [east, north], [lon, north], [lon, lat],
        ]],
    }


def box(min_lon: float, min_lat: float, max_lon: float, max_lat: float) -> shapely.Polygon:
    return shapely.box(min_lon, min_lat, max_lon, max_lat)


def make_group(db, name: str, boundary, *, group_id: str | None = None,
               languages: Iterable[str] = ("en",)) -> Group:
    """A group created by the operator (the command line), as the fixtures do."""
    return groups.create_group(db, OPERATOR, GroupDraft(
        id=group_id, name=name, boundary=boundary, languages=tuple(languages),
    ))


def make_alert(db, author: Actor, group_id: str, *, now: datetime | None = None,
               **fields):
    """Post an alert through the service (``now`` backdates it); returns the author's view."""
    values = {"category": "burglary", "title": "Break-in on the block", "id": str(uuid.uuid4())}
    values.update(fields)
    alert, created = alerts.post_alert(db, author, group_id, AlertDraft(**values), now=now)
    assert created
    return alert


def etag(version: int) -> str:
    return f'"{version}"'


def fresh_database(request, tmp_path_factory, kind: str):
    """A migrated, empty database of ``kind`` (``sqlite`` or ``postgresql``) for fixtures wider
    than one test (module scope), like ``tests/conftest.py``'s per-test ``database_url``.

    The PostgreSQL one lives in the session's schema, which the per-test fixtures empty
    before each test of theirs: a module using this must take every database from it."""
    from blockwatch.config import Settings
    from blockwatch.db import Database
    from tests.conftest import _empty_postgres

    if kind == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('api') / 'blockwatch.db'}"
    else:
        url = request.getfixturevalue("postgres_schema_url")
        _empty_postgres(url)
    database = Database(url, Settings(database_url=url, index_staleness_s=0.0))
    database.migrate()
    return database


def app_over(database):
    """The app of ``tests/api/conftest.py``, over a given database."""
    from api import create_app

    return create_app(
        {"TESTING": True, "database": database, "BLOCKWATCH_RATE_LIMIT_WRITES": "off"}
    )
