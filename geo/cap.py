"""Conversion between OASIS CAP 1.2 ``<area>`` shapes (``<polygon>``, ``<circle>``) and shapely.

CAP writes points as ``lat,lon`` (latitude first, WGS84 degrees) and a circle's radius in
kilometres; everything this module returns uses ``(lon, lat)`` order and metres, like the rest of
``geo``. Numbers are written in their shortest exact decimal form with at most 7 decimals, so a
CAP string that went through :func:`parse_polygon` and :func:`format_polygon` comes back as it was.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely

from geo.coordinates import finite_number
from geo.distance import WGS84, distance_m
from geo.errors import GeometryError, Problem

CAP_NAMESPACE = "urn:oasis:names:tc:emergency:cap:1.2"
_NS = {"cap": CAP_NAMESPACE}
# 1e-7 degrees is about 1 cm on the ground (and 0.1 mm of radius in km): finer digits are noise
# from arithmetic, not information, and would make written alerts longer for nothing.
_MAX_DECIMALS = 7


@dataclass(frozen=True)
class Circle:
    """A CAP ``<circle>``: a centre in WGS84 degrees and a radius in metres.

    A radius of 0 is allowed (CAP uses it for a point); a negative or non-finite one is not.

    >>> Circle(lon=-115.5527, lat=32.9525, radius_m=1500.0).radius_m
    1500.0
    """

    lon: float
    lat: float
    radius_m: float

    def __post_init__(self) -> None:
        problems = _coordinate_problems(self.lat, self.lon, "circle centre")
        if finite_number(self.radius_m) is None or self.radius_m < 0:
            problems.append(
                Problem(
                    "invalid-radius",
                    f"radius {self.radius_m!r} m is not a finite number >= 0",
                    path="circle radius",
                )
            )
        if problems:
            raise _error("invalid CAP circle", problems)

    def to_polygon(self, segments: int = 64) -> shapely.Polygon:
        """The circle as a closed, counter-clockwise polygon of ``segments`` geodesic vertices.

        Every vertex lies exactly ``radius_m`` from the centre along a WGS84 geodesic. Edges are
        straight in longitude and latitude, so they cut slightly inside the true circle. Raises
        :class:`GeometryError` for a radius of 0 (no area to draw) and for circles that would
        cross the antimeridian or cover a pole, which a lon/lat polygon cannot represent.

        >>> ring = Circle(lon=-122.33, lat=47.6, radius_m=1000.0).to_polygon(16)
        >>> len(ring.exterior.coords), ring.exterior.is_ccw
        (17, True)
        """
        if segments < 3:
            raise ValueError(f"segments must be at least 3, got {segments}")
        where = (self.lon, self.lat)
        if self.radius_m == 0:
            raise _error(
                "CAP circle has radius 0, which is a point with no area to draw",
                [Problem("zero-radius", "circle has radius 0", where, "circle radius")],
            )
        pole_lat = 90.0 if self.lat >= 0 else -90.0
        if self.radius_m >= distance_m(self.lon, self.lat, self.lon, pole_lat):
            raise _error(
                "CAP circle covers a pole, which a lon/lat polygon cannot represent",
                [Problem("pole", "circle covers a pole", where, "circle")],
            )
        # Azimuths run clockwise from north, so stepping them backwards traces the ring
        # counter-clockwise in (lon, lat), the orientation RFC 7946 asks for exterior rings.
        azimuths = -np.arange(segments) * (360.0 / segments)
        lons, lats, _ = WGS84.fwd(
            np.full(segments, float(self.lon)),
            np.full(segments, float(self.lat)),
            azimuths,
            np.full(segments, float(self.radius_m)),
        )
        lons = np.asarray(lons, dtype=float)
        lats = np.asarray(lats, dtype=float)
        # pyproj wraps longitudes into [-180, 180]; a vertex that wrapped is a circle crossing the
        # antimeridian, whose straight lon/lat edges would span the whole globe instead.
        unwrapped = self.lon + (lons - self.lon + 180.0) % 360.0 - 180.0
        if np.any(np.abs(unwrapped) > 180.0):
            raise _error(
                "CAP circle crosses the antimeridian, which a lon/lat polygon cannot represent",
                [Problem("antimeridian", "circle crosses the antimeridian", where, "circle")],
            )
        ring = np.column_stack([lons, lats])
        return shapely.Polygon(np.vstack([ring, ring[:1]]))


def parse_polygon(text: str) -> shapely.Polygon:
    """Parse a CAP ``<polygon>`` (``"lat,lon lat,lon ..."``) into a polygon in (lon, lat) order.

    The pairs are whitespace-separated and must number at least 4, with the first equal to the
    last. Raises :class:`GeometryError` naming each bad pair (not two numbers, not finite,
    latitude outside [-90, 90] or longitude outside [-180, 180]), a ring that is not closed, or
    too few pairs. The ring's shape is not checked (a self-intersecting ring parses); validating
    it is the caller's choice.

    >>> parse_polygon("38.47,-120.14 38.34,-119.95 38.52,-119.74 38.47,-120.14").exterior.coords[0]
    (-120.14, 38.47)
    """
    tokens = text.split()
    problems: list[Problem] = []
    points: list[tuple[float, float]] = []
    for index, token in enumerate(tokens, start=1):
        where = f"pair {index} of {len(tokens)} ({token!r})"
        parsed = _parse_pair(token, where, problems)
        if parsed is not None:
            points.append(parsed)
    if problems:
        raise _error("invalid CAP polygon", problems)
    if len(points) < 4:
        raise _error(
            "invalid CAP polygon",
            [
                Problem(
                    "too-few-points",
                    f"a polygon needs at least 4 lat,lon pairs (first = last), got {len(points)}",
                    path="polygon",
                )
            ],
        )
    if points[0] != points[-1]:
        first, last = points[0], points[-1]
        raise _error(
            "invalid CAP polygon",
            [
                Problem(
                    "unclosed-ring",
                    f"polygon is not closed: first pair {_pair(first)} differs from last pair "
                    f"{_pair(last)}",
                    location=last,
                    path=f"pair {len(points)} of {len(points)}",
                )
            ],
        )
    return shapely.Polygon(points)


def format_polygon(polygon: shapely.Polygon) -> str:
    """Write a polygon's exterior ring as a CAP ``<polygon>`` string, closed, in ``lat,lon`` order.

    Numbers take their shortest exact decimal form, rounded to at most 7 decimals. CAP polygons
    have no holes, so a polygon with interior rings raises :class:`GeometryError` rather than
    silently covering its holes; so does a MultiPolygon (use :func:`format_polygons`), an empty
    polygon, or any other geometry.

    >>> from shapely import Polygon
    >>> format_polygon(Polygon([(-120.14, 38.47), (-119.95, 38.34), (-119.74, 38.52)]))
    '38.47,-120.14 38.34,-119.95 38.52,-119.74 38.47,-120.14'
    """
    if isinstance(polygon, shapely.MultiPolygon):
        raise _error(
            f"a CAP <polygon> holds one polygon, got a MultiPolygon of {len(polygon.geoms)}; "
            "use format_polygons() for one string per part",
            [Problem("unsupported-geometry", "MultiPolygon given to format_polygon")],
        )
    if not isinstance(polygon, shapely.Polygon):
        raise _error(
            f"a CAP <polygon> needs a Polygon, got {polygon.geom_type}",
            [Problem("unsupported-geometry", f"{polygon.geom_type} is not a Polygon")],
        )
    if polygon.is_empty:
        raise _error(
            "cannot write an empty polygon as a CAP <polygon>",
            [Problem("too-few-points", "polygon is empty")],
        )
    if polygon.interiors:
        first_hole = polygon.interiors[0].coords[0]
        raise _error(
            f"CAP polygons cannot have holes; this one has {len(polygon.interiors)}",
            [Problem("hole", "polygon has a hole", first_hole[:2], "ring 1")],
        )
    return " ".join(f"{_number(lat)},{_number(lon)}" for lon, lat in _xy(polygon.exterior.coords))


def format_polygons(geometry: shapely.Polygon | shapely.MultiPolygon) -> list[str]:
    """One CAP ``<polygon>`` string per polygon of a Polygon or MultiPolygon, in order.

    Raises :class:`GeometryError` as :func:`format_polygon` does (holes, empty parts, other
    geometry types).

    >>> from shapely import MultiPolygon, box
    >>> format_polygons(MultiPolygon([box(0, 0, 1, 1), box(2, 0, 3, 1)]))[1]
    '0,3 1,3 1,2 0,2 0,3'
    """
    if isinstance(geometry, shapely.MultiPolygon):
        return [format_polygon(part) for part in geometry.geoms]
    return [format_polygon(geometry)]


def parse_circle(text: str) -> Circle:
    """Parse a CAP ``<circle>`` (``"lat,lon radius_km"``) into a :class:`Circle` in metres.

    Raises :class:`GeometryError` for a centre that is not two finite in-range numbers, or a
    radius that is not a finite number >= 0.

    >>> parse_circle("32.9525,-115.5527 1.5")
    Circle(lon=-115.5527, lat=32.9525, radius_m=1500.0)
    """
    tokens = text.split()
    if len(tokens) != 2:
        raise _error(
            "invalid CAP circle",
            [
                Problem(
                    "invalid-coordinate",
                    f"a circle is 'lat,lon radius' (2 whitespace-separated parts), got {text!r}",
                    path="circle",
                )
            ],
        )
    problems: list[Problem] = []
    centre = _parse_pair(tokens[0], f"circle centre ({tokens[0]!r})", problems)
    radius_km = _parse_number(tokens[1])
    if radius_km is None or radius_km < 0:
        problems.append(
            Problem(
                "invalid-radius",
                f"radius {tokens[1]!r} is not a finite number of kilometres >= 0",
                path="circle radius",
            )
        )
    if problems or centre is None or radius_km is None:
        raise _error("invalid CAP circle", problems)
    return Circle(lon=centre[0], lat=centre[1], radius_m=radius_km * 1000.0)


def format_circle(circle: Circle) -> str:
    """Write a :class:`Circle` as a CAP ``<circle>`` string, ``"lat,lon radius_km"``.

    >>> format_circle(Circle(lon=-115.5527, lat=32.9525, radius_m=1500.0))
    '32.9525,-115.5527 1.5'
    """
    return f"{_number(circle.lat)},{_number(circle.lon)} {_number(circle.radius_m / 1000.0)}"


def areas_from_cap_xml(xml: str | bytes) -> list[shapely.Polygon | Circle]:
    """Every ``<polygon>`` and ``<circle>`` of every ``<area>`` in a CAP 1.2 alert, parsed.

    Shapes come in document order (info blocks, then areas, then shapes within an area). An alert
    with several languages repeats its areas in each ``<info>``, and so does the result. Raises
    :class:`GeometryError` when the document is not a CAP 1.2 alert or a shape does not parse
    (the message says which info, area and shape).

    This uses the standard library's XML parser, which is fine for trusted input; pass
    untrusted XML through ``defusedxml`` instead, which guards against entity-expansion attacks.

    >>> doc = ('<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><info><area>'
    ...        '<circle>32.9525,-115.5527 2</circle></area></info></alert>')
    >>> areas_from_cap_xml(doc)
    [Circle(lon=-115.5527, lat=32.9525, radius_m=2000.0)]
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise GeometryError(f"not well-formed XML: {exc}") from exc
    if root.tag != f"{{{CAP_NAMESPACE}}}alert":
        raise GeometryError(f"not a CAP 1.2 alert: the root element is {root.tag!r}")
    shapes: list[shapely.Polygon | Circle] = []
    for info_index, info in enumerate(root.findall("cap:info", _NS)):
        for area_index, area in enumerate(info.findall("cap:area", _NS)):
            for shape_index, element in enumerate(area):
                kind = element.tag.removeprefix(f"{{{CAP_NAMESPACE}}}")
                if kind not in ("polygon", "circle"):
                    continue
                where = f"info {info_index}, area {area_index}, element {shape_index} <{kind}>"
                text = element.text or ""
                try:
                    shapes.append(parse_polygon(text) if kind == "polygon" else parse_circle(text))
                except GeometryError as exc:
                    raise GeometryError(f"{where}: {exc}", exc.problems) from exc
    return shapes


def _parse_pair(token: str, where: str, problems: list[Problem]) -> tuple[float, float] | None:
    """``lat,lon`` as ``(lon, lat)``, or None after appending what is wrong with it."""
    parts = token.split(",")
    if len(parts) != 2:
        problems.append(
            Problem(
                "invalid-coordinate",
                f"expected 'lat,lon' (two numbers and one comma), got {len(parts)} fields",
                path=where,
            )
        )
        return None
    lat, lon = _parse_number(parts[0]), _parse_number(parts[1])
    if lat is None or lon is None:
        bad = [
            f"{name} {text!r} is not a finite number"
            for name, text, value in (("latitude", parts[0], lat), ("longitude", parts[1], lon))
            if value is None
        ]
        problems.append(Problem("invalid-coordinate", "; ".join(bad), path=where))
        return None
    found = _coordinate_problems(lat, lon, where)
    problems.extend(found)
    return None if found else (lon, lat)


def _coordinate_problems(lat: float, lon: float, where: str) -> list[Problem]:
    problems = []
    if finite_number(lat) is None or finite_number(lon) is None:
        problems.append(
            Problem("invalid-coordinate", f"lat,lon {lat!r},{lon!r} is not finite", path=where)
        )
    elif not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        out = []
        if not -90.0 <= lat <= 90.0:
            out.append(f"latitude {lat!r} is out of range [-90, 90]")
        if not -180.0 <= lon <= 180.0:
            out.append(f"longitude {lon!r} is out of range [-180, 180]")
        problems.append(Problem("out-of-range", "; ".join(out), (lon, lat), where))
    return problems


def _parse_number(text: str) -> float | None:
    """A finite float, or None; ``float`` alone would also accept 'nan', 'inf' and '1_0'."""
    if "_" in text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _number(value: float) -> str:
    text = np.format_float_positional(float(value), precision=_MAX_DECIMALS, unique=True, trim="-")
    # Values that round to zero keep their sign ("-0"), which CAP readers need not expect.
    return "0" if text == "-0" else text


def _pair(point: tuple[float, float]) -> str:
    return f"{_number(point[1])},{_number(point[0])}"


def _xy(coords: Sequence) -> list[tuple[float, float]]:
    return [(c[0], c[1]) for c in coords]


def _error(summary: str, problems: list[Problem]) -> GeometryError:
    shown = "; ".join(str(problem) for problem in problems[:3])
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return GeometryError(f"{summary}: {shown}{more}", problems)
