"""What counts as a coordinate: a finite real number of degrees within range.

One definition for every module that takes coordinates from outside, so they all refuse the
same things (NaN, infinities, booleans, strings, integers too large for a float).
"""

from __future__ import annotations

import math
import numbers


def finite_number(value: object) -> float | None:
    """``value`` as a float when it is a finite real number (not a bool), else None.

    >>> finite_number(47), finite_number(float("nan")), finite_number(True), finite_number(10**400)
    (47.0, None, None, None)
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError):
        return None
    return number if math.isfinite(number) else None


def is_lon(value: object) -> bool:
    """A longitude in degrees, within ±180."""
    number = finite_number(value)
    return number is not None and -180.0 <= number <= 180.0


def is_lat(value: object) -> bool:
    """A latitude in degrees, within ±90."""
    number = finite_number(value)
    return number is not None and -90.0 <= number <= 90.0


def check_point(lon: object, lat: object) -> None:
    """Raise ``ValueError`` naming ``lon`` or ``lat`` when it is not a finite WGS84 degree value.

    >>> check_point(-122.3, 47.6)
    >>> check_point(0.0, 91.0)
    Traceback (most recent call last):
    ValueError: lat must be a number within ±90, got 91.0
    """
    if not is_lon(lon):
        raise ValueError(f"lon must be a number within ±180, got {lon!r}")
    if not is_lat(lat):
        raise ValueError(f"lat must be a number within ±90, got {lat!r}")
