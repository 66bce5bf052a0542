"""Argument checks shared by the services; each failure is a 422 naming its field."""

from __future__ import annotations

import re
import uuid

from blockwatch.domain import NotFound, ValidationError
from geo.coordinates import finite_number, is_lat, is_lon

MAX_RADIUS_M = 50_000.0
_UUID_TEXT = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_CANONICAL_UUID = re.compile(_UUID_TEXT)
_UUID_LENGTH = 36
_DASH_OFFSETS = (8, 13, 18, 23)
_UUID_LIST_BYTES = b"0123456789abcdef-,"


def check_point(lon: object, lat: object, field: str | None = None) -> None:
    """Finite WGS84 degrees, or a 422 naming ``lat`` or ``lon`` (or ``field``, for a point
    given as one value)."""
    if not is_lat(lat):
        raise ValidationError.field(field or "lat", "latitude must be a number from -90 to 90")
    if not is_lon(lon):
        raise ValidationError.field(
            field or "lon", "longitude must be a number from -180 to 180"
        )


def check_radius(radius_m: float, maximum_m: float = MAX_RADIUS_M) -> None:
    """A radius greater than 0 and at most ``maximum_m``, or a 422 naming ``radius_m``."""
    number = finite_number(radius_m)
    if number is None or not 0 < number <= maximum_m:
        raise ValidationError.field(
            "radius_m", f"must be greater than 0 and at most {maximum_m:g}"
        )


def check_limit(limit: int, maximum: int) -> int:
    """``limit`` within 1..maximum, or a 422 naming it (never silently clamped)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= maximum:
        raise ValidationError.field("limit", f"must be a whole number from 1 to {maximum}")
    return limit


def check_uuid(value: object, field: str = "id") -> str:
    """The canonical text of a UUID, or a 422 naming ``field``."""
    if isinstance(value, str) and _CANONICAL_UUID.fullmatch(value):
        return value  # the usual case, about ten times faster than parsing (sync sends many)
    try:
        return str(uuid.UUID(str(value)))
    except ValueError as error:
        raise ValidationError.field(field, "must be a UUID") from error


def are_canonical_uuids(values: object) -> bool:
    """Whether ``values`` is a list or tuple of canonical (lower-case) UUID strings.

    A replica sends hundreds in every pull, so they are checked joined, as bytes: only hex
    digits, dashes and commas; dashes and commas exactly where a list of ids has them (found by
    slicing at a stride of one id, which is C loops, about four times faster than a regex).
    """
    if not isinstance(values, list | tuple):
        return False
    if not values:
        return True
    count, stride = len(values), _UUID_LENGTH + 1
    try:
        joined = ",".join(values)
    except TypeError:  # an item that is not text
        return False
    if len(joined) != count * stride - 1 or not joined.isascii():
        return False
    raw = joined.encode("ascii")
    if raw.translate(None, _UUID_LIST_BYTES):  # something besides hex digits, "-" and ","
        return False
    dashes = b"-" * count
    return (all(raw[offset::stride] == dashes for offset in _DASH_OFFSETS)
            and raw.count(b"-") == len(dashes) * len(_DASH_OFFSETS)
            and raw[_UUID_LENGTH::stride] == b"," * (count - 1)
            and raw.count(b",") == count - 1)


def existing_id(value: object, what: str) -> str:
    """The canonical text of an id in a path: an id that is not a UUID names nothing (404)."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError as error:
        raise NotFound(f"no {what} {value}") from error


def is_storable_text(text: str) -> bool:
    """Text both databases store alike: no NUL (PostgreSQL refuses it) and no lone surrogate
    (it has no UTF-8 form)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
