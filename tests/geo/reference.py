"""Slow, obviously-correct answers to check `geo` against: geopy's geodesic and brute force.

geopy is the reference for every distance. The distance from a point to a polygon's boundary is
found by golden-section search along each edge (edges are straight in lon/lat, as in RFC 7946),
on the edges a cheap planar screen says could be nearest.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from geopy.distance import geodesic


def geopy_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    return geodesic((lat1, lon1), (lat2, lon2)).meters


def _edges(geometry) -> np.ndarray:
    """Every boundary edge as rows of (lon_a, lat_a, lon_b, lat_b)."""
    rows = []
    for polygon in shapely.get_parts(geometry):
        for ring in [polygon.exterior, *polygon.interiors]:
            coords = np.asarray(ring.coords)
            rows.append(np.hstack([coords[:-1], coords[1:]]))
    return np.vstack(rows)


def _along_edge_m(lon, lat, edge, iterations=40) -> float:
    a, b = np.array(edge[:2]), np.array(edge[2:])

    def at(t):
        p = a + t * (b - a)
        return geopy_m(lon, lat, p[0], p[1])

    lo, hi = 0.0, 1.0
    golden = (math.sqrt(5) - 1) / 2
    x1, x2 = hi - golden * (hi - lo), lo + golden * (hi - lo)
    f1, f2 = at(x1), at(x2)
    for _ in range(iterations):
        if f1 < f2:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - golden * (hi - lo)
            f1 = at(x1)
        else:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + golden * (hi - lo)
            f2 = at(x2)
    return min(f1, f2, at(0.0), at(1.0))


def distance_to_geometry_m(lon: float, lat: float, geometry) -> float:
    """geopy distance from the point to the geometry's nearest point; 0 when it is covered."""
    if geometry.geom_type == "Point":
        return geopy_m(lon, lat, geometry.x, geometry.y)
    if geometry.covers(shapely.Point(lon, lat)):
        return 0.0
    edges = _edges(geometry)
    # Planar screen in a local frame (any reasonable scale will do): refine only the edges that
    # could hold the nearest point.
    kx = 111_320 * math.cos(math.radians(lat))
    ky = 110_574.0
    ax, ay = (edges[:, 0] - lon) * kx, (edges[:, 1] - lat) * ky
    bx, by = (edges[:, 2] - lon) * kx, (edges[:, 3] - lat) * ky
    dx, dy = bx - ax, by - ay
    length2 = np.maximum(dx * dx + dy * dy, 1e-18)
    t = np.clip(-(ax * dx + ay * dy) / length2, 0, 1)
    planar = np.hypot(ax + t * dx, ay + t * dy)
    best_planar = planar.min()
    chosen = np.flatnonzero(planar <= best_planar * 1.02 + 5.0)
    return min(_along_edge_m(lon, lat, edges[i]) for i in chosen)


def tolerance_m(distance: float) -> float:
    """The accuracy `geo` promises: 0.1 % or 1 m, whichever is larger."""
    return max(1.0, 1e-3 * distance)
