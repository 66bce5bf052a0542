"""The names the geo library promises exist and say what they do."""

from __future__ import annotations

import inspect

import pytest

import geo

FUNCTIONS = ["read_geojson", "to_geojson", "validate", "repair", "distance_m", "distance_to_m",
             "simplify_m"]
CLASSES = {
    "Feature": [],
    "Problem": [],
    "GeometryError": [],
    "PolygonIndex": ["add", "remove", "__len__", "covering", "within", "nearest",
                     "covering_many"],
    "PointIndex": ["add", "remove", "__len__", "within", "nearest"],
}
CAP = ["parse_polygon", "format_polygon", "parse_circle", "format_circle", "Circle"]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_exists_with_a_docstring(name):
    function = getattr(geo, name)
    assert callable(function)
    assert inspect.getdoc(function)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_class_and_its_methods_have_docstrings(name):
    cls = getattr(geo, name)
    assert inspect.getdoc(cls)
    for method in CLASSES[name]:
        assert callable(getattr(cls, method)), method
        if method != "__len__":
            assert inspect.getdoc(getattr(cls, method)), method


@pytest.mark.parametrize("name", CAP)
def test_cap_conversions_exist_with_docstrings(name):
    assert inspect.getdoc(getattr(geo.cap, name))


def test_queries_take_keyword_arguments_only():
    index = geo.PolygonIndex()
    with pytest.raises(TypeError):
        index.covering(0.0, 0.0)
    with pytest.raises(TypeError):
        index.within(0.0, 0.0, 10.0)
