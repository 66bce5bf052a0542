"""Small builders for test data: accounts with roles, groups, drafts."""

from __future__ import annotations

import shapely

from blockwatch import accounts, groups
from blockwatch.domain import Actor, AlertDraft, GroupDraft


def square(lon: float, lat: float, size_deg: float = 0.004) -> shapely.Polygon:
    return shapely.box(lon, lat, lon + size_deg, lat + size_deg)


def actor(db, name: str, role: str, group_id: str | None = None) -> Actor:
    """An account holding ``role`` (``admin``, or ``coordinator``/``member`` of the group)."""
    token = accounts.create_token(db, name, role, group_id)
    return accounts.authenticate(db, token)


def admin(db) -> Actor:
    return actor(db, "Admin", "admin")


def group(db, name: str = "Pike/Pine", lon: float = -122.32, lat: float = 47.61, **fields):
    return groups.create_group(
        db, admin(db), GroupDraft(name=name, boundary=square(lon, lat), **fields)
    )


def draft(**fields) -> AlertDraft:
    values = {"category": "burglary", "title": "Break-in on 11th Ave", "severity": "moderate"}
    values.update(fields)
    return AlertDraft(**values)
