"""hypothesis strategies for geometry near a random place on Earth."""

from __future__ import annotations

import math

import shapely
from hypothesis import strategies as st

M_PER_DEG_LAT = 111_000.0


def _offset(lon: float, lat: float, east_m: float, north_m: float) -> tuple[float, float]:
    return (
        lon + east_m / (M_PER_DEG_LAT * math.cos(math.radians(lat))),
        lat + north_m / M_PER_DEG_LAT,
    )


@st.composite
def places(draw, max_abs_lat: float = 70.0):
    """A (lon, lat) away from the antimeridian, where test polygons never cross it."""
    lon = draw(st.floats(-170.0, 170.0, allow_nan=False))
    lat = draw(st.floats(-max_abs_lat, max_abs_lat, allow_nan=False))
    return lon, lat


@st.composite
def star_polygons(draw, lon: float, lat: float, spread_m: float = 8_000.0):
    """A star-shaped polygon of 3 to 12 vertices, 50 m to 3 km across, sometimes with a hole,
    somewhere within ``spread_m`` of (lon, lat)."""
    cx, cy = _offset(
        lon, lat,
        draw(st.floats(-spread_m, spread_m)), draw(st.floats(-spread_m, spread_m)),
    )
    n = draw(st.integers(3, 12))
    # Evenly spaced angles with jitter keep every angular gap under 2π/3, so a hole of 0.3 of the
    # smallest radius always lies inside the shell.
    angles = [
        (i + draw(st.floats(0.0, 0.45))) * 2 * math.pi / n for i in range(n)
    ]
    radius_min = draw(st.floats(25.0, 1_500.0))
    radii = [radius_min * draw(st.floats(1.0, 2.0)) for _ in range(n)]
    shell = [
        _offset(cx, cy, r * math.cos(a), r * math.sin(a))
        for r, a in zip(radii, angles, strict=True)
    ]
    holes = []
    if n >= 4 and draw(st.booleans()):
        hole_r = 0.3 * radius_min
        holes.append([
            _offset(cx, cy, hole_r * math.cos(a), -hole_r * math.sin(a))
            for a in (0, 2 * math.pi / 3, 4 * math.pi / 3)
        ])
    return shapely.Polygon(shell, holes)


@st.composite
def polygonal(draw, lon: float, lat: float):
    """A Polygon, or a MultiPolygon of two disjoint stars."""
    first = draw(star_polygons(lon, lat))
    if not draw(st.booleans()):
        return first
    second = draw(star_polygons(lon, lat))
    if first.intersects(second):
        return first
    return shapely.MultiPolygon([first, second])


@st.composite
def points_near(draw, lon: float, lat: float, spread_m: float = 12_000.0):
    return _offset(
        lon, lat,
        draw(st.floats(-spread_m, spread_m)), draw(st.floats(-spread_m, spread_m)),
    )
