"""Real boundaries: the 51 Seattle police beats of 2015 imported as groups, and
``/v1/groups/at`` and ``/v1/groups/nearby`` checked against brute force at 200 seeded random
points over the city (shapely ``covers`` for at; ``geo.distance_to_m`` to every beat for
nearby, sorted by distance then id)."""

from __future__ import annotations

import json
import random

import pytest
import shapely
from shapely.geometry import shape

import geo
from blockwatch import importer
from tests.api.helpers import app_over, fresh_database

BEATS = "seattle_spd_beats_2015.geojson"
SEATTLE = (-122.441, 47.493, -122.235, 47.734)  # min_lon, min_lat, max_lon, max_lat
POINTS = 200
RADIUS_M = 1000.0
#: Stored boundaries are rounded to 1e-7 degrees (about a centimetre): answers closer than
#: this to an edge, or to the radius, may honestly differ from the file's geometry.
EDGE_DEG = 1e-6
DISTANCE_SLACK_M = 0.05


def _points():
    rng = random.Random(2015)
    min_lon, min_lat, max_lon, max_lat = SEATTLE
    return [(round(rng.uniform(min_lon, max_lon), 6), round(rng.uniform(min_lat, max_lat), 6))
            for _ in range(POINTS)]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def seattle(request, tmp_path_factory, shared_data):
    """An app over each database holding the beats, and {group id: (beat name, geometry)}."""
    path = shared_data / BEATS
    features = json.loads(path.read_text(encoding="utf-8"))["features"]
    database = fresh_database(request, tmp_path_factory, request.param)
    report = importer.import_groups(database, path, "name")
    assert not report.failed and not report.skipped
    assert len(report.imported) == len(features) == 51
    beats = {
        group_id: (feature["properties"]["name"], shape(feature["geometry"]))
        for group_id, feature in zip(report.imported, features, strict=True)
    }
    yield app_over(database).test_client(), beats
    database.dispose()


def test_the_beats_are_stored_as_imported(seattle):
    client, beats = seattle
    collection = client.get("/v1/groups", query_string={"bbox": "-123,47,-122,48"}).get_json()
    assert {f["id"] for f in collection["features"]} == set(beats)
    for feature in collection["features"]:
        name, geometry = beats[feature["id"]]
        assert feature["properties"]["name"] == name
        stored = shape(feature["geometry"])
        assert stored.is_valid
        assert stored.hausdorff_distance(geometry) < EDGE_DEG


def test_at_agrees_with_brute_force(seattle):
    client, beats = seattle
    mismatches, near_edges, covered = [], 0, 0
    for lon, lat in _points():
        point = shapely.Point(lon, lat)
        if any(geometry.boundary.distance(point) < EDGE_DEG for _, geometry in beats.values()):
            near_edges += 1
            continue
        expected = sorted(key for key, (_, geometry) in beats.items() if geometry.covers(point))
        response = client.get("/v1/groups/at", query_string={"lat": lat, "lon": lon})
        assert response.status_code == 200
        got = sorted(item["id"] for item in response.get_json()["items"])
        covered += bool(expected)
        if got != expected:
            mismatches.append(((lon, lat), got, expected))
    assert mismatches == []
    assert near_edges < 3
    assert covered > POINTS // 2  # most of the box is inside some beat: the test bites


def test_nearby_agrees_with_brute_force(seattle):
    client, beats = seattle
    mismatches, counts = [], []
    for lon, lat in _points():
        distances = {key: geo.distance_to_m(lon, lat, geometry)
                     for key, (_, geometry) in beats.items()}
        borderline = {key for key, d in distances.items()
                      if abs(d - RADIUS_M) < DISTANCE_SLACK_M}
        expected = sorted((d, key) for key, d in distances.items()
                          if d <= RADIUS_M and key not in borderline)
        response = client.get("/v1/groups/nearby", query_string={
            "lat": lat, "lon": lon, "radius_m": RADIUS_M, "limit": 100})
        assert response.status_code == 200
        page = response.get_json()
        assert page["next"] is None
        got = [(item["distance_m"], item["id"]) for item in page["items"]
               if item["id"] not in borderline]
        counts.append(len(got))
        same = [key for _, key in got] == [key for _, key in expected] and all(
            abs(a - b) <= DISTANCE_SLACK_M for (a, _), (b, _) in zip(got, expected, strict=True))
        ordered = [(item["distance_m"], item["id"]) for item in page["items"]]
        if not same or ordered != sorted(ordered):
            mismatches.append(((lon, lat), got, expected))
    assert mismatches == []
    assert max(counts) >= 3 and sum(counts) > POINTS  # many points see several beats


def test_nearby_pages_agree_with_one_page(seattle):
    """Paging through a 5 km answer two by two gives the one-page answer."""
    client, _ = seattle
    for lon, lat in _points()[:10]:
        query = {"lat": lat, "lon": lon, "radius_m": 5000}
        whole = client.get("/v1/groups/nearby", query_string={**query, "limit": 100}).get_json()
        seen, token = [], None
        while True:
            params = {**query, "limit": 2, **({"next": token} if token else {})}
            page = client.get("/v1/groups/nearby", query_string=params).get_json()
            seen.extend(item["id"] for item in page["items"])
            token = page["next"]
            if token is None:
                break
            assert len(seen) <= len(whole["items"])
        assert seen == [item["id"] for item in whole["items"]]
