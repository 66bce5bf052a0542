"""Alert services: post (idempotent on a client id), cancel, expire, and read near a point or
by group, with what each reader may see of the location.

Members and coordinators of an alert's group, and admins, see its exact point. Everyone else
sees it snapped to a grid of about 150 m, and everything they get is derived from that snapped
point: ``distance_m`` and whether the alert falls inside the radius at all. A distance from the
exact point would give the point away to anyone who asked from three places.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from sqlalchemy import and_, bindparam, case, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import geo
from blockwatch import changelog
from blockwatch.checks import check_limit, check_point, check_radius, check_uuid, existing_id
from blockwatch.db import Database
from blockwatch.delivery import outbox
from blockwatch.domain import (
    CATEGORIES,
    CERTAINTIES,
    PUBLIC_LOCATION_CELL_M,
    SEVERITIES,
    URGENCIES,
    Actor,
    Alert,
    AlertDraft,
    Author,
    Conflict,
    Forbidden,
    NotAuthenticated,
    NotFound,
    Page,
    ValidationError,
)
from blockwatch.models import ALERT_RENDERING_COLUMNS, Account, Group
from blockwatch.models import Alert as AlertRow
from blockwatch.paging import decode_next, encode_next
from blockwatch.types import UTCDateTime

DEFAULT_LIFETIME = timedelta(hours=24)
MAX_LIFETIME = timedelta(days=30)
#: The farthest a snapped public location lies from the exact point (half a cell's diagonal).
_SNAP_SLACK_M = PUBLIC_LOCATION_CELL_M * 0.75


def post_alert(
    db: Database, actor: Actor, group_id: str, draft: AlertDraft, now: datetime | None = None
) -> tuple[Alert, bool]:
    """Post an alert in a group the actor coordinates; idempotent on ``draft.id``.

    Returns the alert and whether it was created now. The same id with the same draft gives back
    the stored alert (created False); the same id with another draft is a :class:`Conflict`.
    """
    now = now or datetime.now(UTC)
    try:
        with db.write() as session:
            return post_alert_in(session, actor, group_id, draft, now)
    except IntegrityError:
        with db.read() as session:
            return repeat_after_race(session, actor, group_id, draft)


def post_alert_in(
    session: Session, actor: Actor, group_id: str, draft: AlertDraft, now: datetime
) -> tuple[Alert, bool]:
    """:func:`post_alert` inside the caller's transaction (a sync push applies many at once).

    An :class:`IntegrityError` means a post with the same id raced this one, or the group is
    gone: roll back and answer with :func:`repeat_after_race`.
    """
    if not actor.is_authenticated:
        raise NotAuthenticated("posting an alert needs a token")
    _check_draft_fields(draft)
    group_id = existing_id(group_id, "group")
    alert_id = check_uuid(draft.id) if draft.id else str(uuid.uuid4())
    fingerprint = _fingerprint(group_id, draft)
    existing = session.get(AlertRow, alert_id) if draft.id else None
    if existing is not None:
        # A repeat (an offline retry, say) gets the stored alert even if its expiry has passed
        # since: it is the same request, not a new one.
        return _repeat(session, actor, existing, group_id, fingerprint), False
    _check_draft_times(draft, now)
    if not actor.coordinates(group_id):
        if session.get(Group, group_id) is None:
            raise NotFound(f"no group {group_id}")
        raise Forbidden("only the group's coordinators and admins may post alerts in it")
    # Rows first, the change counter last (see blockwatch.changelog): the new alert's foreign
    # key would share-lock the group row only at insert, after the counter, and an edit of the
    # group (row, then counter) would deadlock with it. Taken first, it also says whether the
    # group exists.
    if session.scalar(
        select(Group.id).where(Group.id == group_id).with_for_update(key_share=True)
    ) is None:
        raise NotFound(f"no group {group_id}")
    lon, lat = draft.location if draft.location is not None else (None, None)
    row = AlertRow(
        id=alert_id, group_id=group_id, category=draft.category,
        severity=draft.severity, urgency=draft.urgency, certainty=draft.certainty,
        title=draft.title.strip(), body=draft.body,
        # + 0.0: no -0.0, which SQLite would store as 0.0 (a rendering made from the row
        # before it is stored must be what a read of it renders).
        lon=None if lon is None else float(lon) + 0.0,
        lat=None if lat is None else float(lat) + 0.0,
        sent_at=now, expires_at=draft.expires_at or now + DEFAULT_LIFETIME,
        status="active", author_id=actor.account_id, draft_sha256=fingerprint,
        updated_at=now,
    )
    # Its deliveries before the counter, as every row (blockwatch.changelog): all writers
    # queue on the counter until this transaction commits, and a dense city's fan-out is tens
    # of thousands of rows. (The outbox has no foreign keys: the alert row may come after.)
    outbox.enqueue_alert(session, row, now)
    if actor.account_id is not None:
        session.info.setdefault(KNOWN_AUTHORS, {})[actor.account_id] = actor.display_name or ""
    changelog.stamp(session, row)
    session.add(row)
    session.flush()
    return _view(session, actor, row, now), True


def repeat_after_race(
    session: Session, actor: Actor, group_id: str, draft: AlertDraft
) -> tuple[Alert, bool]:
    """After a post failed on a constraint: the same id won a race (answer as a repeat), or
    the group does not exist (any more)."""
    group_id = existing_id(group_id, "group")
    existing = session.get(AlertRow, check_uuid(draft.id)) if draft.id else None
    if existing is not None:
        return _repeat(session, actor, existing, group_id, _fingerprint(group_id, draft)), False
    if session.get(Group, group_id) is None:
        raise NotFound(f"no group {group_id}")
    raise Conflict("the alert could not be stored; try again")


def cancel_alert(db: Database, actor: Actor, alert_id: str, now: datetime | None = None) -> Alert:
    """Cancel an alert (its group's coordinators and admins); cancelling twice is harmless."""
    with db.write() as session:
        return cancel_alert_in(session, actor, alert_id, now or datetime.now(UTC))


def cancel_alert_in(session: Session, actor: Actor, alert_id: str, now: datetime) -> Alert:
    """:func:`cancel_alert` inside the caller's transaction."""
    if not actor.is_authenticated:
        raise NotAuthenticated("cancelling an alert needs a token")
    row = session.get(AlertRow, existing_id(alert_id, "alert"), with_for_update=True)
    if row is None:
        raise NotFound(f"no alert {alert_id}")
    if not actor.coordinates(row.group_id):
        raise Forbidden("only the group's coordinators and admins may cancel its alerts")
    if row.status != "cancelled":
        outbox.enqueue_cancel(session, row.id, now)  # delivery rows before the counter
        remember_author_names(session, [row])  # for its renderings, made under the counter
        row.status = "cancelled"
        row.updated_at = now
        changelog.stamp(session, row)
        session.flush()
    return _view(session, actor, row, now)


def expire_alerts(db: Database, now: datetime | None = None) -> int:
    """Mark active alerts past ``expires_at`` as expired, in the change log, so replicas learn
    it; returns how many. Reads treat them as expired whether or not this has run."""
    now = now or datetime.now(UTC)
    with db.write() as session:
        # Rows first, the change counter last (see blockwatch.changelog).
        rows = session.scalars(
            select(AlertRow).where(AlertRow.status == "active", AlertRow.expires_at <= now)
            .order_by(AlertRow.id).with_for_update()
        ).all()
        for row in rows:
            row.status, row.updated_at = "expired", now
        if rows:
            remember_author_names(session, rows)  # for their renderings, made under the counter
            changelog.stamp(session, *rows)
        return len(rows)


def get_alert(db: Database, actor: Actor, alert_id: str, now: datetime | None = None) -> Alert:
    """One alert as this actor may see it."""
    with db.read() as session:
        row = session.get(AlertRow, existing_id(alert_id, "alert"))
        if row is None:
            raise NotFound(f"no alert {alert_id}")
        return _view(session, actor, row, now or datetime.now(UTC))


def alerts_near(
    db: Database,
    actor: Actor,
    lon: float,
    lat: float,
    radius_m: float = 2000.0,
    category: str | None = None,
    since: datetime | None = None,
    limit: int = 20,
    next: str | None = None,
    now: datetime | None = None,
) -> Page:
    """Active alerts within ``radius_m`` of the point as this actor sees them, newest first,
    each with ``distance_m`` from the location the actor is shown."""
    check_point(lon, lat)
    check_radius(radius_m)
    check_limit(limit, 100)
    if category is not None and category not in CATEGORIES:
        raise ValidationError.field("category", f"must be one of {', '.join(CATEGORIES)}")
    if since is not None and (not isinstance(since, datetime) or since.tzinfo is None):
        raise ValidationError.field("since", "must be a time with a time zone")
    after = decode_next(next, (str, str))
    after_key = (-_epoch(after[0]), _token_id(after[1])) if after is not None else None
    now = now or datetime.now(UTC)
    candidates = [
        key for key, _ in db.spatial.alerts.within(
            lon=lon, lat=lat, radius_m=radius_m + _SNAP_SLACK_M
        )
    ]
    hits = []
    with db.read() as session:
        rows = _rows(session, candidates)
        names = author_names(session, rows)
        for row in rows:
            if row.status != "active" or row.expires_at <= now:
                continue
            if category is not None and row.category != category:
                continue
            if since is not None and row.sent_at < since:
                continue
            alert = _view(session, actor, row, now, names)
            distance = geo.distance_m(lon, lat, *alert.location)
            if distance <= radius_m:
                hits.append(replace(alert, distance_m=distance))
    hits.sort(key=_newest_first)
    if after_key is not None:
        hits = [a for a in hits if _newest_first(a) > after_key]
    page, more = hits[:limit], len(hits) > limit
    token = encode_next([page[-1].sent_at.isoformat(), page[-1].id]) if more and page else None
    return Page(page, token)


def alerts_of_group(
    db: Database,
    actor: Actor,
    group_id: str,
    status: str = "active",
    limit: int = 20,
    next: str | None = None,
    now: datetime | None = None,
) -> Page:
    """A group's alerts, newest first: ``status`` ``active`` (the default) or ``all``."""
    if status not in ("active", "all"):
        raise ValidationError.field("status", "must be active or all")
    check_limit(limit, 100)
    after = decode_next(next, (str, str))
    after_sent_at = _parse_time(after[0]) if after is not None else None
    if after is not None:
        after[1] = _token_id(after[1])
    now = now or datetime.now(UTC)
    group_id = existing_id(group_id, "group")
    with db.read() as session:
        if session.get(Group, group_id) is None:
            raise NotFound(f"no group {group_id}")
        query = select(AlertRow).where(AlertRow.group_id == group_id)
        if status == "active":
            query = query.where(AlertRow.status == "active", AlertRow.expires_at > now)
        if after is not None:
            query = query.where(
                (AlertRow.sent_at < after_sent_at)
                | ((AlertRow.sent_at == after_sent_at) & (AlertRow.id > after[1]))
            )
        rows = session.scalars(
            query.order_by(AlertRow.sent_at.desc(), AlertRow.id).limit(limit + 1)
        ).all()
        names = author_names(session, rows[:limit])
        items = [_view(session, actor, row, now, names) for row in rows[:limit]]
    more = len(rows) > limit
    token = encode_next([items[-1].sent_at.isoformat(), items[-1].id]) if more else None
    return Page(items, token)


def views_of(
    session: Session, actor: Actor, rows: list[AlertRow], now: datetime
) -> list[Alert]:
    """Alert rows as this actor may see them (authors' names fetched in one query)."""
    names = author_names(session, rows)
    return [_view(session, actor, row, now, names) for row in rows]


# -- helpers ------------------------------------------------------------------------------
def _check_draft_fields(draft: AlertDraft) -> None:
    """Everything about a draft that does not depend on the time it arrives."""
    errors: dict[str, list[str]] = {}

    def fail(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    for name, allowed in (("category", CATEGORIES), ("severity", SEVERITIES),
                          ("urgency", URGENCIES), ("certainty", CERTAINTIES)):
        if getattr(draft, name) not in allowed:
            fail(name, f"must be one of {', '.join(allowed)}")
    if not isinstance(draft.title, str) or not draft.title.strip() or len(draft.title) > 120:
        fail("title", "must be 1 to 120 characters")
    if not isinstance(draft.body, str) or len(draft.body) > 4000:
        fail("body", "must be at most 4000 characters")
    if draft.location is not None:
        try:
            lon, lat = draft.location
            check_point(lon, lat, "location")
        except (TypeError, ValueError):
            fail("location", "must be a point with lat within ±90 and lon within ±180")
    if draft.expires_at is not None and (
        not isinstance(draft.expires_at, datetime) or draft.expires_at.tzinfo is None
    ):
        fail("expires_at", "must be a time with a time zone")
    _raise_if(errors)


def _check_draft_times(draft: AlertDraft, now: datetime) -> None:
    if draft.expires_at is None:
        return
    if draft.expires_at <= now:
        raise ValidationError.field("expires_at", "must be in the future")
    if draft.expires_at > now + MAX_LIFETIME:
        raise ValidationError.field("expires_at", "must be at most 30 days ahead")


def _raise_if(errors: dict[str, list[str]]) -> None:
    if errors:
        detail = "; ".join(f"{name}: {', '.join(msgs)}" for name, msgs in errors.items())
        raise ValidationError(detail, errors)


def _fingerprint(group_id: str, draft: AlertDraft) -> str:
    """What makes two posts "the same request": the group and every field the client sent."""
    canonical = {
        "group_id": group_id, "category": draft.category, "severity": draft.severity,
        "urgency": draft.urgency, "certainty": draft.certainty, "title": draft.title.strip(),
        "body": draft.body,
        "location": [float(v) for v in draft.location] if draft.location is not None else None,
        "expires_at": draft.expires_at.astimezone(UTC).isoformat() if draft.expires_at else None,
    }
    raw = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()


def _repeat(
    session: Session, actor: Actor, row: AlertRow, group_id: str, fingerprint: str
) -> Alert:
    if row.group_id != group_id or row.draft_sha256 != fingerprint:
        raise Conflict(f"alert {row.id} exists with different content")
    if not actor.coordinates(row.group_id):
        raise Forbidden("only the group's coordinators and admins may post alerts in it")
    return _view(session, actor, row, datetime.now(UTC))


def _rows(session: Session, ids: list[str]) -> list[AlertRow]:
    if not ids:
        return []
    return list(session.scalars(select(AlertRow).where(AlertRow.id.in_(ids))).all())


#: ``session.info`` key of the authors' display names a transaction has learnt (names never
#: change): renderings made at flush read them (blockwatch.renderings), and a post seeds its
#: author's, so rendering a new alert runs no query under the change counter's lock.
KNOWN_AUTHORS = "blockwatch.author_names"


def remember_author_names(session: Session, rows: Sequence[AlertRow]) -> dict[str, str]:
    """The display names of the rows' authors, learnt once per transaction (in
    ``session.info`` under :data:`KNOWN_AUTHORS`): writers call it before they take the change
    counter, so the renderings made at flush query nothing while every writer waits."""
    known: dict[str, str] = session.info.setdefault(KNOWN_AUTHORS, {})
    missing = [row for row in rows if row.author_id is not None and row.author_id not in known]
    if missing:
        # Rows about to be flushed must not be flushed by this query first.
        with session.no_autoflush:
            known.update(author_names(session, missing))
    return known


def author_names(session: Session, rows: Iterable[AlertRow]) -> dict[str, str]:
    """Display names of the authors of ``rows``, in one query (lists would otherwise ask once
    per alert)."""
    ids = {row.author_id for row in rows if row.author_id is not None}
    if not ids:
        return {}
    return dict(session.execute(
        select(Account.id, Account.display_name).where(Account.id.in_(ids))
    ).all())


class AlertRef(NamedTuple):
    """What an alert looks like to one reader, without the alert: its id, version and the two
    things a reader's view depends on (exact location or not, status by the clock). Two
    readers with equal refs see the same alert object."""

    id: str
    version: int
    location_exact: bool
    status: str


#: The columns :func:`refs_of` reads, in this order. The status by the clock (bind ``ref_now``
#: when running a query of them) and whether the alert has a point are worked out by the
#: database, so a page of refs parses no dates; built once, because building a ``CASE`` costs
#: more than running it.
REF_COLUMNS = (
    AlertRow.id, AlertRow.group_id, AlertRow.seq,
    case(
        (and_(AlertRow.status == "active",
              AlertRow.expires_at <= bindparam("ref_now", type_=UTCDateTime())), "expired"),
        else_=AlertRow.status,
    ).label("status"),
    AlertRow.lon.is_(None).label("unlocated"),
)


#: The columns an alert's view is made of: the row without its stored renderings.
VIEW_COLUMNS = tuple(
    column for column in AlertRow.__table__.columns
    if column.name not in ALERT_RENDERING_COLUMNS
)


def refs_of(actor: Actor, rows: Iterable[Sequence]) -> list[AlertRef]:
    """The :class:`AlertRef` of each row of :data:`REF_COLUMNS` (a page holds thousands:
    rows are unpacked by position, the actor's groups looked up once)."""
    if actor.is_admin:
        return [AlertRef(key, seq, True, status) for key, _, seq, status, _ in rows]
    roles = actor.roles
    return [
        AlertRef(key, seq, bool(unlocated) or group_id in roles, status)
        for key, group_id, seq, status, unlocated in rows
    ]


def views_by_id(db: Database, actor: Actor, ids: list[str], now: datetime) -> dict[str, Alert]:
    """Alerts by id as this actor may see them (those that exist), in one transaction."""
    if not ids:
        return {}
    with db.read() as session:
        rows = session.execute(select(*VIEW_COLUMNS).where(AlertRow.id.in_(ids))).all()
        return {view.id: view for view in views_of(session, actor, rows, now)}


def _status(stored: str, expires_at: datetime, now: datetime) -> str:
    return "expired" if stored == "active" and expires_at <= now else stored


def _view(
    session: Session, actor: Actor, row: AlertRow, now: datetime,
    author_names: dict[str, str] | None = None,
) -> Alert:
    author_name = ""
    if row.author_id is not None and row.author_id == actor.account_id:
        author_name = actor.display_name or ""
    elif author_names is not None and row.author_id is not None:
        author_name = author_names.get(row.author_id, "")
    elif row.author_id is not None:
        author_name = remember_author_names(session, [row]).get(row.author_id, "")
    return view_of_row(row, actor.belongs_to(row.group_id), author_name,
                       _status(row.status, row.expires_at, now))


def view_of_row(row: AlertRow, exact: bool, author_name: str, status: str) -> Alert:
    """The alert of ``row`` with its exact location or the public (snapped) one, and
    ``status`` (the stored one, or what the clock makes of it)."""
    location = None
    if row.lon is not None:
        location = (row.lon, row.lat) if exact else geo.snap_to_grid_m(
            row.lon, row.lat, PUBLIC_LOCATION_CELL_M
        )
    return Alert(
        id=row.id, group_id=row.group_id, category=row.category, severity=row.severity,
        urgency=row.urgency, certainty=row.certainty, title=row.title, body=row.body,
        location=location, location_exact=exact or location is None, sent_at=row.sent_at,
        expires_at=row.expires_at, status=status, author=Author(row.author_id, author_name),
        version=row.seq,
    )


def _token_id(value: str) -> str:
    try:
        return check_uuid(value)
    except ValidationError as error:
        raise ValidationError.field("next", "is not a token this server gave out") from error


def _epoch(value: str) -> float:
    return _parse_time(value).timestamp()


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (TypeError, ValueError, OverflowError) as error:
        raise ValidationError.field("next", "is not a token this server gave out") from error


def _newest_first(alert: Alert) -> tuple[float, str]:
    return (-alert.sent_at.timestamp(), alert.id)




def alert_as_cap(db: Database, actor: Actor, alert_id: str) -> tuple[bytes, int]:
    """One alert as this actor may see it, as a CAP 1.2 document with its group's boundary as
    the area; returns the document and the alert's version."""
    from blockwatch.capxml import alert_to_cap
    from blockwatch.groups import get_group

    alert = get_alert(db, actor, alert_id)
    return alert_to_cap(alert, get_group(db, alert.group_id)), alert.version
