"""``/v1/alerts`` and ``/v1/groups/{id}/alerts`` (API.md, Alerts): posting (idempotent on a
client id), reading near a point and by group, one alert as JSON or CAP 1.2, cancelling, and
the privacy rule for public readers."""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
import shapely
import xmlschema

import geo
from blockwatch import accounts
from blockwatch.domain import PUBLIC_LOCATION_CELL_M
from geo.distance import metres_per_degree
from tests.api.helpers import (
    RFC3339_UTC,
    assert_problem,
    box,
    etag,
    make_alert,
    make_group,
)

CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"
CAP_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")
# The group's block and a point inside it, not on the public grid (so snapping moves it).
BLOCK = (-122.33, 47.60, -122.30, 47.63)
SPOT = (-122.31512, 47.61537)


@pytest.fixture(scope="module")
def cap_schema(shared_data):
    return xmlschema.XMLSchema(str(shared_data / "cap" / "CAP-v1.2.xsd"))


@pytest.fixture
def group(db):
    return make_group(db, "Capitol Hill", box(*BLOCK))


@pytest.fixture
def people(db, group, tokens):
    """Headers of everyone who reads or writes, and the coordinator as a service actor."""
    other = make_group(db, "Elsewhere", box(-122.40, 47.50, -122.39, 47.51))
    made = {
        "anonymous": {},
        "member": tokens("member", group.id),
        "coordinator": tokens("coordinator", group.id),
        "other_coordinator": tokens("coordinator", other.id),
        "admin": tokens("admin"),
    }
    token = made["coordinator"]["Authorization"].removeprefix("Bearer ")
    made["author"] = accounts.authenticate(db, token)
    return made


def _post(client, group_id, headers, **fields):
    payload = {"category": "burglary", "title": "Break-in on 15th Ave E", **fields}
    return client.post(f"/v1/groups/{group_id}/alerts", json=payload, headers=headers)


def _nearby(client, lon, lat, headers=None, **params):
    response = client.get("/v1/alerts/nearby", query_string={"lat": lat, "lon": lon, **params},
                          headers=headers or {})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _offset(lon, lat, east_m, north_m):
    """The point east_m east and north_m north of (lon, lat) (flat-earth, fine over 1 km)."""
    m_lon, m_lat = metres_per_degree(lat)
    return lon + east_m / m_lon, lat + north_m / m_lat


# -- posting --------------------------------------------------------------------------------
def test_post_creates_an_alert(client, group, people):
    response = _post(client, group.id, people["coordinator"], severity="severe",
                     urgency="immediate", certainty="observed", body="Back door forced.",
                     location={"lat": SPOT[1], "lon": SPOT[0]})
    assert response.status_code == 201, response.get_data(as_text=True)
    alert = response.get_json()
    assert response.headers["Location"].endswith(f"/v1/alerts/{alert['id']}")
    assert response.headers["ETag"] == etag(alert["version"])
    assert uuid.UUID(alert["id"])
    assert alert["group_id"] == group.id
    assert (alert["category"], alert["severity"], alert["urgency"], alert["certainty"]) == (
        "burglary", "severe", "immediate", "observed")
    assert (alert["title"], alert["body"], alert["status"]) == (
        "Break-in on 15th Ave E", "Back door forced.", "active")
    assert alert["location"] == {"lat": SPOT[1], "lon": SPOT[0]}
    assert alert["author"]["display_name"] and alert["author"]["id"]
    assert RFC3339_UTC.match(alert["sent_at"]) and RFC3339_UTC.match(alert["expires_at"])
    sent = datetime.fromisoformat(alert["sent_at"])
    expires = datetime.fromisoformat(alert["expires_at"])
    assert expires - sent == timedelta(hours=24)  # the default lifetime
    fetched = client.get(response.headers["Location"], headers=people["coordinator"])
    assert fetched.get_json() == alert


def test_post_keeps_an_expiry_within_30_days(client, group, people):
    expires = (datetime.now(UTC) + timedelta(days=29)).replace(microsecond=0)
    response = _post(client, group.id, people["coordinator"],
                     expires_at=expires.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert response.status_code == 201
    assert datetime.fromisoformat(response.get_json()["expires_at"]) == expires
    too_late = (datetime.now(UTC) + timedelta(days=31)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert_problem(_post(client, group.id, people["coordinator"], expires_at=too_late), 422,
                   "expires_at")


def test_post_again_with_the_same_id_and_body_is_200_with_the_stored_alert(
    client, group, people
):
    alert_id = str(uuid.uuid4())
    fields = {"id": alert_id, "location": {"lat": SPOT[1], "lon": SPOT[0]}, "body": "x"}
    first = _post(client, group.id, people["coordinator"], **fields)
    assert first.status_code == 201
    again = _post(client, group.id, people["coordinator"], **fields)
    assert again.status_code == 200, again.get_data(as_text=True)
    assert again.get_json() == first.get_json()
    assert again.get_json()["id"] == alert_id
    listed = client.get(f"/v1/groups/{group.id}/alerts?status=all").get_json()["items"]
    assert [a["id"] for a in listed] == [alert_id]


def test_post_again_with_the_same_id_and_another_body_is_409(client, group, people):
    alert_id = str(uuid.uuid4())
    assert _post(client, group.id, people["coordinator"], id=alert_id).status_code == 201
    clash = _post(client, group.id, people["coordinator"], id=alert_id, title="Other title")
    assert_problem(clash, 409)
    stored = client.get(f"/v1/alerts/{alert_id}").get_json()
    assert stored["title"] == "Break-in on 15th Ave E"


def test_post_the_same_id_and_body_in_another_group_is_409(client, db, group, people):
    alert_id = str(uuid.uuid4())
    assert _post(client, group.id, people["admin"], id=alert_id).status_code == 201
    elsewhere = make_group(db, "Elsewhere too", box(-122.38, 47.50, -122.37, 47.51))
    assert_problem(_post(client, elsewhere.id, people["admin"], id=alert_id), 409)
    assert client.get(f"/v1/alerts/{alert_id}").get_json()["group_id"] == group.id


def test_post_in_an_unknown_group_is_404(client, people):
    response = _post(client, "6f1c9a53-2a4e-4f5e-9d7c-1b4c6a0e9b21", people["admin"])
    assert_problem(response, 404)


# -- nearby ---------------------------------------------------------------------------------
def test_nearby_is_newest_first_with_distances(client, db, group, people):
    now = datetime.now(UTC)
    made = [
        make_alert(db, people["author"], group.id, now=now - timedelta(minutes=minutes),
                   location=SPOT, title=f"{minutes} minutes ago")
        for minutes in (30, 10, 20)
    ]
    query = _offset(*SPOT, 0, -400)
    items = _nearby(client, *query, headers=people["member"])["items"]
    assert [a["title"] for a in items] == ["10 minutes ago", "20 minutes ago", "30 minutes ago"]
    assert {a["id"] for a in items} == {a.id for a in made}
    for item in items:
        assert item["distance_m"] == pytest.approx(geo.distance_m(*query, *SPOT), abs=1e-6)


def test_nearby_filters_by_category_and_since(client, db, group, people):
    now = datetime.now(UTC)
    make_alert(db, people["author"], group.id, now=now - timedelta(hours=3), location=SPOT,
               category="fire", title="old fire")
    make_alert(db, people["author"], group.id, now=now - timedelta(hours=1), location=SPOT,
               category="fire", title="new fire")
    make_alert(db, people["author"], group.id, now=now - timedelta(minutes=5), location=SPOT,
               category="theft", title="new theft")
    titles = [a["title"] for a in _nearby(client, *SPOT, category="fire")["items"]]
    assert titles == ["new fire", "old fire"]
    since = (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    titles = [a["title"] for a in _nearby(client, *SPOT, since=since)["items"]]
    assert titles == ["new theft", "new fire"]
    titles = [a["title"] for a in _nearby(client, *SPOT, since=since, category="fire")["items"]]
    assert titles == ["new fire"]


def test_nearby_leaves_out_cancelled_expired_and_far_alerts(client, db, group, people):
    now = datetime.now(UTC)
    kept = make_alert(db, people["author"], group.id, location=SPOT, title="kept")
    cancelled = make_alert(db, people["author"], group.id, location=SPOT, title="cancelled")
    make_alert(db, people["author"], group.id, location=SPOT, title="expired",
               now=now - timedelta(days=2))
    make_alert(db, people["author"], group.id, location=_offset(*SPOT, 0, 3000), title="far")
    make_alert(db, people["author"], group.id, location=None, title="nowhere")
    response = client.post(f"/v1/alerts/{cancelled.id}/cancel", headers=people["coordinator"])
    assert response.status_code == 200
    items = _nearby(client, *SPOT, headers=people["admin"])["items"]
    assert [a["id"] for a in items] == [kept.id]


def test_nearby_pages_with_next_through_alerts_sent_at_the_same_time(client, db, group, people):
    sent = datetime.now(UTC) - timedelta(minutes=1)
    made = sorted(
        make_alert(db, people["author"], group.id, now=sent, location=SPOT).id for _ in range(5)
    )
    seen, params = [], {"limit": 2}
    while True:
        page = _nearby(client, *SPOT, **params)
        seen.extend(a["id"] for a in page["items"])
        if page["next"] is None:
            break
        params["next"] = page["next"]
        assert len(seen) <= 5
    assert seen == made  # same sent_at: by id


# -- the privacy rule -----------------------------------------------------------------------
@pytest.fixture
def placed(db, group, people):
    """An alert whose exact point lies ~85 m from its public (snapped) point: (alert, exact,
    snapped)."""
    snapped = geo.snap_to_grid_m(*SPOT, PUBLIC_LOCATION_CELL_M)
    exact = tuple(round(v, 7) for v in _offset(*snapped, 60, 60))
    assert geo.snap_to_grid_m(*exact, PUBLIC_LOCATION_CELL_M) == snapped
    alert = make_alert(db, people["author"], group.id, location=exact)
    return alert, exact, snapped


@pytest.mark.parametrize("who", ["anonymous", "other_coordinator"])
def test_the_public_sees_a_snapped_location(client, placed, people, who):
    alert, exact, _ = placed
    shown = client.get(f"/v1/alerts/{alert.id}", headers=people[who]).get_json()
    assert shown["location_precision"] == "approximate"
    point = (shown["location"]["lon"], shown["location"]["lat"])
    assert point != exact
    assert 0 < geo.distance_m(*exact, *point) <= 110  # about 150 m cells
    listed = client.get(f"/v1/groups/{alert.group_id}/alerts",
                        headers=people[who]).get_json()["items"]
    nearby = _nearby(client, *exact, headers=people[who])["items"]
    # the same public point everywhere, so asking again (or elsewhere) gives nothing away
    assert listed[0]["location"] == nearby[0]["location"] == shown["location"]
    assert listed[0]["location_precision"] == nearby[0]["location_precision"] == "approximate"


@pytest.mark.parametrize("who", ["member", "coordinator", "admin"])
def test_members_coordinators_and_admins_see_the_exact_location(client, placed, people, who):
    alert, exact, _ = placed
    shown = client.get(f"/v1/alerts/{alert.id}", headers=people[who]).get_json()
    assert shown["location_precision"] == "exact"
    assert shown["location"] == {"lon": exact[0], "lat": exact[1]}
    nearby = _nearby(client, *exact, headers=people[who])["items"]
    assert nearby[0]["location"] == shown["location"]
    assert nearby[0]["distance_m"] == pytest.approx(0, abs=1e-6)


def test_public_distance_is_measured_from_the_snapped_point(client, placed, people):
    alert, exact, _ = placed
    query = _offset(*exact, -250, 400)
    item = _nearby(client, *query)["items"][0]
    shown = (item["location"]["lon"], item["location"]["lat"])
    assert item["id"] == alert.id
    assert item["distance_m"] == pytest.approx(geo.distance_m(*query, *shown), abs=1e-6)
    assert item["distance_m"] != pytest.approx(geo.distance_m(*query, *exact), abs=1)
    member = _nearby(client, *query, headers=people["member"])["items"][0]
    assert member["distance_m"] == pytest.approx(geo.distance_m(*query, *exact), abs=1e-6)


def test_an_alert_whose_snapped_point_is_outside_the_radius_is_not_public(
    client, placed, people
):
    alert, exact, snapped = placed
    # ~600 m beyond the exact point, on the far side from the snapped one
    query = _offset(*exact, 424, 424)
    to_exact, to_snapped = geo.distance_m(*query, *exact), geo.distance_m(*query, *snapped)
    assert to_snapped - to_exact > 50
    radius = (to_exact + to_snapped) / 2
    public = _nearby(client, *query, radius_m=radius)["items"]
    assert alert.id not in [a["id"] for a in public]
    member = _nearby(client, *query, radius_m=radius, headers=people["member"])["items"]
    assert [a["id"] for a in member] == [alert.id]


def test_an_alert_whose_snapped_point_is_inside_the_radius_is_public(client, placed, people):
    alert, exact, snapped = placed
    # ~600 m beyond the snapped point, on the far side from the exact one
    query = _offset(*snapped, -424, -424)
    to_exact, to_snapped = geo.distance_m(*query, *exact), geo.distance_m(*query, *snapped)
    assert to_exact - to_snapped > 50
    radius = (to_exact + to_snapped) / 2
    public = _nearby(client, *query, radius_m=radius)["items"]
    assert [a["id"] for a in public] == [alert.id]
    assert public[0]["distance_m"] == pytest.approx(to_snapped, abs=1e-6)
    member = _nearby(client, *query, radius_m=radius, headers=people["member"])["items"]
    assert member == []


# -- one alert, group alerts, cancelling ----------------------------------------------------
def test_get_one_alert_is_json_with_its_version_as_etag(client, db, group, people):
    alert = make_alert(db, people["author"], group.id, location=SPOT)
    response = client.get(f"/v1/alerts/{alert.id}")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert response.headers["ETag"] == etag(body["version"]) == etag(alert.version)
    for field in ("id", "group_id", "category", "severity", "urgency", "certainty", "title",
                  "body", "location", "sent_at", "expires_at", "status", "author", "version"):
        assert field in body
    again = client.get(f"/v1/alerts/{alert.id}", headers={"If-None-Match": etag(alert.version)})
    assert again.status_code == 304 and again.data == b""


def test_get_an_unknown_alert_is_404(client):
    assert_problem(client.get("/v1/alerts/6f1c9a53-2a4e-4f5e-9d7c-1b4c6a0e9b21"), 404)


def test_group_alerts_are_active_by_default_or_all(client, db, group, people):
    now = datetime.now(UTC)
    old = make_alert(db, people["author"], group.id, title="expired",
                     now=now - timedelta(days=2))
    cancelled = make_alert(db, people["author"], group.id, title="cancelled",
                           now=now - timedelta(hours=2))
    active = make_alert(db, people["author"], group.id, title="active",
                        now=now - timedelta(hours=1))
    client.post(f"/v1/alerts/{cancelled.id}/cancel", headers=people["admin"])
    default = client.get(f"/v1/groups/{group.id}/alerts").get_json()
    assert [a["id"] for a in default["items"]] == [active.id]
    assert default["next"] is None
    explicit = client.get(f"/v1/groups/{group.id}/alerts?status=active").get_json()
    assert explicit == default
    everything = client.get(f"/v1/groups/{group.id}/alerts?status=all").get_json()["items"]
    assert [(a["id"], a["status"]) for a in everything] == [
        (active.id, "active"), (cancelled.id, "cancelled"), (old.id, "expired")]


def test_group_alerts_page_with_next(client, db, group, people):
    now = datetime.now(UTC)
    made = [make_alert(db, people["author"], group.id, now=now - timedelta(minutes=m)).id
            for m in (1, 2, 3, 4, 5)]
    seen, params = [], {"limit": 2, "status": "all"}
    while True:
        page = client.get(f"/v1/groups/{group.id}/alerts", query_string=params).get_json()
        seen.extend(a["id"] for a in page["items"])
        if page["next"] is None:
            break
        params["next"] = page["next"]
        assert len(seen) <= 5
    assert seen == made


def test_group_alerts_of_an_unknown_group_is_404(client):
    response = client.get("/v1/groups/6f1c9a53-2a4e-4f5e-9d7c-1b4c6a0e9b21/alerts")
    assert_problem(response, 404)


def test_cancel_makes_the_alert_cancelled_with_a_new_version(client, db, group, people):
    alert = make_alert(db, people["author"], group.id, location=SPOT)
    response = client.post(f"/v1/alerts/{alert.id}/cancel", headers=people["coordinator"])
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "cancelled"
    assert body["version"] != alert.version
    assert response.headers["ETag"] == etag(body["version"])
    assert client.get(f"/v1/alerts/{alert.id}").get_json()["status"] == "cancelled"
    again = client.post(f"/v1/alerts/{alert.id}/cancel", headers=people["admin"])
    assert again.status_code == 200
    assert again.get_json()["status"] == "cancelled"
    assert again.get_json()["version"] == body["version"]  # harmless: nothing changed


def test_cancel_an_unknown_alert_is_404(client, people):
    response = client.post("/v1/alerts/6f1c9a53-2a4e-4f5e-9d7c-1b4c6a0e9b21/cancel",
                           headers=people["admin"])
    assert_problem(response, 404)


# -- CAP 1.2 --------------------------------------------------------------------------------
def _cap(client, alert_id, headers=None):
    response = client.get(f"/v1/alerts/{alert_id}",
                          headers={"Accept": "application/cap+xml", **(headers or {})})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/cap+xml"
    return response


def _cap_times(root):
    return [el.text for el in root.iter() if el.tag in {
        f"{CAP}sent", f"{CAP}expires", f"{CAP}effective", f"{CAP}onset"}]


def test_cap_document_validates_against_the_oasis_schema(client, db, group, people,
                                                         cap_schema):
    alert = make_alert(db, people["author"], group.id, location=SPOT, body="Seen at 2 am.")
    response = _cap(client, alert.id)
    cap_schema.validate(response.data)
    assert response.headers["ETag"] == etag(alert.version)
    root = ET.fromstring(response.data)
    assert root.tag == f"{CAP}alert"
    assert root.findtext(f"{CAP}identifier") == alert.id
    assert root.findtext(f"{CAP}msgType") == "Alert"
    assert root.findtext(f"{CAP}info/{CAP}headline") == alert.title


def test_cap_times_carry_a_numeric_offset_never_z(client, db, group, people):
    alert = make_alert(db, people["author"], group.id, location=SPOT)
    root = ET.fromstring(_cap(client, alert.id).data)
    times = _cap_times(root)
    assert len(times) >= 2  # sent and expires
    for text in times:
        assert CAP_TIME.match(text), text
        assert "Z" not in text
    sent = datetime.fromisoformat(root.findtext(f"{CAP}sent"))
    assert abs(sent - alert.sent_at) < timedelta(seconds=1)


def test_cap_area_is_the_group_boundary_and_the_public_circle(client, db, group, people):
    alert = make_alert(db, people["author"], group.id, location=SPOT)
    root = ET.fromstring(_cap(client, alert.id).data)
    area = root.find(f"{CAP}info/{CAP}area")
    assert area.findtext(f"{CAP}areaDesc") == "Capitol Hill"
    [polygon] = [geo.cap.parse_polygon(el.text) for el in area.findall(f"{CAP}polygon")]
    assert polygon.equals(group.boundary)
    [circle] = [geo.cap.parse_circle(el.text) for el in area.findall(f"{CAP}circle")]
    public = client.get(f"/v1/alerts/{alert.id}").get_json()["location"]
    assert (circle.lon, circle.lat) == pytest.approx((public["lon"], public["lat"]), abs=1e-6)
    assert (circle.lon, circle.lat) != pytest.approx(SPOT, abs=1e-6)
    # large enough to cover the true point
    assert circle.radius_m >= geo.distance_m(circle.lon, circle.lat, *SPOT)


def test_cap_for_a_member_has_the_exact_point(client, db, group, people, cap_schema):
    alert = make_alert(db, people["author"], group.id, location=SPOT)
    response = _cap(client, alert.id, people["member"])
    cap_schema.validate(response.data)
    area = ET.fromstring(response.data).find(f"{CAP}info/{CAP}area")
    circle = geo.cap.parse_circle(area.findtext(f"{CAP}circle"))
    assert (circle.lon, circle.lat) == pytest.approx(SPOT, abs=1e-7)
    assert circle.radius_m == 0


def test_cap_of_a_multipolygon_group_has_a_polygon_per_part(client, db, people, tokens,
                                                            cap_schema):
    parts = shapely.MultiPolygon([box(-122.30, 47.60, -122.29, 47.61),
                                  box(-122.28, 47.60, -122.27, 47.61)])
    islands = make_group(db, "Islands", parts)
    author = accounts.authenticate(
        db, tokens("coordinator", islands.id)["Authorization"].removeprefix("Bearer "))
    alert = make_alert(db, author, islands.id)
    response = _cap(client, alert.id)
    cap_schema.validate(response.data)
    area = ET.fromstring(response.data).find(f"{CAP}info/{CAP}area")
    polygons = [geo.cap.parse_polygon(el.text) for el in area.findall(f"{CAP}polygon")]
    assert shapely.MultiPolygon(polygons).equals(parts)
    assert area.find(f"{CAP}circle") is None  # no location, no circle


def test_cap_of_a_cancelled_alert_is_a_valid_cancel_message(client, db, group, people,
                                                            cap_schema):
    alert = make_alert(db, people["author"], group.id, location=SPOT)
    client.post(f"/v1/alerts/{alert.id}/cancel", headers=people["coordinator"])
    response = _cap(client, alert.id)
    cap_schema.validate(response.data)
    root = ET.fromstring(response.data)
    assert root.findtext(f"{CAP}msgType") == "Cancel"
    assert alert.id in root.findtext(f"{CAP}references")


def test_json_stays_the_default_representation(client, db, group, people):
    alert = make_alert(db, people["author"], group.id)
    for accept in (None, "application/json", "*/*",
                   "application/json, application/cap+xml;q=0.5"):
        headers = {"Accept": accept} if accept else {}
        response = client.get(f"/v1/alerts/{alert.id}", headers=headers)
        assert response.mimetype == "application/json", accept


def test_cap_if_none_match_gives_304(client, db, group, people):
    alert = make_alert(db, people["author"], group.id)
    tag = _cap(client, alert.id).headers["ETag"]
    response = client.get(f"/v1/alerts/{alert.id}",
                          headers={"Accept": "application/cap+xml", "If-None-Match": tag})
    assert response.status_code == 304


def test_the_alert_representation_varies_by_accept(client, db, group, people):
    alert = make_alert(db, people["author"], group.id)
    for headers in ({}, {"Accept": "application/cap+xml"}):
        response = client.get(f"/v1/alerts/{alert.id}", headers=headers)
        vary = {v.strip().lower() for v in response.headers.get("Vary", "").split(",")}
        assert "accept" in vary
