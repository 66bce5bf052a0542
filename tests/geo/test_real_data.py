"""geo on real public data: Seattle's police beats, precincts, neighbourhoods and schools.

The files live in ../shared/data (see SOURCES.md there) and are never copied into the project;
the ``shared_data`` fixture skips these tests when the folder is absent, and fails them on CI.
"""

from __future__ import annotations

import csv
import json
import random
from collections import Counter

import numpy as np
import pytest
import shapely

import geo
from tests.geo.reference import distance_to_geometry_m, tolerance_m

POLYGON_FILES = {
    "seattle_city_clerk_neighborhoods.geojson": (119, {"Polygon"}),
    "seattle_spd_beats_2015.geojson": (51, {"MultiPolygon"}),
    "seattle_spd_mcpp_areas_2016.geojson": (61, {"Polygon"}),
    "seattle_spd_precincts_2015.geojson": (5, {"MultiPolygon"}),
}
SEATTLE_BOX = (-122.441, 47.493, -122.235, 47.734)


@pytest.fixture(scope="module")
def beats(shared_data):
    return geo.read_geojson(shared_data / "seattle_spd_beats_2015.geojson")


@pytest.fixture(scope="module")
def beat_index(beats):
    return geo.PolygonIndex([(f.properties["name"], f.geometry) for f in beats])


@pytest.mark.parametrize("name", sorted(POLYGON_FILES))
def test_every_polygon_file_loads_strictly(shared_data, name):
    count, kinds = POLYGON_FILES[name]
    features = geo.read_geojson(shared_data / name)
    assert len(features) == count
    assert {f.geometry.geom_type for f in features} == kinds
    assert all(f.problems == [] and f.geometry.is_valid for f in features)


def test_clockwise_rings_are_accepted_and_written_right_handed(shared_data, beats):
    raw = json.loads((shared_data / "seattle_spd_beats_2015.geojson").read_text())
    assert raw["properties"] == []  # the non-standard top-level member is tolerated
    first_ring = raw["features"][0]["geometry"]["coordinates"][0][0]
    assert not shapely.LinearRing(first_ring).is_ccw  # clockwise in the file
    written = geo.to_geojson(beats[0].geometry)
    assert shapely.LinearRing(written["coordinates"][0][0]).is_ccw


def test_every_school_lies_in_exactly_one_2015_beat(shared_data, beat_index):
    schools = geo.read_geojson(shared_data / "seattle_public_school_sites_2015_2016.geojson")
    assert len(schools) == 97
    lons = np.array([s.geometry.x for s in schools])
    lats = np.array([s.geometry.y for s in schools])
    for school, beats_here in zip(schools, beat_index.covering_many(lons, lats), strict=True):
        assert len(beats_here) == 1, school.properties


def test_911_points_fall_in_one_beat_and_one_precinct_except_outside_the_city(
    shared_data, beat_index
):
    precincts = geo.read_geojson(shared_data / "seattle_spd_precincts_2015.geojson")
    precinct_index = geo.PolygonIndex([(f.properties["name"], f.geometry) for f in precincts])
    with (shared_data / "seattle_spd_911_homicides_2009_2015.csv").open() as rows:
        points = [(float(r["longitude"]), float(r["latitude"])) for r in csv.DictReader(rows)]
    counts = Counter(
        (len(beat_index.covering(lon=lon, lat=lat)), len(precinct_index.covering(lon=lon, lat=lat)))
        for lon, lat in points
    )
    assert counts == {(1, 1): 179, (0, 0): 1}  # one point lies outside the city


def test_holes_in_neighbourhoods_are_respected(shared_data):
    hoods = geo.read_geojson(shared_data / "seattle_city_clerk_neighborhoods.geojson")
    index = geo.PolygonIndex(enumerate(f.geometry for f in hoods))
    holed = [i for i, f in enumerate(hoods) if f.geometry.interiors]
    assert len(holed) == 2
    for i in holed:
        for ring in hoods[i].geometry.interiors:
            inside_hole = shapely.Polygon(ring).point_on_surface()
            covering = index.covering(lon=inside_hole.x, lat=inside_hole.y)
            assert i not in covering
            assert geo.distance_to_m(inside_hole.x, inside_hole.y, hoods[i].geometry) > 0
            # ... and the hole is filled by another neighbourhood, not left empty.
            assert covering


def test_index_answers_equal_brute_force_on_beats(beats, beat_index):
    rng = random.Random(20261124)
    named = {f.properties["name"]: f.geometry for f in beats}
    west, south, east, north = SEATTLE_BOX
    points = [(rng.uniform(west, east), rng.uniform(south, north)) for _ in range(300)]
    for lon, lat in points:
        expected = sorted(k for k, g in named.items() if g.covers(shapely.Point(lon, lat)))
        assert beat_index.covering(lon=lon, lat=lat) == expected
    for lon, lat in points[:8]:
        # geopy is slow on beats of a thousand edges: measure only the beats less than about
        # 5 km away (0.07 degrees), enough to hold every answer below.
        here = shapely.Point(lon, lat)
        truth = {
            k: distance_to_geometry_m(lon, lat, g)
            for k, g in named.items() if g.distance(here) < 0.07
        }
        assert len(truth) >= 5
        for key, d in beat_index.within(lon=lon, lat=lat, radius_m=1_500):
            assert abs(d - truth[key]) <= tolerance_m(truth[key])
        nearest = beat_index.nearest(lon=lon, lat=lat, k=5)
        ranked = sorted(truth.values())
        for (_, d), expected_d in zip(nearest, ranked, strict=False):
            assert d == pytest.approx(expected_d, abs=tolerance_m(expected_d))


def test_simplified_beats_stay_valid_and_index_the_same_schools(shared_data, beats):
    simplified = geo.PolygonIndex(
        [(f.properties["name"], geo.simplify_m(f.geometry, 5.0)) for f in beats]
    )
    schools = geo.read_geojson(shared_data / "seattle_public_school_sites_2015_2016.geojson")
    hits = simplified.covering_many(
        np.array([s.geometry.x for s in schools]), np.array([s.geometry.y for s in schools])
    )
    assert sum(len(h) == 1 for h in hits) >= 95  # a school on a beat line may move across it
