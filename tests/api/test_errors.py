"""Every error a client can cause is answered as ``application/problem+json`` with ``type``,
``title``, ``status`` and ``detail`` (and ``errors`` naming the field for a 422), never a 500
(API.md, Conventions)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from api import MAX_BODY_BYTES
from blockwatch import accounts
from tests.api.helpers import (
    app_over,
    assert_problem,
    box,
    fresh_database,
    make_alert,
    make_group,
    polygon,
)

UNKNOWN = "6f1c9a53-2a4e-4f5e-9d7c-1b4c6a0e9b21"


# Error paths hardly touch the data, so one app per database kind serves the whole module
# (hundreds of cases; a fresh database each would take minutes). This overrides the per-test
# ``app`` of tests/api/conftest.py; ``client``, ``db`` and ``tokens`` follow it.
@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def app(request, tmp_path_factory):
    database = fresh_database(request, tmp_path_factory, request.param)
    application = app_over(database)
    application.logger.disabled = True  # a 500 would fail its test; no need for the log
    yield application
    database.dispose()


@pytest.fixture(scope="module")
def world(app):
    """A group with an alert in it (so lists have something to page) and an admin."""
    db = app.extensions["blockwatch.db"]
    group = make_group(db, "Pike/Pine", box(-122.33, 47.60, -122.32, 47.61))
    token = accounts.create_token(db, "Errors admin", "admin")
    make_alert(db, accounts.authenticate(db, token), group.id, location=(-122.325, 47.605))
    return {"group": group, "admin": {"Authorization": f"Bearer {token}"}}


def _token(position) -> str:
    """A well-formed ``next`` token (base64url JSON) this server never gave out."""
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def _call(client, world, method, path, headers=None, auth=False, **kwargs):
    headers = dict(headers or {})
    if auth:
        headers.update(world["admin"])
    url = path.format(group=world["group"].id)
    return client.open(url, method=method, headers=headers, **kwargs)


# -- query strings: (path, query, field) -> 422 naming the field ----------------------------
NEARBY_GROUPS = "/v1/groups/nearby"
NEARBY_ALERTS = "/v1/alerts/nearby"
AT = "/v1/groups/at"
BBOX = "/v1/groups"
GROUP_ALERTS = "/v1/groups/{group}/alerts"
OK_POINT = "lat=47.61&lon=-122.33"
NAMES = {NEARBY_GROUPS: "groups-nearby", NEARBY_ALERTS: "alerts-nearby", AT: "groups-at",
         BBOX: "groups-bbox", GROUP_ALERTS: "group-alerts"}

QUERY_ERRORS = [
    # NaN, infinities, out of range, not numbers, missing: for every point query
    *[pytest.param(path, query, field, id=f"{NAMES[path]}-{query}")
      for path in (NEARBY_GROUPS, NEARBY_ALERTS, AT)
      for query, field in (
          ("lat=nan&lon=-122.33", "lat"), ("lat=NaN&lon=-122.33", "lat"),
          ("lat=inf&lon=-122.33", "lat"), ("lat=-Infinity&lon=-122.33", "lat"),
          ("lat=47.61&lon=nan", "lon"), ("lat=47.61&lon=inf", "lon"),
          ("lat=90.0001&lon=-122.33", "lat"), ("lat=-91&lon=-122.33", "lat"),
          ("lat=47.61&lon=180.5", "lon"), ("lat=47.61&lon=-181", "lon"),
          ("lat=1e400&lon=-122.33", "lat"), ("lat=north&lon=-122.33", "lat"),
          ("lat=&lon=-122.33", "lat"), ("lon=-122.33", "lat"), ("lat=47.61", "lon"),
      )],
    # radius_m <= 0 or > 50000
    *[pytest.param(path, f"{OK_POINT}&radius_m={radius}", "radius_m",
                   id=f"{NAMES[path]}-radius_m={radius}")
      for path in (NEARBY_GROUPS, NEARBY_ALERTS)
      for radius in ("0", "-1", "-0.0", "50000.001", "50001", "1e9", "nan", "inf", "wide")],
    # limit out of range or not a whole number
    *[pytest.param(path, f"{query}&limit={limit}", "limit",
                   id=f"{NAMES[path]}-limit={limit}")
      for path, query, maximum in (
          (NEARBY_GROUPS, OK_POINT, 100), (NEARBY_ALERTS, OK_POINT, 100),
          (BBOX, "bbox=-123,47,-122,48", 5000), (GROUP_ALERTS, "status=all", 100))
      for limit in ("0", "-1", str(maximum + 1), "1.5", "ten", "")],
    # malformed bbox
    *[pytest.param(BBOX, f"bbox={bbox}", "bbox", id=f"bbox={bbox}")
      for bbox in ("-123,47,-122", "-123,47", "-123,47,-122,48,1", "a,b,c,d",
                   "-123,47,-122,north", "-122,48,-121,47", "nan,47,-122,48",
                   "-123,47,inf,48", "-123,-91,-122,48", "-123,47,-122,95",
                   "-190,47,-122,48", "", "-123;47;-122;48")],
    pytest.param(BBOX, "", "bbox", id="bbox-missing"),
    pytest.param(BBOX, "bbox=-123,47,-122,48&simplify_m=-1", "simplify_m", id="simplify_m<0"),
    pytest.param(BBOX, "bbox=-123,47,-122,48&simplify_m=1001", "simplify_m",
                 id="simplify_m>1000"),
    pytest.param(BBOX, "bbox=-123,47,-122,48&simplify_m=nan", "simplify_m",
                 id="simplify_m-nan"),
    pytest.param(NEARBY_ALERTS, f"{OK_POINT}&category=arson", "category", id="category"),
    pytest.param(NEARBY_ALERTS, f"{OK_POINT}&since=yesterday", "since", id="since-garbage"),
    pytest.param(NEARBY_ALERTS, f"{OK_POINT}&since=2026-11-23T18:04:05", "since",
                 id="since-without-zone"),
    pytest.param(GROUP_ALERTS, "status=cancelled", "status", id="status"),
    pytest.param("/v1/tips", "category=cooking", "category", id="tips-category"),
    pytest.param("/v1/tips", "lang=%25%25%25", "lang", id="tips-lang"),
]


@pytest.mark.parametrize(("path", "query", "field"), QUERY_ERRORS)
def test_a_query_value_out_of_range_is_422_naming_it(client, world, path, query, field):
    response = _call(client, world, "GET", f"{path}?{query}")
    assert_problem(response, 422, field)


# -- next tokens ----------------------------------------------------------------------------
BAD_TOKENS = [
    pytest.param("%%%", id="not-base64"),
    pytest.param("!!!!", id="punctuation"),
    pytest.param("bm90IGpzb24", id="base64-of-text"),
    pytest.param(_token({"after": 1}), id="json-object"),
    pytest.param(_token([]), id="empty-list"),
    pytest.param(_token([1, 2, 3]), id="wrong-arity"),
    pytest.param(_token(["a", 1]), id="swapped-types"),
    pytest.param(_token([None, None]), id="nulls"),
    pytest.param(_token([{"x": 1}, [1]]), id="nested"),
    pytest.param(_token(["2026-01-01T00:00:00", None]), id="time-and-null"),
    pytest.param("A" * 5000, id="long"),
]


@pytest.mark.parametrize("path", [
    f"{NEARBY_GROUPS}?{OK_POINT}&radius_m=50000", f"{NEARBY_ALERTS}?{OK_POINT}&radius_m=50000",
    f"{BBOX}?bbox=-180,-90,180,90", f"{GROUP_ALERTS}?status=all",
], ids=["groups-nearby", "alerts-nearby", "bbox", "group-alerts"])
@pytest.mark.parametrize("token", BAD_TOKENS)
def test_a_bad_next_token_is_422(client, world, path, token):
    first = _call(client, world, "GET", path)
    assert first.status_code == 200 and (first.get_json().get("items")
                                         or first.get_json().get("features"))
    response = _call(client, world, "GET", f"{path}&next={token}")
    assert_problem(response, 422, "next")


# -- bodies ---------------------------------------------------------------------------------
#: (method, path, a valid body) of every write that takes a JSON body.
BODY_WRITES = [
    pytest.param("POST", "/v1/groups",
                 {"name": "New", "boundary": polygon(-122.30, 47.62)}, id="create-group"),
    pytest.param("PATCH", "/v1/groups/{group}", {"name": "Renamed"}, id="edit-group"),
    pytest.param("POST", "/v1/groups/{group}/alerts",
                 {"category": "theft", "title": "Bike taken"}, id="post-alert"),
]


def _write(client, world, method, path, **kwargs):
    headers = {"If-Match": f'"{_version(client, world)}"'} if method == "PATCH" else {}
    return _call(client, world, method, path, headers=headers, auth=True, **kwargs)


def _version(client, world):
    return client.get(f"/v1/groups/{world['group'].id}").get_json()["version"]


@pytest.mark.parametrize(("method", "path", "valid"), BODY_WRITES)
def test_the_valid_bodies_here_are_accepted(client, world, method, path, valid):
    """The baseline for the error cases below: only what each case breaks is wrong."""
    response = _write(client, world, method, path, json=valid)
    assert response.status_code in (200, 201), response.get_data(as_text=True)


@pytest.mark.parametrize(("method", "path", "valid"), BODY_WRITES)
@pytest.mark.parametrize("raw", [
    pytest.param("{", id="truncated"), pytest.param("{'name': 1}", id="single-quotes"),
    pytest.param('{"name": "x",}', id="trailing-comma"), pytest.param("", id="empty"),
    pytest.param(b"\xff\xfe\x00", id="not-utf8"),
])
def test_a_malformed_json_body_is_400(client, world, method, path, valid, raw):
    response = _write(client, world, method, path, data=raw, content_type="application/json")
    assert_problem(response, 400)


@pytest.mark.parametrize(("method", "path", "valid"), BODY_WRITES)
@pytest.mark.parametrize("document", ["[]", '["name"]', '"name"', "42", "null", "true"])
def test_a_json_body_that_is_not_an_object_is_400(client, world, method, path, valid,
                                                   document):
    response = _write(client, world, method, path, data=document,
                      content_type="application/json")
    assert_problem(response, 400)


@pytest.mark.parametrize(("method", "path", "valid"), BODY_WRITES)
@pytest.mark.parametrize("content_type", [
    "text/plain", "application/x-www-form-urlencoded", "application/xml", None,
])
def test_a_body_that_is_not_json_is_415(client, world, method, path, valid, content_type):
    kwargs = {"data": json.dumps(valid)}
    if content_type is not None:
        kwargs["content_type"] = content_type
    response = _write(client, world, method, path, **kwargs)
    assert_problem(response, 415)


@pytest.mark.parametrize(("method", "path", "valid"), BODY_WRITES)
@pytest.mark.parametrize("field", ["bogus", "Name", "created_at", "home_address"])
def test_an_unknown_body_field_is_422_naming_it(client, world, method, path, valid, field):
    response = _write(client, world, method, path, json={**valid, field: "x"})
    assert_problem(response, 422, field)


@pytest.mark.parametrize(("method", "path", "valid"), BODY_WRITES)
def test_an_oversize_body_is_413(client, world, method, path, valid):
    document = {**valid, "description": "x" * (MAX_BODY_BYTES + 1)}
    response = _write(client, world, method, path, json=document)
    assert_problem(response, 413)


# field errors in alert bodies: (body changes, field)
ALERT_FIELD_ERRORS = [
    pytest.param({"category": "arson"}, "category", id="category"),
    pytest.param({"severity": "Severe"}, "severity", id="severity-case"),
    pytest.param({"urgency": "now"}, "urgency", id="urgency"),
    pytest.param({"certainty": 1}, "certainty", id="certainty-number"),
    pytest.param({"title": ""}, "title", id="title-empty"),
    pytest.param({"title": "   "}, "title", id="title-blank"),
    pytest.param({"title": "x" * 121}, "title", id="title-121"),
    pytest.param({"body": "x" * 4001}, "body", id="body-4001"),
    pytest.param({"location": {"lat": 91, "lon": 0}}, "location.lat", id="location-lat"),
    pytest.param({"location": {"lat": 0, "lon": -181}}, "location.lon", id="location-lon"),
    pytest.param({"location": {"lat": 0}}, "location.lon", id="location-missing-lon"),
    pytest.param({"location": [0, 0]}, "location", id="location-list"),
    pytest.param({"location": {"lat": 0, "lon": 0, "alt": 3}}, "location.alt",
                 id="location-unknown-field"),
    pytest.param({"id": "not-a-uuid"}, "id", id="id"),
    pytest.param({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at", id="expires-past"),
    pytest.param({"expires_at": "PAST"}, "expires_at", id="expires-garbage"),
    pytest.param({"expires_at": "2099-01-01T00:00:00"}, "expires_at", id="expires-no-zone"),
    pytest.param({"expires_at": "2099-01-01T00:00:00Z"}, "expires_at", id="expires-far"),
]


@pytest.mark.parametrize(("changes", "field"), ALERT_FIELD_ERRORS)
def test_an_invalid_alert_field_is_422_naming_it(client, world, changes, field):
    body = {"category": "theft", "title": "Bike taken", **changes}
    response = _write(client, world, "POST", "/v1/groups/{group}/alerts", json=body)
    assert_problem(response, 422, field)


def test_an_expiry_just_past_is_422(client, world):
    just_past = (datetime.now(UTC) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"category": "theft", "title": "Bike taken", "expires_at": just_past}
    response = _write(client, world, "POST", "/v1/groups/{group}/alerts", json=body)
    assert_problem(response, 422, "expires_at")


def test_a_nan_location_in_a_body_is_422(client, world):
    raw = '{"category": "theft", "title": "t", "location": {"lat": NaN, "lon": Infinity}}'
    response = _write(client, world, "POST", "/v1/groups/{group}/alerts", data=raw,
                      content_type="application/json")
    body = assert_problem(response, 422)
    assert {"location.lat", "location.lon"} & set(body["errors"])


GROUP_FIELD_ERRORS = [
    pytest.param({"name": ""}, "name", id="name-empty"),
    pytest.param({"name": "x" * 201}, "name", id="name-201"),
    pytest.param({"name": 5}, "name", id="name-number"),
    pytest.param({"languages": "en"}, "languages", id="languages-string"),
    pytest.param({"languages": ["!!"]}, "languages", id="languages-tag"),
    pytest.param({"boundary": "POLYGON"}, "boundary", id="boundary-string"),
    pytest.param({"boundary": None}, "boundary", id="boundary-null"),
    pytest.param({"description": "x" * 4001}, "description", id="description-4001"),
]


@pytest.mark.parametrize(("changes", "field"), GROUP_FIELD_ERRORS)
@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_an_invalid_group_field_is_422_naming_it(client, world, method, changes, field):
    if method == "POST":
        body = {"name": "New", "boundary": polygon(-122.30, 47.62), **changes}
        response = _write(client, world, "POST", "/v1/groups", json=body)
    else:
        response = _write(client, world, "PATCH", "/v1/groups/{group}", json=changes)
    assert_problem(response, 422, field)


def test_an_empty_patch_is_422(client, world):
    response = _write(client, world, "PATCH", "/v1/groups/{group}", json={})
    assert_problem(response, 422)


@pytest.mark.parametrize("if_match", ["42", "abc", '"abc"', "W/", '""'])
def test_a_malformed_if_match_is_a_problem(client, world, if_match):
    response = _call(client, world, "PATCH", "/v1/groups/{group}", auth=True,
                     headers={"If-Match": if_match}, json={"name": "X"})
    assert response.status_code in (400, 412), response.get_data(as_text=True)
    assert_problem(response, response.status_code)


# -- paths and methods ----------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path", "auth"), [
    ("GET", "/v1/groups/not-a-uuid", False),
    ("GET", "/v1/groups/not-a-uuid/alerts", False),
    ("GET", "/v1/alerts/not-a-uuid", False),
    ("GET", "/v1/tips/not-a-uuid", False),
    ("GET", "/v1/groups/'%20OR%201=1", False),
    ("GET", "/v1/alerts/%00", False),
    ("GET", f"/v1/alerts/{'9' * 500}", False),
    ("POST", "/v1/alerts/not-a-uuid/cancel", True),
    ("POST", "/v1/groups/not-a-uuid/alerts", True),
    ("PATCH", "/v1/groups/not-a-uuid", True),
])
def test_an_invalid_uuid_in_a_path_is_404_or_422(client, world, method, path, auth):
    kwargs = {}
    if method == "POST" and path.endswith("/alerts"):
        kwargs["json"] = {"category": "theft", "title": "t"}
    if method == "PATCH":
        kwargs = {"json": {"name": "X"}, "headers": {"If-Match": '"1"'}}
    response = _call(client, world, method, path, auth=auth, **kwargs)
    assert response.status_code in (404, 422), response.get_data(as_text=True)
    assert_problem(response, response.status_code)


@pytest.mark.parametrize("path", [
    "/nope", "/v1/", "/v1/nope", "/v1/groups/nearby/extra",
    f"/v1/groups/{UNKNOWN}/alerts/extra", "/v2/groups", "/v1/sync/pull/x",
])
def test_an_unknown_path_is_a_404_problem(client, path):
    assert_problem(client.get(path), 404)


@pytest.mark.parametrize(("method", "path"), [
    ("DELETE", "/v1/groups/{group}"),
    ("PUT", "/v1/groups/{group}"),
    ("PUT", "/v1/groups"),
    ("DELETE", "/v1/groups"),
    ("POST", "/v1/groups/nearby"),
    ("POST", "/v1/groups/at"),
    ("PATCH", "/v1/alerts/nearby"),
    ("GET", f"/v1/alerts/{UNKNOWN}/cancel"),
    ("DELETE", f"/v1/alerts/{UNKNOWN}"),
    ("POST", "/v1/tips"),
    ("POST", "/v1/health"),
])
def test_a_wrong_method_is_a_405_problem_with_allow(client, world, method, path):
    response = _call(client, world, method, path)
    assert_problem(response, 405)
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert method not in allowed
    assert allowed & {"GET", "POST", "PATCH"}


def test_an_unknown_group_in_the_path_of_a_read_is_a_404_problem(client):
    assert_problem(client.get(f"/v1/groups/{UNKNOWN}"), 404)
    assert_problem(client.get(f"/v1/groups/{UNKNOWN}/alerts"), 404)
    assert_problem(client.get(f"/v1/alerts/{UNKNOWN}"), 404)
    assert_problem(client.get(f"/v1/tips/{UNKNOWN}"), 404)


# -- bugs: client input that still answers 500 -----------------------------------------------
TEXT_FIELDS = [
    pytest.param("POST", "/v1/groups", {"boundary": polygon(-122.30, 47.62)}, "name",
                 id="group-name"),
    pytest.param("POST", "/v1/groups", {"name": "G", "boundary": polygon(-122.30, 47.62)},
                 "description", id="group-description"),
    pytest.param("PATCH", "/v1/groups/{group}", {}, "meeting_info", id="edit-meeting-info"),
    pytest.param("POST", "/v1/groups/{group}/alerts", {"category": "theft"}, "title",
                 id="alert-title"),
    pytest.param("POST", "/v1/groups/{group}/alerts", {"category": "theft", "title": "t"},
                 "body", id="alert-body"),
]


def _with_text(valid: dict, field: str, spelled: bytes) -> bytes:
    """The JSON body with ``field`` set to a string spelled as the raw bytes ``spelled``."""
    document = json.dumps({**valid, field: "PLACEHOLDER"}).encode()
    return document.replace(b'"PLACEHOLDER"', b'"' + spelled + b'"')


@pytest.mark.parametrize("spelled", [
    pytest.param(b"a\\ud800b", id="escaped"),
    pytest.param(b"a\xed\xa0\x80b", id="utf8-bytes"),  # json.loads decodes with surrogatepass
])
@pytest.mark.parametrize(("method", "path", "valid", "field"), TEXT_FIELDS)
def test_a_lone_surrogate_in_a_text_field_is_not_a_500(client, world, method, path, valid,
                                                        field, spelled):
    raw = _with_text(valid, field, spelled)
    response = _write(client, world, method, path, data=raw, content_type="application/json")
    assert response.status_code in (400, 422), response.get_data(as_text=True)
    assert_problem(response, response.status_code)


@pytest.mark.parametrize(("method", "path", "valid", "field"), TEXT_FIELDS)
def test_a_nul_character_in_a_text_field_is_422_on_both_databases(client, world, method, path,
                                                                   valid, field):
    raw = _with_text(valid, field, b"a\\u0000b")
    response = _write(client, world, method, path, data=raw, content_type="application/json")
    assert response.status_code == 422, response.get_data(as_text=True)
    assert_problem(response, 422)


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
@pytest.mark.parametrize("where", ["since", "expires_at"])
def test_a_time_beyond_the_calendar_in_utc_is_422(client, world, where, moment):
    if where == "since":
        response = _call(client, world, "GET", NEARBY_ALERTS,
                         query_string={"lat": 47.605, "lon": -122.325, "since": moment})
    else:
        response = _write(client, world, "POST", "/v1/groups/{group}/alerts",
                          json={"category": "theft", "title": "t", "expires_at": moment})
    assert_problem(response, 422, where)


@pytest.mark.parametrize(("method", "path", "valid"), BODY_WRITES)
def test_a_deeply_nested_json_body_is_400(client, world, method, path, valid):
    raw = '{"name": ' + "[" * 5000 + "]" * 5000 + "}"
    response = _write(client, world, method, path, data=raw, content_type="application/json")
    assert_problem(response, 400)


def test_too_many_writes_are_429_with_retry_after(database_url):
    from api import create_app as make_app
    from blockwatch.config import Settings as BwSettings
    from blockwatch.db import Database as BwDatabase

    database = BwDatabase(database_url, BwSettings(database_url=database_url))
    limited = make_app({"database": database, "BLOCKWATCH_RATE_LIMIT_WRITES": "3 per minute"})
    client = limited.test_client()
    answers = [client.post("/v1/groups", json={}) for _ in range(5)]
    assert [a.status_code for a in answers] == [401, 401, 401, 429, 429]
    assert_problem(answers[-1], 429)
    assert answers[-1].headers["Retry-After"] == "60"
    assert "Retry-After" not in answers[0].headers
    assert client.get("/v1/health").status_code == 200  # reads are not limited
    # Invented tokens do not buy a fresh budget: they count against the address.
    forged = client.post("/v1/groups", json={}, headers={"Authorization": "Bearer bw_forged"})
    assert forged.status_code == 429
    database.dispose()


def test_the_write_budget_is_shared_by_every_endpoint_and_kept_per_account(database_url):
    from api import create_app as make_app
    from blockwatch import accounts as bw_accounts
    from blockwatch.config import Settings as BwSettings
    from blockwatch.db import Database as BwDatabase

    database = BwDatabase(database_url, BwSettings(database_url=database_url))
    limited = make_app({"database": database, "BLOCKWATCH_RATE_LIMIT_WRITES": "2 per minute"})
    client = limited.test_client()
    admin = {"Authorization": "Bearer " + bw_accounts.create_token(database, "Lim", "admin")}
    other = {"Authorization": "Bearer " + bw_accounts.create_token(database, "Lim2", "admin")}
    first = client.post("/v1/groups", json={}, headers=admin)
    second = client.post("/v1/alerts/00000000-0000-0000-0000-000000000000/cancel",
                         headers=admin)
    third = client.patch("/v1/groups/00000000-0000-0000-0000-000000000000", json={},
                         headers=admin)
    assert (first.status_code, second.status_code, third.status_code) == (422, 404, 429)
    assert client.post("/v1/groups", json={}, headers=other).status_code == 422
    database.dispose()


@pytest.mark.parametrize("position", [
    ["0001-01-01T00:00:00+14:00", "x"], ["9999-12-31T23:59:59-14:00", "x"],
    ["2024-01-01T00:00:00+00:00", "\u0000"], ["2024-01-01T00:00:00+00:00", "\ud800"],
    ["2024-01-01T00:00:00+00:00", "not-a-uuid"],
])
def test_forged_next_tokens_on_group_alerts_are_422(client, tokens, db, position):
    import base64
    import json as std_json

    import shapely as shp

    from blockwatch.domain import OPERATOR as OP
    from blockwatch.domain import GroupDraft as Draft
    from blockwatch.groups import create_group

    group = create_group(db, OP, Draft(name="N", boundary=shp.box(-122.3, 47.6, -122.29, 47.61)))
    raw = std_json.dumps(position).encode("utf-8", "surrogatepass")
    token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    for url in (f"/v1/groups/{group.id}/alerts?status=all&next={token}",
                f"/v1/alerts/nearby?lat=47.6&lon=-122.3&next={token}"):
        assert_problem(client.get(url), 422, "next")


@pytest.mark.parametrize("tag", ['"\u00b2"', '"1' + "0" * 5000 + '"', 'W/"1"', '"-1"'])
def test_odd_if_match_values_are_400(client, tokens, db, tag):
    import shapely as shp

    from blockwatch.domain import OPERATOR as OP
    from blockwatch.domain import GroupDraft as Draft
    from blockwatch.groups import create_group

    group = create_group(db, OP, Draft(name="M", boundary=shp.box(-122.3, 47.6, -122.29, 47.61)))
    headers = {**tokens("admin"), "If-Match": tag.encode("latin-1", "replace").decode("latin-1")}
    response = client.patch(f"/v1/groups/{group.id}", json={"name": "x"}, headers=headers)
    assert_problem(response, 400)


def test_an_oversize_chunked_body_is_413(client, tokens):
    import io

    body = b'{"name": "' + b"x" * 1_200_000 + b'"}'
    # A chunked body has no Content-Length: the server reads it up to the limit and stops.
    response = client.open(
        "/v1/groups", method="POST", input_stream=io.BytesIO(body),
        headers={**tokens("admin"), "Transfer-Encoding": "chunked"},
        content_type="application/json", environ_overrides={"wsgi.input_terminated": True},
    )
    assert_problem(response, 413)


def test_a_tip_id_that_is_not_a_uuid_is_404(client):
    assert_problem(client.get("/v1/tips/not-a-uuid"), 404)
