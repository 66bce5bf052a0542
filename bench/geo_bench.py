"""Benchmark geo.PolygonIndex and geo.PointIndex against a brute-force numpy scan.

What it measures, at each size N (default 10k, 100k and 1M polygons):

* Synthetic city blocks: star-shaped polygons of 5 to 20 vertices, 300 m to 1 km across, on a
  jittered 600 m grid (neighbours touch or overlap a little) around 300 city centres spread over
  the continental US. A city's share follows a Zipf-like weight, so cities grow with N. All of
  it is vectorised numpy and deterministic for a given ``--seed``.
* Per-query median µs of ``covering``, ``covering_many`` (per point: one call with every query
  point), ``within`` 1 km and ``nearest`` k=10, on the same query points (drawn in and between
  blocks) for the index and for brute force. Brute force has no index: a vectorised scan of all
  N bounding boxes, then the exact predicate (shapely) or :func:`geo.distances_to_geometries_m`
  on the survivors. Brute force runs on the first few query points only (all of them at 10k,
  50 at 1M); the speed-up compares the two medians.
* ``PointIndex.within`` 2 km over N points clustered around the same cities.
* Build time of a ``PolygonIndex`` from a list of N ``(int key, polygon)`` pairs, and memory per
  polygon (RSS growth, in a fresh subprocess) of the geometries and of the index over them.
* Amortised ``add`` / ``remove`` (20,000 of each on the built index, merges included), and an
  add-then-``within`` pattern that forces the lazy delta-tree rebuild after every add.
* Correctness: the index's answers must equal brute force's on every point brute force ran on.
  Mismatches are counted and printed loudly; nothing asserts, least of all a timing.

The report (a Markdown table for docs/performance.md) goes to stdout, progress to stderr.
Run it from the repository root::

    .venv/bin/python bench/geo_bench.py                      # 10k, 100k and 1M: a few minutes
    .venv/bin/python bench/geo_bench.py --sizes 10000        # smoke run: seconds
    .venv/bin/python bench/geo_bench.py --sizes 100000 --queries 500 --seed 7
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import shapely

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout, without installing
    sys.path.insert(0, str(ROOT))

import geo  # noqa: E402  (needs the repository root on sys.path)

# -- the synthetic world -------------------------------------------------------------------
N_CITIES = 300
# City i holds a share ~ i ** -0.5 of the blocks: the largest ~3 %, the smallest ~0.2 %.
CITY_WEIGHT_EXPONENT = 0.5
LON_RANGE_DEG = (-124.0, -70.0)  # the continental US
LAT_RANGE_DEG = (26.0, 48.0)
CITY_MARGIN_DEG = 1.0  # the largest city at 1M is ~1° across: keep it inside the box
BLOCK_SPACING_M = 600.0  # grid step between block centres
GRID_JITTER = 0.15  # of the spacing, each way
BLOCK_RADIUS_M = (190.0, 500.0)  # outer radius; vertices sit at 0.8..1 of it: 300 m to 1 km across
VERTEX_RADIUS_FACTOR = (0.8, 1.0)
VERTICES = (5, 20)
M_PER_DEG_LAT = 111_132.0  # mid-latitude value: good enough to lay out synthetic data
M_PER_DEG_LON_EQUATOR = 111_320.0

# -- the benchmark -------------------------------------------------------------------------
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
DEFAULT_QUERIES = 2_000
# Brute-force points per size = budget / N: all of them at 10k, 500 at 100k, 50 at 1M.
BRUTE_BUDGET = 50_000_000
MIN_BRUTE_QUERIES = 50
WITHIN_RADIUS_M = 1_000.0
NEAREST_K = 10
POINT_RADIUS_M = 2_000.0
ALERT_SPREAD_M = 300.0  # alerts scatter around block centres with this standard deviation
WRITE_OPS = 20_000
ADD_THEN_WITHIN_ROUNDS = 2_000
WARM_UP_QUERIES = 20
COVERING_MANY_REPEATS = 5
ONE_MILLION = 1_000_000

# Brute force's search box must hold every hit; flat-earth degrees are off by well under 2 % at
# these radii and latitudes, so half as much again is generous.
GENEROUS = 1.5
M_PER_DEG_LAT_MIN = 110_574.0  # metres per degree of latitude at the equator, its smallest value
GEOD = pyproj.Geod(ellps="WGS84")


@dataclass(frozen=True)
class Target:
    label: str
    limit: float
    unit: str

    def text(self) -> str:
        return f"≤ {self.limit:g} {self.unit}"


TARGETS = {
    "covering": Target("`covering`, one point", 10, "µs"),
    "covering_many": Target("`covering_many`, per point", 2, "µs"),
    "within": Target(f"`within` {WITHIN_RADIUS_M / 1000:g} km", 60, "µs"),
    "nearest": Target(f"`nearest` k={NEAREST_K}", 150, "µs"),
    "point_within": Target(f"`PointIndex.within` {POINT_RADIUS_M / 1000:g} km", 30, "µs"),
    "build": Target("build `PolygonIndex` from N pairs, best of 2", 1, "s"),
    "memory": Target("memory per polygon (index overhead)", 800, "B"),
    "add_remove": Target(f"`add` / `remove` amortised ({WRITE_OPS:,} each)", 1000, "µs"),
    "add_then_within": Target(
        f"`add` then `within`, per add ({ADD_THEN_WITHIN_ROUNDS:,} rounds)", 1000, "µs"
    ),
}


def log(message: str) -> None:
    """Progress to stderr, so stdout holds only the report."""
    print(f"[{time.perf_counter() - START_S:7.1f} s] {message}", file=sys.stderr, flush=True)


START_S = time.perf_counter()


# -- data generation -----------------------------------------------------------------------
@dataclass(frozen=True)
class Cities:
    lon_deg: np.ndarray
    lat_deg: np.ndarray
    weights: np.ndarray  # share of the blocks, summing to 1


@dataclass(frozen=True)
class Blocks:
    geoms: np.ndarray  # object array of shapely Polygons; a polygon's key is its position
    centre_lon_deg: np.ndarray
    centre_lat_deg: np.ndarray


def make_cities(seed: int) -> Cities:
    """The same city centres and weights for every size."""
    rng = np.random.default_rng([seed, 0])
    lon_deg = rng.uniform(LON_RANGE_DEG[0] + CITY_MARGIN_DEG, LON_RANGE_DEG[1] - CITY_MARGIN_DEG,
                          N_CITIES)
    lat_deg = rng.uniform(LAT_RANGE_DEG[0] + CITY_MARGIN_DEG, LAT_RANGE_DEG[1] - CITY_MARGIN_DEG,
                          N_CITIES)
    weights = np.arange(1, N_CITIES + 1, dtype=float) ** -CITY_WEIGHT_EXPONENT
    return Cities(lon_deg, lat_deg, weights / weights.sum())


def allocate(total: int, weights: np.ndarray) -> np.ndarray:
    """Split ``total`` into whole counts proportional to ``weights`` (largest remainders)."""
    exact = total * weights
    counts = np.floor(exact).astype(np.int64)
    counts[np.argsort(counts - exact)[: total - counts.sum()]] += 1
    return counts


def offset_deg(
    lon_deg: np.ndarray, lat_deg: np.ndarray, east_m: np.ndarray, north_m: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Move points by metres east and north (locally flat: fine for synthetic layout)."""
    new_lat_deg = lat_deg + north_m / M_PER_DEG_LAT
    new_lon_deg = lon_deg + east_m / (M_PER_DEG_LON_EQUATOR * np.cos(np.radians(new_lat_deg)))
    return new_lon_deg, new_lat_deg


def grid_centres(n: int, cities: Cities, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points on a jittered square grid around each city, in random order."""
    counts = allocate(n, cities.weights)
    city = np.repeat(np.arange(len(counts)), counts)
    local = np.arange(n) - (np.cumsum(counts) - counts)[city]
    side = np.ceil(np.sqrt(counts)).astype(np.int64)[city]
    half = (side - 1) / 2.0
    jitter = rng.uniform(-GRID_JITTER, GRID_JITTER, (2, n))
    east_m = (local % side - half + jitter[0]) * BLOCK_SPACING_M
    north_m = (local // side - half + jitter[1]) * BLOCK_SPACING_M
    lon_deg, lat_deg = offset_deg(cities.lon_deg[city], cities.lat_deg[city], east_m, north_m)
    order = rng.permutation(n)
    return lon_deg[order], lat_deg[order]


def star_polygons(
    lon_deg: np.ndarray, lat_deg: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """A star-shaped polygon around each centre, built one vertex count at a time.

    Vertex ``i`` of ``v`` sits at angle ``(i + u) * 2π / v`` with ``u`` in (0.1, 0.9), so the
    angles increase and no gap reaches π: every polygon is simple and holds its centre.
    """
    n = len(lon_deg)
    vertices = rng.integers(VERTICES[0], VERTICES[1] + 1, n)
    radius_m = rng.uniform(*BLOCK_RADIUS_M, n)
    m_per_deg_lon = M_PER_DEG_LON_EQUATOR * np.cos(np.radians(lat_deg))
    geoms = np.empty(n, dtype=object)
    for v in np.unique(vertices).tolist():
        rows = np.flatnonzero(vertices == v)
        m = len(rows)
        step_rad = 2 * math.pi / v
        angle_rad = rng.uniform(0, 2 * math.pi, (m, 1)) + (
            np.arange(v) + rng.uniform(0.1, 0.9, (m, v))
        ) * step_rad
        vertex_m = radius_m[rows, None] * rng.uniform(*VERTEX_RADIUS_FACTOR, (m, v))
        ring = np.empty((m, v + 1, 2))
        ring[:, :v, 0] = lon_deg[rows, None] + vertex_m * np.cos(angle_rad) / m_per_deg_lon[
            rows, None]
        ring[:, :v, 1] = lat_deg[rows, None] + vertex_m * np.sin(angle_rad) / M_PER_DEG_LAT
        ring[:, v] = ring[:, 0]
        geoms[rows] = shapely.polygons(ring)
    return geoms


def make_blocks(n: int, seed: int) -> Blocks:
    """``n`` block polygons around the cities; deterministic in ``(n, seed)``."""
    rng = np.random.default_rng([seed, 1, n])
    lon_deg, lat_deg = grid_centres(n, make_cities(seed), rng)
    return Blocks(star_polygons(lon_deg, lat_deg, rng), lon_deg, lat_deg)


def make_extra_blocks(blocks: Blocks, n_extra: int, seed: int) -> Blocks:
    """New blocks for the write benchmarks: between existing ones, half a step to the NE."""
    rng = np.random.default_rng([seed, 3, len(blocks.geoms)])
    pick = rng.integers(0, len(blocks.geoms), n_extra)
    shift_m = BLOCK_SPACING_M * (0.5 + rng.uniform(-GRID_JITTER, GRID_JITTER, (2, n_extra)))
    lon_deg, lat_deg = offset_deg(
        blocks.centre_lon_deg[pick], blocks.centre_lat_deg[pick], shift_m[0], shift_m[1]
    )
    return Blocks(star_polygons(lon_deg, lat_deg, rng), lon_deg, lat_deg)


def make_query_points(blocks: Blocks, n_queries: int, seed: int) -> tuple[list, list]:
    """Query points in and between blocks: within half a grid step of a random block centre."""
    rng = np.random.default_rng([seed, 2, len(blocks.geoms)])
    pick = rng.integers(0, len(blocks.geoms), n_queries)
    shift_m = rng.uniform(-0.5, 0.5, (2, n_queries)) * BLOCK_SPACING_M
    lon_deg, lat_deg = offset_deg(
        blocks.centre_lon_deg[pick], blocks.centre_lat_deg[pick], shift_m[0], shift_m[1]
    )
    return lon_deg.tolist(), lat_deg.tolist()  # Python floats, as an API caller passes them


def make_alert_points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` alert points scattered around block-like centres of the same cities."""
    rng = np.random.default_rng([seed, 4, n])
    lon_deg, lat_deg = grid_centres(n, make_cities(seed), rng)
    shift_m = rng.normal(0.0, ALERT_SPREAD_M, (2, n))
    return offset_deg(lon_deg, lat_deg, shift_m[0], shift_m[1])


# -- brute force: no index -----------------------------------------------------------------
def generous_box_deg(lon: float, lat: float, radius_m: float) -> tuple[float, float, float, float]:
    """A degree box that surely holds every point within ``radius_m`` (no antimeridian or pole
    here: the data is the continental US). Independent of geo.distance.search_boxes_deg."""
    half_lat_deg = GENEROUS * radius_m / M_PER_DEG_LAT_MIN
    poleward_rad = math.radians(min(abs(lat) + half_lat_deg, 89.0))
    half_lon_deg = GENEROUS * radius_m / (M_PER_DEG_LON_EQUATOR * math.cos(poleward_rad))
    return lon - half_lon_deg, lat - half_lat_deg, lon + half_lon_deg, lat + half_lat_deg


def sorted_pairs(keys: np.ndarray, distances_m: np.ndarray) -> list[tuple[int, float]]:
    """``(key, distance_m)`` sorted by distance, then key, as the indexes answer."""
    pairs = zip(keys.tolist(), distances_m.tolist(), strict=True)
    return sorted(pairs, key=lambda pair: (pair[1], pair[0]))


class BrutePolygons:
    """Scan every bounding box (numpy, vectorised), then decide exactly on the survivors."""

    def __init__(self, geoms: np.ndarray) -> None:
        bounds = shapely.bounds(geoms)
        self.geoms = geoms
        self.min_lon, self.min_lat, self.max_lon, self.max_lat = (
            np.ascontiguousarray(bounds[:, i]) for i in range(4)
        )

    def _boxes_meeting(self, box_deg: tuple[float, float, float, float]) -> np.ndarray:
        west, south, east, north = box_deg
        return np.flatnonzero(
            (self.min_lon <= east) & (self.max_lon >= west)
            & (self.min_lat <= north) & (self.max_lat >= south)
        )

    def covering(self, lon: float, lat: float) -> list[int]:
        slots = self._boxes_meeting((lon, lat, lon, lat))
        hit = shapely.intersects(self.geoms[slots], shapely.Point(lon, lat))  # edges count
        return sorted(slots[hit].tolist())

    def _exact(self, lon: float, lat: float, slots: np.ndarray) -> np.ndarray:
        return geo.distances_to_geometries_m(lon, lat, self.geoms[slots])

    def within(self, lon: float, lat: float, radius_m: float) -> list[tuple[int, float]]:
        slots = self._boxes_meeting(generous_box_deg(lon, lat, radius_m))
        distances_m = self._exact(lon, lat, slots)
        keep = distances_m <= radius_m
        return sorted_pairs(slots[keep], distances_m[keep])

    def nearest(self, lon: float, lat: float, k: int) -> list[tuple[int, float]]:
        """Exact distances to every polygon whose box is near enough to matter.

        ``box_m`` is a flat-earth distance to each bounding box: never more than the distance to
        the polygon inside it, and within a few per cent of geodesic at these scales. The k
        polygons with the nearest boxes give an upper bound ``bound_m`` on the k-th nearest
        true distance, so every polygon that can be in the answer has ``box_m`` at most
        ``bound_m`` (plus the flat-earth error: ``GENEROUS`` covers it many times over). All of
        those get exact distances, and the k smallest (ties by key) are the answer.
        """
        k = min(k, len(self.geoms))
        if k == 0:
            return []
        m_per_deg_lon = M_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat))
        gap_lon_deg = np.maximum(np.maximum(self.min_lon - lon, lon - self.max_lon), 0.0)
        gap_lat_deg = np.maximum(np.maximum(self.min_lat - lat, lat - self.max_lat), 0.0)
        box_m = np.hypot(gap_lon_deg * m_per_deg_lon, gap_lat_deg * M_PER_DEG_LAT_MIN)
        first = np.argpartition(box_m, k - 1)[:k] if len(box_m) > k else np.arange(k)
        bound_m = float(self._exact(lon, lat, first).max())
        slots = np.flatnonzero(box_m <= GENEROUS * bound_m + 1.0)
        return sorted_pairs(slots, self._exact(lon, lat, slots))[:k]


class BrutePoints:
    """Scan every point (numpy), then geodesic distances (pyproj) on those in a generous box."""

    def __init__(self, lon_deg: np.ndarray, lat_deg: np.ndarray) -> None:
        self.lon_deg = np.ascontiguousarray(lon_deg)
        self.lat_deg = np.ascontiguousarray(lat_deg)

    def within(self, lon: float, lat: float, radius_m: float) -> list[tuple[int, float]]:
        west, south, east, north = generous_box_deg(lon, lat, radius_m)
        slots = np.flatnonzero(
            (self.lon_deg >= west) & (self.lon_deg <= east)
            & (self.lat_deg >= south) & (self.lat_deg <= north)
        )
        n = len(slots)
        _, _, distances_m = GEOD.inv(
            np.full(n, lon), np.full(n, lat), self.lon_deg[slots], self.lat_deg[slots],
            return_back_azimuth=False,
        )
        distances_m = np.asarray(distances_m, dtype=float)
        keep = distances_m <= radius_m
        return sorted_pairs(slots[keep], distances_m[keep])


# -- timing and checking -------------------------------------------------------------------
def time_each_us(query: Callable[[int], Any], n: int) -> tuple[np.ndarray, list[Any]]:
    """Per-call wall time in µs of ``query(i)`` for ``i`` in ``range(n)``, and the answers."""
    for i in range(min(WARM_UP_QUERIES, n)):
        query(i)
    times_ns = np.empty(n)
    answers = []
    clock = time.perf_counter_ns
    for i in range(n):
        start = clock()
        answer = query(i)
        times_ns[i] = clock() - start
        answers.append(answer)
    return times_ns / 1e3, answers


def pairs_agree(ours: Sequence[tuple[Hashable, float]], brute: Sequence[tuple[int, float]]) -> bool:
    """Same keys, distances within 1e-6 relative, and ours sorted by distance then key."""
    if len(ours) != len(brute):
        return False
    ours_m, brute_m = dict(ours), dict(brute)
    return (
        ours_m.keys() == brute_m.keys()
        and all(math.isclose(ours_m[key], brute_m[key], rel_tol=1e-6, abs_tol=1e-6)
                for key in ours_m)
        and list(ours) == sorted(ours, key=lambda pair: (pair[1], pair[0]))
    )


@dataclass
class Checks:
    """Answers compared with brute force, per query kind; mismatches kept for the report."""

    checked: dict[str, int] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)

    def compare(self, kind: str, size: int, point: int, ours: Any, brute: Any, same: bool) -> None:
        self.checked[kind] = self.checked.get(kind, 0) + 1
        if not same:
            self.mismatches.append(
                f"{kind} at N={size:,}, query point {point}: ours {ours!r:.300} != brute "
                f"{brute!r:.300}"
            )
            log(f"MISMATCH: {self.mismatches[-1]}")

    def summary(self) -> str:
        total = sum(self.checked.values())
        parts = ", ".join(f"{kind} {count:,}" for kind, count in self.checked.items())
        checked = f"{total:,} answers checked against brute force or a known answer ({parts})"
        if not self.mismatches:
            return f"Correctness: {checked}: all agreed."
        return (
            f"**CORRECTNESS MISMATCH: {len(self.mismatches):,} of {checked} disagreed.** "
            "First ones:\n"
            + "\n".join(f"    {line}" for line in self.mismatches[:10])
        )


@dataclass(frozen=True)
class Row:
    kind: str
    size: int
    ours: str
    brute: str = "—"
    speedup: str = "—"
    value: float | None = None  # in the target's unit, to say whether a 1M figure met it
    note: str = ""  # appended to the query label (mean hits and the like)


def fmt_us(value_us: float) -> str:
    if value_us >= 100:
        return f"{value_us:,.0f}"
    return f"{value_us:.1f}" if value_us >= 10 else f"{value_us:.2f}"


def fmt_ratio(ratio: float) -> str:
    return f"{ratio:,.0f}×" if ratio >= 10 else f"{ratio:.2g}×"


def fmt_size(size: int) -> str:
    if size >= ONE_MILLION and size % ONE_MILLION == 0:
        return f"{size // ONE_MILLION}M"
    return f"{size // 1000}k" if size % 1000 == 0 else f"{size:,}"


def timed_row(kind: str, size: int, ours_us: float, brute_us: float, note: str = "") -> Row:
    return Row(kind, size, fmt_us(ours_us), fmt_us(brute_us), fmt_ratio(brute_us / ours_us),
               ours_us, note)


# -- the measurements ----------------------------------------------------------------------
def n_brute_for(size: int, n_queries: int) -> int:
    return min(n_queries, max(MIN_BRUTE_QUERIES, BRUTE_BUDGET // size))


def bench_polygon_queries(
    index: geo.PolygonIndex, brute: BrutePolygons, lons: list, lats: list, n_brute: int,
    checks: Checks,
) -> tuple[list[Row], float]:
    """covering, covering_many, within and nearest; returns the rows and within's median µs."""
    size, n = len(brute.geoms), len(lons)
    rows = []

    ours_us, ours = time_each_us(lambda i: index.covering(lon=lons[i], lat=lats[i]), n)
    brute_us, truth = time_each_us(lambda i: brute.covering(lons[i], lats[i]), n_brute)
    for i in range(n_brute):
        checks.compare("covering", size, i, ours[i], truth[i], ours[i] == truth[i])
    hits = np.mean([len(a) for a in ours])
    rows.append(timed_row("covering", size, float(np.median(ours_us)), float(np.median(brute_us)),
                          f"mean {hits:.2f} hits"))

    lons_array, lats_array = np.array(lons), np.array(lats)
    many_us = []
    for _ in range(COVERING_MANY_REPEATS):
        start = time.perf_counter_ns()
        many = index.covering_many(lons_array, lats_array)
        many_us.append((time.perf_counter_ns() - start) / 1e3 / n)
    for i in range(n_brute):
        checks.compare("covering_many", size, i, many[i], truth[i], many[i] == truth[i])
    # Brute force has no bulk form: per point it is the same scan as covering's.
    rows.append(timed_row("covering_many", size, float(np.median(many_us)),
                          float(np.median(brute_us)), f"{n:,} points a call"))

    radius_m = WITHIN_RADIUS_M
    ours_us, ours = time_each_us(
        lambda i: index.within(lon=lons[i], lat=lats[i], radius_m=radius_m), n)
    brute_us, truth = time_each_us(lambda i: brute.within(lons[i], lats[i], radius_m), n_brute)
    for i in range(n_brute):
        checks.compare("within", size, i, ours[i], truth[i], pairs_agree(ours[i], truth[i]))
    within_median_us = float(np.median(ours_us))
    hits = np.mean([len(a) for a in ours])
    rows.append(timed_row("within", size, within_median_us, float(np.median(brute_us)),
                          f"mean {hits:.1f} hits"))

    ours_us, ours = time_each_us(
        lambda i: index.nearest(lon=lons[i], lat=lats[i], k=NEAREST_K), n)
    brute_us, truth = time_each_us(lambda i: brute.nearest(lons[i], lats[i], NEAREST_K), n_brute)
    for i in range(n_brute):
        checks.compare("nearest", size, i, ours[i], truth[i], pairs_agree(ours[i], truth[i]))
    rows.append(timed_row("nearest", size, float(np.median(ours_us)), float(np.median(brute_us))))
    return rows, within_median_us


def time_adds_us(index: geo.PolygonIndex, keys: Sequence[int], geoms: np.ndarray) -> np.ndarray:
    """Wall time in µs of each ``add`` (a merge into the snapshot lands on one of them)."""
    times_ns = np.empty(len(keys))
    clock = time.perf_counter_ns
    for i, (key, geom) in enumerate(zip(keys, geoms, strict=True)):
        start = clock()
        index.add(key, geom)
        times_ns[i] = clock() - start
    return times_ns / 1e3


def bench_writes(
    index: geo.PolygonIndex, blocks: Blocks, brute: BrutePolygons, lons: list, lats: list,
    n_brute: int, within_median_us: float, seed: int, checks: Checks,
) -> list[Row]:
    """Amortised add/remove, then add-then-within rounds; checks the index afterwards."""
    size = len(blocks.geoms)
    extras = make_extra_blocks(blocks, WRITE_OPS + ADD_THEN_WITHIN_ROUNDS, seed)
    keys = range(size, size + WRITE_OPS)  # new int keys
    gc.collect()
    add_us = time_adds_us(index, keys, extras.geoms[:WRITE_OPS])
    start_s = time.perf_counter()
    for key in keys:
        index.remove(key)
    remove_us = (time.perf_counter() - start_s) / WRITE_OPS * 1e6
    both_us = (add_us.mean() + remove_us) / 2

    checks.compare("len after writes", size, -1, len(index), size, len(index) == size)
    for i in range(n_brute):
        ours, truth = index.covering(lon=lons[i], lat=lats[i]), brute.covering(lons[i], lats[i])
        checks.compare("covering after writes", size, i, ours, truth, ours == truth)

    # The realistic pattern: an add, then a query near it, which rebuilds the delta tree.
    rounds = range(WRITE_OPS, WRITE_OPS + ADD_THEN_WITHIN_ROUNDS)
    centre_lons, centre_lats = extras.centre_lon_deg.tolist(), extras.centre_lat_deg.tolist()
    answers = []
    round_ns = np.empty(len(rounds))
    clock = time.perf_counter_ns
    for n, j in enumerate(rounds):
        start = clock()
        index.add(size + j, extras.geoms[j])
        answers.append(index.within(lon=centre_lons[j], lat=centre_lats[j],
                                    radius_m=WITHIN_RADIUS_M))
        round_ns[n] = clock() - start
    round_us = round_ns / 1e3
    for j, answer in zip(rounds, answers, strict=True):
        found = any(key == size + j for key, _ in answer)
        checks.compare("within finds a fresh add", size, j, found, True, found)
    per_add_us = round_us.mean() - within_median_us
    return [
        Row("add_remove", size, f"{fmt_us(both_us)} µs (add {fmt_us(add_us.mean())}, median "
            f"{fmt_us(float(np.median(add_us)))}, max {add_us.max() / 1e3:,.0f} ms; remove "
            f"{fmt_us(remove_us)})", value=both_us),
        Row("add_then_within", size, f"{fmt_us(per_add_us)} µs (mean round "
            f"{fmt_us(round_us.mean())} − median within {fmt_us(within_median_us)}; median "
            f"round {fmt_us(float(np.median(round_us)))}, max {round_us.max() / 1e3:,.0f} ms)",
            value=per_add_us),
    ]


def bench_points(size: int, lons: list, lats: list, n_brute: int, seed: int,
                 checks: Checks) -> list[Row]:
    """PointIndex.within over ``size`` alert points clustered around the same cities."""
    lon_deg, lat_deg = make_alert_points(size, seed)
    items = list(zip(range(size), shapely.points(lon_deg, lat_deg), strict=True))
    start_s = time.perf_counter()
    index = geo.PointIndex(items)
    build_s = time.perf_counter() - start_s
    del items
    brute = BrutePoints(lon_deg, lat_deg)
    radius_m = POINT_RADIUS_M
    ours_us, ours = time_each_us(
        lambda i: index.within(lon=lons[i], lat=lats[i], radius_m=radius_m), len(lons))
    brute_us, truth = time_each_us(lambda i: brute.within(lons[i], lats[i], radius_m), n_brute)
    for i in range(n_brute):
        checks.compare("PointIndex.within", size, i, ours[i], truth[i],
                       pairs_agree(ours[i], truth[i]))
    hits = np.mean([len(a) for a in ours])
    return [timed_row("point_within", size, float(np.median(ours_us)),
                      float(np.median(brute_us)), f"mean {hits:.1f} hits, build {build_s:.1f} s")]


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_probe(size: int, seed: int) -> dict[str, float]:
    """In a fresh process: RSS growth per polygon of the geometries, then of the index.

    Keys are ints from ``range`` fed through an iterator, so no (key, polygon) list is left
    behind; the int objects the index holds count as index overhead.
    """
    gc.collect()
    base = rss_bytes()
    geoms = make_blocks(size, seed).geoms
    gc.collect()
    with_geoms = rss_bytes()
    index = geo.PolygonIndex(zip(range(size), geoms, strict=True))
    gc.collect()
    with_index = rss_bytes()
    return {
        "entries": len(index),
        "geometries_b": (with_geoms - base) / size,
        "index_b": (with_index - with_geoms) / size,
    }


def measure_memory(size: int, seed: int) -> Row:
    command = [sys.executable, str(Path(__file__).resolve()), "--memory-probe", str(size),
               "--seed", str(seed)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        log(f"memory probe failed:\n{done.stderr}")
        return Row("memory", size, "probe failed")
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    index_b, geometries_b = probe["index_b"], probe["geometries_b"]
    return Row("memory", size, f"index overhead {index_b:,.0f} B/polygon; geometries "
               f"{geometries_b:,.0f} B/polygon", value=index_b)


def bench_size(size: int, n_queries: int, seed: int, checks: Checks) -> tuple[list[Row], str]:
    log(f"N={size:,}: generating polygons")
    start_s = time.perf_counter()
    blocks = make_blocks(size, seed)
    generate_s = time.perf_counter() - start_s
    sample = blocks.geoms[:: max(1, size // 1000)]
    valid = int(shapely.is_valid(sample).sum())
    n_vertices = shapely.get_num_coordinates(blocks.geoms) - 1
    note = (f"N={size:,}: generated in {generate_s:.1f} s, {valid} of {len(sample)} sampled "
            f"polygons valid, {n_vertices.mean():.1f} vertices on average")

    lons, lats = make_query_points(blocks, n_queries, seed)
    n_brute = n_brute_for(size, n_queries)
    brute = BrutePolygons(blocks.geoms)
    items = list(zip(range(size), blocks.geoms, strict=True))
    log(f"N={size:,}: building the index (twice: the first build in a process is slower)")
    build_s = []
    for _ in range(2):
        index = None
        gc.collect()
        start_s = time.perf_counter()
        index = geo.PolygonIndex(items)
        build_s.append(time.perf_counter() - start_s)
    del items
    start_s = time.perf_counter()
    shapely.STRtree(blocks.geoms)
    strtree_s = time.perf_counter() - start_s
    note += (f"; a bare shapely.STRtree over the same polygons builds in {strtree_s:.3g} s; "
             f"{n_queries:,} query points, brute force on the first {n_brute:,}")
    rows = [Row("build", size, f"{min(build_s):.3g} s (first {build_s[0]:.3g} s)",
                value=min(build_s))]

    log(f"N={size:,}: polygon queries")
    query_rows, within_median_us = bench_polygon_queries(index, brute, lons, lats, n_brute, checks)
    rows += query_rows
    log(f"N={size:,}: writes")
    rows += bench_writes(index, blocks, brute, lons, lats, n_brute, within_median_us, seed,
                         checks)
    del index, brute, blocks
    gc.collect()
    log(f"N={size:,}: point index")
    rows += bench_points(size, lons, lats, n_brute, seed, checks)
    gc.collect()
    log(f"N={size:,}: memory (fresh subprocess)")
    rows.append(measure_memory(size, seed))
    return rows, note


# -- the report ----------------------------------------------------------------------------
METHOD_NOTE = (
    "Medians of per-call wall time, one call at a time on one thread; `covering_many` is one "
    "call with every query point, divided by their number (median of "
    f"{COVERING_MANY_REPEATS} calls), and its brute-force figure is the per-point scan of "
    "`covering`. Brute force: a numpy scan of every bounding box, then shapely `intersects` or "
    "`geo.distances_to_geometries_m` (pyproj `Geod.inv` for points) on the survivors. Memory is "
    "RSS growth in a fresh process (it is coarse below 100k). Write rows: mean µs per operation, "
    "merges into the snapshot included (the max is a merge); per add of the add-then-`within` "
    "pattern = mean round − median plain `within`."
)


def header(argv: Sequence[str]) -> list[str]:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"geo index benchmark, {now}: Python {sys.version.split()[0]}, shapely "
        f"{shapely.__version__}, GEOS {shapely.geos_version_string}, pyproj {pyproj.__version__}"
        f" (PROJ {pyproj.proj_version_str}), numpy {np.__version__}; nproc {os.cpu_count()} "
        f"(usable {len(os.sched_getaffinity(0))}); one thread",
        f"Command: `{shlex.join(argv)}`",
    ]
    if "OPENBLAS_CORETYPE" in os.environ:
        lines.append(f"OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} is set in the "
                     "environment (left as it is)")
    return lines


def table(rows: list[Row]) -> list[str]:
    order = list(TARGETS)
    lines = [
        "| query | size | ours median µs | brute median µs | speed-up | target |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for row in sorted(rows, key=lambda r: (order.index(r.kind), r.size)):
        target = TARGETS[row.kind]
        label = f"{target.label} ({row.note})" if row.note else target.label
        status = target.text()
        if row.size == ONE_MILLION and row.value is not None:
            status += " — met" if row.value <= target.limit else " — **MISSED**"
        lines.append(f"| {label} | {fmt_size(row.size)} | {row.ours} | {row.brute} | "
                     f"{row.speedup} | {status} |")
    return lines


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                        help="comma-separated polygon counts (default: %(default)s)")
    parser.add_argument("--queries", type=int, default=DEFAULT_QUERIES,
                        help="query points per size for the index (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="data seed (default: %(default)s)")
    parser.add_argument("--memory-probe", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sizes = [int(size.replace("_", "")) for size in args.sizes.split(",") if size]
    if not args.sizes or min(args.sizes) < NEAREST_K or args.queries < 1:
        parser.error(f"sizes must be at least {NEAREST_K} and queries at least 1")
    return args


def main(argv: Sequence[str]) -> None:
    args = parse_args(argv)
    if args.memory_probe:
        print(json.dumps(memory_probe(args.memory_probe, args.seed)))
        return
    checks = Checks()
    rows, notes = [], []
    for size in args.sizes:
        size_rows, note = bench_size(size, args.queries, args.seed, checks)
        rows += size_rows
        notes.append(note)
        gc.collect()
    command = getattr(sys, "orig_argv", [sys.executable, *sys.argv])
    print("\n".join([*header(command), "", *table(rows), "", checks.summary(), "",
                     f"- {METHOD_NOTE}", *(f"- {note}" for note in notes),
                     f"- total run {time.perf_counter() - START_S:.0f} s"]))


if __name__ == "__main__":
    main(sys.argv[1:])
