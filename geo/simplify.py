"""Simplification of lon/lat polygons with a tolerance in metres that never breaks or drops parts.

Douglas-Peucker in degrees would treat a degree of longitude and one of latitude alike, though
away from the equator they differ on the ground; so the geometry is moved into a local frame in
metres around its centroid (scaled by the ellipsoid's radii of curvature there, as
:func:`geo.distance.metres_per_degree` gives them), simplified there with GEOS's
topology-preserving simplifier (which keeps rings from crossing themselves or each other), and
moved back. The frame's east-west scale drifts by tan(latitude) per radian of latitude away from
the centroid, about 0.2 % at 10 km north or south of latitude 47°: that is how exact "tolerance in
metres" is.

Guarantees, for a valid Polygon or MultiPolygon: the result has the same type, the same number of
parts, the same number of holes in each part (holes are kept, however small: the
topology-preserving simplifier never drops a ring), no empty part, is valid, and its vertices are
a subset of the input's. The boundaries of input and result lie within the tolerance of each other
(their Hausdorff distance), measured in the local frame, as Douglas-Peucker promises.
"""

from __future__ import annotations

import math

import numpy as np
import shapely

from geo.distance import metres_per_degree
from geo.errors import GeometryError, Problem

Polygonal = shapely.Polygon | shapely.MultiPolygon


def simplify_m(geometry: Polygonal, tolerance_m: float) -> Polygonal:
    """Simplify a Polygon or MultiPolygon in lon/lat degrees with a tolerance in metres.

    A tolerance of 0 returns the geometry unchanged (a convenient "off" for callers with a
    configurable tolerance); a negative, NaN or infinite one raises ``ValueError``. An empty
    geometry comes back as it is. An invalid geometry, or one that is not a Polygon or
    MultiPolygon, raises :class:`GeometryError`: simplification cannot promise a valid result
    from an invalid input, so repair it first (for example with ``shapely.make_valid``).

    Every guarantee in the module docstring except the Hausdorff bound (which is
    Douglas-Peucker's own) is checked on the result, as insurance against simplifier edge cases:
    each part that fails a check is replaced by its original, and if the parts then overlap, the
    original geometry is returned whole.

    Output is 2D: a Z coordinate is dropped.

    >>> from shapely import Polygon
    >>> wiggly = Polygon([(-122.34, 47.60), (-122.335, 47.60001), (-122.33, 47.60),
    ...                   (-122.33, 47.61), (-122.34, 47.61)])
    >>> len(simplify_m(wiggly, 5.0).exterior.coords)
    5
    """
    tolerance_m = float(tolerance_m)
    if not math.isfinite(tolerance_m):
        raise ValueError(f"tolerance_m must be a finite number of metres, got {tolerance_m!r}")
    if tolerance_m < 0:
        raise ValueError(f"tolerance_m must be >= 0, got {tolerance_m!r}")
    if not isinstance(geometry, shapely.Polygon | shapely.MultiPolygon):
        kind = getattr(geometry, "geom_type", type(geometry).__name__)
        raise GeometryError(
            f"simplify_m needs a Polygon or MultiPolygon, got {kind}",
            [Problem("unsupported-geometry", f"{kind} is not a Polygon or MultiPolygon")],
        )
    if tolerance_m == 0 or geometry.is_empty:
        return geometry
    if not geometry.is_valid:
        reason = shapely.is_valid_reason(geometry)
        raise GeometryError(
            f"cannot simplify an invalid geometry ({reason}); repair it first",
            [Problem("invalid-geometry", reason)],
        )

    frame = _LocalFrame(geometry)
    local = frame.to_local(geometry)
    simplified = frame.to_lonlat(_simplify_local(local, tolerance_m))
    if _keeps_promises(geometry, simplified):
        return simplified

    original_parts = list(shapely.get_parts(geometry))
    simplified_parts = list(shapely.get_parts(simplified))
    if len(simplified_parts) != len(original_parts):
        # Parts can no longer be matched up, so simplify each on its own.
        simplified_parts = [
            frame.to_lonlat(_simplify_local(part, tolerance_m)) for part in shapely.get_parts(local)
        ]
    parts = [
        new if _keeps_promises(old, new) else old
        for old, new in zip(original_parts, simplified_parts, strict=True)
    ]
    if isinstance(geometry, shapely.Polygon):
        return parts[0]
    patched = shapely.MultiPolygon(parts)
    return patched if patched.is_valid else geometry


def _simplify_local(local: Polygonal, tolerance_m: float) -> Polygonal:
    """Topology-preserving Douglas-Peucker on every ring, each kept from crossing the others.

    The rings go to GEOS as closed LineStrings rather than as polygon rings: since GEOS 3.12 the
    simplifier may also drop a ring's start vertex, judged only against its new neighbours, which
    can leave vertices dropped earlier up to about 1.5 tolerances from the result. A closed
    LineString keeps its endpoints, and with them Douglas-Peucker's bound.
    """
    parts = shapely.get_parts(local)
    rings_per_part = [shapely.get_rings(part) for part in parts]
    lines = [shapely.LineString(ring.coords) for rings in rings_per_part for ring in rings]
    if not lines:
        return local
    simplified = shapely.get_parts(
        shapely.simplify(shapely.MultiLineString(lines), tolerance_m, preserve_topology=True)
    )
    if len(simplified) != len(lines):
        return local
    polygons = []
    start = 0
    for rings in rings_per_part:
        part_lines = simplified[start : start + len(rings)]
        start += len(rings)
        polygons.append(
            shapely.Polygon(part_lines[0].coords, [hole.coords for hole in part_lines[1:]])
            if len(rings)
            else shapely.Polygon()
        )
    if isinstance(local, shapely.Polygon):
        return polygons[0]
    return shapely.MultiPolygon(polygons)


class _LocalFrame:
    """Metres east and north of a geometry's centroid, and back."""

    def __init__(self, geometry: Polygonal) -> None:
        centroid = geometry.centroid
        self.origin = np.array([centroid.x, centroid.y])
        self.scale = np.array(metres_per_degree(centroid.y))
        self._originals: dict[tuple[float, float], tuple[float, float]] = {}

    def to_local(self, geometry: Polygonal) -> Polygonal:
        def forward(coords: np.ndarray) -> np.ndarray:
            local = (coords - self.origin) * self.scale
            keys = map(tuple, local.tolist())
            self._originals.update(zip(keys, map(tuple, coords.tolist()), strict=True))
            return local

        return shapely.transform(geometry, forward)

    def to_lonlat(self, geometry: Polygonal) -> Polygonal:
        def backward(local: np.ndarray) -> np.ndarray:
            coords = local / self.scale + self.origin
            # Simplifying only drops vertices, so each kept one maps back to the exact input
            # coordinates; the arithmetic inverse would be off by an ulp, enough to move a vertex
            # onto the wrong side of a nearly touching edge.
            for index, key in enumerate(map(tuple, local.tolist())):
                original = self._originals.get(key)
                if original is not None:
                    coords[index] = original
            return coords

        return shapely.transform(geometry, backward)


def _keeps_promises(original: Polygonal, simplified: Polygonal) -> bool:
    if type(simplified) is not type(original) or not simplified.is_valid:
        return False
    old_parts = shapely.get_parts(original)
    new_parts = shapely.get_parts(simplified)
    if len(old_parts) != len(new_parts):
        return False
    return bool(
        np.all(~shapely.is_empty(new_parts))
        and np.array_equal(
            shapely.get_num_interior_rings(old_parts), shapely.get_num_interior_rings(new_parts)
        )
        and np.all(shapely.get_num_coordinates(new_parts) <= shapely.get_num_coordinates(old_parts))
    )
