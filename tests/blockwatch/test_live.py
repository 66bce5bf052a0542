"""Live alerts (blockwatch.live) on both databases: events from the change log for an area as
the public sees it, resuming from any position, expiries by the clock, and the change feed that
wakes waiting streams (in this process, from another process, after a lost connection)."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

import geo
from blockwatch import alerts, changelog, live
from blockwatch.config import Settings
from blockwatch.db import Database
from blockwatch.domain import ANONYMOUS, PUBLIC_LOCATION_CELL_M, ValidationError
from geo.distance import metres_per_degree
from tests.blockwatch.factories import actor, draft, group
from tests.conftest import _empty_postgres

HOME = (-122.31812, 47.61234)  # inside the default test group, not on the public grid
FAR = (-122.20, 47.70)  # about 14 km away
WAIT_S = 10.0  # the longest any test waits for something that should come at once


@pytest.fixture
def setting(db):
    home = group(db)
    far = group(db, "Far away", lon=FAR[0] - 0.002, lat=FAR[1] - 0.002)
    return {
        "group": home,
        "far_group": far,
        "coordinator": actor(db, "Captain", "coordinator", home.id),
        "far_coordinator": actor(db, "Far captain", "coordinator", far.id),
    }


def post(db, setting, *, far: bool = False, now: datetime | None = None, **fields):
    who, where = ("far_coordinator", "far_group") if far else ("coordinator", "group")
    fields.setdefault("location", FAR if far else HOME)
    alert, created = alerts.post_alert(db, setting[who], setting[where].id, draft(**fields),
                                       now=now)
    assert created
    return alert


def events(db, seq: int = 0, radius_m: float = 1000.0, **kwargs):
    page = live.alert_events_since(db, seq, *HOME, radius_m, **kwargs)
    return [(event.seq, event.kind, event.alert.id) for event in page.events]


def newest(db) -> int:
    with db.read() as session:
        return changelog.current_seq(session)


# -- alert_events_since ----------------------------------------------------------------------
def test_kinds_follow_the_status_and_each_alert_comes_once_at_its_newest_seq(db, setting):
    now = datetime.now(UTC)
    posted = post(db, setting)
    cancelled = post(db, setting)
    cancelled = alerts.cancel_alert(db, setting["coordinator"], cancelled.id)
    # Past its expiry by the clock (nobody swept it): an expire event at its post's seq.
    lapsed = post(db, setting, now=now - timedelta(hours=2),
                  expires_at=now - timedelta(minutes=10))
    # Swept by expire-alerts: an expire event at the sweep's seq.
    swept = post(db, setting, now=now - timedelta(hours=2), expires_at=now - timedelta(hours=1))
    assert alerts.expire_alerts(db, now=now - timedelta(minutes=30)) == 1
    swept = alerts.get_alert(db, ANONYMOUS, swept.id)

    assert events(db) == [
        (posted.version, "alert", posted.id),
        (cancelled.version, "cancel", cancelled.id),
        (lapsed.version, "expire", lapsed.id),
        (swept.version, "expire", swept.id),
    ]
    page = live.alert_events_since(db, 0, *HOME, 1000.0)
    assert page.through_seq == newest(db) and not page.more
    # The alert is the public view, exactly as a public read gives it.
    for event in page.events:
        assert event.alert == alerts.get_alert(db, ANONYMOUS, event.alert.id)
        assert not event.alert.location_exact


def test_an_alert_by_the_clock_is_expire_at_its_own_seq(db, setting):
    now = datetime.now(UTC)
    soon = post(db, setting, expires_at=now + timedelta(minutes=5))
    assert events(db, now=now) == [(soon.version, "alert", soon.id)]
    later = now + timedelta(minutes=6)
    assert events(db, now=later) == [(soon.version, "expire", soon.id)]


def test_the_area_is_judged_from_the_rounded_point(db, setting):
    alert = post(db, setting)
    snapped = geo.snap_to_grid_m(*HOME, PUBLIC_LOCATION_CELL_M)
    gap_m = geo.distance_m(*HOME, *snapped)
    assert gap_m > 5
    # Asked from the exact point with a radius that holds it but not the rounded one: nothing.
    assert events(db, radius_m=gap_m * 0.9) == []
    assert events(db, radius_m=gap_m * 1.1) == [(alert.version, "alert", alert.id)]
    # The same decision as alerts_near's, from any point around.
    m_lon, m_lat = metres_per_degree(HOME[1])
    for east_m, north_m in ((0, 0), (200, 0), (0, -300), (-450, 120), (90, 90)):
        lon, lat = HOME[0] + east_m / m_lon, HOME[1] + north_m / m_lat
        for radius_m in (50.0, 100.0, 250.0, 400.0):
            near = alerts.alerts_near(db, ANONYMOUS, lon, lat, radius_m).items
            page = live.alert_events_since(db, 0, lon, lat, radius_m)
            assert [e.alert.id for e in page.events] == [a.id for a in near]


def test_alerts_outside_the_area_and_their_cancels_never_come(db, setting):
    far = post(db, setting, far=True)
    alerts.cancel_alert(db, setting["far_coordinator"], far.id)
    home = post(db, setting)
    assert events(db) == [(home.version, "alert", home.id)]
    far_page = live.alert_events_since(db, 0, *FAR, 500.0)
    assert [(e.kind, e.alert.id) for e in far_page.events] == [("cancel", far.id)]


def test_an_alert_without_a_location_comes_when_its_groups_boundary_is_within_reach(
    db, setting
):
    unlocated = post(db, setting, location=None)
    far_unlocated = post(db, setting, far=True, location=None)
    assert events(db) == [(unlocated.version, "alert", unlocated.id)]
    # The far group's boundary is about 14 km away: in reach of a wide radius only.
    wide = live.alert_events_since(db, 0, *HOME, 20_000.0)
    assert {e.alert.id for e in wide.events} == {unlocated.id, far_unlocated.id}
    assert {e.alert.id for e in live.alert_events_since(db, 0, *FAR, 10_000.0).events} == {
        far_unlocated.id
    }


def test_resuming_from_any_position_gives_exactly_the_rest(db, setting):
    posted = [post(db, setting) for _ in range(4)]
    post(db, setting, far=True)
    alerts.cancel_alert(db, setting["coordinator"], posted[1].id)
    posted.append(post(db, setting, location=None))
    alerts.cancel_alert(db, setting["coordinator"], posted[0].id)
    everything = events(db)
    assert [kind for _, kind, _ in everything] == ["alert", "alert", "cancel", "alert", "cancel"]
    assert [seq for seq, _, _ in everything] == sorted(seq for seq, _, _ in everything)
    for position in range(newest(db) + 1):
        assert events(db, position) == [e for e in everything if e[0] > position]


def test_pages_resume_where_the_last_one_stopped(db, setting):
    for _ in range(3):
        post(db, setting, far=True)  # read, but not events here
    for _ in range(4):
        post(db, setting)
    everything = events(db)
    seen, position, pages = [], 0, 0
    while True:
        page = live.alert_events_since(db, position, *HOME, 1000.0, limit=2)
        pages += 1
        seen += [(e.seq, e.kind, e.alert.id) for e in page.events]
        assert page.through_seq >= position
        position = page.through_seq
        if not page.more:
            break
    assert seen == everything and pages == 4
    assert position == newest(db)


@pytest.mark.parametrize(("args", "field"), [
    ((0, 200.0, 47.6, 100.0), "lon"),
    ((0, -122.3, -91.0, 100.0), "lat"),
    ((0, -122.3, 47.6, 0.0), "radius_m"),
    ((-1, -122.3, 47.6, 100.0), "seq"),
])
def test_bad_arguments_name_their_field(db, args, field):
    with pytest.raises(ValidationError) as raised:
        live.alert_events_since(db, *args)
    assert field in raised.value.errors


# -- AlertStream -------------------------------------------------------------------------------
class Consumer:
    """Iterates a stream in a thread, handing events over through a queue; ``stop()`` ends it
    at its next item (heartbeats make that soon)."""

    def __init__(self, stream: live.AlertStream) -> None:
        self.items: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self._thread.start()

    def _run(self, stream) -> None:
        try:
            for item in stream:
                if self._stop.is_set():
                    break
                if item is not live.HEARTBEAT:
                    self.items.put(item)
        finally:
            self.items.put(None)

    def next(self, timeout_s: float = WAIT_S) -> live.AlertEvent | None:
        return self.items.get(timeout=timeout_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(WAIT_S)
        assert not self._thread.is_alive()


def test_a_new_stream_sends_only_what_happens_from_now_on(db, setting):
    post(db, setting)
    stream = live.AlertStream(db, *HOME, 1000.0, heartbeat_s=0.05)
    assert stream.position == newest(db) and not stream.resumed
    consumer = Consumer(stream)
    try:
        fresh = post(db, setting)
        post(db, setting, far=True)
        alerts.cancel_alert(db, setting["coordinator"], fresh.id)
        first, second = consumer.next(), consumer.next()
        assert (first.seq, first.kind, first.alert.id) == (fresh.version, "alert", fresh.id)
        assert (second.kind, second.alert.id) == ("cancel", fresh.id)
        assert second.seq == newest(db)
        assert second.alert.status == "cancelled"
    finally:
        consumer.stop()


def test_timeout_0_sends_the_backlog_and_ends(db, setting):
    first = post(db, setting)
    second = post(db, setting)
    backlog = list(live.AlertStream(db, *HOME, 1000.0, first.version - 1, timeout_s=0))
    assert [(e.seq, e.alert.id) for e in backlog] == [
        (first.version, first.id), (second.version, second.id)]
    assert list(live.AlertStream(db, *HOME, 1000.0, timeout_s=0)) == []


def test_a_last_event_id_past_the_newest_seq_starts_from_now(db, setting):
    post(db, setting)
    stream = live.AlertStream(db, *HOME, 1000.0, newest(db) + 100, timeout_s=0)
    assert stream.position == newest(db) and not stream.resumed
    assert list(stream) == []


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"last_event_id": -1}, "last_event_id"),
    ({"last_event_id": 2**63}, "last_event_id"),
    ({"timeout_s": -1}, "timeout_s"),
    ({"timeout_s": 3601}, "timeout_s"),
])
def test_a_stream_refuses_bad_arguments_when_opened(db, kwargs, field):
    with pytest.raises(ValidationError) as raised:
        live.AlertStream(db, *HOME, 1000.0, **kwargs)
    assert field in raised.value.errors


def test_an_alert_sent_expires_by_the_clock_once_per_connection(db, setting):
    stream = live.AlertStream(db, *HOME, 1000.0, heartbeat_s=0.05)
    consumer = Consumer(stream)
    try:
        soon = post(db, setting, expires_at=datetime.now(UTC) + timedelta(seconds=1))
        sent = consumer.next()
        assert (sent.kind, sent.alert.id) == ("alert", soon.id)
        expired = consumer.next()
        assert (expired.kind, expired.alert.id) == ("expire", soon.id)
        assert expired.alert.status == "expired"
        assert expired.seq == soon.version  # the position when it expired: nothing since
        # The sweep records it in the log: not sent again on this connection.
        assert alerts.expire_alerts(db) == 1
        marker = post(db, setting)
        after = consumer.next()
        assert (after.kind, after.alert.id) == ("alert", marker.id)
    finally:
        consumer.stop()


def test_a_resume_sends_the_expiries_that_passed_while_away(db, setting):
    now = datetime.now(UTC)
    # Written two hours ago, expired an hour ago: a client holding its id may hold it active.
    lapsed = post(db, setting, now=now - timedelta(hours=2), expires_at=now - timedelta(hours=1))
    backlog = list(live.AlertStream(db, *HOME, 1000.0, lapsed.version, timeout_s=0))
    assert [(e.seq, e.kind, e.alert.id) for e in backlog] == [
        (lapsed.version, "expire", lapsed.id)]
    # Outside the area: never.
    far = post(db, setting, far=True, now=now - timedelta(hours=2),
               expires_at=now - timedelta(hours=1))
    backlog = list(live.AlertStream(db, *HOME, 1000.0, far.version, timeout_s=0))
    assert [(e.kind, e.alert.id) for e in backlog] == [("expire", lapsed.id)]
    # Expired before the client's position was written: it already knows; not sent again.
    recent = post(db, setting)
    assert list(live.AlertStream(db, *HOME, 1000.0, recent.version, timeout_s=0)) == []


def test_a_resume_watches_the_alerts_the_client_may_hold(db, setting):
    held = post(db, setting, expires_at=datetime.now(UTC) + timedelta(seconds=0.4))
    consumer = Consumer(live.AlertStream(db, *HOME, 1000.0, held.version, heartbeat_s=0.05))
    try:
        expired = consumer.next()
        assert (expired.seq, expired.kind, expired.alert.id) == (held.version, "expire", held.id)
    finally:
        consumer.stop()


# -- ChangeFeed --------------------------------------------------------------------------------
WRITER = """
import sys

from blockwatch import groups
from blockwatch.config import Settings
from blockwatch.db import Database
from blockwatch.domain import OPERATOR, GroupDraft

url = sys.argv[1]
db = Database(url, Settings(database_url=url))
groups.create_group(db, OPERATOR, GroupDraft(name="Made elsewhere", boundary={
    "type": "Polygon",
    "coordinates": [[[-122.35, 47.65], [-122.34, 47.65], [-122.34, 47.66], [-122.35, 47.65]]]}))
"""


def test_a_commit_in_this_process_wakes_the_feed_at_once(db, setting):
    # A poll far longer than the wait: only the commit hook (SQLite) or NOTIFY (PostgreSQL)
    # can wake it in time.
    feed = live.ChangeFeed(db, poll_s=60.0)
    start = feed.wait_past(-1, WAIT_S)
    assert start == newest(db)
    post(db, setting)
    assert feed.wait_past(start, WAIT_S) == start + 1


def test_a_commit_in_another_process_wakes_the_feed(db, database_url):
    # PostgreSQL: by NOTIFY (the poll is far longer than the wait); SQLite: by the short poll.
    poll_s = 60.0 if db.dialect == "postgresql" else None
    feed = live.ChangeFeed(db, poll_s=poll_s)
    start = feed.wait_past(-1, WAIT_S)
    subprocess.run([sys.executable, "-c", WRITER, database_url], check=True, timeout=60)
    assert feed.wait_past(start, WAIT_S) == start + 1


def test_one_thread_serves_every_waiter_and_stops_when_idle(db, setting):
    feed = live.ChangeFeed(db, idle_s=0.1, poll_s=0.1)
    start = feed.wait_past(-1, WAIT_S)
    before = _feed_threads()
    assert feed._thread in before
    woken = queue.Queue()
    waiters = [
        threading.Thread(target=lambda: woken.put(feed.wait_past(start, WAIT_S)))
        for _ in range(20)
    ]
    for waiter in waiters:
        waiter.start()
    deadline = time.monotonic() + WAIT_S
    while feed.users < len(waiters):  # every waiter is waiting
        assert time.monotonic() < deadline, f"{feed.users} waiters registered"
        time.sleep(0.01)
    assert _feed_threads() <= before  # no thread more, however many wait
    post(db, setting)
    assert [woken.get(timeout=WAIT_S) for _ in waiters] == [start + 1] * 20
    deadline = time.monotonic() + WAIT_S
    while feed._thread is not None:  # nobody waits: it stops
        assert time.monotonic() < deadline, "the idle feed did not stop"
        time.sleep(0.02)
    assert feed.seq is None
    post(db, setting)  # and it starts again when asked
    assert feed.wait_past(start, WAIT_S) == start + 2


def test_the_feed_of_a_database_is_one_per_process(db):
    assert live.change_feed(db) is live.change_feed(db)


@pytest.fixture
def postgres_db(postgres_schema_url):
    """A migrated, empty PostgreSQL database (the tests of LISTEN/NOTIFY need one)."""
    _empty_postgres(postgres_schema_url)
    db = Database(postgres_schema_url, Settings(database_url=postgres_schema_url))
    db.migrate()
    yield db
    db.dispose()


@pytest.fixture
def listener(postgres_db):
    """A connection listening on the change log's channel of ``postgres_db``."""
    connection = live._listen(postgres_db)
    yield connection
    connection.close()


def test_a_lost_listening_connection_is_opened_again(postgres_db):
    db = postgres_db
    feed = live.ChangeFeed(db, poll_s=60.0)
    start = feed.wait_past(-1, WAIT_S)
    with db.engine.begin() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"),
                           {"pid": feed._listener.info.backend_pid})
    group(db)  # a write after the loss: heard through the new connection
    assert feed.wait_past(start, WAIT_S) > start


def test_a_writing_transaction_notifies_once_at_commit(postgres_db, listener):
    with postgres_db.write() as session:
        taken = [*changelog.allocate(session, 2), *changelog.allocate(session)]
        changelog.tombstone(session, "tip", str(uuid.uuid4()))
        session.flush()
        assert list(listener.notifies(timeout=0.2)) == []  # nothing before the commit
    heard = list(listener.notifies(timeout=WAIT_S, stop_after=1))
    heard += list(listener.notifies(timeout=0.2))  # and nothing more after it
    assert [(n.channel, n.payload) for n in heard] == [
        (changelog.NOTIFY_CHANNEL, str(taken[1]))]
    # Another transaction notifies again.
    with postgres_db.write() as session:
        [seq] = changelog.allocate(session)
    assert [n.payload for n in listener.notifies(timeout=WAIT_S, stop_after=1)] == [str(seq)]


def _feed_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "blockwatch-change-feed"}


def test_another_processes_new_group_places_its_location_less_alert(db, database_url):
    """Each gunicorn worker has its own spatial index, which may lag the log by up to
    index_staleness_s: a page must still place an alert without a point by the boundary of
    the group as of the position it moves the stream to, or the alert is skipped for good."""
    lagging = Database(database_url, Settings(database_url=database_url,
                                              index_staleness_s=3600.0))
    try:
        start = newest(lagging)
        lagging.spatial.group_keys_within(*HOME, 10.0)  # the index is built, and now stale
        home = group(db, "New block")  # written through another process's Database
        alert, _ = alerts.post_alert(db, actor(db, "New captain", "coordinator", home.id),
                                     home.id, draft(location=None))
        page = live.alert_events_since(lagging, start, *HOME, 1000.0)
        assert [(event.kind, event.alert.id) for event in page.events] == [("alert", alert.id)]
    finally:
        lagging.dispose()


def test_a_notify_in_a_rolled_back_savepoint_is_made_again(postgres_db, listener):
    """A sync push applies each mutation in a savepoint; PostgreSQL discards a NOTIFY made in
    one that is rolled back, so a later allocation in the same transaction must notify."""
    with postgres_db.write() as session:
        rejected = session.begin_nested()
        changelog.allocate(session)
        rejected.rollback()
        with session.begin_nested():
            [seq] = changelog.allocate(session)
    heard = list(listener.notifies(timeout=WAIT_S, stop_after=1))
    assert [n.payload for n in heard] == [str(seq)]
