"""Convergence (SYNC.md, "What must be shown by tests"): for random interleavings of server writes
(groups created, renamed, moved in and out of the area, deleted and created again; alerts posted,
cancelled and expired; tips edited and translated), scope changes (area, explicit groups,
languages, the reader's memberships and token) and paged pulls that may be cut short, the
replica after a pull ending with ``has_more == false`` equals the server's scope exactly.

The expected replica is worked out from the server side without the sync code: the scope's
groups by brute force over every group (geodesic distance from the area's centre to each
boundary), each group, alert and tip as the REST API renders it for the same token.

The helpers here (:func:`expected_replica`, :class:`CutShort`, :func:`open_client`, ...) are
shared by ``test_concurrent_pull.py`` and ``test_resume.py``.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import shapely
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

import geo
from api import create_app, schemas
from blockwatch import accounts, alerts, changelog, groups, tips
from blockwatch.config import Settings
from blockwatch.db import Database
from blockwatch.domain import OPERATOR, AlertDraft, GroupDraft
from blockwatch.models import Group as GroupRow
from blockwatch.models import Membership, SafetyTip
from blockwatch.sync.client import SyncClient
from blockwatch.sync.scope import Area, Scope

# -- a small world near Pike/Pine -------------------------------------------------------------
ORIGIN = (-122.32, 47.61)
SIDE = (0.004, 0.0027)  # about 300 m by 300 m at this latitude
STEP = (0.008, 0.0054)  # squares about 600 m apart
#: South-west corners of the places a group's boundary may be: a 3 × 3 grid around the origin
#: and two places far out of every nearby area.
CELLS: tuple[tuple[float, float], ...] = (
    *((round(ORIGIN[0] + i * STEP[0], 6), round(ORIGIN[1] + j * STEP[1], 6))
      for i in (-1, 0, 1) for j in (-1, 0, 1)),
    (-122.20, 47.61), (-122.32, 47.70),
)
NEAR, FAR = CELLS[:9], CELLS[9:]
#: Where a group is created or moved to: as often far away as on the grid.
places = st.one_of(st.sampled_from(NEAR), st.sampled_from(FAR))
TIP_KEYS = {"lock-doors": "home-security", "porch-lights": "home-security",
            "report-suspicious": "running-a-block-watch"}
TIP_LANGUAGES = ("en", "es", "es-MX", "vi", "fr")
SCOPE_LANGUAGES = ("es", "vi", "fr", "es-MX")
#: Keeps every boundary clearly inside or outside every area (no judgement on a knife edge).
EDGE_MARGIN_M = 25.0


def square(cell: tuple[float, float]) -> dict[str, Any]:
    """The GeoJSON square whose south-west corner is ``cell``."""
    lon, lat = cell
    east, north = round(lon + SIDE[0], 6), round(lat + SIDE[1], 6)
    return {"type": "Polygon",
            "coordinates": [[[lon, lat], [east, lat], [east, north], [lon, north], [lon, lat]]]}


def _clear_areas() -> tuple[Area, ...]:
    centres = [ORIGIN, (-122.327, 47.606), (-122.309, 47.6135), (-122.198, 47.611),
               (-122.26, 47.64)]
    areas = []
    for lon, lat in centres:
        for radius in (150.0, 400.0, 900.0, 2000.0):
            distances = [geo.distance_to_m(lon, lat, shapely.geometry.shape(square(cell)))
                         for cell in CELLS]
            if all(abs(d - radius) > EDGE_MARGIN_M for d in distances):
                areas.append(Area(lon=lon, lat=lat, radius_m=radius))
    return tuple(areas)


AREAS = _clear_areas()
#: The area a replica starts with: most of the grid.
WIDE = max((area for area in AREAS if (area.lon, area.lat) == ORIGIN),
           key=lambda area: area.radius_m)


# -- what the replica must hold, from the server side ----------------------------------------
def expected_replica(db: Database, token: str | None, scope: Scope, app=None
                     ) -> dict[str, dict[str, Any]]:
    """The replica of ``scope`` for the bearer of ``token``, as :meth:`SyncClient.dump` gives it:
    groups whose boundary lies within the area (brute force over every group), plus the
    ``group_ids`` that exist, plus the token's account's groups, each as ``GET
    /v1/groups/{id}`` renders it; all their alerts as ``GET /v1/groups/{id}/alerts?status=all``
    renders them for this token; tips in the scope's languages or English as ``GET
    /v1/tips/{id}`` renders them, plus ``key`` and ``version``.

    With ``app``, those requests are made through its test client; without, the services and
    schemas those endpoints use are called directly (much faster: a check reads every group in
    scope)."""
    reader = accounts.authenticate(db, token)
    with db.read() as session:
        boundaries = dict(session.execute(select(GroupRow.id, GroupRow.boundary_geojson)).all())
        tip_rows = session.execute(select(SafetyTip.id, SafetyTip.language)).all()
    in_scope: set[str] = set()
    area = scope.area
    if area is not None:
        in_scope.update(
            key for key, text in boundaries.items()
            if geo.distance_to_m(area.lon, area.lat, shapely.geometry.shape(json.loads(text)))
            <= area.radius_m
        )
    in_scope.update(key for key in scope.group_ids if key in boundaries)
    in_scope.update(key for key in reader.roles if key in boundaries)
    wanted = {tag.lower() for tag in scope.languages} | {"en"}
    primaries = {tag.split("-")[0] for tag in wanted}
    tip_ids = [key for key, language in tip_rows
               if language.lower() in wanted or language.lower().split("-")[0] in primaries]
    if app is not None:
        return _expected_over_http(app, token, sorted(in_scope), tip_ids)

    expected: dict[str, dict[str, Any]] = {"groups": {}, "alerts": {}, "tips": {}}
    for key in sorted(in_scope):
        expected["groups"][key] = as_json(schemas.Group, groups.get_group(db, key))
        after: str | None = None
        while True:
            page = alerts.alerts_of_group(db, reader, key, "all", 100, after)
            expected["alerts"].update(
                (alert.id, as_json(schemas.Alert, alert)) for alert in page.items)
            if page.next is None:
                break
            after = page.next
    for key in tip_ids:
        tip = tips.get_tip(db, key)
        expected["tips"][key] = {**as_json(schemas.Tip, tip), "key": tip.key,
                                 "version": tip.version}
    return expected


def _expected_over_http(app, token: str | None, group_ids: list[str], tip_ids: list[str]
                        ) -> dict[str, dict[str, Any]]:
    http = app.test_client()
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(path: str):
        response = http.get(path, headers=headers)
        assert response.status_code == 200, (path, response.get_data(as_text=True))
        return response

    expected: dict[str, dict[str, Any]] = {"groups": {}, "alerts": {}, "tips": {}}
    for key in group_ids:
        expected["groups"][key] = get(f"/v1/groups/{key}").get_json()
        path: str | None = f"/v1/groups/{key}/alerts?status=all&limit=100"
        while path:
            body = get(path).get_json()
            expected["alerts"].update((alert["id"], alert) for alert in body["items"])
            path = (f"/v1/groups/{key}/alerts?status=all&limit=100&next={body['next']}"
                    if body["next"] else None)
    for key in tip_ids:
        response = get(f"/v1/tips/{key}")
        with app.app_context():
            tip_key = tips.get_tip(app.extensions["blockwatch.db"], key).key
        expected["tips"][key] = {**response.get_json(), "key": tip_key,
                                 "version": int(response.headers["ETag"].strip('"'))}
    return expected


def as_json(schema: type, entity: Any) -> dict[str, Any]:
    """An entity as the API sends it: rendered by its schema, through JSON."""
    return json.loads(json.dumps(schema().dump(entity)))


def assert_replica_is_scope(client: SyncClient, db: Database, token: str | None,
                            app=None) -> None:
    """The replica holds exactly what the server's scope is now (canonical JSON compared);
    with ``app``, the scope's entities are read over its REST API."""
    held, expected = client.dump(), expected_replica(db, token, client.scope, app)
    for kind in ("groups", "alerts", "tips"):
        assert sorted(held[kind]) == sorted(expected[kind]), kind
        assert canonical(held[kind]) == canonical(expected[kind]), kind
    assert canonical(held) == canonical(expected)


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# -- talking to the real app ------------------------------------------------------------------
class CutShort(Exception):
    """The connection dropped mid-sync. Not an ``httpx.TransportError``: the client does not
    retry it, as if the app had been killed there."""


#: More pages than any pull here needs: a pull that goes on past it never ends.
MAX_PAGES = 1000


class PageRecorder(httpx.BaseTransport):
    """The app over a real WSGI transport. Records the body of every pull request and every
    pull page the client received; once ``budget`` pull requests have gone through (``None``:
    never), the connection drops on the next one, before it reaches the server or, with
    ``lose_response``, after the server answered."""

    def __init__(self, app) -> None:
        self.inner = httpx.WSGITransport(app=app)
        self.budget: int | None = None
        self.lose_response = False
        self.requests: list[dict[str, Any]] = []
        self.pages: list[dict[str, Any]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        pulling = request.url.path == "/v1/sync/pull"
        if pulling:
            self.requests.append(json.loads(request.read()))
        if pulling and self.budget is not None:
            if self.budget <= 0:
                if self.lose_response:
                    self.inner.handle_request(request).read()
                raise CutShort(f"connection dropped after {len(self.pages)} page(s)")
            self.budget -= 1
        response = self.inner.handle_request(request)
        if pulling:
            response.read()
            if response.status_code == 200:
                self.pages.append(json.loads(response.content))
            assert len(self.pages) < MAX_PAGES, "the pull does not end"
        return response


def make_app(db: Database):
    return create_app({"TESTING": True, "database": db, "BLOCKWATCH_RATE_LIMIT_WRITES": "off"})


def open_client(transport: httpx.BaseTransport, replica: Path, token: str | None,
                scope: Scope | None = None, limit: int = 5, **options: Any) -> SyncClient:
    return SyncClient("http://testserver", replica, token=token, scope=scope, page_limit=limit,
                      transport=transport, sleep=lambda _seconds: None, **options)


def database_at(url: str) -> Database:
    return Database(url, Settings(database_url=url, index_staleness_s=0.0))


def remove_membership(db: Database, account_id: str, group_id: str) -> None:
    """End a membership as the service would (no service does yet): the row goes and the
    group's ``member_count`` changes, so the group gets a new version in the same transaction."""
    with db.write() as session:
        membership = session.get(Membership, (account_id, group_id))
        if membership is not None:
            session.delete(membership)
            changelog.stamp(session, session.get(GroupRow, group_id))


def fresh_databases(kind: str, request) -> Callable[[], str]:
    """A maker of empty, migrated databases of ``kind``, one per call (one per example)."""
    if kind == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="bw-sync-", dir=request.getfixturevalue(
            "tmp_path")))
        template = folder / "migrated.db"
        database = database_at(f"sqlite:///{template}")
        database.migrate()
        database.dispose()
        made = {"count": 0}

        def make_sqlite() -> str:
            made["count"] += 1
            path = folder / f"example-{made['count']}.db"
            shutil.copyfile(template, path)  # a new server: its own id and cursor secret
            with sqlite3.connect(path) as connection:
                connection.execute("UPDATE sync_state SET server_id = ?, cursor_secret = ?",
                                   (str(uuid.uuid4()), uuid.uuid4().hex))
            connection.close()
            return f"sqlite:///{path}"

        return make_sqlite
    from tests.conftest import _empty_postgres

    url = request.getfixturevalue("postgres_schema_url")

    def make_postgres() -> str:
        _empty_postgres(url)
        database = database_at(url)
        database.migrate()  # the counter row the truncation removed
        database.dispose()
        return url

    return make_postgres


# -- the state machine ------------------------------------------------------------------------
NAMESPACE = uuid.UUID("0f4b3c1e-5d0a-4a57-8a3e-2f0d8f5b9c11")
pick = st.integers(min_value=0, max_value=63)


class Convergence(RuleBasedStateMachine):
    """Server writes, scope changes and pulls in any order; every pull that reaches
    ``has_more == false`` must leave the replica equal to the scope."""

    new_database: Callable[[], str]  # set by the test
    workdir: Path  # likewise: where replica files go

    def __init__(self) -> None:
        super().__init__()
        self.db = database_at(type(self).new_database())
        self.app = make_app(self.db)
        self.folder = Path(tempfile.mkdtemp(prefix="replica-", dir=type(self).workdir))
        self.transport = PageRecorder(self.app)
        self.counter = 0
        self.writer = accounts.authenticate(
            self.db, accounts.create_token(self.db, "Dispatcher", "admin"))
        self.reader_id = accounts.ensure_account(self.db, "Night Owl")
        self.tokens: dict[str, str | None] = {
            "public": None,
            "member": accounts.issue_token(self.db, self.reader_id),
            "admin": accounts.create_token(self.db, "Admin reader", "admin"),
        }
        self.reader = "member"
        self.groups: list[str] = []  # alive, in order of creation
        self.gone: list[str] = []  # deleted
        self.cells: dict[str, tuple[float, float]] = {}
        self.alerts: dict[str, str] = {}  # alert id -> group id
        self.memberships: list[str] = []
        for number, cell in enumerate(CELLS[:9:2]):
            group_id = self._create(cell)
            self._post(group_id, short=number % 2 == 0, located=True)
            self._post(group_id, short=False, located=number % 3 == 0)
        accounts.set_membership(self.db, self.reader_id, self.groups[0], "member")
        self.memberships.append(self.groups[0])
        tips.upsert_tips(self.db, [
            {"key": key, "category": category, "translations": {
                language: {"title": f"{key} ({language})", "body": "Start"}
                for language in ("en", "es")}}
            for key, category in TIP_KEYS.items()
        ])
        self.client = open_client(self.transport, self.folder / "replica.db",
                                  self.token, Scope(area=WIDE))
        # The app's first sync: the steps start from a full replica.
        self._pull(7, None, check=False)

    @property
    def token(self) -> str | None:
        return self.tokens[self.reader]

    def teardown(self) -> None:
        try:
            # Whatever the steps did, a last pull to the end must converge too (unless a step
            # failed already: that failure is the one to report).
            if sys.exc_info()[0] is None:
                self._pull(3, None, over_http=True)
        finally:
            self.client.close()
            self.db.dispose()

    def _id(self, what: str) -> str:
        self.counter += 1
        return str(uuid.uuid5(NAMESPACE, f"{what}-{self.counter}"))

    def _create(self, cell: tuple[float, float], group_id: str | None = None) -> str:
        group = groups.create_group(self.db, OPERATOR, GroupDraft(
            id=group_id or self._id("group"), name=f"Block {self.counter}",
            boundary=square(cell), languages=("en", "es"),
        ))
        self.groups.append(group.id)
        self.cells[group.id] = cell
        return group.id

    def _edit(self, group_id: str, changes: dict[str, Any]) -> None:
        version = groups.get_group(self.db, group_id).version
        groups.update_group(self.db, OPERATOR, group_id, changes, version)

    # -- groups ---------------------------------------------------------------------------
    @rule(cell=places)
    def create_group(self, cell):
        self._create(cell)

    @precondition(lambda self: self.gone)
    @rule(which=pick, cell=places)
    def create_group_again_under_a_deleted_id(self, which, cell):
        group_id = self.gone.pop(which % len(self.gone))
        self._create(cell, group_id)

    @precondition(lambda self: self.groups)
    @rule(which=pick)
    def rename_group(self, which):
        group_id = self.groups[which % len(self.groups)]
        self.counter += 1
        self._edit(group_id, {"name": f"Renamed {self.counter}"})

    @precondition(lambda self: self.groups)
    @rule(which=pick, cell=places)
    def move_group(self, which, cell):
        group_id = self.groups[which % len(self.groups)]
        self._edit(group_id, {"boundary": square(cell)})
        self.cells[group_id] = cell

    @precondition(lambda self: self.groups)
    @rule(which=pick)
    def delete_group(self, which):
        group_id = self.groups.pop(which % len(self.groups))
        groups.delete_group(self.db, OPERATOR, group_id)
        self.gone.append(group_id)
        self.alerts = {key: owner for key, owner in self.alerts.items() if owner != group_id}
        if group_id in self.memberships:
            self.memberships.remove(group_id)

    # -- alerts ---------------------------------------------------------------------------
    def _post(self, group_id: str, short: bool, located: bool) -> None:
        lon, lat = self.cells[group_id]
        draft = AlertDraft(
            id=self._id("alert"), category="burglary", title=f"Break-in {self.counter}",
            location=(lon + 0.0011, lat + 0.0007) if located else None,
            expires_at=datetime.now(UTC) + timedelta(hours=1) if short else None,
        )
        alert, _ = alerts.post_alert(self.db, self.writer, group_id, draft)
        self.alerts[alert.id] = group_id

    @precondition(lambda self: self.groups)
    @rule(which=pick, short=st.booleans(), located=st.booleans(), count=st.integers(1, 4))
    def post_alerts(self, which, short, located, count):
        group_id = self.groups[which % len(self.groups)]
        for number in range(count):
            self._post(group_id, short=short and number % 2 == 0, located=located)

    @precondition(lambda self: self.alerts)
    @rule(which=pick)
    def cancel_alert(self, which):
        alert_id = sorted(self.alerts)[which % len(self.alerts)]
        alerts.cancel_alert(self.db, self.writer, alert_id)

    @rule()
    def expire_short_alerts(self):
        # Alerts posted to last an hour are past it two hours on; the others last a day.
        expired = alerts.expire_alerts(self.db, now=datetime.now(UTC) + timedelta(hours=2))
        event(f"expired some alerts: {expired > 0}")

    # -- tips -----------------------------------------------------------------------------
    @rule(key=st.sampled_from(sorted(TIP_KEYS)), language=st.sampled_from(TIP_LANGUAGES))
    def edit_tip(self, key, language):
        self.counter += 1
        tips.upsert_tips(self.db, [{"key": key, "category": TIP_KEYS[key], "translations": {
            language: {"title": f"{key} ({language}) v{self.counter}", "body": "Edited"}}}])

    # -- the scope --------------------------------------------------------------------------
    @rule(area=st.sampled_from((None, *AREAS)))
    def set_area(self, area):
        self.client.set_scope(Scope(area=area, group_ids=self.client.scope.group_ids,
                                    languages=self.client.scope.languages))

    @rule(which=st.lists(pick, max_size=3))
    def set_group_ids(self, which):
        known = self.groups + self.gone
        ids = tuple(sorted({known[index % len(known)] for index in which})) if known else ()
        scope = self.client.scope
        self.client.set_scope(Scope(area=scope.area, group_ids=ids, languages=scope.languages))

    @rule(languages=st.lists(st.sampled_from(SCOPE_LANGUAGES), unique=True, max_size=2))
    def set_languages(self, languages):
        scope = self.client.scope
        self.client.set_scope(Scope(area=scope.area, group_ids=scope.group_ids,
                                    languages=("en", *languages)))

    @precondition(lambda self: self.groups)
    @rule(which=pick, role=st.sampled_from(("member", "coordinator")))
    def grant_membership(self, which, role):
        group_id = self.groups[which % len(self.groups)]
        accounts.set_membership(self.db, self.reader_id, group_id, role)
        if group_id not in self.memberships:
            self.memberships.append(group_id)

    @precondition(lambda self: self.memberships)
    @rule(which=pick)
    def end_membership(self, which):
        group_id = self.memberships.pop(which % len(self.memberships))
        remove_membership(self.db, self.reader_id, group_id)

    @rule(reader=st.sampled_from(("public", "member", "admin")))
    def switch_token(self, reader):
        # Another app session on the same replica file, with another token (or none).
        self.client.close()
        self.reader = reader
        self.client = open_client(self.transport, self.folder / "replica.db", self.token)

    # -- pulls ----------------------------------------------------------------------------
    @rule(limit=st.integers(1, 3))
    def pull_to_the_end_in_tiny_pages(self, limit):
        self._pull(limit, None)

    @rule(limit=st.integers(4, 7))
    def pull_to_the_end_in_small_pages(self, limit):
        self._pull(limit, None)

    @rule(limit=st.integers(1, 7), pages=st.integers(1, 4))
    def pull_cut_short(self, limit, pages):
        self._pull(limit, pages)

    def _pull(self, limit: int, pages: int | None, check: bool = True,
              over_http: bool = False) -> None:
        self.client.page_limit = limit
        self.transport.budget = pages
        self.transport.pages.clear()
        try:
            summary = self.client.pull()
        except CutShort:
            event("pull cut short")
            return
        finally:
            self.transport.budget = None
        assert self.transport.pages[-1]["has_more"] is False
        event(f"pull completed in {'one page' if summary.pages == 1 else 'several pages'}")
        if summary.removed_groups:
            event("a pull removed groups")
        if check:
            assert_replica_is_scope(self.client, self.db, self.token,
                                    self.app if over_http else None)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_replica_converges_on_the_scope(kind, request, tmp_path):
    machine = type(f"Convergence_{kind}", (Convergence,), {
        "new_database": staticmethod(fresh_databases(kind, request)), "workdir": tmp_path,
    })
    run_state_machine_as_test(machine, settings=settings(
        max_examples=30, stateful_step_count=30, derandomize=True, database=None,
        deadline=None, suppress_health_check=[HealthCheck.too_slow],
    ))


def test_the_world_has_areas_of_every_kind():
    """The areas the machine picks from: some hold nothing, some a few groups, some many."""
    counts = set()
    for area in AREAS:
        counts.add(sum(
            geo.distance_to_m(area.lon, area.lat, shapely.geometry.shape(square(cell)))
            <= area.radius_m for cell in CELLS))
    assert 0 in counts and max(counts) >= 5 and len(counts) >= 4, counts
