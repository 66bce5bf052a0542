"""``/v1/devices`` and ``/v1/admin/delivery`` through the HTTP app (API.md, "Devices and push"),
on SQLite and PostgreSQL: registering each platform, the device secret, the write-only push
address, changing and removing a device, validation (never a 500), the write budget, the
operators' delivery report and the OpenAPI document."""

from __future__ import annotations

import copy
import sqlite3
import uuid

import pytest
from sqlalchemy import func, select

from api import create_app
from blockwatch import accounts
from blockwatch.config import Settings
from blockwatch.db import Database
from blockwatch.models import Delivery, Device, DeviceGroup
from tests.api.helpers import RFC3339_UTC, assert_problem, box, make_group

BLOCK = (-122.33, 47.60, -122.30, 47.63)  # the group's block
FAR_BLOCK = (-122.40, 47.50, -122.39, 47.51)  # another group, outside AREA
AREA = {"lat": 47.615, "lon": -122.315, "radius_m": 1000}
# IP literals on public addresses: accepted without allow-private, and no DNS lookup needed.
FCM_TOKEN = "fcm-token-dQw4w9WgXcQ:APA91bHPRgkF3JUikC4ENAHEeMrd41Zxv3hVZjC9KtT8OvPVGJ"
WEBPUSH = {
    "endpoint": "https://93.184.216.34/push/v2/gAAAAABsubscription-endpoint-0001",
    "keys": {
        "p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1Xbjha"
                  "zAkj7I99e8QcYP7DkM",
        "auth": "tBHItJI5svbpez7KI4CCXg",
    },
}
WEBHOOK = {"url": "https://93.184.216.34/blockwatch/hook-0001", "secret": "whsec-0123456789abcdef"}
PUSHES = {"fcm": {"token": FCM_TOKEN}, "webpush": WEBPUSH, "webhook": WEBHOOK}


def _push_strings(push: dict) -> list[str]:
    """Every string of a push address (what must never come back)."""
    found = []
    for value in push.values():
        found.extend(_push_strings(value) if isinstance(value, dict) else [value])
    return found


ALL_PUSH_STRINGS = [text for push in PUSHES.values() for text in _push_strings(push)]


# -- fixtures -------------------------------------------------------------------------------
def _app(db: Database, writes: str = "off"):
    return create_app({"TESTING": True, "database": db, "BLOCKWATCH_RATE_LIMIT_WRITES": writes})


@pytest.fixture
def client(db):
    """The app over the storage fixture's database, whose settings leave
    BLOCKWATCH_WEBHOOK_ALLOW_PRIVATE unset (the production default)."""
    assert db.settings.webhook_allow_private is False
    return _app(db).test_client()


@pytest.fixture
def group(db):
    return make_group(db, "Capitol Hill", box(*BLOCK))


@pytest.fixture
def far_group(db):
    return make_group(db, "Elsewhere", box(*FAR_BLOCK))


def _subscription(**changes) -> dict:
    return {"area": dict(AREA), **changes}


def _register(client, platform="webhook", push=None, subscription=None, **extra):
    body = {"platform": platform, "push": copy.deepcopy(PUSHES[platform] if push is None else push),
            "subscription": subscription if subscription is not None else _subscription(),
            **extra}
    return client.post("/v1/devices", json=body)


def _registered(client, platform="webhook", **kwargs) -> dict:
    response = _register(client, platform, **kwargs)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def _auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _assert_no_push_address(response) -> None:
    text = response.get_data(as_text=True)
    for secret in ALL_PUSH_STRINGS:
        assert secret not in text, (secret, text)
    if response.is_json and isinstance(response.get_json(), dict):
        assert "push" not in response.get_json()


def _post_alert(client, headers, group_id, **fields):
    payload = {"category": "burglary", "title": "Break-in on 15th Ave E", **fields}
    response = client.post(f"/v1/groups/{group_id}/alerts", json=payload, headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def _token(db, role: str, group_id: str | None = None) -> dict[str, str]:
    return _auth(accounts.create_token(db, f"{role} {uuid.uuid4().hex[:6]}", role, group_id))


def _delivery_count(db, **where) -> int:
    query = select(func.count()).select_from(Delivery)
    for name, value in where.items():
        query = query.where(getattr(Delivery, name) == value)
    with db.read() as session:
        return session.scalar(query)


# -- registering ----------------------------------------------------------------------------
@pytest.mark.parametrize("platform", ["fcm", "webpush", "webhook"])
def test_registering_each_platform_answers_201_with_defaults_and_a_secret(client, platform):
    response = _register(client, platform)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "private, no-store"
    body = response.get_json()
    assert set(body) == {"id", "platform", "subscription", "active", "created_at",
                         "device_secret"}
    assert str(uuid.UUID(body["id"])) == body["id"]
    assert body["platform"] == platform
    assert body["active"] is True
    assert RFC3339_UTC.match(body["created_at"])
    assert body["device_secret"].startswith("bwd_") and len(body["device_secret"]) > 30
    assert body["subscription"] == {
        "area": {"lat": 47.615, "lon": -122.315, "radius_m": 1000.0},
        "group_ids": [], "categories": [], "min_severity": "minor", "quiet_hours": None,
    }
    _assert_no_push_address(response)


def test_each_registration_gets_its_own_id_and_secret(client):
    first, second = _registered(client), _registered(client)
    assert first["id"] != second["id"]
    assert first["device_secret"] != second["device_secret"]


def test_a_full_subscription_comes_back_as_sent(client, group):
    subscription = {
        "area": {"lat": 47.615, "lon": -122.315, "radius_m": 2500.5},
        "group_ids": [group.id], "categories": ["burglary", "fire"],
        "min_severity": "moderate",
        "quiet_hours": {"start": "22:00", "end": "07:00", "tz": "America/Los_Angeles"},
    }
    body = _registered(client, "fcm", subscription=subscription)
    assert body["subscription"] == subscription
    got = client.get(f"/v1/devices/{body['id']}", headers=_auth(body["device_secret"]))
    assert got.get_json()["subscription"] == subscription


def test_group_ids_alone_are_a_subscription(client, group):
    body = _registered(client, "fcm", subscription={"group_ids": [group.id]})
    assert body["subscription"]["area"] is None
    assert body["subscription"]["group_ids"] == [group.id]



def test_a_browsers_subscription_json_registers_as_it_is(client, db):
    """PushSubscription.toJSON() carries expirationTime too: only endpoint and keys are kept."""
    as_json = {**WEBPUSH, "expirationTime": None}
    device = _registered(client, "webpush", push=as_json)
    with db.read() as session:
        assert session.get(Device, device["id"]).push == WEBPUSH

# -- the device secret ----------------------------------------------------------------------
def test_get_patch_and_delete_with_the_secret_never_show_the_push_address(client, group):
    for platform in ("fcm", "webpush", "webhook"):
        device = _registered(client, platform)
        url, headers = f"/v1/devices/{device['id']}", _auth(device["device_secret"])
        got = client.get(url, headers=headers)
        assert got.status_code == 200
        assert got.headers["Cache-Control"] == "private, no-store"
        assert set(got.get_json()) == {"id", "platform", "subscription", "active", "created_at"}
        assert got.get_json()["id"] == device["id"]
        _assert_no_push_address(got)
        changed = client.patch(url, headers=headers, json={
            "push": PUSHES[platform], "subscription": {"group_ids": [group.id]},
        })
        assert changed.status_code == 200, changed.get_data(as_text=True)
        assert "device_secret" not in changed.get_json()
        _assert_no_push_address(changed)
        removed = client.delete(url, headers=headers)
        assert removed.status_code == 204
        assert removed.get_data() == b""


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_every_wrong_credential_is_the_same_401(client, method):
    mine, other = _registered(client), _registered(client)
    url = f"/v1/devices/{mine['id']}"
    kwargs = {"json": {"subscription": _subscription()}} if method == "patch" else {}
    call = getattr(client, method)
    answers = {
        "none": call(url, **kwargs),
        "wrong": call(url, headers=_auth("bwd_" + "A" * 43), **kwargs),
        "another device's": call(url, headers=_auth(other["device_secret"]), **kwargs),
        "an account token": call(url, headers=_auth("bw_not-a-device-secret"), **kwargs),
        "not bearer": call(url, headers={"Authorization": "Basic " + mine["device_secret"]},
                           **kwargs),
    }
    unknown = {
        "unknown id": call(f"/v1/devices/{uuid.uuid4()}", headers=_auth(mine["device_secret"]),
                           **kwargs),
        "not a uuid": call("/v1/devices/not-a-uuid", headers=_auth(mine["device_secret"]),
                           **kwargs),
    }
    details = set()
    for name, response in {**answers, **unknown}.items():
        body = assert_problem(response, 401)
        _assert_no_push_address(response)
        if name in ("wrong", "another device's", "an account token", "unknown id",
                    "not a uuid"):
            details.add(body["detail"])
    # An unknown id and a wrong secret read alike: the answer says nothing about which.
    assert len(details) == 1, details
    # None of it changed anything.
    still = client.get(url, headers=_auth(mine["device_secret"]))
    assert still.status_code == 200
    assert still.get_json()["subscription"]["area"] == {**AREA, "radius_m": 1000.0}


def test_a_secret_works_only_for_its_own_device(client):
    mine, other = _registered(client), _registered(client)
    response = client.get(f"/v1/devices/{other['id']}", headers=_auth(mine["device_secret"]))
    assert_problem(response, 401)
    assert client.delete(f"/v1/devices/{other['id']}",
                         headers=_auth(mine["device_secret"])).status_code == 401
    assert client.get(f"/v1/devices/{other['id']}",
                      headers=_auth(other["device_secret"])).status_code == 200


# -- changing -------------------------------------------------------------------------------
def test_patch_replaces_the_subscription_and_the_followed_groups(client, db, group, far_group):
    device = _registered(client, "fcm", subscription={
        "area": dict(AREA), "group_ids": [group.id], "categories": ["fire"],
        "min_severity": "severe",
        "quiet_hours": {"start": "22:00", "end": "07:00", "tz": "Europe/Berlin"},
    })
    url, headers = f"/v1/devices/{device['id']}", _auth(device["device_secret"])
    response = client.patch(url, headers=headers,
                            json={"subscription": {"group_ids": [far_group.id]}})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    # A whole new subscription, defaults filled again: nothing is merged from the old one.
    assert body["subscription"] == {"area": None, "group_ids": [far_group.id], "categories": [],
                                    "min_severity": "minor", "quiet_hours": None}
    assert (body["id"], body["platform"], body["active"], body["created_at"]) == (
        device["id"], "fcm", True, device["created_at"])
    assert client.get(url, headers=headers).get_json() == body
    with db.read() as session:
        followed = session.scalars(
            select(DeviceGroup.group_id).where(DeviceGroup.device_id == device["id"])
        ).all()
    assert followed == [far_group.id]
    # And targeting goes by the new one: the far group's alert reaches it, the old group's not.
    coordinator = _token(db, "coordinator", group.id)
    far_coordinator = _token(db, "coordinator", far_group.id)
    _post_alert(client, coordinator, group.id, category="fire", severity="extreme")
    assert _delivery_count(db, device_id=device["id"]) == 0
    _post_alert(client, far_coordinator, far_group.id, category="theft", severity="minor")
    assert _delivery_count(db, device_id=device["id"]) == 1


def test_patch_push_alone_keeps_the_subscription(client, group):
    device = _registered(client, "webhook", subscription=_subscription(categories=["fire"]))
    url, headers = f"/v1/devices/{device['id']}", _auth(device["device_secret"])
    new = {"url": "https://93.184.216.34/another/hook", "secret": "another-secret-0123456789"}
    response = client.patch(url, headers=headers, json={"push": new})
    assert response.status_code == 200
    assert response.get_json()["subscription"] == device["subscription"]
    for text in _push_strings(new):
        assert text not in response.get_data(as_text=True)


def test_a_new_push_address_reactivates_a_deactivated_device(client, db):
    device = _registered(client, "fcm")
    url, headers = f"/v1/devices/{device['id']}", _auth(device["device_secret"])
    with db.write() as session:
        row = session.get(Device, device["id"])
        row.active, row.deactivated_reason = False, "UNREGISTERED"
    assert client.get(url, headers=headers).get_json()["active"] is False
    # A new subscription alone does not: the address is still the dead one.
    same = client.patch(url, headers=headers, json={"subscription": _subscription()})
    assert same.status_code == 200 and same.get_json()["active"] is False
    again = client.patch(url, headers=headers, json={"push": {"token": FCM_TOKEN + "-new"}})
    assert again.status_code == 200, again.get_data(as_text=True)
    assert again.get_json()["active"] is True
    assert FCM_TOKEN not in again.get_data(as_text=True)
    assert client.get(url, headers=headers).get_json()["active"] is True
    with db.read() as session:
        row = session.get(Device, device["id"])
        assert (row.active, row.deactivated_reason, row.push) == (
            True, None, {"token": FCM_TOKEN + "-new"})


def test_an_empty_patch_is_422(client):
    device = _registered(client)
    response = client.patch(f"/v1/devices/{device['id']}", json={},
                            headers=_auth(device["device_secret"]))
    assert_problem(response, 422)


@pytest.mark.parametrize(("platform", "push", "field"), [
    ("fcm", {"url": WEBHOOK["url"], "secret": WEBHOOK["secret"]}, "push.token"),
    ("webhook", {"token": FCM_TOKEN}, "push.url"),
    ("webhook", {"url": "https://127.0.0.1/hook", "secret": WEBHOOK["secret"]}, "push.url"),
    ("webpush", {**WEBPUSH, "endpoint": "https://10.0.0.8/push"}, "push.endpoint"),
])
def test_patch_checks_the_push_address_against_the_devices_platform(client, platform, push,
                                                                     field):
    device = _registered(client, platform)
    response = client.patch(f"/v1/devices/{device['id']}", json={"push": push},
                            headers=_auth(device["device_secret"]))
    assert_problem(response, 422, field)
    _assert_no_push_address(response)


def test_an_invalid_patch_changes_nothing(client):
    device = _registered(client)
    url, headers = f"/v1/devices/{device['id']}", _auth(device["device_secret"])
    bad = client.patch(url, headers=headers, json={
        "push": {"url": "https://93.184.216.34/x", "secret": "short"},
        "subscription": {"group_ids": []},
    })
    assert bad.status_code == 422
    assert client.get(url, headers=headers).get_json()["subscription"] == device["subscription"]


# -- removing -------------------------------------------------------------------------------
def test_delete_unregisters_and_drops_what_was_queued_for_the_device(client, db, group):
    doomed, kept = _registered(client, "webhook"), _registered(client, "fcm")
    _post_alert(client, _token(db, "coordinator", group.id), group.id)
    assert _delivery_count(db, device_id=doomed["id"]) == 1
    assert _delivery_count(db, device_id=kept["id"]) == 1
    url, headers = f"/v1/devices/{doomed['id']}", _auth(doomed["device_secret"])
    removed = client.delete(url, headers=headers)
    assert removed.status_code == 204
    assert_problem(client.get(url, headers=headers), 401)
    assert_problem(client.delete(url, headers=headers), 401)
    assert _delivery_count(db, device_id=doomed["id"]) == 0
    assert _delivery_count(db, device_id=kept["id"]) == 1
    with db.read() as session:
        assert session.get(Device, doomed["id"]) is None
        assert session.scalars(select(DeviceGroup).where(
            DeviceGroup.device_id == doomed["id"])).all() == []


# -- validation -----------------------------------------------------------------------------
INVALID_REGISTRATIONS = [
    # (platform, push, subscription, extra top-level fields, the field the 422 names)
    ("apns", {"token": FCM_TOKEN}, None, {}, "platform"),
    ("fcm", {}, None, {}, "push.token"),
    ("fcm", {"token": ""}, None, {}, "push.token"),
    ("fcm", {"token": 42}, None, {}, "push.token"),
    ("webpush", {"keys": WEBPUSH["keys"]}, None, {}, "push.endpoint"),
    ("webpush", {"endpoint": WEBPUSH["endpoint"], "keys": {"p256dh": "BNcR"}}, None, {},
     "push.keys.auth"),
    ("webpush", {"endpoint": WEBPUSH["endpoint"]}, None, {}, "push.keys"),
    ("webhook", {"secret": WEBHOOK["secret"]}, None, {}, "push.url"),
    ("webhook", {"url": WEBHOOK["url"]}, None, {}, "push.secret"),
    ("webhook", {"url": WEBHOOK["url"], "secret": "x" * 15}, None, {}, "push.secret"),
    ("webhook", {"url": "http://93.184.216.34/hook", "secret": WEBHOOK["secret"]}, None, {},
     "push.url"),
    ("webhook", {"url": "https://127.0.0.1/hook", "secret": WEBHOOK["secret"]}, None, {},
     "push.url"),
    ("webhook", {"url": "https://10.1.2.3/hook", "secret": WEBHOOK["secret"]}, None, {},
     "push.url"),
    ("webhook", {"url": "https://169.254.169.254/latest/meta-data", "secret": WEBHOOK["secret"]},
     None, {}, "push.url"),
    ("webhook", {"url": "https://[::1]/hook", "secret": WEBHOOK["secret"]}, None, {},
     "push.url"),
    ("webhook", {"url": "ftp://93.184.216.34/hook", "secret": WEBHOOK["secret"]}, None, {},
     "push.url"),
    ("webhook", {"url": "https://93.184.216.34:99999/hook", "secret": WEBHOOK["secret"]}, None,
     {}, "push.url"),
    ("webpush", {**WEBPUSH, "endpoint": "https://192.168.1.20/push"}, None, {},
     "push.endpoint"),
    ("webpush", {**WEBPUSH, "endpoint": "http://93.184.216.34/push"}, None, {},
     "push.endpoint"),
    ("fcm", {"token": FCM_TOKEN}, {}, {}, "subscription"),
    ("fcm", {"token": FCM_TOKEN}, {"area": None, "group_ids": []}, {}, "subscription"),
    ("fcm", {"token": FCM_TOKEN}, _subscription(area={**AREA, "radius_m": 0}), {},
     "subscription.area.radius_m"),
    ("fcm", {"token": FCM_TOKEN}, _subscription(area={**AREA, "radius_m": 50000.001}), {},
     "subscription.area.radius_m"),
    ("fcm", {"token": FCM_TOKEN}, _subscription(area={**AREA, "lat": 91}), {},
     "subscription.area.lat"),
    ("fcm", {"token": FCM_TOKEN}, _subscription(area={**AREA, "lon": -180.5}), {},
     "subscription.area.lon"),
    ("fcm", {"token": FCM_TOKEN}, _subscription(area={"lat": 47.6, "lon": -122.3}), {},
     "subscription.area.radius_m"),
    ("fcm", {"token": FCM_TOKEN}, _subscription(categories=["alien-landing"]), {},
     "subscription.categories.0"),
    ("fcm", {"token": FCM_TOKEN}, _subscription(min_severity="catastrophic"), {},
     "subscription.min_severity"),
    ("fcm", {"token": FCM_TOKEN},
     _subscription(quiet_hours={"start": "22:00", "end": "22:00", "tz": "UTC"}), {},
     "subscription.quiet_hours.end"),
    ("fcm", {"token": FCM_TOKEN},
     _subscription(quiet_hours={"start": "24:00", "end": "07:00", "tz": "UTC"}), {},
     "subscription.quiet_hours.start"),
    ("fcm", {"token": FCM_TOKEN},
     _subscription(quiet_hours={"start": "22:00", "end": "7:00", "tz": "UTC"}), {},
     "subscription.quiet_hours.end"),
    ("fcm", {"token": FCM_TOKEN},
     _subscription(quiet_hours={"start": "22:00", "end": "07:00", "tz": "Mars/Base"}), {},
     "subscription.quiet_hours.tz"),
    ("fcm", {"token": FCM_TOKEN},
     _subscription(quiet_hours={"start": "22:00", "end": "07:00", "tz": "../../etc/passwd"}),
     {}, "subscription.quiet_hours.tz"),
    ("fcm", {"token": FCM_TOKEN},
     _subscription(quiet_hours={"start": "22:00", "end": "07:00", "tz": "localtime"}),
     {}, "subscription.quiet_hours.tz"),
    ("fcm", {"token": FCM_TOKEN},
     _subscription(quiet_hours={"start": "22:00", "end": "07:00", "tz": "posix/Europe/Paris"}),
     {}, "subscription.quiet_hours.tz"),
    ("fcm", {"token": FCM_TOKEN},
     _subscription(quiet_hours={"start": "22:00", "end": "07:00"}), {},
     "subscription.quiet_hours.tz"),
    ("fcm", {"token": FCM_TOKEN}, _subscription(group_ids=["not-a-uuid"]), {},
     "subscription.group_ids.0"),
    ("fcm", {"token": FCM_TOKEN}, _subscription(group_ids=[str(uuid.uuid4())]), {},
     "subscription.group_ids"),
    ("fcm", {"token": FCM_TOKEN}, _subscription(colour="red"), {}, "subscription.colour"),
    ("fcm", {"token": FCM_TOKEN}, None, {"owner": "me"}, "owner"),
]


@pytest.mark.parametrize(("platform", "push", "subscription", "extra", "field"),
                         INVALID_REGISTRATIONS,
                         ids=[case[-1] + "-" + str(index)
                              for index, case in enumerate(INVALID_REGISTRATIONS)])
def test_an_invalid_registration_is_422_naming_the_field(client, db, platform, push,
                                                         subscription, extra, field):
    response = _register(client, platform, push=push, subscription=subscription, **extra)
    assert_problem(response, 422, field)
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(Device)) == 0


def test_an_invalid_subscription_in_a_patch_is_422_naming_the_field(client):
    device = _registered(client)
    response = client.patch(
        f"/v1/devices/{device['id']}", headers=_auth(device["device_secret"]),
        json={"subscription": _subscription(
            quiet_hours={"start": "23:00", "end": "23:00", "tz": "Asia/Tokyo"})},
    )
    assert_problem(response, 422, "subscription.quiet_hours.end")


def test_private_webhook_urls_are_accepted_only_with_allow_private(database_url):
    hook = {"url": "http://127.0.0.1:8080/hook", "secret": WEBHOOK["secret"]}
    endpoint = {**WEBPUSH, "endpoint": "http://10.0.0.8/push"}
    for allow, expected in ((False, 422), (True, 201)):
        database = Database(database_url, Settings(
            database_url=database_url, index_staleness_s=0.0, webhook_allow_private=allow,
        ))
        try:
            client = _app(database).test_client()
            assert _register(client, "webhook", push=hook).status_code == expected
            assert _register(client, "webpush", push=endpoint).status_code == expected
        finally:
            database.dispose()


def test_allow_private_comes_from_the_environment():
    assert Settings.from_env({}).webhook_allow_private is False
    assert Settings.from_env({"BLOCKWATCH_WEBHOOK_ALLOW_PRIVATE": "1"}).webhook_allow_private
    assert not Settings.from_env({"BLOCKWATCH_WEBHOOK_ALLOW_PRIVATE": "0"}).webhook_allow_private


ODD_BODIES = [
    {"platform": None, "push": None, "subscription": None},
    {"platform": ["fcm"], "push": [], "subscription": []},
    {"platform": "fcm", "push": {"token": FCM_TOKEN}, "subscription": "everything"},
    {"platform": "fcm", "push": {"token": FCM_TOKEN}, "subscription": {"area": "here"}},
    {"platform": "fcm", "push": {"token": FCM_TOKEN},
     "subscription": {"area": {"lat": "x", "lon": None, "radius_m": "NaN"}}},
    {"platform": "fcm", "push": {"token": FCM_TOKEN},
     "subscription": {"area": dict(AREA), "group_ids": "all"}},
    {"platform": "fcm", "push": {"token": FCM_TOKEN},
     "subscription": {"area": dict(AREA), "group_ids": [None, 7]}},
    {"platform": "fcm", "push": {"token": FCM_TOKEN},
     "subscription": {"area": dict(AREA), "categories": "fire"}},
    {"platform": "fcm", "push": {"token": FCM_TOKEN},
     "subscription": {"area": dict(AREA), "categories": [None]}},
    {"platform": "fcm", "push": {"token": FCM_TOKEN},
     "subscription": {"area": dict(AREA), "quiet_hours": "nights"}},
    {"platform": "fcm", "push": {"token": FCM_TOKEN},
     "subscription": {"area": dict(AREA),
                      "quiet_hours": {"start": 22, "end": 7, "tz": 0}}},
    {"platform": "fcm", "push": {"token": FCM_TOKEN},
     "subscription": {"area": dict(AREA),
                      "quiet_hours": {"start": "22:00", "end": "07:00", "tz": "x" * 65}}},
    {"platform": "fcm", "push": {"token": FCM_TOKEN},
     "subscription": {"area": dict(AREA),
                      "quiet_hours": {"start": "22:00", "end": "07:00", "tz": "\u00e9t\u00e9"}}},
    {"platform": "fcm", "push": {"token": FCM_TOKEN},
     "subscription": {"area": dict(AREA), "group_ids": [str(uuid.uuid4())] * 101}},
    {"platform": "fcm", "push": {"token": "x" * 5000}, "subscription": {"area": dict(AREA)}},
    {"platform": "webpush", "push": {"endpoint": 5, "keys": {"p256dh": 1, "auth": []}},
     "subscription": {"area": dict(AREA)}},
    {"platform": "webpush", "push": {"endpoint": WEBPUSH["endpoint"], "keys": "k"},
     "subscription": {"area": dict(AREA)}},
    {"platform": "webhook", "push": {"url": "https://a..b/hook", "secret": WEBHOOK["secret"]},
     "subscription": {"area": dict(AREA)}},
    {"platform": "webhook", "push": {"url": "https:///hook", "secret": WEBHOOK["secret"]},
     "subscription": {"area": dict(AREA)}},
    {"platform": "webhook", "push": {"url": "https://[zz]/hook", "secret": WEBHOOK["secret"]},
     "subscription": {"area": dict(AREA)}},
    {"platform": "webhook", "push": {"url": WEBHOOK["url"], "secret": {"s": 1}},
     "subscription": {"area": dict(AREA)}},
]


@pytest.mark.parametrize("body", ODD_BODIES)
def test_odd_registrations_are_422_never_500(client, body):
    response = client.post("/v1/devices", json=body)
    assert_problem(response, 422)


@pytest.mark.parametrize(("data", "content_type", "status"), [
    ("{", "application/json", 400),
    ("[]", "application/json", 400),
    ("platform=fcm", "application/x-www-form-urlencoded", 415),
])
def test_a_malformed_registration_is_a_problem(client, data, content_type, status):
    response = client.post("/v1/devices", data=data, content_type=content_type)
    assert_problem(response, status)


# -- the write budget -----------------------------------------------------------------------
def test_registering_counts_against_the_write_budget(db):
    client = _app(db, writes="2 per minute").test_client()
    first = _register(client, "fcm")
    assert first.status_code == 201
    assert _register(client, "fcm", subscription={}).status_code == 422  # counted too
    limited = _register(client, "fcm")
    assert_problem(limited, 429)
    assert limited.headers["Retry-After"] == "60"
    assert "Retry-After" not in first.headers
    # Changing and removing spend the same budget; reading the device does not.
    device, headers = first.get_json(), _auth(first.get_json()["device_secret"])
    assert client.get(f"/v1/devices/{device['id']}", headers=headers).status_code == 200
    assert_problem(client.patch(f"/v1/devices/{device['id']}", headers=headers,
                                json={"push": {"token": "t"}}), 429)
    assert_problem(client.delete(f"/v1/devices/{device['id']}", headers=headers), 429)
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(Device)) == 1


# -- the delivery report --------------------------------------------------------------------
def test_the_delivery_report_is_for_admins_only(client, db, group):
    assert_problem(client.get("/v1/admin/delivery"), 401)
    assert_problem(client.get("/v1/admin/delivery", headers=_auth("bw_forged")), 401)
    assert_problem(client.get("/v1/admin/delivery",
                              headers=_token(db, "coordinator", group.id)), 403)
    assert_problem(client.get("/v1/admin/delivery", headers=_token(db, "member", group.id)), 403)
    device = _registered(client)
    assert_problem(client.get("/v1/admin/delivery", headers=_auth(device["device_secret"])),
                   401)
    response = client.get("/v1/admin/delivery", headers=_token(db, "admin"))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "private, no-store"


def test_the_delivery_report_counts_a_queued_delivery(client, db, group):
    admin = _token(db, "admin")
    empty = client.get("/v1/admin/delivery", headers=admin).get_json()
    assert empty == {
        "queue_depth": 0, "due_now": 0, "oldest_due_at": None, "oldest_due_age_s": None,
        "platforms": {name: {"sent": 0, "failed_attempts": 0, "dead": 0, "pending": 0}
                      for name in ("fcm", "webpush", "webhook")},
        "dead_letters": [], "inactive_devices": 0,
    }
    _registered(client, "webhook")
    alert = _post_alert(client, _token(db, "coordinator", group.id), group.id,
                        location={"lat": 47.615, "lon": -122.315})
    report = client.get("/v1/admin/delivery", headers=admin).get_json()
    assert report["queue_depth"] == 1
    assert report["due_now"] == 1
    assert report["platforms"]["webhook"] == {"sent": 0, "failed_attempts": 0, "dead": 0,
                                              "pending": 1}
    assert report["platforms"]["fcm"]["pending"] == report["platforms"]["webpush"]["pending"] \
        == 0
    assert RFC3339_UTC.match(report["oldest_due_at"])
    assert report["oldest_due_at"] >= alert["sent_at"][:19]  # due when it was posted
    assert isinstance(report["oldest_due_age_s"], int | float)
    assert report["oldest_due_age_s"] >= 0
    assert report["dead_letters"] == [] and report["inactive_devices"] == 0


def test_the_delivery_report_counts_inactive_devices_and_dead_letters(client, db, group):
    device = _registered(client, "webhook")
    _post_alert(client, _token(db, "coordinator", group.id), group.id)
    with db.write() as session:
        session.get(Device, device["id"]).active = False
        row = session.scalars(select(Delivery)).one()
        row.state, row.attempts, row.last_error = "dead", 8, "HTTP 500"
        row.finished_at = row.due_at
        alert_id, delivery_id = row.alert_id, row.id
    report = client.get("/v1/admin/delivery", headers=_token(db, "admin")).get_json()
    assert report["inactive_devices"] == 1
    assert report["queue_depth"] == 0
    assert report["platforms"]["webhook"] == {"sent": 0, "failed_attempts": 8, "dead": 1,
                                              "pending": 0}
    [dead] = report["dead_letters"]
    assert dead["id"] == delivery_id
    assert (dead["alert_id"], dead["device_id"], dead["kind"], dead["platform"]) == (
        alert_id, device["id"], "alert", "webhook")
    assert (dead["attempts"], dead["last_error"]) == (8, "HTTP 500")
    assert dead["idempotency_key"] == f"{alert_id}:{device['id']}:alert"
    assert RFC3339_UTC.match(dead["dead_at"])
    _assert_no_push_address(client.get("/v1/admin/delivery", headers=_token(db, "admin")))


# -- the OpenAPI document -------------------------------------------------------------------
def test_the_openapi_document_describes_devices_and_the_delivery_report(client):
    document = client.get("/v1/openapi.json").get_json()
    paths = document["paths"]

    def codes(path: str, method: str) -> set[str]:
        return set(paths[path][method]["responses"])

    assert {"201", "422", "429"} <= codes("/devices", "post")
    assert {"200", "401"} <= codes("/devices/{device_id}", "get")
    assert {"200", "401", "422", "429"} <= codes("/devices/{device_id}", "patch")
    assert {"204", "401", "429"} <= codes("/devices/{device_id}", "delete")
    assert {"200", "401", "403"} <= codes("/admin/delivery", "get")
    for method in ("get", "patch", "delete"):
        assert paths["/devices/{device_id}"][method]["security"] == [{"bearer": []}]
    definitions = document["definitions"]
    registered = paths["/devices"]["post"]["responses"]["201"]["schema"]["$ref"]
    assert registered == "#/definitions/DeviceRegistered"
    assert "device_secret" in definitions["DeviceRegistered"]["properties"]
    device = paths["/devices/{device_id}"]["get"]["responses"]["200"]["schema"]["$ref"]
    assert device == "#/definitions/Device"
    assert set(definitions["Device"]["properties"]) == {
        "id", "platform", "subscription", "active", "created_at"}
    assert "push" not in definitions["Device"]["properties"]
    assert "device_secret" not in definitions["Device"]["properties"]
    assert set(definitions["DeviceCreate"]["required"]) == {"platform", "push", "subscription"}
    report = paths["/admin/delivery"]["get"]["responses"]["200"]["schema"]["$ref"]
    assert set(definitions[report.rsplit("/", 1)[1]]["properties"]) == {
        "queue_depth", "due_now", "oldest_due_at", "oldest_due_age_s", "platforms",
        "dead_letters", "inactive_devices"}


def test_a_new_push_address_is_checked_outside_the_write_transaction(client, db, monkeypatch):
    """The url check looks the host up in DNS, which can take seconds: meanwhile no write lock
    may be held (on SQLite the write transaction is the whole database's only writer)."""
    from blockwatch.delivery import devices as device_services

    device = _registered(client)
    real_check, seen = device_services.check_webhook_url, []

    def check_while_others_write(url: str, *, allow_private: bool):
        if db.dialect == "sqlite":  # raises "database is locked" while a writer holds it
            other = sqlite3.connect(db.engine.url.database, timeout=0, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")
                other.execute("ROLLBACK")
            finally:
                other.close()
        else:  # raises while a transaction holds the device's row lock
            with db.engine.connect() as other:
                other.execute(select(Device.id).where(Device.id == device["id"])
                              .with_for_update(nowait=True))
                other.rollback()
        seen.append(url)
        return real_check(url, allow_private=allow_private)

    monkeypatch.setattr(device_services, "check_webhook_url", check_while_others_write)
    new = {"url": "https://93.184.216.34/moved/hook", "secret": WEBHOOK["secret"]}
    response = client.patch(f"/v1/devices/{device['id']}", json={"push": new},
                            headers=_auth(device["device_secret"]))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert seen == [new["url"]]
    # A wrong secret is still a 401 before the address is looked at.
    wrong = client.patch(f"/v1/devices/{device['id']}", json={"push": new},
                         headers=_auth("bwd_wrong"))
    assert_problem(wrong, 401)
    assert seen == [new["url"]]
