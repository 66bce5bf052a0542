"""The transactional outbox: which devices an alert goes to, the rows that say so (written in
the alert's own transaction), cancellations, and the figures an operator watches.

Who gets an alert (API.md): a device whose area contains the alert's public (rounded) point or
reaches its group's boundary, or that follows the group; then only if it wants the category
and the severity. Devices register without an account, so they get the public view, and the
area test uses the public point like every other public decision. During a device's quiet
hours only severe and extreme alerts are due at once; the rest are due when the quiet hours
end.

Candidates are read by the bounding box of each device's area (an index), then measured
exactly with :mod:`geo`, all at once.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np
import shapely
from sqlalchemy import Float, Integer, bindparam, delete, func, or_, select, update
from sqlalchemy.orm import Session

import geo
from blockwatch.db import Database
from blockwatch.delivery.devices import URGENT_SEVERITIES, quiet_hours_end
from blockwatch.domain import (
    CATEGORIES,
    PUBLIC_LOCATION_CELL_M,
    SEVERITIES,
    Actor,
    Forbidden,
    NotAuthenticated,
)
from blockwatch.models import Alert as AlertRow
from blockwatch.models import Delivery, Device, DeviceGroup, Group

#: Ids per statement in lists of ids (withdrawn deliveries, a group's followers).
INSERT_BATCH = 5000
DEAD_LETTERS_SHOWN = 50


def idempotency_key(alert_id: str, device_id: str, kind: str) -> str:
    """One key per message: an alert and its cancellation to one device differ."""
    return f"{alert_id}:{device_id}:{kind}"


class Target(NamedTuple):
    device_id: str
    platform: str
    due_at: datetime


#: The statements of :func:`targets_of`, built once (building them cost about a millisecond of
#: a post's CPU, more than running them): the devices' columns a target is made of.
_TARGET_COLUMNS = (Device.id, Device.platform, Device.quiet_start_min, Device.quiet_end_min,
                   Device.quiet_tz)
_GROUP_BOX = select(Group.min_lon, Group.min_lat, Group.max_lon, Group.max_lat).where(
    Group.id == bindparam("group_id"))
_BOUNDARY = select(Group.boundary_geojson).where(Group.id == bindparam("group_id"))
#: Active devices whose filters take the alert (``rank``, ``bit``) and whose area's box meets
#: the box of the group and the public point.
_CANDIDATES = select(
    *_TARGET_COLUMNS, Device.area_lon, Device.area_lat, Device.area_radius_m
).where(
    Device.active.is_(True),
    Device.min_severity_rank <= bindparam("rank", type_=Integer),
    or_(Device.categories_mask == 0,
        Device.categories_mask.op("&")(bindparam("bit", type_=Integer)) != 0),
    Device.min_lat <= bindparam("max_lat", type_=Float),
    Device.max_lat >= bindparam("min_lat", type_=Float),
    Device.min_lon <= bindparam("max_lon", type_=Float),
    Device.max_lon >= bindparam("min_lon", type_=Float),
)
#: The group's followers, with their filters (applied in Python: with them in SQL, SQLite's
#: planner would rather walk the index of active devices).
_FOLLOWERS = (
    select(*_TARGET_COLUMNS, Device.active, Device.min_severity_rank, Device.categories_mask)
    .select_from(DeviceGroup).join(Device, Device.id == DeviceGroup.device_id)
    .where(DeviceGroup.group_id == bindparam("group_id"))
)


def targets_of(session: Session, alert: AlertRow, now: datetime) -> list[Target]:
    """The active devices that get ``alert``, each with when its message is due.

    Rows are read through the session's connection, not the ORM, and handled as columns: an
    alert to a dense city is tens of thousands of them.
    """
    connection = session.connection()
    rank = SEVERITIES.index(alert.severity)
    bit = 1 << CATEGORIES.index(alert.category)
    # The boundary itself (it may be large) is read only if some device needs measuring.
    min_lon, min_lat, max_lon, max_lat = connection.execute(
        _GROUP_BOX, {"group_id": alert.group_id}).one()
    point = None
    if alert.lon is not None:
        point = geo.snap_to_grid_m(alert.lon, alert.lat, PUBLIC_LOCATION_CELL_M)
        min_lon, max_lon = min(min_lon, point[0]), max(max_lon, point[0])
        min_lat, max_lat = min(min_lat, point[1]), max(max_lat, point[1])
    candidates = connection.execute(_CANDIDATES, {
        "rank": rank, "bit": bit, "min_lon": min_lon, "min_lat": min_lat, "max_lon": max_lon,
        "max_lat": max_lat,
    }).all()
    found: dict[str, tuple] = {}
    if candidates:
        lons, lats, radii = (np.asarray(values, dtype=float)
                             for values in list(zip(*candidates, strict=True))[5:8])
        hit = np.zeros(len(candidates), dtype=bool)
        if point is not None:
            hit = geo.distance_m(lons, lats, np.full(len(lons), point[0]),
                                 np.full(len(lons), point[1])) <= radii
        rest = np.flatnonzero(~hit)
        if rest.size:
            boundary = shapely.from_geojson(connection.execute(
                _BOUNDARY, {"group_id": alert.group_id}).scalar_one())
            hit[rest] = geo.distances_from_points_m(lons[rest], lats[rest], boundary) \
                <= radii[rest]
        found = {candidates[index][0]: candidates[index]
                 for index in np.flatnonzero(hit).tolist()}
    # Followers: from the group's list to each device by its key, the filters applied here.
    for row in connection.execute(_FOLLOWERS, {"group_id": alert.group_id}):
        active, min_rank, mask = row[-3:]
        if active and min_rank <= rank and (mask == 0 or mask & bit):
            found.setdefault(row[0], row)
    if alert.severity in URGENT_SEVERITIES:
        return [Target(row[0], row[1], now) for row in found.values()]
    quiet_ends: dict[tuple, datetime] = {}

    def due(quiet: tuple) -> datetime:
        found = quiet_ends.get(quiet)
        if found is None:
            found = quiet_ends[quiet] = quiet_hours_end(quiet, now) or now
        return found

    return [Target(row[0], row[1], now if row[4] is None else due(row[2:5]))
            for row in found.values()]


def enqueue_alert(session: Session, alert: AlertRow, now: datetime) -> int:
    """Write the alert's deliveries in the caller's transaction (the one that stores the
    alert): no alert without its deliveries, no delivery without its alert. Returns how many.

    Called before the alert takes the change counter (the rule of :mod:`blockwatch.changelog`),
    so the fan-out does not hold every other writer waiting on it; ``alert`` need not be stored
    yet (the outbox has no foreign keys), only its id, group, category, severity and point set.
    """
    with _cyclic_gc_paused():
        targets = targets_of(session, alert, now)
        _insert(session, [(alert.id, device_id, "alert", platform, "pending", due, 0, now)
                          for device_id, platform, due in targets])
    return len(targets)


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Hold Python's cycle collector while a fan-out builds its rows.

    Tens of thousands of rows and tuples are allocated at once; each batch of allocations
    would start a collection, and the older generations' walk the whole heap (the spatial
    indexes included): measured, that was half the time of targeting 70,000 devices. The rows
    hold no reference cycles (reference counting frees them), and the collector runs again
    once the fan-out is written.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def enqueue_cancel(session: Session, alert_id: str, now: datetime) -> int:
    """On cancelling an alert, in the caller's transaction and before it takes the change
    counter: what has not gone out yet never will, and every device that got the alert or
    may have (sent, being retried, in a worker's hands, or dead-lettered after tries) gets a
    cancellation. Returns how many cancellations were queued."""
    rows = session.execute(
        select(Delivery.id, Delivery.device_id, Delivery.platform, Delivery.state,
               Delivery.attempts, Delivery.claimed_by, Delivery.claimed_until)
        .where(Delivery.alert_id == alert_id, Delivery.kind == "alert")
        .order_by(Delivery.id).with_for_update()
    ).all()
    if not rows:
        return 0
    withdraw, cancel_to = [], []
    for row in rows:
        # Claimed at all means maybe sent: by a worker still at it, or by one that sent and
        # died (or failed to record) before its lease ran out.
        claimed = row.claimed_by is not None
        may_have = row.state in ("sent", "dead") or (
            row.state == "pending" and (row.attempts > 0 or claimed)
        )
        if row.state == "pending":
            withdraw.append(row.id)
        if may_have:
            # After a worker's lease, so a cancellation cannot overtake its alert.
            due = max(row.claimed_until, now) if claimed and row.claimed_until else now
            cancel_to.append((row.device_id, row.platform, due))
    for start in range(0, len(withdraw), INSERT_BATCH):
        session.execute(
            update(Delivery).where(Delivery.id.in_(withdraw[start:start + INSERT_BATCH]))
            .values(state="withdrawn", finished_at=now, claimed_by=None, claimed_until=None)
            .execution_options(synchronize_session=False)
        )
    devices = [device for device, _, _ in cancel_to]
    active: set[str] = set()
    for start in range(0, len(devices), INSERT_BATCH):  # a database takes so many parameters
        active.update(session.scalars(select(Device.id).where(
            Device.id.in_(devices[start:start + INSERT_BATCH]), Device.active.is_(True)
        )))
    queued = [(device, platform, due) for device, platform, due in cancel_to
              if device in active]
    _insert(session, [(alert_id, device, "cancel", platform, "pending", due, 0, now)
                      for device, platform, due in queued])
    return len(queued)


#: The columns :func:`_insert` writes, in the order of its tuples.
_INSERTED = ("alert_id", "device_id", "kind", "platform", "state", "due_at", "attempts",
             "created_at")


def _insert(session: Session, rows: list[tuple]) -> None:
    """Insert outbox rows (tuples in :data:`_INSERTED` order) in the session's transaction,
    the fastest way each database has: ``COPY`` on PostgreSQL, one prepared ``executemany``
    on SQLite with the times converted once each (a fan-out repeats a handful of them)."""
    if not rows:
        return
    session.flush()
    connection = session.connection()
    driver = connection.connection.driver_connection
    names = ", ".join(_INSERTED)
    table = Delivery.__tablename__
    if connection.dialect.name == "postgresql":
        # COPY's text format, written whole: ids, kinds and platforms hold no tab, newline
        # or backslash (they are checked UUIDs and fixed words), and each time is formatted
        # once.
        texts: dict[datetime, str] = {}

        def text_of(value: datetime) -> str:
            found = texts.get(value)
            if found is None:
                found = texts[value] = value.isoformat()
            return found

        data = "".join(
            f"{alert}\t{device}\t{kind}\t{platform}\t{state}\t{text_of(due)}\t{attempts}"
            f"\t{text_of(created)}\n"
            for alert, device, kind, platform, state, due, attempts, created in rows
        )
        with driver.cursor() as cursor, cursor.copy(
            f"COPY {table} ({names}) FROM STDIN"
        ) as copy:
            copy.write(data)
        return
    # The dialect's own processor: the same text SQLAlchemy stores, so comparisons hold.
    to_database = Delivery.__table__.c.due_at.type.dialect_impl(
        connection.dialect).bind_processor(connection.dialect)
    stored: dict[datetime, object] = {}

    def time_of(value: datetime) -> object:
        found = stored.get(value)
        if found is None:
            found = stored[value] = to_database(value) if to_database else value
        return found

    cursor = driver.cursor()
    try:
        cursor.executemany(
            f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(_INSERTED))})",
            [(alert, device, kind, platform, state, time_of(due), attempts, time_of(created))
             for alert, device, kind, platform, state, due, attempts, created in rows],
        )
    finally:
        cursor.close()


def purge_finished(db: Database, older_than: datetime) -> int:
    """Forget deliveries that finished (sent, dead, withdrawn, dropped) before ``older_than``:
    an alert to a dense city writes one row per device, so the outbox must not keep them all
    forever. Pending rows are never touched. Returns how many."""
    with db.write() as session:
        return session.execute(
            delete(Delivery).where(Delivery.state != "pending",
                                   Delivery.finished_at < older_than)
            .execution_options(synchronize_session=False)
        ).rowcount


# -- what an operator watches --------------------------------------------------------------
@dataclass
class PlatformFigures:
    sent: int = 0
    failed_attempts: int = 0
    dead: int = 0
    pending: int = 0


@dataclass
class DeliveryReport:
    queue_depth: int
    due_now: int
    oldest_due_at: datetime | None
    oldest_due_age_s: float | None
    platforms: dict[str, PlatformFigures] = field(default_factory=dict)
    dead_letters: list[dict] = field(default_factory=list)
    inactive_devices: int = 0


def delivery_report(db: Database, actor: Actor, now: datetime | None = None) -> DeliveryReport:
    """Queue depth, the oldest due delivery, sent / failed / dead per platform, the latest
    dead letters (admins only). Failed attempts count every try that did not deliver,
    retried or not."""
    if not actor.is_authenticated:
        raise NotAuthenticated("the delivery report needs an admin's token")
    if not actor.is_admin:
        raise Forbidden("only admins see the delivery report")
    now = now or datetime.now(UTC)
    with db.read() as session:
        pending = session.execute(
            select(func.count(), func.min(Delivery.due_at))
            .where(Delivery.state == "pending")
        ).one()
        due = session.execute(
            select(func.count(), func.min(Delivery.due_at))
            .where(Delivery.state == "pending", Delivery.due_at <= now)
        ).one()
        platforms = {name: PlatformFigures() for name in ("fcm", "webpush", "webhook")}
        for platform, state, count, attempts in session.execute(
            select(Delivery.platform, Delivery.state, func.count(), func.sum(Delivery.attempts))
            .group_by(Delivery.platform, Delivery.state)
        ):
            figures = platforms.setdefault(platform, PlatformFigures())
            attempts = int(attempts or 0)
            if state == "sent":
                figures.sent += count
                figures.failed_attempts += attempts - count
            else:
                figures.failed_attempts += attempts
                if state == "dead":
                    figures.dead += count
                elif state == "pending":
                    figures.pending += count
        dead = session.execute(
            select(Delivery).where(Delivery.state == "dead")
            .order_by(Delivery.finished_at.desc(), Delivery.id.desc()).limit(DEAD_LETTERS_SHOWN)
        ).scalars().all()
        inactive = session.scalar(select(func.count()).select_from(Device)
                                  .where(Device.active.is_(False)))
        oldest = due[1]
        return DeliveryReport(
            queue_depth=pending[0], due_now=due[0], oldest_due_at=oldest,
            oldest_due_age_s=(now - oldest).total_seconds() if oldest is not None else None,
            platforms=platforms,
            dead_letters=[{
                "id": row.id, "alert_id": row.alert_id, "device_id": row.device_id,
                "kind": row.kind, "platform": row.platform, "attempts": row.attempts,
                "last_error": row.last_error, "dead_at": row.finished_at,
                "idempotency_key": idempotency_key(row.alert_id, row.device_id, row.kind),
            } for row in dead],
            inactive_devices=inactive or 0,
        )

