"""Spatial indexes over many polygons and points: covering, within a radius, k nearest.

Both indexes keep an immutable shapely ``STRtree`` snapshot of most entries, a small delta tree
of recent additions (rebuilt lazily, only when queried after a change) and an ``alive`` mask for
removals, so adding or removing one entry never rebuilds the whole index. The delta is merged
into the snapshot when it outgrows ``merge_at``; dead slots are compacted away when they pass a
quarter of the index.

Candidates come from degree boxes (see :func:`geo.distance.search_boxes_deg`); answers are then
decided by true geodesic distance on the WGS84 ellipsoid, never by degrees or bounding boxes.
Keys may be any hashable, mutually orderable values (ties in distance are broken by key).
"""

from __future__ import annotations

import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo.distance import (
    EARTH_HALF_CIRCUMFERENCE_M,
    WGS84,
    check_point,
    distances_to_geometries_m,
    search_boxes_deg,
)

DEFAULT_MERGE_AT = 2048
_FIRST_NEAREST_RADIUS_M = 250.0


class _LayeredTree(ABC):
    """Key management and candidate search shared by both indexes: snapshot, delta, alive."""

    _kinds: tuple[str, ...] = ()

    def __init__(
        self,
        items: Iterable[tuple[Hashable, Any]] | None = None,
        *,
        merge_at: int = DEFAULT_MERGE_AT,
    ) -> None:
        self._lock = threading.RLock()
        self._merge_at = max(1, merge_at)
        keys: list[Hashable] = []
        geometries: list[BaseGeometry] = []
        slot_of: dict[Hashable, int] = {}
        for key, value in items or ():
            geometry = self._geometry(value)
            if key in slot_of:  # a later entry for the same key replaces the earlier one
                geometries[slot_of[key]] = geometry
                continue
            slot_of[key] = len(keys)
            keys.append(key)
            geometries.append(geometry)
        self._slot_of = slot_of
        self._keys: list[Hashable | None] = keys
        self._geoms = np.array([*geometries, None], dtype=object)[:-1]
        self._alive = np.ones(len(keys), dtype=bool)
        self._used = len(keys)
        self._dead = 0
        self._snapshot()

    # -- writes -------------------------------------------------------------------------
    def add(self, key: Hashable, geometry: Any) -> None:
        """Add ``geometry`` under ``key``, replacing what the key held before."""
        geometry = self._geometry(geometry)
        with self._lock:
            if key in self._slot_of:
                self._remove_slot(self._slot_of.pop(key))
            slot = self._used
            if slot == len(self._geoms):
                self._grow()
            self._geoms[slot] = geometry
            self._alive[slot] = True
            if slot == len(self._keys):
                self._keys.append(key)
            else:
                self._keys[slot] = key
            self._slot_of[key] = slot
            self._used += 1
            self._delta_tree = None
            if self._used - self._base_used > self._merge_at:
                self._snapshot()

    def remove(self, key: Hashable) -> None:
        """Remove ``key``; ``KeyError`` when it is not in the index."""
        with self._lock:
            self._remove_slot(self._slot_of.pop(key))
            if self._dead > max(self._merge_at, self._used // 4):
                self._compact()

    def discard(self, key: Hashable) -> None:
        """Remove ``key`` if it is in the index."""
        with self._lock:
            if key in self._slot_of:
                self.remove(key)

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, key: object) -> bool:
        return key in self._slot_of

    def keys(self) -> list[Hashable]:
        """Every key in the index, in no particular order."""
        with self._lock:
            return list(self._slot_of)

    def get(self, key: Hashable) -> BaseGeometry | None:
        """The geometry stored under ``key``, or None."""
        with self._lock:
            slot = self._slot_of.get(key)
            return None if slot is None else self._geoms[slot]

    # -- the layered trees --------------------------------------------------------------
    def _geometry(self, value: Any) -> BaseGeometry:
        if not isinstance(value, BaseGeometry) or value.geom_type not in self._kinds:
            raise TypeError(f"expected a shapely {' or '.join(self._kinds)}, got {value!r}")
        if value.is_empty:
            raise ValueError("cannot index an empty geometry")
        return value

    def _remove_slot(self, slot: int) -> None:
        self._alive[slot] = False
        self._geoms[slot] = None
        self._keys[slot] = None
        self._dead += 1

    def _grow(self) -> None:
        capacity = max(16, 2 * len(self._geoms))
        geoms = np.empty(capacity, dtype=object)
        geoms[: len(self._geoms)] = self._geoms
        alive = np.zeros(capacity, dtype=bool)
        alive[: len(self._alive)] = self._alive
        self._geoms, self._alive = geoms, alive

    def _snapshot(self) -> None:
        """Merge the delta into a new immutable snapshot tree (dead slots are None: skipped)."""
        self._base_tree = shapely.STRtree(self._geoms[: self._used])
        self._base_used = self._used
        self._delta_tree = None

    def _compact(self) -> None:
        live = np.flatnonzero(self._alive[: self._used])
        self._keys = [self._keys[slot] for slot in live]
        self._geoms = self._geoms[live]
        self._alive = np.ones(len(live), dtype=bool)
        self._slot_of = {key: slot for slot, key in enumerate(self._keys)}
        self._used = len(live)
        self._dead = 0
        self._snapshot()

    def _delta(self) -> shapely.STRtree:
        if self._delta_tree is None:
            self._delta_tree = shapely.STRtree(self._geoms[self._base_used : self._used])
        return self._delta_tree

    def _query(self, geometry, predicate: str | None = None) -> np.ndarray:
        """Slots of live entries whose box (or ``predicate``) matches; bulk for arrays."""
        base = self._base_tree.query(geometry, predicate=predicate)
        delta = self._delta().query(geometry, predicate=predicate) if (
            self._used > self._base_used
        ) else None
        if delta is not None and delta.size:
            if base.ndim == 1:
                base = np.concatenate([base, delta + self._base_used])
            else:
                base = np.concatenate([base, delta + np.array([[0], [self._base_used]])], axis=1)
        slots = base if base.ndim == 1 else base[1]
        keep = self._alive[slots]
        return base[keep] if base.ndim == 1 else base[:, keep]

    def _candidates(self, lon: float, lat: float, radius_m: float) -> np.ndarray:
        boxes = search_boxes_deg(lon, lat, radius_m)
        if len(boxes) == 1:
            return self._query(shapely.box(*boxes[0]))
        return np.unique(np.concatenate([self._query(shapely.box(*box)) for box in boxes]))

    @abstractmethod
    def _distances_m(self, lon: float, lat: float, slots: np.ndarray) -> np.ndarray:
        """Geodesic distance in metres from the point to the entries in ``slots``."""

    def _answer(self, slots: np.ndarray, distances: np.ndarray) -> list[tuple[Hashable, float]]:
        keys = self._keys
        return sorted(
            ((keys[s], float(d)) for s, d in zip(slots.tolist(), distances.tolist(), strict=True)),
            key=lambda pair: (pair[1], pair[0]),
        )

    # -- queries ------------------------------------------------------------------------
    def within(self, *, lon: float, lat: float, radius_m: float) -> list[tuple[Hashable, float]]:
        """Every entry whose nearest point lies within ``radius_m`` metres of the point, as
        ``(key, distance_m)`` sorted by distance, then key."""
        check_point(lon, lat)
        if not (isinstance(radius_m, int | float) and radius_m >= 0 and math.isfinite(radius_m)):
            raise ValueError(f"radius_m must be a finite number >= 0, got {radius_m!r}")
        with self._lock:
            slots = self._candidates(lon, lat, radius_m)
            distances = self._distances_m(lon, lat, slots)
            keep = distances <= radius_m
            return self._answer(slots[keep], distances[keep])

    def nearest(self, *, lon: float, lat: float, k: int = 1) -> list[tuple[Hashable, float]]:
        """The ``k`` entries nearest to the point by true geodesic distance, as
        ``(key, distance_m)`` sorted by distance, then key."""
        check_point(lon, lat)
        if not isinstance(k, int) or k < 0:
            raise ValueError(f"k must be a whole number >= 0, got {k!r}")
        with self._lock:
            k = min(k, len(self))
            if k == 0:
                return []
            # Grow a box until it holds k candidates (cheap: no distances yet). The k-th
            # smallest true distance among them bounds the answer; one exact search finishes.
            radius_m = _FIRST_NEAREST_RADIUS_M
            while True:
                slots = self._candidates(lon, lat, radius_m)
                if len(slots) >= k or radius_m >= EARTH_HALF_CIRCUMFERENCE_M:
                    break
                radius_m = min(
                    radius_m * max(2.0, math.sqrt(k / max(len(slots), 1))),
                    EARTH_HALF_CIRCUMFERENCE_M,
                )
            distances = self._distances_m(lon, lat, slots)
            bound_m = float(np.partition(distances, k - 1)[k - 1])
            if bound_m > radius_m:  # some entry outside this box may be nearer
                slots = self._candidates(lon, lat, bound_m)
                distances = self._distances_m(lon, lat, slots)
            keep = distances <= bound_m
            return self._answer(slots[keep], distances[keep])[:k]


class PolygonIndex(_LayeredTree):
    """Polygons and multipolygons under keys: which cover a point, which lie within a radius,
    which are nearest.

    >>> from shapely import box
    >>> index = PolygonIndex([("a", box(-122.34, 47.60, -122.33, 47.61)),
    ...                       ("b", box(-122.32, 47.60, -122.31, 47.61))])
    >>> index.covering(lon=-122.335, lat=47.605)
    ['a']
    >>> [(key, round(d)) for key, d in index.within(lon=-122.335, lat=47.605, radius_m=2000)]
    [('a', 0), ('b', 1128)]
    >>> index.remove("a"); index.nearest(lon=-122.335, lat=47.605, k=1)[0][0]
    'b'
    """

    _kinds = ("Polygon", "MultiPolygon")

    def covering(self, *, lon: float, lat: float) -> list[Hashable]:
        """Keys of the polygons that cover the point (a point on an edge counts), sorted."""
        check_point(lon, lat)
        return self.covering_many(np.array([lon], dtype=float), np.array([lat], dtype=float))[0]

    def covering_many(self, lons: Sequence[float], lats: Sequence[float]) -> list[list[Hashable]]:
        """For each point, the sorted keys of the polygons covering it.

        >>> from shapely import box
        >>> PolygonIndex([(1, box(0, 0, 1, 1))]).covering_many([0.5, 2.0], [0.5, 2.0])
        [[1], []]
        """
        lons = np.asarray(lons, dtype=float)
        lats = np.asarray(lats, dtype=float)
        if lons.shape != lats.shape or lons.ndim != 1:
            raise ValueError("lons and lats must be one-dimensional arrays of the same length")
        if not (np.isfinite(lons).all() and np.isfinite(lats).all()
                and (np.abs(lons) <= 180).all() and (np.abs(lats) <= 90).all()):
            raise ValueError("lons must lie within ±180 and lats within ±90, all finite")
        answers: list[list[Hashable]] = [[] for _ in range(len(lons))]
        with self._lock:
            pairs = self._query(shapely.points(lons, lats), predicate="intersects")
            keys = self._keys
            for point, slot in zip(pairs[0].tolist(), pairs[1].tolist(), strict=True):
                answers[point].append(keys[slot])
        for answer in answers:
            if len(answer) > 1:
                answer.sort()
        return answers

    def intersecting(
        self, *, min_lon: float, min_lat: float, max_lon: float, max_lat: float
    ) -> list[Hashable]:
        """Keys of the polygons that intersect the box (touching counts), sorted.

        A box whose ``min_lon`` is greater than its ``max_lon`` crosses the antimeridian.

        >>> from shapely import box
        >>> index = PolygonIndex([("a", box(0, 0, 1, 1)), ("b", box(5, 5, 6, 6))])
        >>> index.intersecting(min_lon=0.5, min_lat=0.5, max_lon=2, max_lat=2)
        ['a']
        """
        check_point(min_lon, min_lat)
        check_point(max_lon, max_lat)
        if min_lat > max_lat:
            raise ValueError("min_lat must not be greater than max_lat")
        boxes = (
            [(min_lon, min_lat, max_lon, max_lat)] if min_lon <= max_lon
            else [(min_lon, min_lat, 180.0, max_lat), (-180.0, min_lat, max_lon, max_lat)]
        )
        with self._lock:
            slots = np.unique(np.concatenate([
                self._query(shapely.box(*box), predicate="intersects") for box in boxes
            ]))
            return sorted(self._keys[slot] for slot in slots.tolist())

    def _distances_m(self, lon: float, lat: float, slots: np.ndarray) -> np.ndarray:
        return distances_to_geometries_m(lon, lat, self._geoms[slots])


class PointIndex(_LayeredTree):
    """Points under keys (alerts, incidents): which lie within a radius, which are nearest.

    >>> from shapely import Point
    >>> index = PointIndex([("near", Point(-122.335, 47.605)), ("far", Point(-122.2, 47.7))])
    >>> [(key, round(d)) for key, d in index.within(lon=-122.335, lat=47.606, radius_m=500)]
    [('near', 111)]
    """

    _kinds = ("Point",)

    def _geometry(self, value: Any) -> BaseGeometry:
        """Points may also be given as ``(lon, lat)`` pairs."""
        if isinstance(value, tuple | list) and len(value) == 2:
            check_point(*value)
            value = shapely.Point(value)
        return super()._geometry(value)

    def _distances_m(self, lon: float, lat: float, slots: np.ndarray) -> np.ndarray:
        n = len(slots)
        if n == 0:
            return np.zeros(0)
        ends = shapely.get_coordinates(self._geoms[slots])
        _, _, dist = WGS84.inv(
            np.full(n, float(lon)), np.full(n, float(lat)), ends[:, 0], ends[:, 1],
            return_back_azimuth=False,
        )
        return np.asarray(dist, dtype=float)
