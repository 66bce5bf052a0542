"""Tests for geo.simplify: metre tolerances, and never an invalid or partless result."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import shapely
import shapely.affinity
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from shapely.geometry import shape

import geo.simplify
from geo.distance import metres_per_degree
from geo.errors import GeometryError
from geo.simplify import simplify_m


def to_local_m(geometry, origin: shapely.Point):
    """The geometry in metres east and north of ``origin``, the frame the tolerance is meant in."""
    scale = np.array(metres_per_degree(origin.y))
    return shapely.transform(geometry, lambda xy: (xy - [origin.x, origin.y]) * scale)


@st.composite
def star_rings_m(draw, radius_m: float) -> list[tuple[float, float]]:
    """A star-shaped ring around (0, 0) in metres: angles strictly increase, so it is simple."""
    n = draw(st.integers(5, 60))
    jitter = draw(st.lists(st.floats(0, 0.9), min_size=n, max_size=n))
    reach = draw(st.lists(st.floats(0.2, 1.0), min_size=n, max_size=n))
    return [
        (r * radius_m * math.cos(a), r * radius_m * math.sin(a))
        for r, a in ((reach[i], (i + jitter[i]) * 2 * math.pi / n) for i in range(n))
    ]


@st.composite
def polygonal_lonlat(draw):
    """A Polygon, or a MultiPolygon of 2-4 stars whose bounding discs are apart, in degrees.

    A star may have a star-shaped hole around its centre, small enough to stay inside it.
    """
    lon0 = draw(st.floats(-170, 170))
    lat0 = draw(st.floats(-60, 60))
    count = draw(st.sampled_from([1, 2, 3, 4]))
    radii = [draw(st.floats(50, 5000)) for _ in range(count)]
    kx, ky = metres_per_degree(lat0)
    parts = []
    x_m = 0.0
    for index, radius_m in enumerate(radii):
        if index:
            x_m += radii[index - 1] + radius_m + draw(st.floats(1, 200))
        rings = [draw(star_rings_m(radius_m))]
        if draw(st.booleans()):
            rings.append(draw(star_rings_m(0.15 * radius_m)))
        shell, *holes = [
            [(lon0 + (x + x_m) / kx, lat0 + y / ky) for x, y in ring] for ring in rings
        ]
        parts.append(shapely.Polygon(shell, holes))
    geometry = parts[0] if count == 1 else shapely.MultiPolygon(parts)
    assume(geometry.is_valid)
    return geometry


@settings(max_examples=150, deadline=None)
@given(polygonal_lonlat(), st.floats(1, 500))
def test_simplified_polygons_keep_their_promises(geometry, tolerance_m: float) -> None:
    result = simplify_m(geometry, tolerance_m)

    assert type(result) is type(geometry)
    assert result.is_valid, shapely.is_valid_reason(result)
    before, after = shapely.get_parts(geometry), shapely.get_parts(result)
    assert len(after) == len(before)
    assert not shapely.is_empty(after).any()
    assert (shapely.get_num_coordinates(after) <= shapely.get_num_coordinates(before)).all()
    assert set(map(tuple, shapely.get_coordinates(result).tolist())) <= set(
        map(tuple, shapely.get_coordinates(geometry).tolist())
    )
    origin = geometry.centroid
    # Densified, so whole edges are measured and not only vertices.
    hausdorff_m = shapely.hausdorff_distance(
        to_local_m(geometry.boundary, origin), to_local_m(result.boundary, origin), densify=0.05
    )
    assert hausdorff_m <= tolerance_m * 1.01 + 0.01


def test_tolerance_is_measured_in_metres_not_degrees() -> None:
    # A 30 m bump on a 2 km square at 60°N, where a degree of longitude is half as long as one of
    # latitude: kept at 20 m and gone at 40 m, whichever way it points.
    lat0 = 60.0
    kx, ky = metres_per_degree(lat0)
    for bump_x, bump_y in ((0.0, 30.0), (30.0, 0.0)):
        ring_m = [
            (0, 0),
            (1000, -bump_y),
            (2000, 0),
            (2000 + bump_x, 1000),
            (2000, 2000),
            (0, 2000),
        ]
        polygon = shapely.Polygon([(10 + x / kx, lat0 + y / ky) for x, y in ring_m])
        assert len(simplify_m(polygon, 20.0).exterior.coords) == 6  # 4 corners, bump, closing
        assert len(simplify_m(polygon, 40.0).exterior.coords) == 5


def test_small_holes_are_kept() -> None:
    kx, _ = metres_per_degree(47.6)
    outer = shapely.box(-122.34, 47.60, -122.33, 47.61)
    hole = shapely.Point(-122.335, 47.605).buffer(3 / kx)  # 3 m in radius
    polygon = shapely.Polygon(outer.exterior, [hole.exterior])
    result = simplify_m(polygon, 100.0)
    assert result.is_valid
    assert len(result.interiors) == 1
    assert result.area < outer.area


def test_zero_tolerance_is_identity_and_bad_tolerances_are_refused() -> None:
    polygon = shapely.box(-122.34, 47.60, -122.33, 47.61)
    assert simplify_m(polygon, 0) is polygon
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="tolerance_m"):
            simplify_m(polygon, bad)


def test_empty_comes_back_and_other_inputs_are_refused() -> None:
    assert simplify_m(shapely.Polygon(), 10.0).is_empty
    with pytest.raises(GeometryError, match="LineString"):
        simplify_m(shapely.LineString([(0, 0), (1, 1)]), 10.0)
    bowtie = shapely.Polygon([(0, 0), (0.01, 0.01), (0.01, 0), (0, 0.01)])
    with pytest.raises(GeometryError, match="invalid"):
        simplify_m(bowtie, 10.0)


def two_squares() -> shapely.MultiPolygon:
    return shapely.MultiPolygon(
        [
            shapely.box(-122.34, 47.60, -122.33, 47.61).segmentize(0.001),
            shapely.box(-122.32, 47.60, -122.31, 47.61).segmentize(0.001),
        ]
    )


def test_a_part_that_comes_out_broken_falls_back_to_the_original(monkeypatch) -> None:
    real = geo.simplify._simplify_local

    def break_first_part(local, tolerance_m):
        parts = list(shapely.get_parts(real(local, tolerance_m)))
        x0, y0, x1, y1 = parts[0].bounds
        parts[0] = shapely.Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1)])  # self-crossing
        return shapely.MultiPolygon(parts)

    monkeypatch.setattr(geo.simplify, "_simplify_local", break_first_part)
    geometry = two_squares()
    result = simplify_m(geometry, 10.0)
    assert result.is_valid
    assert result.geoms[0].equals_exact(geometry.geoms[0], 0)
    assert len(result.geoms[1].exterior.coords) == 5


def test_lost_parts_are_simplified_one_by_one(monkeypatch) -> None:
    real = geo.simplify._simplify_local

    def drop_a_part(local, tolerance_m):
        simplified = real(local, tolerance_m)
        if isinstance(simplified, shapely.MultiPolygon):
            return shapely.MultiPolygon(simplified.geoms[:1])
        return simplified

    monkeypatch.setattr(geo.simplify, "_simplify_local", drop_a_part)
    result = simplify_m(two_squares(), 10.0)
    assert isinstance(result, shapely.MultiPolygon)
    assert [len(part.exterior.coords) for part in result.geoms] == [5, 5]


def test_parts_that_would_overlap_give_back_the_original(monkeypatch) -> None:
    def swell(local, tolerance_m):
        # Each part alone is a fine simplification (valid, fewer vertices); together they overlap.
        return shapely.MultiPolygon(
            [shapely.affinity.scale(part.envelope, 3, 3) for part in shapely.get_parts(local)]
        )

    monkeypatch.setattr(geo.simplify, "_simplify_local", swell)
    geometry = two_squares()
    assert simplify_m(geometry, 10.0) is geometry


@pytest.fixture(scope="module")
def beats(shared_data: Path) -> list:
    with (shared_data / "seattle_spd_beats_2015.geojson").open(encoding="utf-8") as file:
        document = json.load(file)
    return [shape(feature["geometry"]) for feature in document["features"]]


@pytest.mark.parametrize("tolerance_m", [10.0, 50.0])
def test_real_police_beats_stay_valid_with_every_part(beats: list, tolerance_m: float) -> None:
    assert len(beats) == 51
    before = after = 0
    for beat in beats:
        result = simplify_m(beat, tolerance_m)
        assert isinstance(result, shapely.MultiPolygon)
        assert result.is_valid, shapely.is_valid_reason(result)
        assert len(result.geoms) == len(beat.geoms)
        assert not any(part.is_empty for part in result.geoms)
        before += shapely.get_num_coordinates(beat)
        after += shapely.get_num_coordinates(result)
    assert after < before
