"""geo: a small geospatial library for boundaries and points on the WGS84 ellipsoid.

Validated shapely polygons, GeoJSON (RFC 7946) in and out, geodesic distances in metres, spatial
indexes answering "which polygons cover this point", "the k nearest" and "everything within r
metres", simplification in metres and CAP 1.2 area conversion. It knows nothing of any
application built on it.

>>> import geo
>>> [block] = geo.read_geojson({"type": "Polygon", "coordinates": [[[-122.34, 47.60],
...     [-122.33, 47.60], [-122.33, 47.61], [-122.34, 47.61], [-122.34, 47.60]]]})
>>> index = geo.PolygonIndex([("block-1", block.geometry)])
>>> index.covering(lon=-122.335, lat=47.605)
['block-1']
"""

from geo import cap
from geo.distance import (
    area_m2,
    distance_m,
    distance_to_m,
    distances_from_points_m,
    distances_to_geometries_m,
    snap_to_grid_m,
)
from geo.errors import GeometryError, Problem
from geo.geojson import Feature, read_geojson, to_geojson
from geo.index import PointIndex, PolygonIndex
from geo.simplify import simplify_m
from geo.validate import check, repair, validate

__all__ = [
    "Feature",
    "GeometryError",
    "PointIndex",
    "PolygonIndex",
    "Problem",
    "area_m2",
    "cap",
    "check",
    "distance_m",
    "distance_to_m",
    "distances_from_points_m",
    "distances_to_geometries_m",
    "read_geojson",
    "repair",
    "simplify_m",
    "snap_to_grid_m",
    "to_geojson",
    "validate",
]
