"""geo.distance against geopy, the reference for every distance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from geopy.distance import geodesic
from hypothesis import given, settings
from hypothesis import strategies as st

from geo import distance_m, distance_to_m, distances_from_points_m, distances_to_geometries_m
from geo.coordinates import check_point
from geo.distance import distances_from_m, search_boxes_deg, snap_to_grid_m
from geo.errors import GeometryError
from tests.geo.reference import distance_to_geometry_m, geopy_m, tolerance_m
from tests.geo.strategies import places, points_near, polygonal


@settings(max_examples=300, deadline=None)
@given(places(max_abs_lat=89.0), st.floats(0.0, 50_000.0), st.floats(0.0, 360.0))
def test_point_to_point_matches_geopy_within_a_millimetre(place, distance, bearing):
    lon, lat = place
    far = geodesic(meters=distance).destination((lat, lon), bearing)
    ours = distance_m(lon, lat, far.longitude, far.latitude)
    assert ours == pytest.approx(geopy_m(lon, lat, far.longitude, far.latitude), abs=1e-3)


def test_point_to_point_takes_arrays_like_scalars():
    lons = np.array([-122.3, -122.4])
    got = distance_m(lons, 47.6, -122.3, 47.7)
    assert got.shape == (2,)
    assert got[0] == pytest.approx(distance_m(-122.3, 47.6, -122.3, 47.7))
    assert isinstance(distance_m(0.0, 0.0, 0.0, 1.0), float)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_point_to_polygon_matches_geopy(data):
    lon, lat = data.draw(places())
    geometry = data.draw(polygonal(lon, lat))
    q_lon, q_lat = data.draw(points_near(lon, lat, spread_m=50_000.0))
    expected = distance_to_geometry_m(q_lon, q_lat, geometry)
    assert distance_to_m(q_lon, q_lat, geometry) == pytest.approx(
        expected, abs=tolerance_m(expected)
    )


def test_zero_inside_on_the_edge_and_in_a_hole_not_zero():
    shell = [(-122.34, 47.60), (-122.33, 47.60), (-122.33, 47.61), (-122.34, 47.61)]
    hole = [(-122.337, 47.603), (-122.333, 47.603), (-122.333, 47.607), (-122.337, 47.607)]
    polygon = shapely.Polygon(shell, [hole])
    assert distance_to_m(-122.339, 47.605, polygon) == 0.0
    assert distance_to_m(-122.33, 47.605, polygon) == 0.0  # on the edge
    in_hole = distance_to_m(-122.335, 47.605, polygon)
    assert in_hole == pytest.approx(distance_to_geometry_m(-122.335, 47.605, polygon), abs=1.0)
    assert in_hole > 100


def test_distance_to_a_point_geometry_and_the_array_twin():
    point = shapely.Point(-122.3, 47.7)
    assert distance_to_m(-122.3, 47.6, point) == pytest.approx(geopy_m(-122.3, 47.6, -122.3, 47.7))
    block = shapely.box(-122.31, 47.59, -122.29, 47.61)
    both = distances_to_geometries_m(-122.3, 47.6, [point, block])
    assert both[1] == 0.0 and both[0] > 11_000
    assert distances_to_geometries_m(0.0, 0.0, []).shape == (0,)


@settings(max_examples=500, deadline=None)
@given(
    st.floats(-180.0, 180.0), st.floats(-90.0, 90.0),
    st.floats(0.0, 3_000_000.0), st.floats(0.0, 360.0),
)
def test_search_boxes_hold_every_point_within_the_radius(lon, lat, radius_m, bearing):
    # geopy places the point; every point at the radius in any direction lies in some box.
    edge = geodesic(meters=radius_m).destination((lat, lon), bearing)
    boxes = search_boxes_deg(lon, lat, radius_m)
    assert any(
        w <= edge.longitude <= e and s <= edge.latitude <= n for w, s, e, n in boxes
    ), (boxes, edge)


def test_search_box_widens_longitude_by_latitude():
    [(west, south, east, north)] = search_boxes_deg(-122.33, 47.61, 1_000.0)
    assert (east - west) / (north - south) == pytest.approx(1 / math.cos(math.radians(47.62)), 0.01)


@pytest.mark.parametrize(
    ("lon", "lat", "name"),
    [(math.nan, 0.0, "lon"), (181.0, 0.0, "lon"), (0.0, -90.5, "lat"), (0.0, math.inf, "lat"),
     ("1", 0.0, "lon")],
)
def test_check_point_names_the_bad_coordinate(lon, lat, name):
    with pytest.raises(ValueError, match=name):
        check_point(lon, lat)


@settings(max_examples=300, deadline=None)
@given(places(max_abs_lat=85.0), st.floats(50.0, 500.0))
def test_snap_to_grid_moves_a_point_at_most_a_cell_diagonal_and_is_stable(place, cell_m):
    lon, lat = place
    snapped = snap_to_grid_m(lon, lat, cell_m)
    assert geopy_m(lon, lat, *snapped) <= 0.72 * cell_m
    assert snap_to_grid_m(*snapped, cell_m) == snapped  # a centre snaps to itself


def test_snapped_points_nearby_share_a_centre():
    cells = {snap_to_grid_m(-122.3340 + i * 1e-5, 47.6060 + i * 1e-5, 150.0) for i in range(5)}
    assert len(cells) == 1


@settings(max_examples=300, deadline=None)
@given(places(max_abs_lat=89.0), st.floats(0.0, 200_000.0), st.floats(0.0, 360.0))
def test_one_to_many_fast_path_matches_geopy(place, distance, bearing):
    lon, lat = place
    far = geodesic(meters=distance).destination((lat, lon), bearing)
    [ours] = distances_from_m(lon, lat, [far.longitude], [far.latitude])
    expected = geopy_m(lon, lat, far.longitude, far.latitude)
    assert ours == pytest.approx(expected, rel=1e-4, abs=1e-3)


@settings(max_examples=40, deadline=None)
@given(st.data(), st.floats(50_000.0, 3_000_000.0), st.floats(0.0, 360.0))
def test_point_to_a_far_polygon_matches_geopy(data, distance, bearing):
    lon, lat = data.draw(places(max_abs_lat=60.0))
    geometry = data.draw(polygonal(lon, lat))
    far = geodesic(meters=distance).destination((lat, lon), bearing)
    expected = distance_to_geometry_m(far.longitude, far.latitude, geometry)
    assert distance_to_m(far.longitude, far.latitude, geometry) == pytest.approx(
        expected, abs=tolerance_m(expected)
    )


@pytest.mark.parametrize(
    "call",
    [lambda: distance_m(0, 91, 0, 0), lambda: distance_m(math.nan, 0, 0, 0),
     lambda: distance_m(1000, 0, 0, 0), lambda: distance_m("a", 0, 0, 0),
     lambda: distance_m(np.array([0, 200.0]), 0, 0, 0),
     lambda: distance_to_m(0, 95, shapely.box(0, 0, 1, 1)),
     lambda: snap_to_grid_m(math.inf, 0, 150), lambda: snap_to_grid_m(0, 0, 0),
     lambda: distance_m(10**400, 0, 0, 0)],
)
def test_bad_coordinates_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


@settings(max_examples=200, deadline=None)
@given(places(), st.data())
def test_many_points_to_one_geometry_match_geopy(place, data):
    """The bulk twin (device circles against a group boundary) agrees with the reference for
    every point, inside, near and as far as 200 km (beyond its one shared frame)."""
    lon, lat = place
    geometry = data.draw(polygonal(lon, lat))
    points = data.draw(st.lists(
        st.one_of(points_near(lon, lat), points_near(lon, lat, spread_m=200_000.0)),
        min_size=1, max_size=8,
    ))
    lons, lats = zip(*points, strict=True)
    ours = distances_from_points_m(lons, lats, geometry)
    for (plon, plat), distance in zip(points, ours, strict=True):
        expected = distance_to_geometry_m(plon, plat, geometry)
        assert distance == pytest.approx(expected, abs=tolerance_m(expected))


def test_many_points_to_one_geometry_edge_cases():
    block = shapely.box(-122.31, 47.59, -122.29, 47.61)
    assert distances_from_points_m([], [], block).shape == (0,)
    inside_and_edge = distances_from_points_m([-122.3, -122.31], [47.6, 47.6], block)
    assert inside_and_edge.tolist() == [0.0, 0.0]
    with pytest.raises(GeometryError):
        distances_from_points_m([0.0], [0.0], shapely.Polygon())
