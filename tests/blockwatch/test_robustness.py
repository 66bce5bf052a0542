"""Edge cases found in review: forged tokens, odd numbers, retries, races, purges."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import shapely
from sqlalchemy import select

from blockwatch import accounts, alerts, changelog, groups
from blockwatch.config import Settings
from blockwatch.db import Database
from blockwatch.domain import OPERATOR, GroupDraft, NotFound, ValidationError
from blockwatch.models import Account, Tombstone
from blockwatch.paging import encode_next
from tests.blockwatch.factories import actor, draft, group, square


@pytest.mark.parametrize(
    "position", [["x", "y"], [0.0, 5], [None, "a"], [float("inf"), "a"], "just text"]
)
def test_forged_next_tokens_are_422_everywhere(db, position):
    token = encode_next(position) if isinstance(position, list) else position
    g = group(db)
    calls = [
        lambda: groups.find_groups_near(db, -122.3, 47.6, next=token),
        lambda: groups.groups_in_bbox(db, (-123, 47, -122, 48), next=token),
        lambda: alerts.alerts_near(db, OPERATOR, -122.3, 47.6, next=token),
        lambda: alerts.alerts_of_group(db, OPERATOR, g.id, next=token),
    ]
    for call in calls:
        with pytest.raises(ValidationError) as raised:
            call()
        assert "next" in raised.value.errors


@pytest.mark.parametrize("bad", [10**400, float("nan"), True, "47"])
def test_odd_numbers_are_422_not_crashes(db, bad):
    with pytest.raises(ValidationError):
        groups.find_groups_near(db, bad, 47.6)
    with pytest.raises(ValidationError):
        groups.create_group(db, OPERATOR, GroupDraft(name="X", boundary={
            "type": "Polygon",
            "coordinates": [[[bad, 47.6], [-122.3, 47.6], [-122.3, 47.7], [bad, 47.6]]]}))
    g = group(db)
    with pytest.raises(ValidationError):
        alerts.post_alert(db, OPERATOR, g.id, draft(location=(bad, 47.6)))


def test_ids_that_are_not_uuids_name_nothing(db):
    for call in (lambda: groups.get_group(db, 123), lambda: groups.get_group(db, "nope"),
                 lambda: alerts.get_alert(db, OPERATOR, "nope"),
                 lambda: alerts.alerts_of_group(db, OPERATOR, "nope")):
        with pytest.raises(NotFound):
            call()


def test_a_retry_after_expiry_gets_the_stored_alert(db):
    g = group(db)
    now = datetime.now(UTC)
    client = draft(id=str(uuid.uuid4()), location=(-122, 47),
                   expires_at=now + timedelta(minutes=5))
    first, created = alerts.post_alert(db, OPERATOR, g.id, client, now=now)
    same = draft(id=client.id, location=(-122.0, 47.0), expires_at=client.expires_at)
    again, created_again = alerts.post_alert(
        db, OPERATOR, g.id, same, now=now + timedelta(hours=1)
    )
    assert created and not created_again and again.id == first.id


def test_the_operator_can_post_alerts(db):
    alert, created = alerts.post_alert(db, OPERATOR, group(db).id, draft())
    assert created and alert.author.id is None


def test_a_failed_create_token_leaves_no_account(db):
    with pytest.raises(NotFound):
        accounts.create_token(db, "Pat", "member", str(uuid.uuid4()))
    with db.read() as session:
        assert session.scalar(select(Account).where(Account.display_name == "Pat")) is None


def test_create_token_never_demotes(db):
    g = group(db)
    captain = actor(db, "Cap", "coordinator", g.id)
    again = actor(db, "Cap", "member", g.id)
    assert captain.coordinates(g.id) and again.coordinates(g.id)


def test_a_boundary_that_rounding_would_break_is_refused(db):
    # A notch 8 mm wide: valid as given, its two sides collapse together at 7 decimals.
    notch = shapely.Polygon([(-122.3, 47.6), (-122.298, 47.6), (-122.298, 47.602),
                             (-122.29899996, 47.602), (-122.299, 47.6001),
                             (-122.29900004, 47.602), (-122.3, 47.602)])
    assert notch.is_valid
    with pytest.raises(ValidationError) as raised:
        groups.create_group(db, OPERATOR, GroupDraft(name="Notch", boundary=notch))
    assert "rounded" in raised.value.errors["boundary"][0]


def test_recreating_a_deleted_id_forgets_its_tombstone(db):
    made = group(db)
    groups.delete_group(db, OPERATOR, made.id)
    groups.create_groups(db, OPERATOR, [GroupDraft(id=made.id, name="Again",
                                                   boundary=square(-122.3, 47.6))])
    with db.read() as session:
        assert session.scalars(select(Tombstone)).all() == []
        log = changelog.changes_since(session, 0)
    assert [(c.id, c.deleted) for c in log] == [(made.id, False)]
    with pytest.raises(ValidationError):
        groups.create_groups(db, OPERATOR, [GroupDraft(id=made.id, name="Twice",
                                                       boundary=square(-122.3, 47.6))])


def test_a_writer_always_reads_its_own_write_at_the_default_staleness(database_url):
    db = Database(database_url, Settings(database_url=database_url))  # 0.25 s staleness
    groups.groups_at(db, 0.0, 0.0)
    stop = threading.Event()

    def keep_querying() -> None:
        while not stop.is_set():
            groups.groups_at(db, 0.0, 0.0)

    readers = [threading.Thread(target=keep_querying) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        for i in range(15):
            lon = -122.0 + i * 0.01
            made = groups.create_group(
                db, OPERATOR, GroupDraft(name=f"G{i}", boundary=square(lon, 47.0, 0.005))
            )
            assert [g.id for g in groups.groups_at(db, lon + 0.002, 47.002)] == [made.id]
    finally:
        stop.set()
        for reader in readers:
            reader.join()
        db.dispose()


def test_the_index_notices_deletes_whose_tombstones_were_purged(database_url):
    watcher = Database(database_url, Settings(database_url=database_url, index_staleness_s=0))
    writer = Database(database_url, Settings(database_url=database_url))
    made = groups.create_group(writer, OPERATOR, GroupDraft(name="Doomed",
                                                            boundary=square(-122.3, 47.6)))
    assert [g.id for g in groups.groups_at(watcher, -122.298, 47.602)] == [made.id]
    watcher.settings = Settings(database_url=database_url, index_staleness_s=3600)
    groups.delete_group(writer, OPERATOR, made.id)
    with writer.write() as session:
        changelog.purge_tombstones(session, timedelta(days=90),
                                   now=datetime.now(UTC) + timedelta(days=91))
    watcher.settings = Settings(database_url=database_url, index_staleness_s=0)
    assert groups.groups_at(watcher, -122.298, 47.602) == []
    watcher.dispose()
    writer.dispose()
