"""Tests for geo.cap: CAP 1.2 polygon and circle strings, against the spec's and real alerts."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import shapely
from geopy.distance import geodesic
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.cap import (
    CAP_NAMESPACE,
    Circle,
    areas_from_cap_xml,
    format_circle,
    format_polygon,
    format_polygons,
    parse_circle,
    parse_polygon,
)
from geo.errors import GeometryError

NS = {"cap": CAP_NAMESPACE}


@pytest.fixture(scope="module")
def cap_files(shared_data: Path) -> list[Path]:
    files = sorted((shared_data / "cap").glob("*.xml"))
    assert files, f"no CAP alerts in {shared_data / 'cap'}"
    return files


def shape_texts(path: Path, kind: str) -> list[str]:
    """The raw text of every <polygon> or <circle> under an <area>, read independently of geo."""
    root = ET.parse(path).getroot()
    return [element.text or "" for element in root.iterfind(f".//cap:area/cap:{kind}", NS)]


def normalise(text: str) -> str:
    return " ".join(text.split())


def test_real_polygons_round_trip_exactly(cap_files: list[Path]) -> None:
    # The files' numbers are already in shortest form (no trailing zeros), so the strings must
    # come back identical, not just numerically equal.
    counts = {path.name: len(shape_texts(path, "polygon")) for path in cap_files}
    assert counts["oasis_cap12_spec_example2.xml"] == 1
    assert counts["eccc_atlantic_CWHX_202210101814.xml"] > 10
    assert counts["eccc_pacific_CWVR_202210101743_update.xml"] > 1
    for path in cap_files:
        for text in shape_texts(path, "polygon"):
            polygon = parse_polygon(text)
            assert polygon.is_valid, (path.name, shapely.is_valid_reason(polygon))
            assert format_polygon(polygon) == normalise(text), path.name


def test_spec_polygon_is_read_in_lon_lat_order(shared_data: Path) -> None:
    (text,) = shape_texts(shared_data / "cap" / "oasis_cap12_spec_example2.xml", "polygon")
    polygon = parse_polygon(text)
    assert polygon.exterior.coords[0] == (-120.14, 38.47)
    assert len(polygon.exterior.coords) == 5


def test_spec_circle_round_trips(shared_data: Path) -> None:
    (text,) = shape_texts(shared_data / "cap" / "oasis_cap12_spec_example3.xml", "circle")
    circle = parse_circle(text)
    assert circle == Circle(lon=-115.5527, lat=32.9525, radius_m=0.0)
    assert format_circle(circle) == normalise(text)
    assert parse_circle(format_circle(circle)) == circle


def test_every_real_circle_round_trips(cap_files: list[Path]) -> None:
    texts = [text for path in cap_files for text in shape_texts(path, "circle")]
    assert texts
    for text in texts:
        circle = parse_circle(text)
        assert parse_circle(format_circle(circle)) == circle
        assert format_circle(circle) == normalise(text)


def test_areas_from_cap_xml_finds_every_shape(cap_files: list[Path]) -> None:
    for path in cap_files:
        shapes = areas_from_cap_xml(path.read_bytes())
        polygons = [parse_polygon(text) for text in shape_texts(path, "polygon")]
        circles = [parse_circle(text) for text in shape_texts(path, "circle")]
        assert [s for s in shapes if isinstance(s, Circle)] == circles, path.name
        found = [s for s in shapes if isinstance(s, shapely.Polygon)]
        assert len(found) == len(polygons), path.name
        assert all(a.equals_exact(b, 0) for a, b in zip(found, polygons, strict=True))


def test_areas_from_cap_xml_names_the_bad_shape() -> None:
    doc = (
        f'<alert xmlns="{CAP_NAMESPACE}"><info><area><areaDesc>x</areaDesc>'
        "<polygon>1,2 3,4 5,6 1,2</polygon><polygon>1,2 3,4 1,2</polygon></area></info></alert>"
    )
    with pytest.raises(GeometryError, match=r"info 0, area 0, element 2 <polygon>.*at least 4"):
        areas_from_cap_xml(doc)
    with pytest.raises(GeometryError, match=r"not a CAP 1\.2 alert"):
        areas_from_cap_xml("<alert/>")


@pytest.mark.parametrize(
    ("text", "code", "named"),
    [
        ("38.47,-120.14 38.34,-119.95 38.52,-119.74 38.62,-119.89", "unclosed-ring", "not closed"),
        ("38.47,-120.14 38.34,-119.95 38.47,-120.14", "too-few-points", "at least 4"),
        ("38.47,-120.14 38.34,abc 38.52,-119.74 38.47,-120.14", "invalid-coordinate", "'abc'"),
        ("38.47,-120.14 38.34;-119 38.52,-119.74 38.47,-120.14", "invalid-coordinate", "lat,lon"),
        ("38.47,-120.14 nan,-119.95 38.52,-119.74 38.47,-120.14", "invalid-coordinate", "'nan'"),
        ("38.47,-120.14 38.34,inf 38.52,-119.74 38.47,-120.14", "invalid-coordinate", "'inf'"),
        ("38.47,-120.14 91,-119.95 38.52,-119.74 38.47,-120.14", "out-of-range", "latitude 91"),
        ("38.47,-120.14 38.34,180.5 38.52,-119.74 38.47,-120.14", "out-of-range", "longitude 180"),
    ],
)
def test_bad_polygons_say_what_and_where(text: str, code: str, named: str) -> None:
    with pytest.raises(GeometryError) as caught:
        parse_polygon(text)
    message = str(caught.value)
    assert named in message
    assert code in {problem.code for problem in caught.value.problems}
    if code not in ("too-few-points",):
        assert "pair " in message  # which pair is wrong, not just that one is


def test_out_of_range_is_not_confused_with_axis_order() -> None:
    # (lon, lat) written by mistake: -120 is no latitude.
    with pytest.raises(GeometryError, match=r"pair 1 of 4.*latitude -120\.14 is out of range"):
        parse_polygon("-120.14,38.47 -119.95,38.34 -119.74,38.52 -120.14,38.47")


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("32.9525,-115.5527 -1", "radius '-1'"),
        ("32.9525,-115.5527 nan", "radius 'nan'"),
        ("32.9525,-115.5527", "'lat,lon radius'"),
        ("32.9525 -115.5527 1", "'lat,lon radius'"),
        ("95,-115.5527 1", "latitude 95"),
        ("32.9525,x 1", "longitude 'x'"),
    ],
)
def test_bad_circles_say_what(text: str, named: str) -> None:
    with pytest.raises(GeometryError, match="invalid CAP circle") as caught:
        parse_circle(text)
    assert named in str(caught.value)


def test_numbers_are_written_shortest_exact_with_at_most_7_decimals() -> None:
    quad = shapely.Polygon([(-120.0, 45.0), (-119.5, 45.0), (-119.5, 45.123456789), (-120, 45.5)])
    assert format_polygon(quad) == "45,-120 45,-119.5 45.1234568,-119.5 45.5,-120 45,-120"
    assert format_circle(Circle(lon=-0.00000001, lat=0.1 + 0.2, radius_m=1234.5)) == "0.3,0 1.2345"


def test_polygons_with_holes_or_parts_are_refused_by_format_polygon() -> None:
    holed = shapely.box(0, 0, 10, 10).difference(shapely.box(4, 4, 6, 6))
    with pytest.raises(GeometryError, match="cannot have holes"):
        format_polygon(holed)
    with pytest.raises(GeometryError, match="holes"):
        format_polygons(holed)
    two = shapely.MultiPolygon([shapely.box(0, 0, 1, 1), shapely.box(2, 0, 3, 1)])
    with pytest.raises(GeometryError, match="format_polygons"):
        format_polygon(two)
    texts = format_polygons(two)
    assert len(texts) == 2
    assert all(parse_polygon(s).equals(p) for s, p in zip(texts, two.geoms, strict=True))
    with pytest.raises(GeometryError, match="LineString"):
        format_polygon(shapely.LineString([(0, 0), (1, 1)]))


@pytest.mark.parametrize(
    ("lon", "lat", "radius_m"),
    [
        (-122.3321, 47.6062, 1500.0),
        (-115.5527, 32.9525, 12_345.6),
        (151.2093, -33.8688, 75.0),
        (0.0, 0.0, 250_000.0),
        (25.0, 69.5, 40_000.0),
    ],
)
def test_circle_polygon_vertices_lie_on_the_geodesic_circle(
    lon: float, lat: float, radius_m: float
) -> None:
    polygon = Circle(lon=lon, lat=lat, radius_m=radius_m).to_polygon(segments=48)
    coords = list(polygon.exterior.coords)
    assert len(coords) == 49
    assert coords[0] == coords[-1]
    assert polygon.exterior.is_ccw
    assert polygon.is_valid
    for vertex_lon, vertex_lat in coords[:-1]:
        # geopy (Karney's geodesic) is the reference, independent of the pyproj call under test.
        distance = geodesic((lat, lon), (vertex_lat, vertex_lon)).meters
        assert distance == pytest.approx(radius_m, rel=1e-6)
    assert polygon.contains(shapely.Point(lon, lat))


def test_circles_that_a_lon_lat_polygon_cannot_hold_are_refused() -> None:
    with pytest.raises(GeometryError, match="radius 0"):
        Circle(lon=-115.5527, lat=32.9525, radius_m=0.0).to_polygon()
    with pytest.raises(GeometryError, match="antimeridian"):
        Circle(lon=179.99, lat=-17.7, radius_m=5_000.0).to_polygon()
    with pytest.raises(GeometryError, match="pole"):
        Circle(lon=0.0, lat=89.9, radius_m=20_000.0).to_polygon()
    with pytest.raises(GeometryError, match="radius"):
        Circle(lon=0.0, lat=0.0, radius_m=-1.0)
    with pytest.raises(ValueError, match="segments"):
        Circle(lon=0.0, lat=0.0, radius_m=1.0).to_polygon(segments=2)


latitudes = st.floats(-90, 90, allow_nan=False)
longitudes = st.floats(-180, 180, allow_nan=False)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(longitudes, latitudes), min_size=3, max_size=12),
)
def test_formatted_polygons_parse_back_to_themselves(points: list[tuple[float, float]]) -> None:
    polygon = shapely.Polygon([*points, points[0]])
    text = format_polygon(polygon)
    again = parse_polygon(text)
    assert format_polygon(again) == text
    pairs = zip(polygon.exterior.coords, again.exterior.coords, strict=True)
    for (lon, lat), (lon_again, lat_again) in pairs:
        assert math.isclose(lon, lon_again, abs_tol=5e-8)
        assert math.isclose(lat, lat_again, abs_tol=5e-8)


@settings(max_examples=100, deadline=None)
@given(longitudes, latitudes, st.floats(0, 20_000_000, allow_nan=False))
def test_formatted_circles_parse_back_to_themselves(
    lon: float, lat: float, radius_m: float
) -> None:
    text = format_circle(Circle(lon=lon, lat=lat, radius_m=radius_m))
    circle = parse_circle(text)
    assert format_circle(circle) == text
    assert parse_circle(format_circle(circle)) == circle
