"""``/v1/groups``: nearby, at a point, in a box, one group, create and edit (API.md, Groups)."""

from __future__ import annotations

import json
import math

import pytest
import shapely

import geo
from tests.api.helpers import (
    RFC3339_UTC,
    assert_problem,
    box,
    etag,
    make_group,
    polygon,
)

# The point every spatial question here is asked about (Seattle, First Hill).
LON, LAT = -122.33, 47.61
TWIN_HIGH_ID = "ffffffff-ffff-4fff-bfff-ffffffffffff"
TWIN_LOW_ID = "00000000-0000-4000-8000-000000000001"


@pytest.fixture
def layout(db):
    """Groups around (LON, LAT): two covering it (one only by its edge), one ~600 m east, twin
    boundaries ~830 m west (ids chosen so creation order is not id order), one ~1.5 km north,
    one far away."""
    made = {
        "inside": make_group(db, "Inside", box(-122.332, 47.608, -122.328, 47.612)),
        "edge": make_group(db, "Edge", box(LON, 47.609, -122.326, 47.613)),
        "east": make_group(db, "East", box(-122.322, 47.608, -122.318, 47.612)),
        "twin_high": make_group(db, "Twin high", box(-122.345, 47.608, -122.341, 47.612),
                                group_id=TWIN_HIGH_ID),
        "twin_low": make_group(db, "Twin low", box(-122.345, 47.608, -122.341, 47.612),
                               group_id=TWIN_LOW_ID),
        "north": make_group(db, "North", box(LON, 47.6235, -122.326, 47.627)),
        "far": make_group(db, "Far", box(-122.20, 47.70, -122.19, 47.71)),
    }
    return made


def _brute_nearby(groups, radius_m, lon=LON, lat=LAT):
    """(distance, id) of every group within radius_m, sorted as API.md says."""
    found = []
    for group in groups:
        distance = geo.distance_to_m(lon, lat, group.boundary)
        if distance <= radius_m:
            found.append((distance, group.id))
    return sorted(found)


def _nearby(client, **params):
    query = {"lat": LAT, "lon": LON, **params}
    response = client.get("/v1/groups/nearby", query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


# -- nearby ---------------------------------------------------------------------------------
def test_nearby_is_sorted_by_distance_then_id_within_the_default_radius(client, layout):
    expected = _brute_nearby(layout.values(), 1000.0)
    page = _nearby(client)
    got = [(item["distance_m"], item["id"]) for item in page["items"]]
    assert [key for _, key in got] == [key for _, key in expected]
    for (distance, _), (want, _) in zip(got, expected, strict=True):
        assert distance == pytest.approx(want, abs=0.01)
    assert got == sorted(got)
    assert page["next"] is None
    ids = {item["id"] for item in page["items"]}
    assert layout["north"].id not in ids and layout["far"].id not in ids  # beyond 1000 m


def test_nearby_distance_is_zero_inside_and_on_the_edge(client, layout):
    items = {item["id"]: item for item in _nearby(client)["items"]}
    assert items[layout["inside"].id]["distance_m"] == 0
    assert items[layout["edge"].id]["distance_m"] == 0
    assert items[layout["east"].id]["distance_m"] > 500


def test_nearby_ties_are_broken_by_id(client, layout):
    twins = [item for item in _nearby(client)["items"]
             if item["id"] in (TWIN_HIGH_ID, TWIN_LOW_ID)]
    assert [item["id"] for item in twins] == [TWIN_LOW_ID, TWIN_HIGH_ID]
    assert twins[0]["distance_m"] == twins[1]["distance_m"]


def test_nearby_radius_widens_the_answer(client, layout):
    ids = [item["id"] for item in _nearby(client, radius_m=2000)["items"]]
    assert layout["north"].id in ids
    assert layout["far"].id not in ids
    assert ids == [key for _, key in _brute_nearby(layout.values(), 2000.0)]


def test_nearby_items_are_whole_groups(client, layout):
    item = next(i for i in _nearby(client)["items"] if i["id"] == layout["east"].id)
    for field in ("id", "name", "description", "boundary", "centroid", "bbox", "area_m2",
                  "languages", "member_count", "version", "updated_at", "distance_m"):
        assert field in item
    assert item["name"] == "East"


def test_nearby_pages_with_next_until_null(client, layout):
    everything = _nearby(client, radius_m=2000, limit=100)["items"]
    assert len(everything) == 6
    pages, params = [], {"radius_m": 2000, "limit": 2}
    while True:
        page = _nearby(client, **params)
        pages.append(page["items"])
        if page["next"] is None:
            break
        assert isinstance(page["next"], str) and page["next"]
        params["next"] = page["next"]
        assert len(pages) < 10
    assert [len(p) for p in pages] == [2, 2, 2]
    # the twins (same distance) straddle the second and third pages
    assert pages[1][-1]["id"] == TWIN_LOW_ID and pages[2][0]["id"] == TWIN_HIGH_ID
    assert [i["id"] for p in pages for i in p] == [i["id"] for i in everything]


def test_nearby_with_nothing_near_is_an_empty_list(client, layout):
    response = client.get("/v1/groups/nearby?lat=0&lon=0")
    assert response.status_code == 200
    assert response.get_json() == {"items": [], "next": None}


# -- at -------------------------------------------------------------------------------------
def test_at_answers_every_overlapping_group_covering_the_point(client, layout):
    response = client.get("/v1/groups/at", query_string={"lat": LAT, "lon": LON})
    assert response.status_code == 200
    body = response.get_json()
    assert {item["id"] for item in body["items"]} == {layout["inside"].id, layout["edge"].id}
    assert body["next"] is None


def test_at_counts_a_corner_of_the_boundary(client, layout):
    response = client.get("/v1/groups/at", query_string={"lat": 47.608, "lon": -122.332})
    assert [item["id"] for item in response.get_json()["items"]] == [layout["inside"].id]


def test_at_outside_every_group_is_empty(client, layout):
    response = client.get("/v1/groups/at", query_string={"lat": 47.65, "lon": -122.33})
    assert response.get_json()["items"] == []


# -- bbox -----------------------------------------------------------------------------------
def _bbox(client, bbox, **params):
    response = client.get("/v1/groups", query_string={"bbox": bbox, **params})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/geo+json"
    return response.get_json()


def test_bbox_is_a_geojson_feature_collection_of_the_groups_in_the_box(client, layout):
    collection = _bbox(client, "-122.35,47.60,-122.335,47.62")
    assert collection["type"] == "FeatureCollection"
    assert "next" in collection and collection["next"] is None
    assert {f["id"] for f in collection["features"]} == {TWIN_LOW_ID, TWIN_HIGH_ID}
    for feature in collection["features"]:
        assert feature["type"] == "Feature"
        assert feature["geometry"]["type"] == "Polygon"
        assert shapely.geometry.shape(feature["geometry"]).equals(
            layout["twin_low"].boundary)
        assert feature["properties"]["name"] in ("Twin low", "Twin high")


def test_bbox_leaves_out_groups_outside_the_box(client, layout):
    collection = _bbox(client, "-122.3335,47.6055,-122.3255,47.6145")
    ids = {f["id"] for f in collection["features"]}
    assert ids == {layout["inside"].id, layout["edge"].id}


def test_bbox_next_is_a_foreign_member_when_more_match_than_limit(client, layout):
    everything = _bbox(client, "-123,47,-122,48")
    assert len(everything["features"]) == len(layout)
    seen, params = [], {"limit": 3}
    while True:
        collection = _bbox(client, "-123,47,-122,48", **params)
        assert collection["type"] == "FeatureCollection"
        assert len(collection["features"]) <= 3
        seen.extend(f["id"] for f in collection["features"])
        if collection["next"] is None:
            break
        assert len(collection["features"]) == 3
        params["next"] = collection["next"]
        assert len(seen) <= len(layout)
    assert sorted(seen) == sorted(g.id for g in layout.values())
    assert len(set(seen)) == len(seen)


def test_bbox_simplify_m_thins_boundaries_for_drawing(client, db):
    round_group = make_group(
        db, "Round", shapely.Point(LON, LAT).buffer(0.01, quad_segs=64)
    )
    stored = len(round_group.boundary.exterior.coords)
    plain = _bbox(client, "-122.35,47.59,-122.31,47.63")["features"][0]
    assert len(plain["geometry"]["coordinates"][0]) == stored
    thin = _bbox(client, "-122.35,47.59,-122.31,47.63", simplify_m=50)["features"][0]
    simplified = shapely.geometry.shape(thin["geometry"])
    assert thin["id"] == round_group.id
    assert simplified.is_valid
    assert len(thin["geometry"]["coordinates"][0]) < stored
    # about 50 m: well under 0.002 degrees (150 m of longitude at this latitude)
    assert simplified.hausdorff_distance(round_group.boundary) < 0.002


# -- one group ------------------------------------------------------------------------------
def test_get_one_group_with_its_version_as_etag(client, db, layout, tokens):
    group = layout["inside"]
    tokens("member", group.id)
    tokens("coordinator", group.id)
    response = client.get(f"/v1/groups/{group.id}")
    assert response.status_code == 200
    body = response.get_json()
    assert response.headers["ETag"] == etag(body["version"])
    assert body["id"] == group.id and body["name"] == "Inside"
    assert shapely.geometry.shape(body["boundary"]).equals(group.boundary)
    assert body["bbox"] == pytest.approx([-122.332, 47.608, -122.328, 47.612])
    assert body["centroid"] == {"lat": pytest.approx(47.61), "lon": pytest.approx(-122.33)}
    assert body["area_m2"] == pytest.approx(geo.area_m2(group.boundary), rel=1e-6)
    assert body["languages"] == ["en"]
    assert body["member_count"] == 2
    assert RFC3339_UTC.match(body["updated_at"])


def test_get_one_group_if_none_match_gives_304_without_a_body(client, layout):
    url = f"/v1/groups/{layout['east'].id}"
    tag = client.get(url).headers["ETag"]
    response = client.get(url, headers={"If-None-Match": tag})
    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == tag
    assert client.get(url, headers={"If-None-Match": f'W/{tag}'}).status_code == 304
    assert client.get(url, headers={"If-None-Match": '"0"'}).status_code == 200


def test_get_an_unknown_group_is_404(client):
    assert_problem(client.get("/v1/groups/6f1c9a53-2a4e-4f5e-9d7c-1b4c6a0e9b21"), 404)


# -- create ---------------------------------------------------------------------------------
def test_admin_creates_a_group(client, tokens):
    admin = tokens("admin")
    payload = {"name": "Pike/Pine", "description": "Capitol Hill", "languages": ["en", "es"],
               "boundary": polygon(-122.32, 47.61)}
    response = client.post("/v1/groups", json=payload, headers=admin)
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert response.headers["Location"].endswith(f"/v1/groups/{body['id']}")
    assert response.headers["ETag"] == etag(body["version"])
    assert (body["name"], body["description"], body["languages"]) == (
        "Pike/Pine", "Capitol Hill", ["en", "es"])
    assert shapely.geometry.shape(body["boundary"]).equals(
        shapely.geometry.shape(payload["boundary"]))
    assert body["member_count"] == 0
    fetched = client.get(response.headers["Location"])
    assert fetched.status_code == 200 and fetched.get_json() == body
    at = client.get("/v1/groups/at?lat=47.612&lon=-122.318").get_json()["items"]
    assert [item["id"] for item in at] == [body["id"]]


def test_create_honours_a_client_id(client, tokens):
    group_id = "3b241101-e2bb-4255-8caf-4136c566a962"
    response = client.post(
        "/v1/groups", headers=tokens("admin"),
        json={"id": group_id, "name": "Client id", "boundary": polygon(-122.32, 47.61)},
    )
    assert response.status_code == 201
    assert response.get_json()["id"] == group_id


BAD_BOUNDARIES = [
    pytest.param({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]},
                 ["self-intersection"], "at (0.5, 0.5)", id="bowtie"),
    pytest.param({"type": "Polygon", "coordinates": [[[0, 0], [200, 1], [1, 0], [0, 0]]]},
                 ["out of range"], "at (200, 1)", id="longitude-200"),
    pytest.param({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]},
                 ["not closed"], "at (0, 1)", id="unclosed-ring"),
    pytest.param({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0]]]},
                 ["at least 4"], "at (0, 0)", id="too-few-positions"),
    pytest.param({"type": "Polygon", "coordinates": [
        [[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]], [[5, 5], [6, 5], [6, 6], [5, 6], [5, 5]]]},
                 ["hole", "outside"], "at (5.0, 5.0)", id="hole-outside-shell"),
    pytest.param({"type": "MultiPolygon", "coordinates": [
        [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]],
        [[[0.5, 0.5], [2, 0.5], [2, 2], [0.5, 2], [0.5, 0.5]]]]},
                 ["self-intersection"], "at (0.5, 1.0)", id="overlapping-parts"),
    pytest.param({"type": "Polygon", "coordinates": [
        [[170, 0], [-170, 0], [-170, 1], [170, 1], [170, 0]]]},
                 ["antimeridian"], "at (170, 0)", id="antimeridian"),
    pytest.param({"type": "Point", "coordinates": [-122.3, 47.6]},
                 ["Polygon or MultiPolygon"], None, id="point"),
]


@pytest.mark.parametrize(("boundary", "words", "where"), BAD_BOUNDARIES)
def test_create_with_an_invalid_boundary_names_the_problem_and_where(
    client, tokens, boundary, words, where
):
    response = client.post("/v1/groups", headers=tokens("admin"),
                           json={"name": "Bad", "boundary": boundary})
    body = assert_problem(response, 422, "boundary")
    messages = " ".join(body["errors"]["boundary"])
    for word in words:
        assert word in messages and word in body["detail"]
    if where is not None:
        assert where in messages and where in body["detail"]


def test_create_with_a_nan_coordinate_names_it(client, tokens):
    raw = json.dumps({"name": "NaN", "boundary": polygon(0, 0)}).replace("[0, 0]", "[NaN, 0]", 1)
    response = client.post("/v1/groups", data=raw, content_type="application/json",
                           headers=tokens("admin"))
    body = assert_problem(response, 422, "boundary")
    assert "NaN" in " ".join(body["errors"]["boundary"])


def test_positions_with_an_altitude_are_accepted_and_kept_planar(client, tokens):
    # RFC 7946 allows an altitude as a third element; boundaries are planar, so it is dropped.
    boundary = {"type": "Polygon",
                "coordinates": [[[0, 0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}
    response = client.post("/v1/groups", headers=tokens("admin"),
                           json={"name": "Mixed", "boundary": boundary})
    assert response.status_code == 201
    ring = response.get_json()["boundary"]["coordinates"][0]
    assert all(len(position) == 2 for position in ring)


# -- edit -----------------------------------------------------------------------------------
def test_patch_without_if_match_is_428(client, layout, tokens):
    group = layout["inside"]
    response = client.patch(f"/v1/groups/{group.id}", json={"name": "New"},
                            headers=tokens("coordinator", group.id))
    assert_problem(response, 428)
    assert client.get(f"/v1/groups/{group.id}").get_json()["name"] == "Inside"


def test_patch_with_a_stale_if_match_is_412_with_the_current_etag(client, layout, tokens):
    group = layout["inside"]
    coordinator = tokens("coordinator", group.id)
    current = client.get(f"/v1/groups/{group.id}").get_json()["version"]
    headers = {**coordinator, "If-Match": etag(current - 1)}
    response = client.patch(f"/v1/groups/{group.id}", json={"name": "New"}, headers=headers)
    assert_problem(response, 412)
    assert response.headers["ETag"] == etag(current)
    assert client.get(f"/v1/groups/{group.id}").get_json()["name"] == "Inside"


def test_patch_edits_and_answers_the_new_etag(client, layout, tokens):
    group = layout["inside"]
    coordinator = tokens("coordinator", group.id)
    old_tag = client.get(f"/v1/groups/{group.id}").headers["ETag"]
    response = client.patch(
        f"/v1/groups/{group.id}", headers={**coordinator, "If-Match": old_tag},
        json={"name": "Renamed", "description": "d", "languages": ["es", "en"]},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert response.headers["ETag"] == etag(body["version"]) != old_tag
    assert (body["name"], body["description"], body["languages"]) == ("Renamed", "d",
                                                                      ["es", "en"])
    fetched = client.get(f"/v1/groups/{group.id}")
    assert fetched.headers["ETag"] == response.headers["ETag"]
    assert fetched.get_json()["name"] == "Renamed"
    # the old ETag is stale now
    again = client.patch(f"/v1/groups/{group.id}", json={"name": "Again"},
                         headers={**coordinator, "If-Match": old_tag})
    assert_problem(again, 412)
    assert again.headers["ETag"] == response.headers["ETag"]


def test_patch_boundary_moves_the_group_in_spatial_answers(client, layout, tokens):
    group = layout["far"]
    response = client.patch(
        f"/v1/groups/{group.id}", json={"boundary": polygon(LON - 0.001, LAT - 0.001, 0.002)},
        headers={**tokens("admin"), "If-Match": etag(group.version)},
    )
    assert response.status_code == 200
    at = client.get("/v1/groups/at", query_string={"lat": LAT, "lon": LON}).get_json()
    assert group.id in {item["id"] for item in at["items"]}
    nearby = {i["id"]: i["distance_m"] for i in _nearby(client)["items"]}
    assert nearby[group.id] == 0


@pytest.mark.parametrize("field", ["bogus", "id", "member_count", "version"])
def test_patch_with_an_unknown_field_is_422_naming_it(client, layout, tokens, field):
    group = layout["inside"]
    response = client.patch(
        f"/v1/groups/{group.id}", json={"name": "X", field: 1},
        headers={**tokens("admin"), "If-Match": etag(group.version)},
    )
    assert_problem(response, 422, field)
    assert client.get(f"/v1/groups/{group.id}").get_json()["version"] == group.version


def test_patch_with_an_invalid_boundary_names_the_problem(client, layout, tokens):
    group = layout["inside"]
    response = client.patch(
        f"/v1/groups/{group.id}",
        json={"boundary": {"type": "Polygon",
                           "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}},
        headers={**tokens("admin"), "If-Match": etag(group.version)},
    )
    body = assert_problem(response, 422, "boundary")
    assert "at (0.5, 0.5)" in body["errors"]["boundary"][0]


def test_patch_an_unknown_group_is_404(client, tokens):
    response = client.patch(
        "/v1/groups/6f1c9a53-2a4e-4f5e-9d7c-1b4c6a0e9b21", json={"name": "X"},
        headers={**tokens("admin"), "If-Match": '"1"'},
    )
    assert_problem(response, 404)


def test_distances_are_metres_on_the_ellipsoid(client, layout):
    """distance_m of the group east of the point is the geodesic metres to its west edge."""
    east = next(i for i in _nearby(client)["items"] if i["id"] == layout["east"].id)
    expected = geo.distance_m(LON, LAT, -122.322, LAT)
    assert east["distance_m"] == pytest.approx(expected, rel=1e-6)
    assert math.isfinite(east["distance_m"])


def test_a_repeated_client_id_is_the_same_request_or_a_conflict(client, tokens):
    admin = tokens("admin")
    body = {"id": "7b0e0b7e-1c7a-4d1e-9a53-3f2b8f0c1d11", "name": "Offline",
            "boundary": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}}
    first = client.post("/v1/groups", json=body, headers=admin)
    again = client.post("/v1/groups", json=body, headers=admin)
    other = client.post("/v1/groups", json={**body, "name": "Else"}, headers=admin)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json() == first.get_json()
    assert_problem(other, 409)
