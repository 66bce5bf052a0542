"""Group services: find groups near a point, at a point or in a box; read, create, edit, delete.

Spatial questions go to the ``geo`` indexes (see :mod:`blockwatch.spatial`); rows come from the
database in the same call. Only admins create or delete groups; a group's coordinators and admins
edit it, guarded by the version they last saw.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

import geo
from blockwatch import changelog
from blockwatch.checks import check_limit, check_point, check_radius, check_uuid, existing_id
from blockwatch.db import Database
from blockwatch.delivery.devices import unfollow_group
from blockwatch.domain import (
    Actor,
    Conflict,
    Forbidden,
    Group,
    GroupDraft,
    GroupNearby,
    NotAuthenticated,
    NotFound,
    Page,
    PreconditionFailed,
    ValidationError,
)
from blockwatch.models import Alert, Delivery, Membership
from blockwatch.models import Group as GroupRow
from blockwatch.paging import decode_next, encode_next
from geo.coordinates import finite_number

EDITABLE_FIELDS = ("name", "description", "boundary", "languages", "meeting_info")
_CHUNK = 500  # ids per IN (...) list, well under every database's parameter limit
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


# -- reading ------------------------------------------------------------------------------
def find_groups_near(
    db: Database, lon: float, lat: float, radius_m: float = 1000.0, limit: int = 20,
    next: str | None = None,
) -> Page:
    """Groups whose boundary lies within ``radius_m`` of the point, as :class:`GroupNearby`
    (the group and its ``distance_m``, 0 inside), sorted by distance then id."""
    check_point(lon, lat)
    check_radius(radius_m)
    check_limit(limit, 100)
    after = decode_next(next, (float, str))
    hits = db.spatial.groups.within(lon=lon, lat=lat, radius_m=radius_m)
    if after is not None:
        hits = [(key, d) for key, d in hits if (d, key) > (after[0], after[1])]
    page, more = hits[:limit], len(hits) > limit
    distances = dict(page)
    groups = _cached_views(db, [key for key, _ in page])
    items = [GroupNearby(groups[key], distances[key]) for key, _ in page if key in groups]
    token = encode_next([page[-1][1], page[-1][0]]) if more and page else None
    return Page(items, token)


def groups_at(db: Database, lon: float, lat: float) -> list[Group]:
    """Groups whose boundary covers the point (edges count); groups may overlap."""
    check_point(lon, lat)
    keys = db.spatial.groups.covering(lon=lon, lat=lat)
    groups = _cached_views(db, keys)
    return [groups[key] for key in keys if key in groups]


def groups_in_bbox(
    db: Database,
    bbox: tuple[float, float, float, float],
    limit: int = 1000,
    next: str | None = None,
    simplify_m: float | None = None,
) -> Page:
    """Groups intersecting ``(min_lon, min_lat, max_lon, max_lat)``, by id, for maps; with
    ``simplify_m`` their boundaries are simplified for drawing."""
    min_lon, min_lat, max_lon, max_lat = _check_bbox(bbox)
    check_limit(limit, 5000)
    if simplify_m is not None and not (
        finite_number(simplify_m) is not None and 0 <= simplify_m <= 1000
    ):
        raise ValidationError.field("simplify_m", "must be a number of metres from 0 to 1000")
    after = decode_next(next, (str,))
    keys = db.spatial.groups.intersecting(
        min_lon=min_lon, min_lat=min_lat, max_lon=max_lon, max_lat=max_lat
    )
    if after is not None:
        keys = [key for key in keys if key > after[0]]
    page, more = keys[:limit], len(keys) > limit
    groups = _cached_views(db, page)
    items = [groups[key] for key in page if key in groups]
    if simplify_m:
        items = [_with_boundary(g, geo.simplify_m(g.boundary, simplify_m)) for g in items]
    return Page(items, encode_next([page[-1]]) if more and page else None)


def get_group(db: Database, group_id: str) -> Group:
    """One group; :class:`NotFound` when there is none."""
    group_id = existing_id(group_id, "group")
    with db.read() as session:
        groups = _load(session, [group_id])
    if group_id not in groups:
        raise NotFound(f"no group {group_id}")
    return groups[group_id]


# -- writing ------------------------------------------------------------------------------
def create_group(db: Database, actor: Actor, draft: GroupDraft) -> Group:
    """Create a group (admins only). An invalid boundary is a 422 naming the problem and where."""
    return post_group(db, actor, draft)[0]


def post_group(db: Database, actor: Actor, draft: GroupDraft) -> tuple[Group, bool]:
    """Create a group (admins only), idempotent on a client-made ``draft.id``: the same id with
    the same fields gives back the stored group (created False), with other fields a
    :class:`Conflict`. Returns the group and whether it was created now."""
    _require_admin(actor)
    [row] = _new_rows([draft])
    with db.write() as session:
        existing = session.get(GroupRow, row.id) if draft.id else None
        if existing is not None:
            if _same_fields(existing, row):
                return _view(session, existing), False
            raise Conflict(f"group {row.id} exists with different fields")
        _insert(session, [row])
        session.flush()
        return _view(session, row), True


def _same_fields(stored: GroupRow, new: GroupRow) -> bool:
    return all(getattr(stored, name) == getattr(new, name) for name in (
        "name", "description", "boundary_geojson", "languages", "meeting_info",
    ))


def create_groups(db: Database, actor: Actor, drafts: Iterable[GroupDraft]) -> list[str]:
    """Create many groups in one transaction (all or none); returns their ids."""
    _require_admin(actor)
    rows = _new_rows(list(drafts))
    with db.write() as session:
        _insert(session, rows)
    return [row.id for row in rows]


def _new_rows(drafts: list[GroupDraft]) -> list[GroupRow]:
    """Checked rows for new groups, before any transaction starts (checking is the slow part)."""
    now = datetime.now(UTC)
    rows = []
    for index, draft in enumerate(drafts):
        try:
            values = _checked_fields({
                "name": draft.name, "description": draft.description, "boundary": draft.boundary,
                "languages": draft.languages, "meeting_info": draft.meeting_info,
            })
            group_id = check_uuid(draft.id) if draft.id else str(uuid.uuid4())
        except ValidationError as error:
            if len(drafts) == 1:
                raise
            raise ValidationError(f"group {index}: {error.detail}", error.errors) from error
        row = GroupRow(id=group_id, created_at=now, updated_at=now)
        _assign(row, values)
        rows.append(row)
    ids = [row.id for row in rows]
    if len(set(ids)) != len(ids):
        raise ValidationError.field("id", "the same id is given to two groups")
    return rows


def _insert(session: Session, rows: list[GroupRow]) -> None:
    ids = [row.id for row in rows]
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        taken = session.scalar(select(GroupRow.id).where(GroupRow.id.in_(chunk)).limit(1))
        if taken is not None:
            raise ValidationError.field("id", f"a group with id {taken} exists")
        changelog.forget_tombstones(session, "group", chunk)
    changelog.stamp(session, *rows)
    session.add_all(rows)


def update_group(
    db: Database, actor: Actor, group_id: str, changes: Mapping[str, Any], expected_version: int
) -> Group:
    """Replace the given fields of a group its coordinators or an admin may edit.

    ``expected_version`` is the version the caller last saw; if the group has changed since,
    :class:`PreconditionFailed` carries the current version and nothing is written.
    """
    if not actor.is_authenticated:
        raise NotAuthenticated("editing a group needs a token")
    # Checking (a boundary's validity above all) happens before the transaction begins.
    values = _checked_changes(changes)
    with db.write() as session:
        return _update(session, actor, group_id, values, expected_version)


def update_group_in(
    session: Session, actor: Actor, group_id: str, changes: Mapping[str, Any],
    expected_version: int,
) -> Group:
    """:func:`update_group` inside the caller's transaction."""
    if not actor.is_authenticated:
        raise NotAuthenticated("editing a group needs a token")
    return _update(session, actor, group_id, _checked_changes(changes), expected_version)


def _update(
    session: Session, actor: Actor, group_id: str, values: Mapping[str, Any],
    expected_version: int,
) -> Group:
    group_id = existing_id(group_id, "group")
    row = session.get(GroupRow, group_id, with_for_update=True)
    if row is None:
        raise NotFound(f"no group {group_id}")
    if not actor.coordinates(group_id):
        raise Forbidden("only the group's coordinators and admins may edit it")
    if row.seq != expected_version:
        raise PreconditionFailed(
            f"the group is at version {row.seq}, not {expected_version}", row.seq
        )
    _assign(row, values)
    row.updated_at = datetime.now(UTC)
    changelog.stamp(session, row)
    session.flush()
    return _view(session, row)


def _checked_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
    if unknown:
        raise ValidationError(
            f"unknown fields: {', '.join(unknown)}", {f: ["unknown field"] for f in unknown}
        )
    return _checked_fields(changes)


def delete_group(db: Database, actor: Actor, group_id: str) -> None:
    """Delete a group and its alerts (admins only), leaving tombstones for sync."""
    _require_admin(actor)
    group_id = existing_id(group_id, "group")
    with db.write() as session:
        # Rows first, the change counter last (see blockwatch.changelog).
        row = session.get(GroupRow, group_id, with_for_update=True)
        if row is None:
            raise NotFound(f"no group {group_id}")
        # The alerts, then their deliveries, each in id order (as a cancellation takes an alert
        # and then its deliveries, and the worker deliveries by id), then the counter.
        alert_ids = session.scalars(
            select(Alert.id).where(Alert.group_id == group_id).order_by(Alert.id)
            .with_for_update()
        ).all()
        # The outbox has no foreign keys (see blockwatch.models.Delivery): its rows go here.
        doomed = select(Delivery.id).where(Delivery.alert_id.in_(
            select(Alert.id).where(Alert.group_id == group_id)
        ))
        session.execute(doomed.order_by(Delivery.id).with_for_update()).all()
        session.execute(delete(Delivery).where(Delivery.id.in_(doomed))
                        .execution_options(synchronize_session=False))
        # Devices stop following it (they would otherwise send back an id that names nothing).
        unfollow_group(session, group_id)
        for alert_id in alert_ids:
            changelog.tombstone(session, "alert", alert_id, group_id)
        changelog.tombstone(session, "group", group_id, group_id)
        session.delete(row)


# -- helpers ------------------------------------------------------------------------------
def _require_admin(actor: Actor) -> None:
    if not actor.is_authenticated:
        raise NotAuthenticated("this needs a token")
    if not actor.is_admin:
        raise Forbidden("only admins may do this")


def _check_bbox(bbox: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    message = "must be min_lon,min_lat,max_lon,max_lat in degrees with min_lat <= max_lat"
    try:
        min_lon, min_lat, max_lon, max_lat = (float(v) for v in bbox)
    except (TypeError, ValueError) as error:
        raise ValidationError.field("bbox", message) from error
    if not all(math.isfinite(v) for v in (min_lon, min_lat, max_lon, max_lat)) or not (
        -180 <= min_lon <= 180 and -180 <= max_lon <= 180 and -90 <= min_lat <= max_lat <= 90
    ):
        raise ValidationError.field("bbox", message)
    return min_lon, min_lat, max_lon, max_lat


def check_boundary(boundary: BaseGeometry | Mapping[str, Any]) -> BaseGeometry:
    """A valid Polygon or MultiPolygon as it will be stored (rounded to 7 decimals, about a
    centimetre), or a 422 on ``boundary`` naming the problem and where."""
    problems = geo.validate(boundary)
    if not problems:
        geometry = geo.check(boundary)
        if geometry.geom_type not in ("Polygon", "MultiPolygon"):
            problems = [geo.Problem(
                "unsupported-type", "a boundary must be a Polygon or MultiPolygon"
            )]
        else:
            stored = shapely.geometry.shape(geo.to_geojson(geometry))
            problems = [
                replace(problem, message=f"{problem.message} once rounded to 7 decimals")
                for problem in geo.validate(stored)
            ]
            if not problems:
                return stored
    messages = [str(problem) for problem in problems]
    raise ValidationError(f"boundary: {'; '.join(messages)}", {"boundary": messages})


def _checked_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, value in fields.items():
        try:
            checked[name] = _check_field(name, value)
        except ValidationError as error:
            for field_name, messages in error.errors.items():
                errors.setdefault(field_name, []).extend(messages)
    if errors:
        detail = "; ".join(f"{name}: {', '.join(msgs)}" for name, msgs in errors.items())
        raise ValidationError(detail, errors)
    return checked


def _check_field(name: str, value: Any) -> Any:
    if name == "name":
        if not isinstance(value, str) or not value.strip() or len(value) > 200:
            raise ValidationError.field("name", "must be 1 to 200 characters")
        return value.strip()
    if name in ("description", "meeting_info"):
        if not isinstance(value, str) or len(value) > 4000:
            raise ValidationError.field(name, "must be text of at most 4000 characters")
        return value
    if name == "languages":
        if not isinstance(value, list | tuple) or not all(
            isinstance(tag, str) and _LANGUAGE_TAG.match(tag) for tag in value
        ):
            raise ValidationError.field("languages", "must be a list of BCP 47 language tags")
        return list(dict.fromkeys(value))
    if name == "boundary":
        return check_boundary(value)
    raise ValidationError.field(name, "unknown field")


def _assign(row: GroupRow, values: Mapping[str, Any]) -> None:
    for name, value in values.items():
        if name == "boundary":
            _assign_boundary(row, value)
        else:
            setattr(row, name, value)
    for name, default in (("description", ""), ("meeting_info", ""), ("languages", ["en"])):
        if getattr(row, name) is None:
            setattr(row, name, default)


def _assign_boundary(row: GroupRow, boundary: BaseGeometry) -> None:
    row.boundary_geojson = json.dumps(geo.to_geojson(boundary), separators=(",", ":"))
    row.min_lon, row.min_lat, row.max_lon, row.max_lat = (float(v) for v in boundary.bounds)
    centroid = boundary.centroid
    row.centroid_lon, row.centroid_lat = round(centroid.x, 7), round(centroid.y, 7)
    row.area_m2 = geo.area_m2(boundary)


def views(db: Database, ids: list[str], session: Session | None = None) -> dict[str, Group]:
    """Groups by id (those that exist), from the cache of views where it holds them, the rest
    read in ``session`` (or a transaction of their own)."""
    return _cached_views(db, ids, session)


def views_in(session: Session, ids: list[str]) -> dict[str, Group]:
    """Groups by id (those that exist), read in the caller's transaction."""
    return _load(session, ids)


def _cached_views(
    db: Database, ids: list[str], session: Session | None = None
) -> dict[str, Group]:
    """Views of groups the spatial index just named: from its cache of views (which follows
    the change log like the index), the rest from the database in one query."""
    views = db.spatial.cached_views(ids)
    missing = [key for key in ids if key not in views]
    if missing:
        if session is not None:
            loaded = _load(session, missing)
        else:
            with db.read() as own:
                loaded = _load(own, missing)
        db.spatial.remember_views(loaded)
        views.update(loaded)
    return views


def _load(session: Session, ids: list[str]) -> dict[str, Group]:
    if not ids:
        return {}
    rows = session.scalars(select(GroupRow).where(GroupRow.id.in_(ids))).all()
    counts = _member_counts(session, [row.id for row in rows])
    return {row.id: _view(session, row, counts.get(row.id, 0)) for row in rows}


def _member_counts(session: Session, ids: list[str]) -> dict[str, int]:
    if not ids:
        return {}
    return dict(session.execute(
        select(Membership.group_id, func.count()).where(Membership.group_id.in_(ids))
        .group_by(Membership.group_id)
    ).all())


def _view(session: Session, row: GroupRow, member_count: int | None = None) -> Group:
    if member_count is None:
        member_count = _member_counts(session, [row.id]).get(row.id, 0)
    return Group(
        id=row.id, name=row.name, description=row.description,
        boundary=shapely.from_geojson(row.boundary_geojson),
        centroid=(row.centroid_lon, row.centroid_lat),
        bbox=(row.min_lon, row.min_lat, row.max_lon, row.max_lat),
        area_m2=row.area_m2, languages=tuple(row.languages), meeting_info=row.meeting_info,
        member_count=member_count, version=row.seq, updated_at=row.updated_at,
    )


def _with_boundary(group: Group, boundary: BaseGeometry) -> Group:
    return replace(group, boundary=boundary)
