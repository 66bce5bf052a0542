"""geo.index against brute force: every answer equals a scan with geopy distances."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geo import PointIndex, PolygonIndex
from tests.geo.reference import distance_to_geometry_m, tolerance_m
from tests.geo.strategies import places, points_near, polygonal


@st.composite
def scenes(draw, max_polygons: int = 6):
    """Polygons near a place, some query points near them, and a history of edits."""
    lon, lat = draw(places())
    polygons = {
        key: draw(polygonal(lon, lat)) for key in range(draw(st.integers(1, max_polygons)))
    }
    queries = draw(st.lists(points_near(lon, lat), min_size=1, max_size=3))
    # Sometimes ask exactly at a vertex: a point on the boundary is covered.
    if draw(st.booleans()):
        key = draw(st.sampled_from(sorted(polygons)))
        vertex = shapely.get_coordinates(polygons[key])[0]
        queries.append((float(vertex[0]), float(vertex[1])))
    removed = draw(st.sets(st.sampled_from(sorted(polygons)), max_size=len(polygons) - 1))
    return polygons, queries, removed


def build(polygons, removed, merge_at):
    """An index that went through adds, removals and re-adds, so the delta, the snapshot and
    the dead mask all take part."""
    keys = sorted(polygons)
    half = len(keys) // 2
    index = PolygonIndex([(k, polygons[k]) for k in keys[:half]], merge_at=merge_at)
    for k in keys[half:]:
        index.add(k, polygons[k])
    for k in removed:
        index.remove(k)
    for k in sorted(removed)[: len(removed) // 2]:  # re-add half of them
        index.add(k, polygons[k])
    live = {k: polygons[k] for k in keys if k in index}
    return index, live


def assert_sorted_by_distance_then_key(answer):
    for (k1, d1), (k2, d2) in itertools.pairwise(answer):
        assert d1 <= d2 * (1 + 1e-6) + 1e-9
        if d1 == d2:
            assert k1 < k2


@settings(max_examples=40, deadline=None)
@given(scenes(), st.sampled_from([1, 2, 1000]))
def test_covering_equals_brute_force(scene, merge_at):
    polygons, queries, removed = scene
    index, live = build(polygons, removed, merge_at)
    lons = np.array([q[0] for q in queries])
    lats = np.array([q[1] for q in queries])
    bulk = index.covering_many(lons, lats)
    for (lon, lat), many in zip(queries, bulk, strict=True):
        expected = sorted(k for k, g in live.items() if g.covers(shapely.Point(lon, lat)))
        assert index.covering(lon=lon, lat=lat) == expected
        assert many == expected


@settings(max_examples=30, deadline=None)
@given(scenes(), st.floats(0.0, 15_000.0), st.sampled_from([1, 1000]))
def test_within_equals_brute_force(scene, radius_m, merge_at):
    polygons, queries, removed = scene
    index, live = build(polygons, removed, merge_at)
    for lon, lat in queries:
        truth = {k: distance_to_geometry_m(lon, lat, g) for k, g in live.items()}
        answer = index.within(lon=lon, lat=lat, radius_m=radius_m)
        assert_sorted_by_distance_then_key(answer)
        got = dict(answer)
        assert len(got) == len(answer)
        for key, d in got.items():
            assert abs(d - truth[key]) <= tolerance_m(truth[key]), key
            assert d <= radius_m
        for key, d in truth.items():
            # Only an entry whose distance is within the promised accuracy of the radius may
            # fall either way.
            if d <= radius_m - tolerance_m(d):
                assert key in got, (key, d)
            if d > radius_m + tolerance_m(d):
                assert key not in got, (key, d)


@settings(max_examples=40, deadline=None)
@given(scenes(), st.floats(0.0, 15_000.0), st.sampled_from([1, 1000]))
def test_keys_within_equals_within_and_brute_force(scene, radius_m, merge_at):
    polygons, queries, removed = scene
    index, live = build(polygons, removed, merge_at)
    for lon, lat in queries:
        keys = index.keys_within(lon=lon, lat=lat, radius_m=radius_m)
        assert keys == sorted(key for key, _ in index.within(lon=lon, lat=lat, radius_m=radius_m))
        for key, geometry in live.items():
            d = distance_to_geometry_m(lon, lat, geometry)
            if d <= radius_m - tolerance_m(d):
                assert key in keys, (key, d)
            if d > radius_m + tolerance_m(d):
                assert key not in keys, (key, d)


def test_keys_within_decides_boxes_wholly_inside_without_distances(monkeypatch):
    blocks = [(i, shapely.box(-122.34 + i * 0.002, 47.60, -122.339 + i * 0.002, 47.601))
              for i in range(50)]
    index = PolygonIndex(blocks)
    measured = []
    original = PolygonIndex._distances_m

    def counting(self, lon, lat, slots):
        measured.append(len(slots))
        return original(self, lon, lat, slots)

    monkeypatch.setattr(PolygonIndex, "_distances_m", counting)
    keys = index.keys_within(lon=-122.29, lat=47.6005, radius_m=3000)
    assert keys == sorted(key for key, _ in index.within(lon=-122.29, lat=47.6005, radius_m=3000))
    assert measured[0] < len(keys) / 4  # only the blocks near the circle's edge were measured


@settings(max_examples=30, deadline=None)
@given(scenes(), st.integers(0, 8), st.sampled_from([1, 1000]))
def test_nearest_equals_brute_force(scene, k, merge_at):
    polygons, queries, removed = scene
    index, live = build(polygons, removed, merge_at)
    for lon, lat in queries:
        truth = {key: distance_to_geometry_m(lon, lat, g) for key, g in live.items()}
        answer = index.nearest(lon=lon, lat=lat, k=k)
        assert len(answer) == min(k, len(live))
        assert_sorted_by_distance_then_key(answer)
        ranked = sorted(truth.values())
        for key, d in answer:
            assert abs(d - truth[key]) <= tolerance_m(truth[key])
        if answer:
            kth = ranked[len(answer) - 1]
            # Nothing left out is clearly nearer than the farthest answer.
            for key, d in truth.items():
                if key not in dict(answer):
                    assert d >= kth - tolerance_m(kth)


@st.composite
def point_scenes(draw):
    lon, lat = draw(places(max_abs_lat=85.0))
    points = {
        key: draw(points_near(lon, lat, spread_m=draw(st.sampled_from([500.0, 20_000.0]))))
        for key in range(draw(st.integers(1, 40)))
    }
    query = draw(points_near(lon, lat, spread_m=20_000.0))
    removed = draw(st.sets(st.sampled_from(sorted(points)), max_size=len(points) - 1))
    return points, query, removed


@settings(max_examples=60, deadline=None)
@given(point_scenes(), st.floats(0.0, 30_000.0), st.integers(0, 10), st.sampled_from([1, 1000]))
def test_point_index_equals_brute_force(scene, radius_m, k, merge_at):
    points, (lon, lat), removed = scene
    keys = sorted(points)
    index = PointIndex([(key, points[key]) for key in keys[::2]], merge_at=merge_at)
    for key in keys[1::2]:
        index.add(key, shapely.Point(points[key]))
    for key in removed:
        index.remove(key)
    live = {key: points[key] for key in keys if key not in removed}
    truth = {
        key: distance_to_geometry_m(lon, lat, shapely.Point(p)) for key, p in live.items()
    }
    answer = index.within(lon=lon, lat=lat, radius_m=radius_m)
    assert_sorted_by_distance_then_key(answer)
    for key, d in answer:
        assert abs(d - truth[key]) <= tolerance_m(truth[key])
    expected = {key for key, d in truth.items() if d <= radius_m * (1 - 1e-9)}
    assert expected <= {key for key, _ in answer}
    nearest = index.nearest(lon=lon, lat=lat, k=k)
    assert [key for key, _ in nearest] == [
        key for key, _ in sorted(truth.items(), key=lambda kv: (kv[1], kv[0]))
    ][:k] or all(
        abs(d - sorted(truth.values())[i]) <= 1e-6 * d + 1e-6 for i, (_, d) in enumerate(nearest)
    )


def test_near_the_antimeridian_both_sides_are_found():
    east = shapely.box(179.99, -0.01, 179.999, 0.01)
    west = shapely.box(-179.999, -0.01, -179.99, 0.01)
    index = PolygonIndex([("east", east), ("west", west)])
    answer = dict(index.within(lon=179.9995, lat=0.0, radius_m=1_000))
    assert set(answer) == {"east", "west"}
    assert answer["east"] == pytest.approx(55.7, abs=0.5)
    assert answer["west"] == pytest.approx(167.0, abs=0.5)


def test_near_a_pole_every_longitude_is_searched():
    index = PointIndex([("a", (0.0, 89.99)), ("b", (180.0, 89.99))])
    assert {key for key, _ in index.within(lon=90.0, lat=89.995, radius_m=5_000)} == {"a", "b"}


def test_nearest_finds_what_is_far_away():
    index = PolygonIndex([("far", shapely.box(10, 10, 10.1, 10.1))])
    [(key, distance)] = index.nearest(lon=-122.3, lat=47.6, k=3)
    assert key == "far"
    assert distance > 10_000_000


def test_add_replaces_and_remove_forgets():
    index = PolygonIndex(merge_at=2)
    index.add("a", shapely.box(0, 0, 1, 1))
    index.add("a", shapely.box(5, 5, 6, 6))
    assert len(index) == 1
    assert index.covering(lon=0.5, lat=0.5) == []
    assert index.covering(lon=5.5, lat=5.5) == ["a"]
    index.remove("a")
    assert len(index) == 0 and index.covering(lon=5.5, lat=5.5) == []
    with pytest.raises(KeyError):
        index.remove("a")
    index.discard("a")


def test_many_writes_merge_and_compact_without_losing_entries():
    index = PolygonIndex(merge_at=8)
    boxes = {i: shapely.box(i, 0, i + 0.5, 0.5) for i in range(100)}
    for i, geometry in boxes.items():
        index.add(i, geometry)
    for i in range(0, 100, 3):
        index.remove(i)
    expected = [i for i in range(100) if i % 3]
    assert sorted(index.keys()) == expected
    got = index.covering_many([i + 0.25 for i in range(100)], [0.25] * 100)
    assert got == [[i] if i % 3 else [] for i in range(100)]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"lon": math.nan, "lat": 0.0, "radius_m": 10}, "lon"),
        ({"lon": 0.0, "lat": 91.0, "radius_m": 10}, "lat"),
        ({"lon": 0.0, "lat": 0.0, "radius_m": -1}, "radius_m"),
        ({"lon": 0.0, "lat": 0.0, "radius_m": math.inf}, "radius_m"),
    ],
)
def test_bad_query_names_the_argument(kwargs, field):
    index = PolygonIndex([("a", shapely.box(0, 0, 1, 1))])
    with pytest.raises(ValueError, match=field):
        index.within(**kwargs)


def test_wrong_geometry_type_is_refused():
    with pytest.raises(TypeError):
        PolygonIndex().add("a", shapely.Point(0, 0))
    with pytest.raises(TypeError):
        PointIndex().add("a", shapely.box(0, 0, 1, 1))


@settings(max_examples=40, deadline=None)
@given(scenes(), st.floats(0.0, 0.2), st.floats(0.0, 0.2))
def test_intersecting_a_box_equals_brute_force(scene, width_deg, height_deg):
    polygons, queries, removed = scene
    index, live = build(polygons, removed, 1000)
    lon, lat = queries[0]
    box = (lon, lat, lon + width_deg, min(lat + height_deg, 90.0))
    expected = sorted(k for k, g in live.items() if g.intersects(shapely.box(*box)))
    got = index.intersecting(min_lon=box[0], min_lat=box[1], max_lon=box[2], max_lat=box[3])
    assert got == expected


def test_intersecting_a_box_across_the_antimeridian():
    index = PolygonIndex([("east", shapely.box(179.5, 0, 179.9, 1)),
                          ("west", shapely.box(-179.9, 0, -179.5, 1)),
                          ("far", shapely.box(0, 0, 1, 1))])
    assert index.intersecting(min_lon=179.0, min_lat=0, max_lon=-179.0, max_lat=1) == [
        "east", "west"
    ]


def test_nearest_is_by_true_distance_far_away():
    # Near Seattle, B's box is nearer in degrees but about 2 km farther on the ellipsoid than A.
    a = shapely.box(-110.0, 40.0, -109.9, 40.1)
    index = PolygonIndex([("A", a), ("B", shapely.box(-110.5, 47.58, -110.4, 47.62))])
    truth = {
        "A": distance_to_geometry_m(-122.3, 47.6, a),
        "B": distance_to_geometry_m(-122.3, 47.6, index.get("B")),
    }
    [(key, distance)] = index.nearest(lon=-122.3, lat=47.6, k=1)
    assert key == min(truth, key=truth.get)
    assert distance == pytest.approx(truth[key], rel=1e-6)


@pytest.mark.parametrize(
    "geometry",
    [shapely.Point(math.nan, 0.0), shapely.Point(190.0, 0.0), shapely.Point(0.0, 95.0)],
)
def test_points_outside_the_globe_are_refused(geometry):
    with pytest.raises(ValueError):
        PointIndex([("bad", geometry)])
    with pytest.raises(ValueError):
        PointIndex().add("bad", geometry)


def test_polygons_outside_the_globe_are_refused():
    with pytest.raises(ValueError):
        PolygonIndex([("bad", shapely.box(190, 0, 191, 1))])


def test_replacing_a_key_many_times_compacts():
    index = PolygonIndex(merge_at=16)
    for i in range(1000):
        index.add("same", shapely.box(i * 0.001, 0, i * 0.001 + 0.0005, 0.0005))
    assert len(index) == 1
    assert index._used < 100  # dead slots were compacted away
    assert index.covering(lon=0.99925, lat=0.00025) == ["same"]
