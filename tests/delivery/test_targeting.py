"""Who an alert goes to, and the outbox rows written with it (API.md "Devices and push"):
area around the public point, area reaching the group's boundary, followed groups; category
and severity filters; quiet hours; cancellations; all in the alert's own transaction."""

from __future__ import annotations

import gc
from datetime import UTC, datetime, timedelta

import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, event, select, update

import geo
from blockwatch import alerts
from blockwatch.delivery import outbox
from blockwatch.domain import PUBLIC_LOCATION_CELL_M
from blockwatch.models import Alert as AlertRow
from blockwatch.models import Delivery, Device
from tests.blockwatch import factories
from tests.delivery.conftest import deliveries, subscribe

LON, LAT = -122.32, 47.61  # the group's south-west corner; it is a 0.004° square
NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)  # 11:00 in Seattle


def offset(lon: float, lat: float, east_m: float, north_m: float) -> tuple[float, float]:
    kx, ky = geo.distance.metres_per_degree(lat)
    return lon + east_m / kx, lat + north_m / ky


@pytest.fixture
def place(delivery_db):
    """A group, its coordinator and the database."""
    group = factories.group(delivery_db, lon=LON, lat=LAT)
    coordinator = factories.actor(delivery_db, "Captain", "coordinator", group.id)
    return delivery_db, group, coordinator


def post(db, group, who, location=None, now=NOW, **fields):
    alert, created = alerts.post_alert(
        db, who, group.id, factories.draft(location=location, **fields), now=now
    )
    assert created
    return alert


def targeted(db, alert_id: str) -> set[str]:
    return {row.device_id for row in deliveries(db, "alert") if row.alert_id == alert_id}


def test_area_around_the_point_or_reaching_the_boundary_or_following_the_group(place):
    db, group, captain = place
    point = offset(LON, LAT, -3000, -3000)  # 3 km from the group, south-west
    near_point = subscribe(db, area=(*offset(*point, 100, 0), 500))
    near_boundary = subscribe(db, area=(*offset(LON, LAT, -200, 100), 300))
    follower = subscribe(db, group_ids=(group.id,))
    follower_far = subscribe(db, area=(0.0, 0.0, 1000), group_ids=(group.id,))
    far = subscribe(db, area=(*offset(LON, LAT, 6000, 6000), 2000))
    other_group = factories.group(db, name="Elsewhere", lon=-122.2, lat=47.7)
    other_follower = subscribe(db, group_ids=(other_group.id,))
    alert = post(db, group, captain, location=point)
    assert targeted(db, alert.id) == {near_point, near_boundary, follower, follower_far}
    assert far not in targeted(db, alert.id) and other_follower not in targeted(db, alert.id)
    rows = deliveries(db)
    assert {row.state for row in rows} == {"pending"} and {row.due_at for row in rows} == {NOW}


def test_the_public_point_decides_not_the_exact_one(place):
    db, group, captain = place
    # A point 4 km west whose public point lies well apart from it (the test needs both).
    exact = next(point for point in (offset(LON, LAT, -4000 + step, step / 2)
                                     for step in range(0, 150, 7))
                 if geo.distance_m(*point, *geo.snap_to_grid_m(*point, PUBLIC_LOCATION_CELL_M))
                 > 40)
    public = geo.snap_to_grid_m(*exact, PUBLIC_LOCATION_CELL_M)
    # A circle that holds the exact point but not the public one, far from the boundary.
    lon_e, lat_e = exact
    away = (lon_e - (public[0] - lon_e) * 3, lat_e - (public[1] - lat_e) * 3)
    radius_exact = geo.distance_m(*away, *exact)
    radius = (radius_exact + geo.distance_m(*away, *public)) / 2
    only_exact = subscribe(db, area=(*away, radius))
    around_public = subscribe(db, area=(*public, 10))
    alert = post(db, group, captain, location=exact)
    assert targeted(db, alert.id) == {around_public}
    assert only_exact not in targeted(db, alert.id)


def test_an_alert_without_a_point_goes_by_its_boundary(place):
    db, group, captain = place
    reaching = subscribe(db, area=(*offset(LON, LAT, -150, 0), 200))
    short = subscribe(db, area=(*offset(LON, LAT, -250, 0), 200))
    alert = post(db, group, captain)
    assert targeted(db, alert.id) == {reaching}
    assert short not in targeted(db, alert.id)


@pytest.mark.parametrize(("categories", "min_severity", "alert_fields", "gets_it"), [
    ((), "minor", {"category": "burglary", "severity": "minor"}, True),
    (("burglary",), "minor", {"category": "burglary"}, True),
    (("fire", "theft"), "minor", {"category": "burglary"}, False),
    ((), "severe", {"severity": "moderate"}, False),
    ((), "severe", {"severity": "severe"}, True),
    ((), "severe", {"severity": "extreme"}, True),
    ((), "minor", {"severity": "unknown"}, False),
    ((), "unknown", {"severity": "unknown"}, True),
])
def test_category_and_severity_filters(place, categories, min_severity, alert_fields, gets_it):
    db, group, captain = place
    device = subscribe(db, area=(LON, LAT, 1000), categories=categories,
                       min_severity=min_severity)
    alert = post(db, group, captain, location=(LON, LAT), **alert_fields)
    assert (device in targeted(db, alert.id)) is gets_it


def test_deactivated_devices_get_nothing(place):
    db, group, captain = place
    device = subscribe(db, area=(LON, LAT, 1000), group_ids=(group.id,))
    with db.write() as session:
        session.execute(update(Device).values(active=False))
    alert = post(db, group, captain, location=(LON, LAT))
    assert device not in targeted(db, alert.id)


def test_quiet_hours_hold_all_but_severe_and_extreme(place):
    db, group, captain = place
    night = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)  # 23:00 in Seattle (PST, UTC-8)
    quiet = subscribe(db, area=(LON, LAT, 1000), quiet=("22:00", "07:00", "America/Los_Angeles"))
    in_tokyo = subscribe(db, area=(LON, LAT, 1000), quiet=("22:00", "07:00", "Asia/Tokyo"))
    loud = subscribe(db, area=(LON, LAT, 1000))
    moderate = post(db, group, captain, location=(LON, LAT), now=night, severity="moderate")
    severe = post(db, group, captain, location=(LON, LAT), now=night, severity="severe")
    due = {(row.alert_id, row.device_id): row.due_at for row in deliveries(db)}
    # 07:00 PST the next morning is 15:00 UTC; in Tokyo it is 16:00, outside 22:00-07:00.
    assert due[moderate.id, quiet] == datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    assert due[moderate.id, in_tokyo] == night
    assert due[moderate.id, loud] == night
    assert {due[severe.id, device] for device in (quiet, in_tokyo, loud)} == {night}


def test_deliveries_are_written_in_the_alerts_transaction(place, monkeypatch):
    db, group, captain = place
    subscribe(db, area=(LON, LAT, 1000))

    def broken(session, rows):
        list(rows)
        raise RuntimeError("the outbox write failed")

    monkeypatch.setattr(outbox, "_insert", broken)
    with pytest.raises(RuntimeError):
        post(db, group, captain, location=(LON, LAT))
    with db.read() as session:
        assert session.scalar(select(AlertRow.id)) is None  # no alert without its deliveries
    assert gc.isenabled()  # the collector paused for the fan-out runs again, even after it failed
    monkeypatch.undo()
    alert = post(db, group, captain, location=(LON, LAT))
    assert len(targeted(db, alert.id)) == 1


def test_the_fan_out_is_written_before_the_alert_takes_the_change_counter(place):
    """Every writer queues on the change counter's row lock until the holder commits: a post
    reads its targets and writes its deliveries first, so only its own row waits under it.
    (The deliveries are written through the driver, past statement events: what is checked is
    the targets' queries, which run right before them.)"""
    db, group, captain = place
    subscribe(db, area=(LON, LAT, 1000))
    seen: list[str] = []

    def record(connection, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        alert = post(db, group, captain, location=(LON, LAT))
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    counter = next(n for n, text in enumerate(seen) if text.startswith("UPDATE sync_state"))
    assert any("FROM devices" in text for text in seen[:counter])
    under_lock = [text for text in seen[counter + 1:] if "devices" in text]
    assert under_lock == []
    assert len(targeted(db, alert.id)) == 1


def test_a_repeated_post_writes_no_second_delivery(place):
    db, group, captain = place
    subscribe(db, area=(LON, LAT, 1000))
    draft = factories.draft(id="6f1c1a52-6f2b-4c42-9a59-5b8f4b0e4a11", location=(LON, LAT))
    alerts.post_alert(db, captain, group.id, draft, now=NOW)
    _, created = alerts.post_alert(db, captain, group.id, draft, now=NOW)
    assert not created and len(deliveries(db)) == 1


# -- cancellations -------------------------------------------------------------------------
def test_cancelling_withdraws_what_has_not_gone_and_tells_who_may_have_it(place):
    db, group, captain = place
    names = ["unsent", "sent", "retrying", "in_flight", "crashed", "dead", "sent_inactive"]
    ids = {name: subscribe(db, area=(LON, LAT, 1000)) for name in names}
    alert = post(db, group, captain, location=(LON, LAT))
    lease_end = NOW + timedelta(minutes=2)
    states = {
        "sent": {"state": "sent", "attempts": 1},
        "retrying": {"attempts": 2},
        "in_flight": {"claimed_by": "w1", "claimed_until": lease_end},
        # A worker that sent and died: its lease ran out before the cancel.
        "crashed": {"claimed_by": "w0", "claimed_until": NOW - timedelta(minutes=1)},
        "dead": {"state": "dead", "attempts": 8},
        "sent_inactive": {"state": "sent", "attempts": 1},
    }
    with db.write() as session:
        for name, values in states.items():
            session.execute(update(Delivery).where(Delivery.device_id == ids[name])
                            .values(**values))
        session.execute(update(Device).where(Device.id == ids["sent_inactive"])
                        .values(active=False))
    alerts.cancel_alert(db, captain, alert.id, now=NOW + timedelta(seconds=30))
    rows = {(row.device_id, row.kind): row for row in deliveries(db)}
    assert {name: rows[ids[name], "alert"].state for name in names} == {
        "unsent": "withdrawn", "sent": "sent", "retrying": "withdrawn",
        "in_flight": "withdrawn", "crashed": "withdrawn", "dead": "dead",
        "sent_inactive": "sent",
    }
    cancels = {device for device, kind in rows if kind == "cancel"}
    assert cancels == {ids[name] for name in ("sent", "retrying", "in_flight", "crashed",
                                              "dead")}
    assert rows[ids["crashed"], "cancel"].due_at == NOW + timedelta(seconds=30)
    # A cancellation never overtakes an alert a worker may be sending right now.
    assert rows[ids["in_flight"], "cancel"].due_at == lease_end
    assert rows[ids["sent"], "cancel"].due_at == NOW + timedelta(seconds=30)
    # Cancelling again changes nothing.
    alerts.cancel_alert(db, captain, alert.id, now=NOW + timedelta(minutes=5))
    assert len(deliveries(db)) == len(rows)


# -- against brute force -------------------------------------------------------------------
devices_strategy = st.lists(
    st.tuples(st.floats(-4000, 4000), st.floats(-4000, 4000), st.floats(20, 3000)),
    min_size=1, max_size=12,
)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(circles=devices_strategy, where=st.one_of(
    st.none(), st.tuples(st.floats(-3000, 3000), st.floats(-3000, 3000))))
def test_targets_match_brute_force(place, circles, where):
    db, group, captain = place
    with db.write() as session:
        session.execute(delete(Delivery))
        session.execute(delete(Device))
    boundary = shapely.box(LON, LAT, LON + 0.004, LAT + 0.004)
    location = None if where is None else offset(LON, LAT, *where)
    public = None if location is None else geo.snap_to_grid_m(*location,
                                                              PUBLIC_LOCATION_CELL_M)
    expected, unsure = set(), set()
    for east, north, radius in circles:
        centre = offset(LON, LAT, east, north)
        device = subscribe(db, area=(*centre, radius))
        reach = geo.distance_to_m(*centre, boundary)
        if public is not None:
            reach = min(reach, geo.distance_m(*centre, *public))
        if abs(reach - radius) < 0.01:
            unsure.add(device)  # on the circle itself, to the centimetre: either is right
        elif reach <= radius:
            expected.add(device)
    alert = post(db, group, captain, location=location)
    assert targeted(db, alert.id) - unsure == expected


def test_purge_deliveries_forgets_only_old_finished_rows(place):
    from click.testing import CliRunner

    from blockwatch.cli import cli

    db, group, captain = place
    for _ in range(4):
        subscribe(db, area=(LON, LAT, 1000))
    post(db, group, captain, location=(LON, LAT))
    old = datetime.now(UTC) - timedelta(days=40)
    ids = [row.id for row in deliveries(db)]
    with db.write() as session:
        for key, state, finished in ((ids[0], "sent", old), (ids[1], "dead", old),
                                     (ids[2], "sent", datetime.now(UTC))):
            session.execute(update(Delivery).where(Delivery.id == key)
                            .values(state=state, finished_at=finished))
    result = CliRunner().invoke(cli, ["purge-deliveries"], env={
        "BLOCKWATCH_DATABASE_URL": db.engine.url.render_as_string(hide_password=False)})
    assert result.exit_code == 0, result.output
    assert "2 finished deliveries older than 30 days forgotten" in result.output
    assert [row.id for row in deliveries(db)] == ids[2:]


def test_deleting_a_group_takes_its_alerts_deliveries_along(place):
    from blockwatch import groups

    db, group, captain = place
    other = factories.group(db, name="Next door", lon=LON + 0.01, lat=LAT)
    other_captain = factories.actor(db, "Other captain", "coordinator", other.id)
    subscribe(db, area=(LON, LAT, 3000))
    post(db, group, captain, location=(LON, LAT))
    kept = post(db, other, other_captain, location=(LON + 0.01, LAT))
    groups.delete_group(db, factories.admin(db), group.id)
    assert {row.alert_id for row in deliveries(db)} == {kept.id}


def test_deleting_a_group_unfollows_it(place):
    from blockwatch import groups
    from blockwatch.delivery import devices
    from blockwatch.models import DeviceGroup

    db, group, _captain = place
    other = factories.group(db, name="Next door", lon=LON + 0.01, lat=LAT)
    device, secret = devices.register_device(
        db, "fcm", {"token": "t"}, {"group_ids": [group.id, other.id]})
    groups.delete_group(db, factories.admin(db), group.id)
    view = devices.get_device(db, device.id, secret)
    assert view.subscription["group_ids"] == [other.id]
    with db.read() as session:
        assert session.scalars(select(DeviceGroup.group_id)).all() == [other.id]
    # What the app holds can be sent back as it is.
    devices.update_device(db, device.id, secret, subscription=view.subscription)
