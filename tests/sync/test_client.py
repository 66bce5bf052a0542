"""The Python sync client against the real app over ``httpx.WSGITransport``: retries and backoff
(transports that fail on purpose wrap the real one), working offline, a reset after an expired
cursor with the outbox kept, and local queries that agree with the server's endpoints."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from blockwatch import accounts, changelog, groups, tips
from blockwatch.sync.client import SyncClient, SyncError, SyncUnavailable
from blockwatch.sync.scope import Area, Scope
from tests.api.helpers import box, make_alert, make_group
from tests.blockwatch.factories import admin

BASE_URL = "http://testserver"
HOME = (-122.33, 47.60, -122.32, 47.61)  # the phone's own group (it coordinates it)
NEXT_DOOR = (-122.318, 47.600, -122.312, 47.606)  # a neighbouring group, public to the phone
ACROSS = (-122.34, 47.612, -122.335, 47.618)  # another neighbour
FAR = (-122.60, 47.30, -122.59, 47.31)  # out of scope
CENTER = (-122.325, 47.605)  # (lon, lat)
SCOPE = Scope(area=Area(lon=CENTER[0], lat=CENTER[1], radius_m=2500), languages=("es", "fr"))
#: For tests of the client's own behaviour, where storage plays no part.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


# -- arranging -------------------------------------------------------------------------------
@pytest.fixture
def scene(db):
    """Four groups, alerts sent a minute apart (two of them in the past hour), tips with a
    missing translation; the phone's account coordinates ``home``."""
    made = {name: make_group(db, name, box(*bounds)).id for name, bounds in (
        ("home", HOME), ("next_door", NEXT_DOOR), ("across", ACROSS), ("far", FAR))}
    token = accounts.create_token(db, "Phone owner", "coordinator", made["home"])
    author = admin(db)
    start = datetime.now(UTC) - timedelta(hours=1)
    points = {"home": [(-122.32713, 47.60261), (-122.32188, 47.60837)],
              "next_door": [(-122.31537, 47.60219), (-122.31311, 47.60412)],
              "across": [(-122.33791, 47.61443)], "far": [(-122.59513, 47.30411)]}
    alert_ids: dict[str, list[str]] = {}
    minute = 0
    for name, spots in points.items():
        for point in spots:
            minute += 1
            alert_ids.setdefault(name, []).append(make_alert(
                db, author, made[name], location=point, title=f"{name} {minute}",
                now=start + timedelta(minutes=minute)).id)
    tips.upsert_tips(db, [
        {"key": "lock-doors", "category": "home-security", "translations": {
            language: {"title": f"Lock doors ({language})", "body": "Always."}
            for language in ("en", "es", "fr", "de")}},
        {"key": "hide-valuables", "category": "vehicles", "translations": {
            language: {"title": f"Hide valuables ({language})", "body": "Out of sight."}
            for language in ("en", "es")}},
        {"key": "know-neighbours", "category": "running-a-block-watch", "translations": {
            "en": {"title": "Know your neighbours", "body": "Say hello."}}},
        {"key": "phone-scams", "category": "fraud-scams", "translations": {
            language: {"title": f"Phone scams ({language})", "body": "Hang up."}
            for language in ("en", "fr")}},
    ])
    return {"groups": made, "alerts": alert_ids, "token": token, "admin": author}


class Scripted(httpx.BaseTransport):
    """Answers from a script first (a status code, ``(status, headers)``, or an exception to
    raise), then passes requests to the real app. Counts what reached it."""

    def __init__(self, app, script=()) -> None:
        self.inner = httpx.WSGITransport(app=app)
        self.script = list(script)
        self.seen: list[str] = []
        self.online = True
        self.unreachable: set[str] = set()  # paths that fail as if the network were down

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.url.path)
        if not self.online or request.url.path in self.unreachable:
            raise httpx.ConnectError("network unreachable", request=request)
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, type) and issubclass(step, Exception):
                raise step("scripted failure", request=request)
            status, headers = step if isinstance(step, tuple) else (step, {})
            return httpx.Response(status, headers={
                "Content-Type": "application/problem+json", **headers,
            }, json={"type": "about:blank", "title": "scripted", "status": status,
                     "detail": "scripted"}, request=request)
        return self.inner.handle_request(request)


def phone(tmp_path, transport, token=None, **options) -> SyncClient:
    options.setdefault("sleep", lambda seconds: None)
    return SyncClient(BASE_URL, tmp_path / "replica.db", token=token, scope=SCOPE,
                      transport=transport, **options)


def server_scope_ids(scene) -> set[str]:
    g = scene["groups"]
    return {g["home"], g["next_door"], g["across"]}


# -- retries ---------------------------------------------------------------------------------
@SQLITE_ONLY
def test_5xx_is_retried_with_exponential_backoff_and_jitter(app, tmp_path, scene):
    transport = Scripted(app, [503, 502, 500])
    sleeps: list[float] = []
    with phone(tmp_path, transport, sleep=sleeps.append, backoff_initial_s=4,
               backoff_max_s=1000) as client:
        summary = client.pull()
        assert set(client.dump()["groups"]) == server_scope_ids(scene)
    assert summary.pages == 1 and summary.upserted > 0
    assert transport.seen == ["/v1/sync/pull"] * 4
    assert len(sleeps) == 3
    # The base doubles with each attempt (4, 8, 16 s), plus a jitter of at most the initial
    # wait, so every wait is longer than the one before.
    for n, slept in enumerate(sleeps):
        assert 4 * 2**n <= slept <= 4 * 2**n + 4, sleeps
    assert sleeps == sorted(sleeps) and sleeps[2] >= 2 * sleeps[0]


@SQLITE_ONLY
def test_backoff_stays_under_its_maximum(app, tmp_path, scene):
    transport = Scripted(app, [503] * 5)
    sleeps: list[float] = []
    with phone(tmp_path, transport, sleep=sleeps.append, backoff_initial_s=1,
               backoff_max_s=3) as client:
        client.pull()
    assert len(sleeps) == 5
    assert all(0 < slept <= 3 for slept in sleeps), sleeps
    assert sleeps[-1] == 3


@SQLITE_ONLY
def test_a_429_waits_as_long_as_retry_after_says(app, tmp_path, scene):
    transport = Scripted(app, [(429, {"Retry-After": "7"})])
    sleeps: list[float] = []
    with phone(tmp_path, transport, sleep=sleeps.append) as client:
        client.pull()
    assert sleeps == [7]
    assert transport.seen == ["/v1/sync/pull"] * 2


@SQLITE_ONLY
def test_retry_after_as_a_date_and_above_the_maximum(app, tmp_path, scene):
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    transport = Scripted(app, [(503, {"Retry-After": soon}), (429, {"Retry-After": "900"})])
    sleeps: list[float] = []
    with phone(tmp_path, transport, sleep=sleeps.append, backoff_max_s=60) as client:
        client.pull()
    assert 27 <= sleeps[0] <= 30, sleeps
    assert sleeps[1] == 60  # never longer than the client's own maximum


@SQLITE_ONLY
@pytest.mark.parametrize(
    "error", [httpx.ConnectError, httpx.ReadTimeout, httpx.RemoteProtocolError])
def test_network_errors_are_retried(app, tmp_path, scene, error):
    transport = Scripted(app, [error, error])
    sleeps: list[float] = []
    with phone(tmp_path, transport, sleep=sleeps.append) as client:
        client.pull()
        assert set(client.dump()["groups"]) == server_scope_ids(scene)
    assert len(sleeps) == 2
    assert len(transport.seen) == 3


@SQLITE_ONLY
def test_after_max_attempts_the_server_is_unavailable(app, tmp_path, scene):
    transport = Scripted(app, [(503, {"Retry-After": "2"})] * 10)
    sleeps: list[float] = []
    with phone(tmp_path, transport, sleep=sleeps.append, max_attempts=3) as client:
        with pytest.raises(SyncUnavailable) as raised:
            client.pull()
        assert client.dump() == {"groups": {}, "alerts": {}, "tips": {}}
        assert client.replica.cursor is None
    assert raised.value.status == 503
    assert raised.value.retry_after_s == 2
    assert raised.value.problem["status"] == 503
    assert len(transport.seen) == 3 and sleeps == [2, 2]

    offline = Scripted(app)
    offline.online = False
    with phone(tmp_path, offline, max_attempts=4) as client, \
            pytest.raises(SyncUnavailable) as raised:
        client.pull()
    assert raised.value.status is None
    assert len(offline.seen) == 4


@SQLITE_ONLY
def test_a_422_is_not_retried(app, tmp_path, scene):
    transport = Scripted(app)
    sleeps: list[float] = []
    with phone(tmp_path, transport, sleep=sleeps.append, page_limit=0) as client, \
            pytest.raises(SyncError) as raised:
        client.pull()
    assert not isinstance(raised.value, SyncUnavailable)
    assert raised.value.status == 422
    assert "limit" in raised.value.problem["errors"]
    assert transport.seen == ["/v1/sync/pull"] and sleeps == []


@SQLITE_ONLY
def test_a_refused_token_is_not_retried(app, tmp_path, scene):
    transport = Scripted(app)
    sleeps: list[float] = []
    with phone(tmp_path, transport, token="bw_revoked", sleep=sleeps.append) as client:
        client.post_alert(scene["groups"]["home"], "theft", "Bike stolen")
        with pytest.raises(SyncError) as raised:
            client.sync()
        assert len(client.outbox()) == 1  # kept for when the user signs in again
    assert raised.value.status == 401 and not isinstance(raised.value, SyncUnavailable)
    assert transport.seen == ["/v1/sync/push"] and sleeps == []


# -- offline ---------------------------------------------------------------------------------
def test_offline_changes_show_at_once_and_reach_the_server_later(app, client, db, tmp_path, scene):
    g, transport = scene["groups"], Scripted(app)
    served = scene["alerts"]["home"][0]
    with phone(tmp_path, transport, token=scene["token"], max_attempts=1) as device:
        device.sync()
        transport.online = False

        spot = (-122.32455, 47.60511)
        posted = device.post_alert(g["home"], "suspicious-activity", "Someone trying doors",
                                   location=spot, severity="minor")
        near = device.alerts_near(lat=spot[1], lon=spot[0], radius_m=50)
        assert [alert["id"] for alert, _ in near] == [posted]
        assert near[0][1] == pytest.approx(0, abs=0.01)

        device.cancel_alert(served)
        assert {a["id"]: a["status"] for a in device.alerts()}[served] == "cancelled"
        assert served not in {a["id"] for a, _ in device.alerts_near(
            lat=CENTER[1], lon=CENTER[0], radius_m=2500)}

        device.update_group(g["home"], name="Home Block Watch", description="Tuesdays 7pm")
        home = {group["id"]: group for group in device.groups()}[g["home"]]
        assert (home["name"], home["description"]) == ("Home Block Watch", "Tuesdays 7pm")

        with pytest.raises(SyncUnavailable):
            device.sync()
        assert [m["op"] for m in device.outbox()] == [
            "alert.create", "alert.cancel", "group.update"]
        assert client.get(f"/v1/alerts/{posted}").status_code == 404

        transport.online = True
        device.sync()
        assert device.outbox() == [] and device.push_results() == []
        held = device.dump()
        on_server = client.get(f"/v1/alerts/{posted}",
                               headers={"Authorization": f"Bearer {scene['token']}"}).get_json()
        assert held["alerts"][posted] == on_server
        assert on_server["title"] == "Someone trying doors"
        assert "pending" not in held["alerts"][posted]
        assert held["alerts"][served]["status"] == "cancelled"
        assert held["groups"][g["home"]] == client.get(f"/v1/groups/{g['home']}").get_json()
        assert held["groups"][g["home"]]["name"] == "Home Block Watch"


def test_pushed_changes_stay_visible_until_a_pull_brings_them(app, client, tmp_path, scene):
    g, transport = scene["groups"], Scripted(app)
    served = scene["alerts"]["home"][0]
    with phone(tmp_path, transport, token=scene["token"], max_attempts=1) as device:
        device.sync()
        posted = device.post_alert(g["home"], "fire", "Smoke from the garage",
                                   location=(-122.3262, 47.6031))
        device.cancel_alert(served)
        device.update_group(g["home"], name="Renamed from the phone")
        transport.unreachable = {"/v1/sync/pull"}
        with pytest.raises(SyncUnavailable):
            device.sync()  # the push went through, the pull did not
        assert device.outbox() == []
        assert client.get(f"/v1/alerts/{posted}").status_code == 200
        shown = {alert["id"]: alert for alert in device.alerts()}
        assert posted in shown and shown[served]["status"] == "cancelled"
        assert {grp["id"]: grp["name"] for grp in device.groups()}[g["home"]] == (
            "Renamed from the phone")

        transport.unreachable = set()
        device.sync()
        held = device.dump()
        assert held["alerts"][posted]["version"] is not None
        assert held["alerts"][served]["status"] == "cancelled"
        assert held["groups"][g["home"]]["name"] == "Renamed from the phone"
        assert {a["id"]: a for a in device.alerts()}[posted] == held["alerts"][posted]


def test_two_offline_edits_of_a_group_are_one_edit(app, client, tmp_path, scene):
    g, transport = scene["groups"], Scripted(app)
    with phone(tmp_path, transport, token=scene["token"], max_attempts=1) as device:
        device.sync()
        transport.online = False
        device.update_group(g["home"], name="First")
        device.update_group(g["home"], description="Second")
        [edit] = device.outbox()
        assert edit["args"] == {"id": g["home"], "name": "First", "description": "Second"}
        transport.online = True
        device.sync()
        assert device.push_results() == []
    now = client.get(f"/v1/groups/{g['home']}").get_json()
    assert (now["name"], now["description"]) == ("First", "Second")


# -- reset -----------------------------------------------------------------------------------
def test_an_expired_cursor_resets_the_replica_and_keeps_the_outbox(
    app, client, db, tmp_path, scene
):
    g = scene["groups"]
    with phone(tmp_path, Scripted(app), token=scene["token"]) as device:
        device.sync()
        assert g["across"] in device.dump()["groups"]
        stale_cursor = device.replica.cursor

        groups.delete_group(db, scene["admin"], g["across"])
        with db.write() as session:
            assert changelog.purge_tombstones(
                session, timedelta(days=90), now=datetime.now(UTC) + timedelta(days=91)) > 0
        posted = device.post_alert(g["home"], "theft", "Parcel taken from porch",
                                   location=(-122.3251, 47.6049))

        summary = device.pull()
        assert summary.reset is True
        assert device.replica.cursor != stale_cursor
        held = device.dump()
        # Cleared and filled again: the deleted group is gone although no tombstone said so.
        assert set(held["groups"]) == {g["home"], g["next_door"]}
        assert set(held["alerts"]) == {*scene["alerts"]["home"], *scene["alerts"]["next_door"]}
        assert [m["args"]["id"] for m in device.outbox()] == [posted]
        assert posted in {a["id"] for a in device.alerts()}

        device.sync()
        assert device.outbox() == []
        assert posted in device.dump()["alerts"]
        assert client.get(f"/v1/alerts/{posted}").status_code == 200
        again = device.pull()
        assert again.reset is False and again.upserted == 0


# -- local queries agree with the server -----------------------------------------------------
POINTS = [(CENTER, 300), (CENTER, 2500), ((-122.3155, 47.6022), 400),
          ((-122.3379, 47.6144), 150), ((-122.3300, 47.6200), 1200), ((-122.40, 47.55), 900)]


@pytest.fixture
def synced(app, tmp_path, scene):
    with phone(tmp_path, Scripted(app), token=scene["token"]) as device:
        device.sync()
        yield device


def test_groups_near_agrees_with_the_server(client, synced):
    for (lon, lat), radius_m in POINTS:
        served = client.get("/v1/groups/nearby", query_string={
            "lat": lat, "lon": lon, "radius_m": radius_m, "limit": 100}).get_json()["items"]
        local = synced.groups_near(lat=lat, lon=lon, radius_m=radius_m)
        assert [group["id"] for group, _ in local] == [item["id"] for item in served], (
            lon, lat, radius_m)
        for (group, distance), item in zip(local, served, strict=True):
            assert distance == pytest.approx(item["distance_m"], abs=1e-6)
            assert group == {k: v for k, v in item.items() if k != "distance_m"}


def test_alerts_near_agrees_with_the_server(client, scene, synced):
    headers = {"Authorization": f"Bearer {scene['token']}"}
    found = 0
    for (lon, lat), radius_m in POINTS:
        served = client.get("/v1/alerts/nearby", headers=headers, query_string={
            "lat": lat, "lon": lon, "radius_m": radius_m, "limit": 100}).get_json()["items"]
        local = synced.alerts_near(lat=lat, lon=lon, radius_m=radius_m)
        assert [alert["id"] for alert, _ in local] == [item["id"] for item in served], (
            lon, lat, radius_m)
        for (alert, distance), item in zip(local, served, strict=True):
            # Rounded points travel as JSON numbers: the same to well under a millimetre.
            assert distance == pytest.approx(item["distance_m"], abs=1e-3)
            assert alert == {k: v for k, v in item.items() if k != "distance_m"}
        found += len(local)
    assert found >= 8  # the points do find alerts, exact and rounded ones


def test_alerts_near_agrees_on_exact_and_rounded_locations(client, scene, synced):
    held = synced.dump()["alerts"]
    home, next_door = scene["alerts"]["home"], scene["alerts"]["next_door"]
    assert {held[k]["location_precision"] for k in home} == {"exact"}
    assert {held[k]["location_precision"] for k in next_door} == {"approximate"}


def test_alerts_near_leaves_out_cancelled_and_expired_alerts(app, client, db, scene, synced):
    from blockwatch import alerts

    cancelled = scene["alerts"]["next_door"][0]
    alerts.cancel_alert(db, scene["admin"], cancelled)
    synced.sync()
    later = datetime.now(UTC) + timedelta(days=2)
    nearby = {a["id"] for a, _ in synced.alerts_near(lat=CENTER[1], lon=CENTER[0],
                                                    radius_m=2500)}
    assert cancelled not in nearby and nearby
    assert synced.alerts_near(lat=CENTER[1], lon=CENTER[0], radius_m=2500, now=later) == []


def test_alerts_near_breaks_ties_as_the_server_does(app, client, db, scene, tmp_path):
    home = scene["groups"]["home"]
    sent = datetime.now(UTC) - timedelta(minutes=5)
    for n in range(4):
        make_alert(db, scene["admin"], home, location=(-122.3261 + n * 1e-4, 47.6043),
                   now=sent, title=f"same moment {n}")
    headers = {"Authorization": f"Bearer {scene['token']}"}
    with phone(tmp_path, Scripted(app), token=scene["token"]) as device:
        device.sync()
        local = [a["id"] for a, _ in device.alerts_near(lat=47.6043, lon=-122.3259,
                                                       radius_m=100)]
    served = client.get("/v1/alerts/nearby", headers=headers, query_string={
        "lat": 47.6043, "lon": -122.3259, "radius_m": 100, "limit": 100}).get_json()["items"]
    assert len(local) == 4
    assert local == [item["id"] for item in served]


def test_tips_agree_with_the_server_in_content_and_order(client, synced):
    for language in ("es", "fr", "en", "es-MX", "de"):
        # 'de' is not in the replica's scope: English, as the server would fall back to.
        asked = "en" if language == "de" else language
        served = client.get("/v1/tips", query_string={"lang": asked}).get_json()["items"]
        local = synced.tips(language)
        assert [tip["id"] for tip in local] == [item["id"] for item in served], language
        for tip, item in zip(local, served, strict=True):
            assert {k: tip[k] for k in item} == item
    assert {tip["language"] for tip in synced.tips("fr")} == {"fr", "en"}


def test_tips_of_one_category(client, synced):
    served = client.get("/v1/tips", query_string={"lang": "fr", "category": "vehicles"})
    assert [t["id"] for t in synced.tips("fr", category="vehicles")] == [
        item["id"] for item in served.get_json()["items"]]
    assert [t["language"] for t in synced.tips("fr", category="vehicles")] == ["en"]


def test_a_client_without_a_token_pulls_the_public_view(app, tmp_path, scene):
    with phone(tmp_path, Scripted(app)) as device:
        device.sync()
        held = device.dump()
        with pytest.raises(SyncError):
            device.push()
    assert set(held["groups"]) == server_scope_ids(scene)
    assert {a["location_precision"] for a in held["alerts"].values()} == {"approximate"}
    assert {t["language"] for t in held["tips"].values()} == {"en", "es", "fr"}


def test_each_replica_file_has_its_own_client_id(tmp_path):
    """Each replica file is one installation: its client id is made once and kept."""
    first = SyncClient(BASE_URL, tmp_path / "a.db")
    again = SyncClient(BASE_URL, tmp_path / "a.db")
    other = SyncClient(BASE_URL, tmp_path / "b.db")
    try:
        assert first.replica.client_id == again.replica.client_id != other.replica.client_id
        uuid.UUID(first.replica.client_id)
    finally:
        for made in (first, again, other):
            made.close()
