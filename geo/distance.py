"""Geodesic distances in metres on the WGS84 ellipsoid: point to point, and point to geometry.

Point to point is the inverse geodesic problem solved by pyproj's ``Geod`` (Karney's algorithm,
the same one geopy's ``geodesic`` uses, at about a microsecond a call and vectorised).

Point to polygon is the geodesic distance to the nearest point of its boundary (0 when the polygon
covers the point). Edges are straight lines in longitude and latitude, as RFC 7946 has them. The
nearest point is found by shapely in a local frame centred on the query point and scaled to metres
by the ellipsoid's radii of curvature there; the distance to that point is then solved exactly.
Choosing the point in a slightly distorted frame moves it along the edge by a little, which
changes the distance only to second order: far below the 0.1 % the tests hold it to.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import shapely
from pyproj import Geod, Transformer

from geo.coordinates import check_point, finite_number
from geo.errors import GeometryError

WGS84 = Geod(ellps="WGS84")
_A_M = WGS84.a
_E2 = WGS84.es
#: Smallest radius of curvature of the ellipsoid (meridional, at the equator): dividing a
#: distance by it gives the largest angle that distance can span, which keeps degree boxes safe.
MIN_RADIUS_M = _A_M * (1 - _E2)
EARTH_HALF_CIRCUMFERENCE_M = 20_003_931.46  # pole to pole along a meridian, the longest geodesic
_MEAN_M_PER_DEG_LAT = 111_132.954


def distance_m(lon1, lat1, lon2, lat2):
    """Geodesic distance in metres between two points on the WGS84 ellipsoid.

    Takes scalars or numpy arrays alike (arrays broadcast) and returns the same.

    >>> round(distance_m(-122.3321, 47.6062, -122.3493, 47.6205))
    2049
    """
    if np.ndim(lon1) or np.ndim(lat1) or np.ndim(lon2) or np.ndim(lat2):
        lon1, lat1, lon2, lat2 = np.broadcast_arrays(
            *(np.asarray(v, dtype=float) for v in (lon1, lat1, lon2, lat2))
        )
        for lons, lats in ((lon1, lat1), (lon2, lat2)):
            if not (np.isfinite(lons).all() and np.isfinite(lats).all()
                    and (np.abs(lons) <= 180).all() and (np.abs(lats) <= 90).all()):
                raise ValueError("longitudes must lie within ±180 and latitudes within ±90")
        _, _, dist = WGS84.inv(lon1, lat1, lon2, lat2, return_back_azimuth=False)
        return np.asarray(dist)
    check_point(lon1, lat1)
    check_point(lon2, lat2)
    _, _, dist = WGS84.inv(lon1, lat1, lon2, lat2, return_back_azimuth=False)
    return float(dist)


def metres_per_degree(lat_deg: float) -> tuple[float, float]:
    """Metres per degree of longitude and of latitude at ``lat_deg`` on the WGS84 ellipsoid."""
    phi = math.radians(lat_deg)
    w = math.sqrt(1 - _E2 * math.sin(phi) ** 2)
    prime_vertical_m = _A_M / w
    meridional_m = _A_M * (1 - _E2) / w**3
    return (
        math.radians(1) * prime_vertical_m * math.cos(phi),
        math.radians(1) * meridional_m,
    )


#: Where the plane formula of :func:`distances_from_m` serves: both points within this latitude
#: and this far apart. Measured against pyproj's exact solution over random pairs there, its
#: relative error stays below 1e-4 (0.01 %); tests hold it to geopy's geodesic.
PLANE_MAX_ABS_LAT_DEG = 80.0
PLANE_MAX_DISTANCE_M = 50_000.0
_FAR_SEGMENT_DEG = 0.01


def distances_from_m(lon: float, lat: float, lons: np.ndarray, lats: np.ndarray) -> np.ndarray:
    """Geodesic distances in metres from one point to many (arrays), fast where it can be.

    Pairs within :data:`PLANE_MAX_DISTANCE_M` of each other and :data:`PLANE_MAX_ABS_LAT_DEG` of
    the equator use the ellipsoid's tangent plane at their mid-latitude (radii of curvature of
    WGS84 there: the error is of the order of the squared distance over the Earth's radius,
    below 1e-4 relative); every other pair is solved exactly by ``Geod.inv``.

    >>> distances_from_m(0.0, 0.0, [0.0, 90.0], [0.01, 0.0]).round(1).tolist()
    [1105.7, 10018754.2]
    """
    lons = np.asarray(lons, dtype=float)
    lats = np.asarray(lats, dtype=float)
    dlon = lons - lon
    wrap = np.abs(dlon) > 180.0
    if wrap.any():
        dlon = np.where(wrap, (dlon + 180.0) % 360.0 - 180.0, dlon)
    mid = np.radians((lats + lat) * 0.5)
    sin_mid = np.sin(mid)
    w2 = 1.0 - _E2 * sin_mid * sin_mid
    w = np.sqrt(w2)
    east_m = np.radians(dlon) * (_A_M / w) * np.cos(mid)
    north_m = np.radians(lats - lat) * (_A_M * (1.0 - _E2) / (w2 * w))
    dist = np.hypot(east_m, north_m)
    exact = (dist > PLANE_MAX_DISTANCE_M) | (np.abs(lats) > PLANE_MAX_ABS_LAT_DEG)
    if abs(lat) > PLANE_MAX_ABS_LAT_DEG:
        exact[:] = True
    if exact.any():
        n = int(exact.sum())
        _, _, solved = WGS84.inv(
            np.full(n, float(lon)), np.full(n, float(lat)), lons[exact], lats[exact],
            return_back_azimuth=False,
        )
        dist[exact] = solved
    return dist


def distances_to_geometries_m(lon: float, lat: float, geometries: Sequence) -> np.ndarray:
    """Geodesic distance in metres from one point to each geometry (0 where it covers the point).

    The array twin of :func:`distance_to_m`, and the kernel the spatial indexes use.

    >>> from shapely import box
    >>> distances_to_geometries_m(0.0, 0.0, [box(-1, -1, 1, 1), box(0.01, 0, 0.02, 1)]).round()
    array([   0., 1113.])
    """
    geometries = np.asarray(geometries, dtype=object)
    if geometries.size == 0:
        return np.zeros(0)
    to_local_m, scale, origin = _local_frame_m(lon, lat)
    local = shapely.transform(geometries, to_local_m)
    # Each shortest line runs from the point to the nearest point of the geometry.
    ends_m = shapely.get_coordinates(shapely.shortest_line(shapely.points(0.0, 0.0), local))[1::2]
    if len(ends_m) != len(geometries):
        raise GeometryError("cannot measure a distance to an empty geometry")
    ends = ends_m / scale + origin
    dist = distances_from_m(lon, lat, ends[:, 0], ends[:, 1])
    dist[(ends_m[:, 0] == 0.0) & (ends_m[:, 1] == 0.0)] = 0.0
    # Far away the frame at the query's latitude no longer picks the nearest point well.
    far = np.flatnonzero(dist > PLANE_MAX_DISTANCE_M)
    if far.size:
        dist[far] = _far_distances_m(lon, lat, geometries[far])
    return dist


def distances_from_points_m(lons, lats, geometry) -> np.ndarray:
    """Geodesic distance in metres from each of many points to one geometry (0 where it covers
    the point): the other twin of :func:`distance_to_m`, for "which of these circles reach this
    polygon".

    The nearest points are found together, in one local frame centred on the geometry (points
    up to :data:`PLANE_MAX_DISTANCE_M` from it; the distance to each is then solved on the
    ellipsoid, so an imprecise choice can only overstate it, to second order); farther points
    are measured one by one in their own frames.

    >>> from shapely import box
    >>> distances_from_points_m([0.0, 0.0], [0.0, 0.02], box(-0.01, -0.01, 0.01, 0.01)).round()
    array([   0., 1106.])
    """
    lons = np.asarray(lons, dtype=float)
    lats = np.asarray(lats, dtype=float)
    if lons.size == 0:
        return np.zeros(0)
    if shapely.is_empty(geometry):
        raise GeometryError("cannot measure a distance to an empty geometry")
    centre = shapely.centroid(geometry)
    to_local_m, scale, origin = _local_frame_m(centre.x, centre.y)
    local_geometry = shapely.transform(geometry, to_local_m)
    local_points = shapely.points(to_local_m(np.column_stack([lons, lats])))
    lines = shapely.shortest_line(local_points, local_geometry)
    ends_m = shapely.get_coordinates(lines)[1::2]
    ends = ends_m / scale + origin
    ends[:, 0] = (ends[:, 0] + 180.0) % 360.0 - 180.0
    ends[:, 1] = np.clip(ends[:, 1], -90.0, 90.0)
    dist = distance_m(lons, lats, ends[:, 0], ends[:, 1])
    dist[shapely.length(lines) == 0.0] = 0.0
    far = np.flatnonzero(shapely.distance(local_points, shapely.centroid(local_geometry))
                         > PLANE_MAX_DISTANCE_M + _radius_m(local_geometry))
    for index in far:
        dist[index] = distances_to_geometries_m(lons[index], lats[index], [geometry])[0]
    return dist


def _local_frame_m(lon: float, lat: float):
    """A plane in metres centred on (lon, lat), scaled by the ellipsoid's radii of curvature
    there: the function taking (n, 2) lon/lat arrays into it, its scale and its origin."""
    scale = np.array(metres_per_degree(lat))
    origin = np.array([lon, lat])

    def to_local_m(coords: np.ndarray) -> np.ndarray:
        local = coords - origin
        if (np.abs(local[:, 0]) > 180.0).any():  # keep the frame whole across the antimeridian
            local[:, 0] = (local[:, 0] + 180.0) % 360.0 - 180.0
        return local * scale

    return to_local_m, scale, origin


def _radius_m(local_geometry) -> float:
    """How far the geometry reaches from its centroid, in its local frame."""
    return float(shapely.hausdorff_distance(shapely.centroid(local_geometry), local_geometry))


def _far_distances_m(lon: float, lat: float, geometries: np.ndarray) -> np.ndarray:
    """Distances to far geometries in the azimuthal equidistant projection centred on the point,
    where every distance from the centre is the geodesic distance, after densifying the edges
    (straight in longitude and latitude) so they keep their shape there."""
    to_aeqd = Transformer.from_crs(
        "EPSG:4326", f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m",
        always_xy=True,
    )
    dense = shapely.segmentize(geometries, max_segment_length=_FAR_SEGMENT_DEG)
    projected = shapely.transform(
        dense, lambda coords: np.column_stack(to_aeqd.transform(coords[:, 0], coords[:, 1]))
    )
    return shapely.distance(shapely.points(0.0, 0.0), projected)


def distance_to_m(lon: float, lat: float, geometry) -> float:
    """Geodesic distance in metres from a point to the nearest point of a geometry, 0 inside.

    >>> from shapely import Polygon
    >>> block = Polygon([(-122.34, 47.60), (-122.33, 47.60), (-122.33, 47.61), (-122.34, 47.61)])
    >>> distance_to_m(-122.335, 47.605, block)
    0.0
    >>> round(distance_to_m(-122.335, 47.62, block))
    1112
    """
    check_point(lon, lat)
    return float(distances_to_geometries_m(lon, lat, [geometry])[0])


def search_boxes_deg(
    lon: float, lat: float, radius_m: float
) -> list[tuple[float, float, float, float]]:
    """Degree boxes ``(min_lon, min_lat, max_lon, max_lat)`` holding every point within
    ``radius_m`` of ``(lon, lat)``.

    The longitude half-width is widened by the latitude (a square box in degrees misses about
    11 % of true hits at Seattle's latitude), measured at the box's edge nearest the pole so no
    hit is ever missed. Boxes are split at the antimeridian, and a circle around a pole spans
    every longitude.

    >>> [round(v, 4) for v in search_boxes_deg(-122.33, 47.61, 1000)[0]]
    [-122.3434, 47.601, -122.3166, 47.619]
    >>> len(search_boxes_deg(179.999, 0.0, 1000))
    2
    """
    # Dividing by the smallest radius of curvature gives the largest angle the radius can span.
    delta_rad = radius_m / MIN_RADIUS_M * (1 + 1e-9) + 1e-12
    delta_deg = math.degrees(delta_rad)
    south, north = lat - delta_deg, lat + delta_deg
    if south <= -90.0 or north >= 90.0:
        return [(-180.0, max(south, -90.0), 180.0, min(north, 90.0))]
    poleward_lat = math.radians(max(abs(south), abs(north)))
    sin_ratio = math.sin(min(delta_rad, math.pi / 2)) / math.cos(math.radians(lat))
    half_width_deg = max(
        delta_deg / math.cos(poleward_lat),
        math.degrees(math.asin(sin_ratio)) if sin_ratio < 1 else 180.0,
    )
    if half_width_deg >= 180.0:
        return [(-180.0, south, 180.0, north)]
    west, east = lon - half_width_deg, lon + half_width_deg
    if west < -180.0:
        return [(west + 360.0, south, 180.0, north), (-180.0, south, east, north)]
    if east > 180.0:
        return [(west, south, 180.0, north), (-180.0, south, east - 360.0, north)]
    return [(west, south, east, north)]


def snap_to_grid_m(lon: float, lat: float, cell_m: float) -> tuple[float, float]:
    """The centre of the grid cell of about ``cell_m`` metres that holds the point.

    Latitude is cut into bands ``cell_m`` tall; each band into cells ``cell_m`` wide at the band's
    centre latitude. The same point always lands on the same centre, so asking again (or from
    elsewhere) reveals nothing more; the centre lies at most about ``0.71 * cell_m`` from the
    point.

    >>> snap_to_grid_m(-122.33412, 47.60621, 150.0)
    (-122.333743, 47.605816)
    """
    check_point(lon, lat)
    if finite_number(cell_m) is None or cell_m <= 0:
        raise ValueError(f"cell_m must be a number of metres > 0, got {cell_m!r}")
    # One fixed band height everywhere, so the grid never depends on the point asked about.
    lat_step = cell_m / _MEAN_M_PER_DEG_LAT
    snapped_lat = (math.floor(lat / lat_step) + 0.5) * lat_step
    snapped_lat = max(-90.0, min(90.0, snapped_lat))
    m_per_deg_lon, _ = metres_per_degree(snapped_lat)
    lon_step = cell_m / max(m_per_deg_lon, 1e-9)
    snapped_lon = (math.floor(lon / lon_step) + 0.5) * lon_step
    snapped_lon = (snapped_lon + 180.0) % 360.0 - 180.0
    return round(snapped_lon, 6), round(snapped_lat, 6)


def area_m2(geometry) -> float:
    """Geodesic area in square metres of a Polygon or MultiPolygon on the WGS84 ellipsoid
    (holes subtracted, ring orientation ignored).

    >>> from shapely import box
    >>> round(area_m2(box(-122.34, 47.60, -122.33, 47.61)) / 1e6, 3)
    0.836
    """
    # Counter-clockwise shells and clockwise holes make pyproj's signed ring areas add up right.
    area, _ = WGS84.geometry_area_perimeter(shapely.orient_polygons(geometry))
    return abs(float(area))
