"""Live alerts near a point: the change log read as a stream of events, and the change feed
that wakes waiting streams as soon as the log moves.

:func:`alert_events_since` turns the change log after a position into events for one area, as
the public sees it. :class:`AlertStream` is one client's stream: resume from a position, then
follow the log, with heartbeats and expiries by the clock. :class:`ChangeFeed` is the one
thread per process (per database) that knows the newest committed ``seq`` and wakes every
stream waiting for the log to move past its position: on PostgreSQL it ``LISTEN``\\s to the
notification every writing transaction sends at commit (:func:`blockwatch.changelog.allocate`),
so a write through any process reaches streams held by every process; on SQLite a write in this
process wakes it at once and a short poll brings other processes' writes.

What a stream sends is the public view (:data:`blockwatch.domain.ANONYMOUS`): locations
rounded to about 150 m, and "in the area" judged from the rounded point, as
:func:`blockwatch.alerts.alerts_near` judges it. An alert without a location is in the area
when its group's boundary lies within the radius.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

import geo
from blockwatch import changelog
from blockwatch.alerts import VIEW_COLUMNS, views_by_id, views_of
from blockwatch.checks import check_point, check_radius
from blockwatch.db import Database
from blockwatch.domain import ANONYMOUS, PUBLIC_LOCATION_CELL_M, Alert, ValidationError
from blockwatch.models import Alert as AlertRow
from blockwatch.models import SyncState

log = logging.getLogger(__name__)

#: The event kind of each alert status.
KINDS = {"active": "alert", "cancelled": "cancel", "expired": "expire"}
#: Changes read per query; a stream catching up on more reads page after page.
PAGE_SIZE = 500
#: The largest ``seq`` a database stores (BIGINT): a position past it is refused, not compared.
MAX_SEQ = 2**63 - 1
#: A ``timeout_s`` longer than this is refused: a client wanting more just stays connected.
MAX_TIMEOUT_S = 3600.0
#: How far the clocks of the servers writing alerts may disagree (see :class:`AlertStream`).
CLOCK_SLACK = timedelta(minutes=1)
#: How often the feed reads the counter without being woken: a lost notification (PostgreSQL),
#: or another process's write (SQLite, where nothing else would tell).
POSTGRES_POLL_S = 2.0
SQLITE_POLL_S = 0.25
#: A feed nobody has used for this long stops its thread (and closes its connection).
IDLE_S = 10.0
#: How long the feed rests after an error (a lost connection) before it tries again.
RETRY_S = 1.0


@dataclass(frozen=True)
class AlertEvent:
    """One event of a stream: ``kind`` is ``alert`` (posted), ``cancel`` or ``expire``, after
    the alert's status; ``seq`` is the change-log position a client resumes after."""

    seq: int
    kind: str
    alert: Alert


class AlertEvents(NamedTuple):
    """A page of events and how far the log was read for it: resume from ``through_seq``
    (which may lie past the last event, when later changes were outside the area).
    ``more``: the page stopped at its limit, so there are more changes to read at once."""

    events: list[AlertEvent]
    through_seq: int
    more: bool


class Heartbeat:
    """A quiet moment in a stream: say something so proxies keep the connection open."""

    def __repr__(self) -> str:
        return "HEARTBEAT"


HEARTBEAT = Heartbeat()


def alert_events_since(
    db: Database,
    seq: int,
    lon: float,
    lat: float,
    radius_m: float,
    now: datetime | None = None,
    limit: int = PAGE_SIZE,
) -> AlertEvents:
    """The alert events in the area after change-log position ``seq``, oldest first.

    Each alert appears once, at its newest ``seq`` (the log's rule), with the kind its status
    has now: ``alert`` while active, ``cancel``, or ``expire`` (stored as expired, or active
    past ``expires_at``). The alert is the public view at ``now`` (default: the moment after
    the log was read). An alert deleted with its group is not an event: it has no view left.
    """
    check_point(lon, lat)
    check_radius(radius_m)
    _check_position(seq, "seq")
    with db.read() as session:
        # The counter first: everything up to it is visible to the statements after it, even
        # under READ COMMITTED, since numbers become visible in commit order.
        newest = changelog.current_seq(session)
        changes = changelog.changes_since(
            session, seq, through_seq=newest, limit=limit, entities=("alert",)
        )
        seqs = {change.id: change.seq for change in changes if not change.deleted}
        rows = _rows(session, AlertRow.id.in_(seqs)) if seqs else []
        # A row changed again since the log was read (PostgreSQL reads each statement afresh)
        # comes at its newer seq in a later page.
        rows = [row for row in rows if row.seq == seqs[row.id]]
        views = views_of(session, ANONYMOUS, rows, now or datetime.now(UTC))
    more = len(changes) == limit
    through = changes[-1].seq if more else newest
    # Alerts without a point are placed by their group's boundary: the index must know the
    # boundaries as of the position this page moves the stream to.
    db.spatial.catch_up_to(through)
    events = [
        AlertEvent(view.version, KINDS[view.status], view)
        for view in in_area(db, lon, lat, radius_m, views)
    ]
    events.sort(key=lambda item: item.seq)
    return AlertEvents(events, max(through, seq), more)


def in_area(
    db: Database, lon: float, lat: float, radius_m: float, views: list[Alert]
) -> list[Alert]:
    """The alerts (views as one reader sees them) within ``radius_m`` of the point: judged from
    the location the reader is shown (``alerts_near``'s rule); one without a location when its
    group's boundary lies within the radius."""
    near_groups: set[str] | None = None
    kept = []
    for view in views:
        if view.location is not None:
            if geo.distance_m(lon, lat, *view.location) <= radius_m:
                kept.append(view)
            continue
        if near_groups is None:
            near_groups = set(db.spatial.group_keys_within(lon, lat, radius_m))
        if view.group_id in near_groups:
            kept.append(view)
    return kept


class _Watched(NamedTuple):
    version: int
    expires_at: datetime


class AlertStream:
    """One client's live stream of the alert events in an area (the public view).

    Opening it (the constructor) checks the arguments and fixes the starting position, so a
    bad request fails before anything is streamed: ``last_event_id`` resumes after that
    position; without it (or with one past the newest ``seq``, from another database) the
    stream starts at the newest ``seq`` and sends only what happens from now on. Iterating
    yields :class:`AlertEvent`\\s and :data:`HEARTBEAT` (after ``heartbeat_s`` without an
    event), and ends after ``timeout_s`` if given (0: send what is already there and end).
    :attr:`position` is the position the client holds at the start (send it as the first id).

    Expiry by the clock: an alert sent as ``alert`` whose ``expires_at`` passes while the
    stream is open gets an ``expire`` event even if ``blockwatch expire-alerts`` has not run;
    its id is the stream's position at that moment (no change-log entry exists for it). The
    rule that keeps ``Last-Event-ID`` from missing one: expiries due are sent before the
    events of each page of the log, judged at a moment after that page was read, so a client
    holding id ``N`` has been sent the expiry of every alert it was sent that expired before
    change ``N`` committed. On resume from ``N`` the stream therefore treats as possibly held
    every in-area alert that the log still shows active at ``N`` and that had not expired
    when the newest alert change up to ``N`` was written (less :data:`CLOCK_SLACK` for the
    servers' clocks): those already past ``expires_at`` are sent as ``expire`` at once, the
    others are watched. What may repeat: such an expiry the client had already received, and
    the change-log ``expire`` that ``expire-alerts`` writes later for an alert whose expiry
    by the clock was sent on an earlier connection (on the same connection it is not sent
    twice). Changes themselves never repeat across a resume, and none is missed.
    """

    def __init__(
        self,
        db: Database,
        lon: float,
        lat: float,
        radius_m: float,
        last_event_id: int | None = None,
        *,
        heartbeat_s: float | None = None,
        timeout_s: float | None = None,
    ) -> None:
        check_point(lon, lat)
        check_radius(radius_m)
        if last_event_id is not None:
            _check_position(last_event_id, "last_event_id")
        if timeout_s is not None and not (
            isinstance(timeout_s, int | float) and 0 <= timeout_s <= MAX_TIMEOUT_S
        ):
            raise ValidationError.field(
                "timeout_s", f"must be a number of seconds from 0 to {MAX_TIMEOUT_S:g}"
            )
        self._db = db
        self._area = (lon, lat, radius_m)
        self._heartbeat_s = heartbeat_s or db.settings.stream_heartbeat_s
        self._timeout_s = timeout_s
        with db.read() as session:
            newest = changelog.current_seq(session)
        self.resumed = last_event_id is not None and last_event_id <= newest
        self.position: int = last_event_id if self.resumed else newest

    def __iter__(self) -> Iterator[AlertEvent | Heartbeat]:
        feed = change_feed(self._db)
        with feed.subscription():
            watched = self._possibly_held() if self.resumed else {}
            expired_here: set[str] = set()  # expiries sent by the clock on this connection
            deadline = None if self._timeout_s is None else time.monotonic() + self._timeout_s
            spoke_at = time.monotonic()
            known = self.position
            while True:
                items, more = self._step(watched, expired_here)
                for item in items:
                    yield item
                    spoke_at = time.monotonic()
                if more:
                    continue
                moment = time.monotonic()
                if deadline is not None and moment >= deadline:
                    return
                if moment - spoke_at >= self._heartbeat_s:
                    yield HEARTBEAT
                    spoke_at = moment = time.monotonic()
                wake_at = spoke_at + self._heartbeat_s
                if deadline is not None:
                    wake_at = min(wake_at, deadline)
                if watched:
                    soonest = min(item.expires_at for item in watched.values())
                    until_s = (soonest - datetime.now(UTC)).total_seconds()
                    wake_at = min(wake_at, moment + max(until_s, 0.0))
                # Never wait for less than what the feed already said (no busy loop if the
                # feed and this stream ever disagree); a timeout reads the log anyway.
                newest = feed.wait_past(max(self.position, known), max(wake_at - moment, 0.0))
                known = max(known, newest or 0)

    def _step(
        self, watched: dict[str, _Watched], expired_here: set[str]
    ) -> tuple[list[AlertEvent], bool]:
        """One read of the log: expiries by the clock first, then the page's events."""
        page = alert_events_since(self._db, self.position, *self._area)
        now = datetime.now(UTC)  # after the page was read: see the class's docstring
        out = []
        in_page = {event.alert.id for event in page.events}
        due = [
            alert_id for alert_id, item in watched.items()
            if item.expires_at <= now and alert_id not in in_page
        ]
        views = views_by_id(self._db, ANONYMOUS, due, now) if due else {}
        for alert_id in due:
            view = views.get(alert_id)
            # Changed since it was sent (cancelled, swept, deleted): the log will say so.
            if view is not None and view.version == watched[alert_id].version:
                out.append(AlertEvent(self.position, "expire", view))
                expired_here.add(alert_id)
            del watched[alert_id]
        for event in page.events:
            alert_id = event.alert.id
            if event.kind == "alert":
                watched[alert_id] = _Watched(event.seq, event.alert.expires_at)
            else:
                watched.pop(alert_id, None)
            if event.kind == "expire" and alert_id in expired_here:
                expired_here.discard(alert_id)  # the sweep of an expiry already sent
                continue
            out.append(event)
        self.position = page.through_seq
        return out, page.more

    def _possibly_held(self) -> dict[str, _Watched]:
        """On resume from :attr:`position`: the in-area alerts the client may hold as active
        (see the class's docstring), to expire by the clock."""
        lon, lat, radius_m = self._area
        spatial = self._db.spatial
        spatial.catch_up_to(self.position)
        located = [key for key, _ in spatial.alerts.within(
            lon=lon, lat=lat, radius_m=radius_m + PUBLIC_LOCATION_CELL_M
        )]
        near_groups = spatial.group_keys_within(lon, lat, radius_m)
        with self._db.read() as session:
            written_at = session.scalar(
                select(AlertRow.updated_at).where(AlertRow.seq <= self.position)
                .order_by(AlertRow.seq.desc()).limit(1)
            )
            if written_at is None:
                return {}
            rows = _rows(
                session,
                (AlertRow.status == "active") & (AlertRow.seq <= self.position)
                & (AlertRow.expires_at > written_at - CLOCK_SLACK)
                & (AlertRow.id.in_(located)
                   | (AlertRow.lon.is_(None) & AlertRow.group_id.in_(near_groups))),
            )
            views = views_of(session, ANONYMOUS, rows, datetime.now(UTC))
        return {
            view.id: _Watched(view.version, view.expires_at)
            for view in in_area(self._db, lon, lat, radius_m, views)
        }


def _rows(session: Session, condition) -> list:
    return list(session.execute(select(*VIEW_COLUMNS).where(condition)).all())


def _check_position(value: object, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEQ:
        raise ValidationError.field(field, f"must be a whole number from 0 to {MAX_SEQ}")


# -- the change feed ---------------------------------------------------------------------------
class ChangeFeed:
    """The newest committed ``seq`` of one database, known to this process, and a way for many
    threads to wait for it to move past their position; one background thread does the
    watching however many wait.

    On PostgreSQL the thread holds its own connection, ``LISTEN``\\s on
    :data:`blockwatch.changelog.NOTIFY_CHANNEL` and reads the counter on each notification
    (the payload is not trusted: every database on the server shares the channel), and every
    ``poll_s`` (default 2 s) in case one was lost; a lost connection is opened again. On
    SQLite a commit through this process's :class:`Database` wakes it at once, and it reads the
    counter every ``poll_s`` (default 0.25 s) for other processes' writes. The thread starts on
    first use and stops after ``idle_s`` without users (or at an error while nobody uses it);
    it starts again when needed. Errors while in use are logged once and retried every second.
    """

    def __init__(self, db: Database, *, poll_s: float | None = None,
                 idle_s: float = IDLE_S) -> None:
        self._db = weakref.ref(db)  # never keeps the database alive (nor its registry entry)
        self._postgres = db.dialect == "postgresql"
        self.poll_s = poll_s or (POSTGRES_POLL_S if self._postgres else SQLITE_POLL_S)
        self._idle_s = idle_s
        self.pid = os.getpid()
        self._changed = threading.Condition()
        self._seq: int | None = None
        self._users = 0
        self._thread: threading.Thread | None = None
        self._poke = threading.Event()
        self._listener = None
        feed = weakref.ref(self)

        def committed(_session) -> None:
            alive = feed()
            if alive is not None:
                alive.poke()

        # Every write goes through Database.write()'s sessions: hear their commits.
        db.on_commit(committed)

    @property
    def seq(self) -> int | None:
        """The newest committed ``seq`` known (None before the first read)."""
        return self._seq

    @property
    def users(self) -> int:
        """How many streams (and waiters) hold the feed now."""
        return self._users

    def poke(self) -> None:
        """Something committed in this process: read the counter now."""
        self._poke.set()

    @contextmanager
    def subscription(self) -> Iterator[ChangeFeed]:
        """Keep the feed running while the block lasts (a stream's lifetime)."""
        with self._changed:
            self._users += 1
            self._start()
        try:
            yield self
        finally:
            with self._changed:
                self._users -= 1

    def wait_past(self, seq: int, timeout_s: float) -> int | None:
        """Block until the newest committed ``seq`` is greater than ``seq``, or ``timeout_s``
        has passed; returns the newest ``seq`` known then (None if none was read yet)."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            self._users += 1  # a waiter keeps the thread from stopping
            self._start()
            try:
                while self._seq is None or self._seq <= seq:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._changed.wait(remaining)
                return self._seq
            finally:
                self._users -= 1

    def _start(self) -> None:
        # Called holding the condition's lock.
        if self._thread is None:
            self._poke.set()  # read the counter as soon as it runs
            self._thread = threading.Thread(
                target=self._run, name="blockwatch-change-feed", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        idle_since: float | None = None
        failing = False
        while True:
            with self._changed:
                if self._users:
                    idle_since = None
                else:
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since >= self._idle_s:
                        self._thread, self._seq = None, None
                        self._close_listener()
                        return
            try:
                newest = self._wait_and_read()
            except Exception:
                self._close_listener()
                with self._changed:
                    if not self._users:  # nobody to serve: stop rather than retry
                        self._thread, self._seq = None, None
                        return
                if not failing:
                    log.warning("change feed: reading the counter failed; retrying every "
                                "%s s", RETRY_S, exc_info=True)
                    failing = True
                self._poke.wait(RETRY_S)
                self._poke.clear()  # a poke must not turn the retry wait into a spin
                continue
            if failing:
                log.warning("change feed: reading the counter again")
                failing = False
            if newest is None:  # the database is gone
                with self._changed:
                    self._thread = None
                    return
            with self._changed:
                if newest != self._seq:
                    self._seq = newest
                    self._changed.notify_all()

    def _wait_and_read(self) -> int | None:
        """Wait for a change (or the poll interval), then read the counter."""
        if not self._postgres:
            self._poke.wait(self.poll_s)
            self._poke.clear()
            db = self._db()
            if db is None:
                return None
            with db.read() as session:
                return changelog.current_seq(session)
        if self._listener is None:
            db = self._db()
            if db is None:
                return None
            self._listener = _listen(db)  # then read: nothing committed after is unheard
        else:
            # Notifications only wake the feed (their payloads are not trusted: every database
            # on the server shares the channel); the counter is read below. The rest of a
            # burst is taken at once, so a burst costs one read.
            list(self._listener.notifies(timeout=self.poll_s, stop_after=1))
            list(self._listener.notifies(timeout=0))
        row = self._listener.execute(
            f"SELECT seq FROM {SyncState.__tablename__} WHERE id = 1"
        ).fetchone()
        return None if row is None else int(row[0])

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.close()
            except Exception:  # already broken: nothing more to do
                log.debug("change feed: closing the listener failed", exc_info=True)


def _listen(db: Database):
    """A dedicated psycopg connection (autocommit) listening on the change channel, opened
    with the same arguments as the database's own connections."""
    import psycopg

    args, kwargs = db.engine.dialect.create_connect_args(db.engine.url)
    connection = psycopg.connect(*args, **kwargs, autocommit=True)
    connection.execute(f"LISTEN {changelog.NOTIFY_CHANNEL}")
    return connection


_feeds: weakref.WeakKeyDictionary[Database, ChangeFeed] = weakref.WeakKeyDictionary()
_feeds_lock = threading.Lock()


def change_feed(db: Database) -> ChangeFeed:
    """This process's :class:`ChangeFeed` of ``db``, made on first use (and made again in a
    forked child, where the parent's thread does not exist)."""
    with _feeds_lock:
        feed = _feeds.get(db)
        if feed is None or feed.pid != os.getpid():
            feed = _feeds[db] = ChangeFeed(db)
        return feed
