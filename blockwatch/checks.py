"""Argument checks shared by the services; each failure is a 422 naming its field."""

from __future__ import annotations

import math
import uuid

from blockwatch.domain import ValidationError

MAX_RADIUS_M = 50_000.0


def check_point(lon: float, lat: float) -> None:
    """Finite WGS84 degrees, or a 422 naming ``lat`` or ``lon``."""
    for name, value, limit in (("lat", lat, 90.0), ("lon", lon, 180.0)):
        if isinstance(value, bool) or not (
            isinstance(value, int | float) and math.isfinite(value) and abs(value) <= limit
        ):
            raise ValidationError.field(name, f"must be a number from -{limit:g} to {limit:g}")


def check_radius(radius_m: float, maximum_m: float = MAX_RADIUS_M) -> None:
    """A radius greater than 0 and at most ``maximum_m``, or a 422 naming ``radius_m``."""
    if isinstance(radius_m, bool) or not (
        isinstance(radius_m, int | float) and math.isfinite(radius_m) and 0 < radius_m <= maximum_m
    ):
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
    try:
        return str(uuid.UUID(str(value)))
    except ValueError as error:
        raise ValidationError.field(field, "must be a UUID") from error
