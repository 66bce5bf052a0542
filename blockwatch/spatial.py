"""The in-memory spatial indexes of one database, kept current by following its change log.

Built from the database on first use, then caught up from ``changes_since`` whenever a query
finds them older than ``index_staleness_s`` (or after this process wrote), so a write made by
another process shows within that time and SQLite and PostgreSQL answer identically.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import shapely
from sqlalchemy import select

import geo
from blockwatch.changelog import changes_since, sync_state
from blockwatch.models import Alert, Group

if TYPE_CHECKING:
    from blockwatch.db import Database

VIEW_CACHE_SIZE = 50_000
SCOPE_CACHE_SIZE = 1024


class SpatialIndex:
    """Group boundaries in a ``geo.PolygonIndex`` and active alert points in a
    ``geo.PointIndex``, keyed by id; and the most recently read group views, so hot lists are
    answered without the database (dropped as soon as the change log says a group changed)."""

    def __init__(self, db: Database, cached_views: int = VIEW_CACHE_SIZE) -> None:
        self._views: OrderedDict[str, Any] = OrderedDict()
        self._versions: dict[str, int] = {}  # group id -> newest version the index has seen
        self._views_lock = threading.Lock()
        self._view_capacity = cached_views
        self._db = db
        self._lock = threading.Lock()
        self._groups = geo.PolygonIndex()
        self._alerts = geo.PointIndex()
        self._seq: int | None = None
        # Group scopes of recent sync pulls (a device asks for the same area again and again),
        # valid while no boundary changes.
        self._scopes: OrderedDict[tuple, list[str]] = OrderedDict()
        self._boundaries_version = 0
        self._checked_at = 0.0
        self._stale = True
        self._catching_up = False

    def mark_stale(self) -> None:
        """This process wrote: the next query catches up first (read your own writes)."""
        self._stale = True

    @property
    def groups(self) -> geo.PolygonIndex:
        """Group boundaries, current to within the staleness allowed."""
        self._catch_up_if_due()
        return self._groups

    @property
    def alerts(self) -> geo.PointIndex:
        """Points of alerts stored as active (expiry is checked by the caller), current."""
        self._catch_up_if_due()
        return self._alerts

    def group_keys_within(self, lon: float, lat: float, radius_m: float) -> list[str]:
        """``groups.keys_within(...)``, remembered until a boundary changes."""
        index = self.groups
        key = (lon, lat, radius_m, self._boundaries_version)
        with self._views_lock:
            found = self._scopes.get(key)
            if found is not None:
                self._scopes.move_to_end(key)
                return found
        found = index.keys_within(lon=lon, lat=lat, radius_m=radius_m)
        with self._views_lock:
            if key[3] == self._boundaries_version:
                self._scopes[key] = found
                while len(self._scopes) > SCOPE_CACHE_SIZE:
                    self._scopes.popitem(last=False)
        return found

    def cached_views(self, ids: list[str]) -> dict[str, Any]:
        """The cached views among ``ids`` (after catching up with the change log if due)."""
        self._catch_up_if_due()
        found = {}
        with self._views_lock:
            for key in ids:
                view = self._views.get(key)
                if view is not None and view.version == self._versions.get(key):
                    self._views.move_to_end(key)
                    found[key] = view
        return found

    def remember_views(self, views: dict[str, Any]) -> None:
        """Keep views just read from the database, the least recently used making room."""
        with self._views_lock:
            for key, view in views.items():
                # A view read just before a change the index has since seen is already old.
                if view.version >= self._versions.get(key, 0):
                    self._views[key] = view
            while len(self._views) > self._view_capacity:
                self._views.popitem(last=False)

    def _note_versions(self, changes: list) -> None:
        with self._views_lock:
            for change in changes:
                self._views.pop(change.id, None)
                if change.deleted:
                    self._versions.pop(change.id, None)
                else:
                    self._versions[change.id] = change.seq

    @property
    def seq(self) -> int | None:
        """The change-log position the indexes reflect."""
        return self._seq

    def _catch_up_if_due(self) -> None:
        staleness_s = self._db.settings.index_staleness_s
        if (not self._stale and not self._catching_up
                and time.monotonic() - self._checked_at < staleness_s):
            return
        # Stale, due, or another thread is catching up (perhaps with this thread's own write):
        # wait for the lock rather than read a half-updated index.
        with self._lock:
            if not self._stale and time.monotonic() - self._checked_at < staleness_s:
                return
            self._catching_up = True
            self._stale = False
            started = time.monotonic()
            try:
                self.catch_up()
            finally:
                self._catching_up = False
            self._checked_at = started

    def _boundaries_changed(self) -> None:
        with self._views_lock:
            self._boundaries_version += 1
            self._scopes.clear()

    def catch_up_to(self, seq: int) -> None:
        """Make sure the indexes reflect at least change ``seq`` (a sync pull computes its scope
        from the same point of the log it reads entities at, or later)."""
        if self._seq is not None and self._seq >= seq:
            return
        with self._lock:
            if self._seq is None or self._seq < seq:
                started = time.monotonic()
                self.catch_up()
                self._checked_at = started

    def catch_up(self) -> None:
        """Apply every change committed since the last catch-up (or load everything)."""
        with self._db.read() as session:
            state = sync_state(session)
            through = state.seq
            # Deletes older than the purge horizon have no tombstones left to follow: reload.
            if self._seq is None or self._seq < state.purged_through_seq:
                group_rows = session.execute(
                    select(Group.id, Group.boundary_geojson, Group.seq)
                ).all()
                alert_rows = session.execute(
                    select(Alert.id, Alert.lon, Alert.lat).where(
                        Alert.status == "active", Alert.lon.is_not(None)
                    )
                ).all()
                self._groups = geo.PolygonIndex(_boundaries(group_rows))
                with self._views_lock:
                    self._views.clear()
                    self._versions = {row.id: row.seq for row in group_rows}
                self._alerts = geo.PointIndex(
                    (row.id, (row.lon, row.lat)) for row in alert_rows
                )
                self._boundaries_changed()
                self._seq = through
                return
            if through == self._seq:
                return
            changes = changes_since(
                session, self._seq, through_seq=through, entities=("group", "alert")
            )
            changed_groups = [c.id for c in changes if c.entity == "group" and not c.deleted]
            self._note_versions([c for c in changes if c.entity == "group"])
            changed_alerts = [c.id for c in changes if c.entity == "alert" and not c.deleted]
            for change in changes:
                if change.deleted:
                    index = self._groups if change.entity == "group" else self._alerts
                    index.discard(change.id)
            if changed_groups:
                rows = session.execute(
                    select(Group.id, Group.boundary_geojson).where(Group.id.in_(changed_groups))
                ).all()
                for key, boundary in _boundaries(rows):
                    self._groups.add(key, boundary)
            # After the index changed: a scope computed meanwhile is never kept as current.
            if changed_groups or any(c.deleted and c.entity == "group" for c in changes):
                self._boundaries_changed()
            if changed_alerts:
                rows = session.execute(
                    select(Alert.id, Alert.lon, Alert.lat, Alert.status)
                    .where(Alert.id.in_(changed_alerts))
                ).all()
                for row in rows:
                    if row.status == "active" and row.lon is not None:
                        self._alerts.add(row.id, (row.lon, row.lat))
                    else:
                        self._alerts.discard(row.id)
            self._seq = through


def _boundaries(rows) -> list[tuple[str, shapely.Geometry]]:
    if not rows:
        return []
    shapes = shapely.from_geojson([row[1] for row in rows])
    return [(row[0], shape) for row, shape in zip(rows, shapes, strict=True)]
