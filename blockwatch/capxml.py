"""Owns rendering an alert as an OASIS CAP 1.2 document."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import shapely

from blockwatch.domain import Alert, Group
from geo.cap import CAP_NAMESPACE, Circle, format_circle, format_polygon

#: Our categories -> (CAP ``<category>``, human ``<event>`` label).
_CATEGORIES: dict[str, tuple[str, str]] = {
    "burglary": ("Security", "Burglary"),
    "vehicle-prowl": ("Security", "Vehicle prowl"),
    "theft": ("Security", "Theft"),
    "vandalism": ("Security", "Vandalism"),
    "suspicious-activity": ("Security", "Suspicious activity"),
    "violent-crime": ("Safety", "Violent crime"),
    "fraud-scam": ("Security", "Fraud or scam"),
    "fire": ("Fire", "Fire"),
    "traffic": ("Transport", "Traffic"),
    "missing-person": ("Rescue", "Missing person"),
    "lost-pet": ("Other", "Lost pet"),
    "weather": ("Met", "Weather"),
    "other": ("Other", "Other"),
}
_URGENCIES = ("Immediate", "Expected", "Future", "Past", "Unknown")
_SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
_CERTAINTIES = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")
_MSG_TYPES = {"active": "Alert", "expired": "Alert", "cancelled": "Cancel"}
#: Snapping to the ~150 m public grid moves a point at most half a cell's diagonal (~106 m), so
#: a circle of 110 m around a snapped location covers the true one.
SNAPPED_RADIUS_M = 110.0
#: CAP 1.2 says identifiers and senders hold no spaces, commas or restricted characters.
_CAP_TOKEN_FORBIDDEN = re.compile(r"[\s,<&]")
#: Characters XML 1.0 cannot carry at all (C0 controls but tab/LF/CR, surrogates, U+FFFE/F).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def alert_to_cap(
    alert: Alert,
    group: Group,
    *,
    sender: str = "blockwatch@localhost",
    language: str = "en-US",
) -> bytes:
    """Render ``alert`` (posted in ``group``) as a UTF-8 OASIS CAP 1.2 ``<alert>`` document.

    The document carries an XML declaration, uses the CAP 1.2 namespace as its default namespace
    and validates against the CAP 1.2 schema. Times are written as the spec asks,
    ``YYYY-MM-DDThh:mm:ss+00:00`` (UTC, numeric offset, no fractional seconds).

    An active or expired alert is a ``msgType`` ``Alert`` with ``identifier`` = the alert id. A
    cancelled alert is a ``Cancel`` message of its own, identifier ``"<alert id>-cancel"``, whose
    ``references`` names the original (``"sender,<alert id>,sent"``), because CAP identifiers
    must be unique per message. Our alerts keep no cancellation time, so the Cancel's ``sent`` is
    the original's.

    The one ``<area>`` is the group: ``areaDesc`` its name, one ``<polygon>`` per polygon of its
    boundary (the exterior ring only: CAP polygons cannot have holes), and, when the alert has
    a location, a ``<circle>`` there of radius 0 when exact, or 0.11 km when snapped to the
    public grid (large enough to cover the true point).

    Raises :class:`ValueError` for a ``sender`` or alert id with spaces, commas, ``<`` or ``&``
    (which CAP forbids), a naive datetime, or a category, urgency, severity, certainty or status
    outside our vocabulary.

    >>> from datetime import datetime, UTC
    >>> from shapely import box
    >>> from blockwatch.domain import Author
    >>> when = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    >>> g = Group("g1", "Elm St", "", box(-122.32, 47.61, -122.31, 47.62), (-122.315, 47.615),
    ...           (-122.32, 47.61, -122.31, 47.62), 1.0, ("en",), "", 1, 1, when)
    >>> a = Alert("a1", "g1", "theft", "minor", "past", "observed", "Bike stolen", "", None,
    ...           False, when, when, "active", Author(None, ""), 1)
    >>> doc = alert_to_cap(a, g).decode()
    >>> "<sent>2024-05-01T12:00:00+00:00</sent>" in doc, "<msgType>Alert</msgType>" in doc
    (True, True)
    """
    _check_token("sender", sender)
    _check_token("alert id", alert.id)
    try:
        msg_type = _MSG_TYPES[alert.status]
    except KeyError:
        raise ValueError(
            f"alert status {alert.status!r} is not one of {sorted(_MSG_TYPES)}"
        ) from None
    try:
        cap_category, event = _CATEGORIES[alert.category]
    except KeyError:
        raise ValueError(f"alert category {alert.category!r} has no CAP mapping") from None
    sent = _cap_time(alert.sent_at)

    root = ET.Element(_q("alert"))
    _sub(root, "identifier", f"{alert.id}-cancel" if msg_type == "Cancel" else alert.id)
    _sub(root, "sender", sender)
    _sub(root, "sent", sent)
    _sub(root, "status", "Actual")
    _sub(root, "msgType", msg_type)
    _sub(root, "scope", "Public")
    if msg_type == "Cancel":
        _sub(root, "references", f"{sender},{alert.id},{sent}")

    info = _sub(root, "info")
    _sub(info, "language", language)
    _sub(info, "category", cap_category)
    _sub(info, "event", event)
    _sub(info, "urgency", _cap_value("urgency", alert.urgency, _URGENCIES))
    _sub(info, "severity", _cap_value("severity", alert.severity, _SEVERITIES))
    _sub(info, "certainty", _cap_value("certainty", alert.certainty, _CERTAINTIES))
    _sub(info, "expires", _cap_time(alert.expires_at))
    if alert.author.display_name.strip():
        _sub(info, "senderName", alert.author.display_name)
    _sub(info, "headline", alert.title)
    if alert.body.strip():
        _sub(info, "description", alert.body)
    parameter = _sub(info, "parameter")
    _sub(parameter, "valueName", "blockwatch:group_id")
    _sub(parameter, "value", group.id)

    area = _sub(info, "area")
    _sub(area, "areaDesc", group.name)
    for polygon in _polygons(group.boundary):
        _sub(area, "polygon", format_polygon(shapely.Polygon(polygon.exterior)))
    if alert.location is not None:
        lon, lat = alert.location
        radius_m = 0.0 if alert.location_exact else SNAPPED_RADIUS_M
        _sub(area, "circle", format_circle(Circle(lon=lon, lat=lat, radius_m=radius_m)))

    return ET.tostring(
        root, encoding="utf-8", xml_declaration=True, default_namespace=CAP_NAMESPACE
    )


def _q(tag: str) -> str:
    return f"{{{CAP_NAMESPACE}}}{tag}"


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, _q(tag))
    if text is not None:
        # ElementTree escapes <, & and quotes but writes any character it is given; drop those
        # XML 1.0 cannot hold, so the document stays well formed whatever a user typed.
        element.text = _XML_INVALID.sub("", text)
    return element


def _check_token(what: str, value: str) -> None:
    if not value or _CAP_TOKEN_FORBIDDEN.search(value):
        raise ValueError(f"CAP {what} {value!r} must be non-empty, without spaces, ',', '<', '&'")


def _cap_value(what: str, value: str, allowed: tuple[str, ...]) -> str:
    cap = value.capitalize()
    if cap not in allowed:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(v.lower() for v in allowed)}")
    return cap


def _cap_time(moment: datetime) -> str:
    """``YYYY-MM-DDThh:mm:ss+00:00`` in UTC: CAP forbids ``Z`` and fractional seconds."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"CAP times need a time zone, got naive {moment.isoformat()}")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _polygons(boundary: shapely.Geometry) -> list[shapely.Polygon]:
    if isinstance(boundary, shapely.Polygon):
        parts = [boundary]
    elif isinstance(boundary, shapely.MultiPolygon):
        parts = list(boundary.geoms)
    else:
        raise ValueError(
            f"group boundary must be a Polygon or MultiPolygon, got {boundary.geom_type}"
        )
    return [part for part in parts if not part.is_empty]
