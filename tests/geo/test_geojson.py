"""geo.geojson: liberal reading, RFC 7946 writing, errors that name the feature."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geo import Feature, GeometryError, read_geojson, to_geojson
from tests.geo.strategies import places, polygonal

CLOCKWISE = [[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]


def collection(*geometries, **foreign):
    return {
        "type": "FeatureCollection",
        **foreign,
        "features": [
            {"type": "Feature", "id": f"f{i}", "properties": {"n": i}, "geometry": g}
            for i, g in enumerate(geometries)
        ],
    }


def test_reads_paths_strings_bytes_and_mappings(tmp_path):
    document = collection({"type": "Point", "coordinates": [-122.3, 47.6]})
    path = tmp_path / "one.geojson"
    path.write_text(json.dumps(document))
    for source in (path, str(path), json.dumps(document), json.dumps(document).encode(), document):
        [feature] = read_geojson(source)
        assert feature.id == "f0"
        assert feature.properties == {"n": 0}
        assert feature.geometry.equals(shapely.Point(-122.3, 47.6))


def test_accepts_clockwise_rings_holes_multipolygons_and_foreign_members():
    hole = [[0.2, 0.2], [0.4, 0.2], [0.4, 0.4], [0.2, 0.2]]
    document = collection(
        {"type": "Polygon", "coordinates": [CLOCKWISE, hole]},
        {"type": "MultiPolygon", "coordinates": [[CLOCKWISE], [[[5, 5], [6, 5], [6, 6], [5, 5]]]]},
        properties=[],
        crs={"type": "name"},
    )
    polygon, multi = read_geojson(document)
    assert len(polygon.geometry.interiors) == 1
    assert multi.geometry.geom_type == "MultiPolygon"


def test_a_bare_geometry_and_a_single_feature():
    [bare] = read_geojson({"type": "Point", "coordinates": [1, 2]})
    assert bare.id is None and bare.properties == {}
    [single] = read_geojson({"type": "Feature", "id": 7, "properties": None,
                             "geometry": {"type": "Point", "coordinates": [1, 2]}})
    assert single.id == 7 and single.properties == {}


def test_bad_feature_error_names_the_feature_the_problem_and_where():
    bowtie = [[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]
    document = collection({"type": "Point", "coordinates": [0, 0]},
                          {"type": "Polygon", "coordinates": [bowtie]})
    with pytest.raises(GeometryError) as raised:
        read_geojson(document)
    message = str(raised.value)
    assert "feature 1" in message and "'f1'" in message
    assert "self-intersection at (0.5, 0.5)" in message
    assert raised.value.feature == "f1"
    assert raised.value.problems[0].code == "self-intersection"


def test_lenient_reading_returns_every_feature_with_its_problems():
    document = collection(
        {"type": "Polygon", "coordinates": [CLOCKWISE[:-1]]},
        {"type": "Point", "coordinates": [0, 0]},
        None,
    )
    unclosed, point, empty = read_geojson(document, strict=False)
    assert unclosed.geometry is None and unclosed.problems[0].code == "unclosed-ring"
    assert point.problems == []
    assert empty.problems[0].code == "no-geometry"


@pytest.mark.parametrize(
    ("source", "words"),
    [("{not json", "not JSON"), ("[1, 2]", "must be an object"),
     ({"type": "FeatureCollection"}, "no 'features'")],
)
def test_unreadable_documents(source, words):
    with pytest.raises(GeometryError, match=words):
        read_geojson(source)


def test_writes_right_hand_rings_and_limits_decimals():
    hole_ccw = [(0.2, 0.2), (0.4, 0.2), (0.4, 0.4), (0.2, 0.2)]
    polygon = shapely.Polygon([(x + 0.123456789, y) for x, y in CLOCKWISE], [hole_ccw])
    written = to_geojson(polygon, precision=4)
    shell, hole = written["coordinates"]
    assert shapely.LinearRing(shell).is_ccw
    assert not shapely.LinearRing(hole).is_ccw
    assert all(round(v, 4) == v for position in shell for v in position)
    assert shell[0][0] == 0.1235


def test_features_round_trip():
    features = read_geojson(collection(
        {"type": "Polygon", "coordinates": [CLOCKWISE]},
        {"type": "MultiPolygon", "coordinates": [[CLOCKWISE]]},
        {"type": "Point", "coordinates": [1.5, 2.5]},
    ))
    written = to_geojson(features)
    assert written["type"] == "FeatureCollection"
    again = read_geojson(json.dumps(written))
    for before, after in zip(features, again, strict=True):
        assert before.id == after.id and before.properties == after.properties
        assert before.geometry.equals(after.geometry)
    single = to_geojson(Feature(None, shapely.Point(1, 2), {"a": 1}))
    assert single == {"type": "Feature", "geometry": {"type": "Point", "coordinates": [1.0, 2.0]},
                      "properties": {"a": 1}}


@settings(max_examples=200, deadline=None)
@given(data=st.data(), precision=st.integers(0, 9), reverse=st.booleans())
def test_polygons_are_written_as_the_mapping_of_the_oriented_rounded_geometry(
        data, precision, reverse):
    """Polygons take a path of their own (rings straight to lists): it writes what shapely's
    mapping of the oriented, rounded geometry says, whatever the rings' directions."""
    lon, lat = data.draw(places())
    geometry = data.draw(polygonal(lon, lat))
    if reverse:
        geometry = shapely.reverse(geometry)
    oriented = shapely.orient_polygons(geometry)
    rounded = shapely.transform(oriented, lambda coords: np.round(coords, precision))
    expected = json.loads(json.dumps(shapely.geometry.mapping(rounded)))
    assert to_geojson(geometry, precision=precision) == expected
    assert json.dumps(to_geojson(geometry, precision=precision)) == json.dumps(expected)


def test_empty_polygons_are_written_as_shapely_maps_them():
    assert to_geojson(shapely.Polygon()) == {"type": "Polygon", "coordinates": []}
