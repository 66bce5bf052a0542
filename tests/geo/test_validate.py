"""geo.validate: one test per problem, each naming the problem and where it is."""

from __future__ import annotations

import math

import pytest
import shapely

from geo import GeometryError, check, repair, validate

SQUARE = [[-122.34, 47.60], [-122.33, 47.60], [-122.33, 47.61], [-122.34, 47.61], [-122.34, 47.60]]


def polygon(*rings):
    return {"type": "Polygon", "coordinates": [list(ring) for ring in rings]}


def only(problems):
    assert len(problems) == 1, problems
    return problems[0]


def test_a_valid_polygon_has_no_problems():
    assert validate(polygon(SQUARE)) == []
    assert validate(shapely.Polygon(SQUARE)) == []
    assert validate(polygon(list(reversed(SQUARE)))) == []  # clockwise is fine


def test_self_intersection_is_reported_with_its_location():
    bowtie = [[-122.34, 47.60], [-122.33, 47.61], [-122.33, 47.60], [-122.34, 47.61],
              [-122.34, 47.60]]
    problem = only(validate(polygon(bowtie)))
    assert problem.code == "self-intersection"
    assert problem.location == pytest.approx((-122.335, 47.605))
    assert "self-intersection at (-122.335, 47.605)" in str(problem)


def test_ring_with_too_few_points():
    problem = only(validate(polygon([[0, 0], [1, 1], [0, 0]])))
    assert problem.code == "too-few-points"
    assert "3 positions" in str(problem) and "at least 4" in str(problem)
    assert "outer ring" in str(problem) and "(0, 0)" in str(problem)


def test_unclosed_ring_names_the_open_end():
    problem = only(validate(polygon(SQUARE[:-1])))
    assert problem.code == "unclosed-ring"
    assert "not closed" in str(problem)
    assert "(-122.34, 47.61)" in str(problem)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_or_infinite_coordinate(bad):
    ring = [list(p) for p in SQUARE]
    ring[2] = [bad, 47.61]
    problem = only(validate(polygon(ring)))
    assert problem.code == "invalid-coordinate"
    assert "NaN or infinite" in str(problem)
    assert "47.61" in str(problem)


@pytest.mark.parametrize(("lon", "lat"), [(-200.0, 47.6), (10.0, 95.0)])
def test_out_of_range_coordinate(lon, lat):
    ring = [list(p) for p in SQUARE]
    ring[1] = [lon, lat]
    problem = only(validate(polygon(ring)))
    assert problem.code == "out-of-range"
    assert f"({lon!r}, {lat!r})" in str(problem)


def test_more_vertices_than_the_limit():
    circle = shapely.Point(-122.3, 47.6).buffer(0.01, quad_segs=100)
    problem = only(validate(circle, max_vertices=50))
    assert problem.code == "too-many-vertices"
    assert "more than the limit of 50" in str(problem)
    assert validate(circle) == []  # the default limit is 10 000


def test_antimeridian_crossing_names_where():
    ring = [[179.9, 0.0], [-179.9, 0.0], [-179.9, 1.0], [179.9, 1.0], [179.9, 0.0]]
    problem = only(validate(polygon(ring)))
    assert problem.code == "antimeridian"
    assert "antimeridian" in str(problem) and "(179.9, 0.0)" in str(problem)


def test_hole_outside_its_shell():
    hole = [[-122.2, 47.2], [-122.1, 47.2], [-122.1, 47.3], [-122.2, 47.2]]
    problem = only(validate(polygon(SQUARE, hole)))
    assert problem.code == "hole-outside-shell"
    assert "(-122.2, 47.2)" in str(problem)


def test_problems_in_a_multipolygon_name_the_part():
    geometry = {"type": "MultiPolygon", "coordinates": [[SQUARE], [SQUARE[:-1]]]}
    problem = only(validate(geometry))
    assert problem.path == "polygon 1, outer ring"


def test_unsupported_and_malformed_geometries():
    assert only(validate({"type": "LineString", "coordinates": [[0, 0], [1, 1]]})).code == (
        "unsupported-type"
    )
    assert only(validate({"type": "Polygon", "coordinates": [[[0, "a"]]]})).code == "malformed"
    assert only(validate({"type": "Point", "coordinates": [1]})).code == "malformed"
    assert only(validate(shapely.Polygon())).code == "empty"
    assert only(validate("POLYGON")).code == "not-a-geometry"


def test_check_raises_with_every_problem():
    with pytest.raises(GeometryError) as raised:
        check(polygon([[0, 0], [1, 1], [0, 0]], [[0, 0], [1, 1]]))
    assert [p.code for p in raised.value.problems] == ["too-few-points", "too-few-points"]


def test_repair_only_when_asked_and_keeps_the_area():
    bowtie = shapely.Polygon([(0, 0), (2, 2), (2, 0), (0, 2), (0, 0)])
    assert validate(bowtie)[0].code == "self-intersection"
    fixed = repair(bowtie)
    assert fixed.is_valid and fixed.area == pytest.approx(2.0)
    assert validate(fixed) == []
    square = shapely.Polygon(SQUARE)
    assert repair(square) is square


def test_repair_refuses_what_it_cannot_mend():
    crossing = shapely.Polygon([(179.9, 0), (-179.9, 0), (-179.9, 1), (179.9, 1)])
    with pytest.raises(GeometryError, match="antimeridian"):
        repair(crossing)
