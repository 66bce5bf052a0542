"""Validation of polygons and points with reasons a person can act on, and explicit repair.

``validate`` accepts a shapely geometry or a GeoJSON geometry mapping. Raw GeoJSON is checked
first for what shapely would silently paper over (an unclosed ring, a ring with too few
positions, NaN, a longitude of 200), then GEOS judges the topology (self-intersections, holes
outside their shell, ...). Nothing is ever repaired unless the caller asks with ``repair``.
"""

from __future__ import annotations

import itertools
import math
import numbers
import re
from collections.abc import Iterator, Mapping
from typing import Any

import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from geo.coordinates import finite_number, is_lat, is_lon
from geo.errors import GeometryError, Problem

DEFAULT_MAX_VERTICES = 10_000
SUPPORTED_TYPES = ("Point", "Polygon", "MultiPolygon")

# GEOS reasons, as shapely.is_valid_reason words them, mapped to our stable codes.
_GEOS_CODES = {
    "self-intersection": "self-intersection",
    "ring self-intersection": "self-intersection",
    "hole lies outside shell": "hole-outside-shell",
    "holes are nested": "nested-holes",
    "interior is disconnected": "disconnected-interior",
    "nested shells": "nested-shells",
    "duplicate rings": "duplicate-rings",
    "too few points in geometry component": "too-few-points",
    "invalid coordinate": "invalid-coordinate",
    "ring is not closed": "unclosed-ring",
}
_GEOS_REASON = re.compile(r"^(?P<reason>[^\[]+?)\s*(\[(?P<x>\S+)\s+(?P<y>\S+)\])?$")


def validate(
    geometry: BaseGeometry | Mapping[str, Any], max_vertices: int = DEFAULT_MAX_VERTICES
) -> list[Problem]:
    """Every problem that makes ``geometry`` unusable as a boundary or a point; empty when valid.

    >>> validate({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]})
    [Problem(code='self-intersection', message='self-intersection', location=(0.5, 0.5), path=None)]
    >>> validate(shapely.Point(-122.3, 47.6))
    []
    """
    if isinstance(geometry, BaseGeometry):
        if geometry.is_empty:
            return [Problem("empty", "geometry is empty")]
        mapping = shapely.geometry.mapping(geometry)
    elif isinstance(geometry, Mapping):
        mapping = geometry
    else:
        return [Problem("not-a-geometry", f"expected a geometry, got {type(geometry).__name__}")]

    problems = list(_raw_problems(mapping, max_vertices))
    if problems:
        return problems
    built = geometry if isinstance(geometry, BaseGeometry) else build(mapping)
    return _geos_problems(built)


def check(
    geometry: BaseGeometry | Mapping[str, Any], max_vertices: int = DEFAULT_MAX_VERTICES
) -> BaseGeometry:
    """The geometry as shapely when it is valid; otherwise raise :class:`GeometryError`.

    >>> check({"type": "Point", "coordinates": [-122.3, 47.6]}).wkt
    'POINT (-122.3 47.6)'
    """
    problems = validate(geometry, max_vertices)
    if problems:
        raise GeometryError("; ".join(str(p) for p in problems), problems)
    return geometry if isinstance(geometry, BaseGeometry) else build(geometry)


def build(mapping: Mapping[str, Any]) -> BaseGeometry:
    """The shapely geometry of a GeoJSON geometry mapping that :func:`validate` passed.

    Positions keep longitude and latitude only: RFC 7946 allows an altitude, and a mix of
    positions with and without one would otherwise not build at all.

    >>> build({"type": "Point", "coordinates": [1.0, 2.0, 30.0]}).wkt
    'POINT (1 2)'
    """
    return shape({"type": mapping["type"], "coordinates": _planar(mapping["coordinates"])})


def _planar(coordinates: Any) -> Any:
    if coordinates and isinstance(coordinates[0], int | float):
        return list(coordinates[:2])
    return [_planar(item) for item in coordinates]


def repair(geometry: BaseGeometry) -> BaseGeometry:
    """A valid polygonal version of an invalid Polygon or MultiPolygon (GEOS ``make_valid``).

    Only topology is repaired (self-intersections, bow-ties, misplaced holes): lines and points
    that the repair leaves behind are dropped, and the result is a Polygon or a MultiPolygon.
    Bad coordinates (NaN, out of range) and antimeridian crossings cannot be repaired and raise
    :class:`GeometryError`.

    >>> bowtie = shapely.Polygon([(0, 0), (2, 2), (2, 0), (0, 2), (0, 0)])
    >>> repaired = repair(bowtie)
    >>> repaired.geom_type, repaired.area, repaired.is_valid
    ('MultiPolygon', 2.0, True)
    """
    unrepairable = [
        p for p in _raw_problems(shapely.geometry.mapping(geometry), math.inf)
        if p.code in ("invalid-coordinate", "out-of-range", "antimeridian", "unsupported-type")
    ]
    if unrepairable:
        raise GeometryError("; ".join(str(p) for p in unrepairable), unrepairable)
    if shapely.is_valid(geometry):
        return geometry
    fixed = shapely.make_valid(geometry, method="structure", keep_collapsed=False)
    polygons = [
        part for part in shapely.get_parts(fixed)
        if part.geom_type in ("Polygon", "MultiPolygon") and not part.is_empty
    ]
    merged = shapely.union_all(polygons) if polygons else shapely.Polygon()
    if merged.is_empty:
        raise GeometryError("nothing polygonal is left after repair", [Problem("empty", "empty")])
    return merged


def _geos_problems(geometry: BaseGeometry) -> list[Problem]:
    reason = shapely.is_valid_reason(geometry)
    if reason == "Valid Geometry":
        return []
    match = _GEOS_REASON.match(reason)
    words = match["reason"].strip().lower() if match else reason.lower()
    location = None
    if match and match["x"] is not None:
        location = (float(match["x"]), float(match["y"]))
    code = _GEOS_CODES.get(words, "invalid")
    return [Problem(code, words, location)]


def _raw_problems(mapping: Mapping[str, Any], max_vertices: float) -> Iterator[Problem]:
    kind = mapping.get("type")
    coordinates = mapping.get("coordinates")
    if kind not in SUPPORTED_TYPES:
        yield Problem(
            "unsupported-type",
            f"geometry type {kind!r} is not one of {', '.join(SUPPORTED_TYPES)}",
        )
        return
    if kind == "Point":
        yield from _position_problems(coordinates, None)
        return
    polygons = [coordinates] if kind == "Polygon" else coordinates
    if not isinstance(polygons, list | tuple) or not polygons:
        yield Problem("malformed", f"{kind} has no coordinates")
        return
    vertices = 0
    for p, rings in enumerate(polygons):
        if not isinstance(rings, list | tuple) or not rings:
            yield Problem("malformed", "polygon has no rings", path=_path(kind, p, None))
            continue
        for r, ring in enumerate(rings):
            path = _path(kind, p, r)
            if not isinstance(ring, list | tuple):
                yield Problem("malformed", "ring is not a list of positions", path=path)
                continue
            vertices += len(ring)
            yield from _ring_problems(ring, path)
    if vertices > max_vertices:
        yield Problem(
            "too-many-vertices", f"{vertices} vertices, more than the limit of {max_vertices}"
        )


def _ring_problems(ring: list | tuple, path: str) -> Iterator[Problem]:
    bad = False
    for position in ring:
        for problem in _position_problems(position, path):
            bad = True
            yield problem
    if bad:
        return
    if len(ring) < 4:
        where = tuple(ring[0][:2]) if ring else None
        yield Problem(
            "too-few-points",
            f"ring has {len(ring)} positions; a closed ring needs at least 4",
            where,
            path,
        )
        return
    if tuple(ring[0][:2]) != tuple(ring[-1][:2]):
        yield Problem(
            "unclosed-ring",
            "ring is not closed: its last position differs from its first",
            tuple(ring[-1][:2]),
            path,
        )
    for a, b in itertools.pairwise(ring):
        if abs(b[0] - a[0]) > 180:
            yield Problem(
                "antimeridian",
                "edge crosses the antimeridian; split the polygon at longitude ±180"
                " (RFC 7946 3.1.9)",
                (a[0], a[1]),
                path,
            )
            break


def _position_problems(position: Any, path: str | None) -> Iterator[Problem]:
    if not isinstance(position, list | tuple) or len(position) < 2:
        yield Problem("malformed", f"position {position!r} is not [lon, lat]", path=path)
        return
    lon, lat = position[0], position[1]
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in (lon, lat)):
        yield Problem("malformed", f"position {list(position)!r} is not numeric", path=path)
        return
    if finite_number(lon) is None or finite_number(lat) is None:
        where = tuple(v if finite_number(v) is not None or isinstance(v, float) else math.nan
                      for v in (lon, lat))
        yield Problem("invalid-coordinate", "coordinate is NaN or infinite", where, path)
    elif not (is_lon(lon) and is_lat(lat)):
        yield Problem(
            "out-of-range",
            "coordinate out of range (lon must be within ±180, lat within ±90)",
            (lon, lat),
            path,
        )


def _path(kind: str, polygon: int, ring: int | None) -> str:
    where = f"polygon {polygon}" if kind == "MultiPolygon" else ""
    if ring is None:
        return where or "polygon"
    ring_name = "outer ring" if ring == 0 else f"hole {ring}"
    return f"{where}, {ring_name}" if where else ring_name
