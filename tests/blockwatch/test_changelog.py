"""The change log on both databases: every write stamped, read back in commit order, with
concurrent writers never making a reader skip or repeat a change."""

from __future__ import annotations

import random
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from blockwatch import alerts, changelog, groups, tips
from blockwatch.models import SafetyTip
from tests.blockwatch.factories import actor, admin, draft, group


def read_log(db, seq=0, **kwargs):
    with db.read() as session:
        return changelog.changes_since(session, seq, **kwargs)


def test_every_write_is_in_the_log_once_at_its_newest_seq(db):
    g = group(db)
    coordinator = actor(db, "Captain", "coordinator", g.id)
    alert, _ = alerts.post_alert(db, coordinator, g.id, draft())
    alerts.cancel_alert(db, coordinator, alert.id)
    tips.upsert_tips(db, [{"key": "k", "category": "vehicles",
                           "translations": {"en": {"title": "T", "body": "B"}}}])
    log = read_log(db)
    assert [(c.entity, c.deleted) for c in log] == [
        ("group", False), ("alert", False), ("tip", False)
    ]
    assert [c.seq for c in log] == sorted(c.seq for c in log)
    assert log[1].seq == alerts.get_alert(db, coordinator, alert.id).version
    assert log[1].group_id == g.id


def test_deletes_leave_tombstones_for_the_group_and_its_alerts(db):
    g = group(db)
    alert, _ = alerts.post_alert(db, admin(db), g.id, draft())
    before = read_log(db)[-1].seq
    groups.delete_group(db, admin(db), g.id)
    log = read_log(db, before)
    assert {(c.entity, c.id, c.deleted, c.group_id) for c in log} == {
        ("alert", alert.id, True, g.id), ("group", g.id, True, g.id)
    }


def test_paging_and_bounds(db):
    made = [group(db, f"G{i}", lon=-122.3 + i * 0.01) for i in range(5)]
    with db.read() as session:
        through = changelog.current_seq(session)
    first = read_log(db, 0, limit=2)
    rest = read_log(db, first[-1].seq, through_seq=through)
    assert [c.id for c in first + rest] == [g.id for g in made]
    assert read_log(db, through) == []
    assert read_log(db, 0, entities=("alert",)) == []


def test_purging_tombstones_moves_the_horizon(db):
    g = group(db)
    groups.delete_group(db, admin(db), g.id)
    with db.write() as session:
        assert changelog.purge_tombstones(session, timedelta(days=90)) == 0
    later = datetime.now(UTC) + timedelta(days=91)
    with db.write() as session:
        assert changelog.purge_tombstones(session, timedelta(days=90), now=later) == 1
    with db.read() as session:
        state = changelog.sync_state(session)
        assert state.purged_through_seq == state.seq
    assert read_log(db) == []


def test_a_failed_write_leaves_no_trace_and_no_gap_in_what_readers_see(db):
    group(db)
    with db.read() as session:
        before = changelog.current_seq(session)
    with pytest.raises(RuntimeError), db.write() as session:
        changelog.allocate(session, 3)
        raise RuntimeError("boom")
    with db.read() as session:
        assert changelog.current_seq(session) == before


def test_concurrent_writers_never_make_a_reader_skip_or_repeat(db):
    """Writer threads (separate connections from the pool) commit while a reader polls."""
    g = group(db)
    poster = admin(db)
    writers, per_writer = 4, 15
    done = threading.Event()
    seen: list[int] = []
    errors: list[BaseException] = []

    def write(n: int) -> None:
        rng = random.Random(n)
        try:
            for i in range(per_writer):
                if i % 2:
                    alerts.post_alert(db, poster, g.id, draft(title=f"writer {n} alert {i}"))
                    continue
                # A slow writer: it holds its transaction open after stamping, the moment a
                # counter that is not held until commit would let a later number overtake it.
                with db.write() as session:
                    tip = SafetyTip(id=str(uuid.uuid4()), key=f"k{n}-{i}", category="vehicles",
                                    language="en", title="t", body="b",
                                    updated_at=datetime.now(UTC))
                    changelog.stamp(session, tip)
                    session.add(tip)
                    session.flush()
                    time.sleep(rng.uniform(0, 0.004))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    def read() -> None:
        cursor = read_log(db)[-1].seq
        while True:
            finished = done.is_set()
            for change in read_log(db, cursor):
                seen.append(change.seq)
                cursor = change.seq
            if finished:
                return
            time.sleep(0.001)

    reader = threading.Thread(target=read)
    reader.start()
    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    reader.join()
    assert not errors
    assert len(seen) == len(set(seen)) == writers * per_writer
    assert seen == sorted(seen)
    committed = sorted(c.seq for c in read_log(db, 0, entities=("alert", "tip")))
    assert seen == committed
