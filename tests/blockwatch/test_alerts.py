"""Alert services on both databases: posting, idempotency, privacy, expiry, authorisation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

import geo
from blockwatch import alerts
from blockwatch.domain import (
    ANONYMOUS,
    CATEGORIES,
    Conflict,
    Forbidden,
    NotAuthenticated,
    NotFound,
    ValidationError,
)
from tests.blockwatch.factories import actor, admin, draft, group

HOME = (-122.31812, 47.61234)  # inside the default test group


@pytest.fixture
def setting(db):
    g = group(db)
    other = group(db, "Other", lon=-122.30)
    return {
        "group": g,
        "coordinator": actor(db, "Captain", "coordinator", g.id),
        "member": actor(db, "Neighbour", "member", g.id),
        "other_coordinator": actor(db, "Other captain", "coordinator", other.id),
        "admin": admin(db),
    }


def test_post_and_read_back(db, setting):
    alert, created = alerts.post_alert(
        db, setting["coordinator"], setting["group"].id, draft(location=HOME)
    )
    assert created
    assert alert.status == "active" and alert.author.display_name == "Captain"
    assert alert.expires_at - alert.sent_at == timedelta(hours=24)
    assert alerts.get_alert(db, setting["coordinator"], alert.id) == alert


def test_same_client_id_same_body_is_the_same_alert_other_body_conflicts(db, setting):
    client_id = str(uuid.uuid4())
    first, created = alerts.post_alert(
        db, setting["coordinator"], setting["group"].id, draft(id=client_id)
    )
    again, created_again = alerts.post_alert(
        db, setting["coordinator"], setting["group"].id, draft(id=client_id)
    )
    assert created and not created_again and again == first
    with pytest.raises(Conflict):
        alerts.post_alert(
            db, setting["coordinator"], setting["group"].id, draft(id=client_id, title="Other")
        )


@pytest.mark.parametrize(
    ("who", "expected"),
    [("anonymous", NotAuthenticated), ("member", Forbidden), ("other_coordinator", Forbidden),
     ("coordinator", None), ("admin", None)],
)
def test_who_may_post_and_cancel(db, setting, who, expected):
    poster = ANONYMOUS if who == "anonymous" else setting[who]
    group_id = setting["group"].id
    if expected is None:
        alert, _ = alerts.post_alert(db, poster, group_id, draft())
        assert alerts.cancel_alert(db, poster, alert.id).status == "cancelled"
        return
    with pytest.raises(expected):
        alerts.post_alert(db, poster, group_id, draft())
    alert, _ = alerts.post_alert(db, setting["coordinator"], group_id, draft())
    with pytest.raises(expected):
        alerts.cancel_alert(db, poster, alert.id)
    assert alerts.get_alert(db, setting["admin"], alert.id).status == "active"


def test_posting_in_a_missing_group_is_not_found(db, setting):
    with pytest.raises(NotFound):
        alerts.post_alert(db, setting["admin"], str(uuid.uuid4()), draft())


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"category": "alien-landing"}, "category"),
        ({"severity": "catastrophic"}, "severity"),
        ({"title": ""}, "title"),
        ({"title": "x" * 121}, "title"),
        ({"body": "x" * 4001}, "body"),
        ({"location": (200.0, 47.6)}, "location"),
        ({"location": (float("nan"), 47.6)}, "location"),
        ({"expires_at": datetime(2020, 1, 1, tzinfo=UTC)}, "expires_at"),
        ({"expires_at": datetime.now(UTC) + timedelta(days=31)}, "expires_at"),
        ({"id": "not-a-uuid"}, "id"),
    ],
)
def test_bad_drafts_name_their_field_and_write_nothing(db, setting, fields, field):
    with pytest.raises(ValidationError) as raised:
        alerts.post_alert(db, setting["coordinator"], setting["group"].id, draft(**fields))
    assert field in raised.value.errors
    assert alerts.alerts_of_group(db, setting["admin"], setting["group"].id, "all").items == []


def test_public_sees_a_snapped_location_and_distances_from_it(db, setting):
    alert, _ = alerts.post_alert(
        db, setting["coordinator"], setting["group"].id, draft(location=HOME)
    )
    public = alerts.get_alert(db, ANONYMOUS, alert.id)
    assert public.location == geo.snap_to_grid_m(*HOME, 150.0) != HOME
    assert not public.location_exact
    for who in ("member", "coordinator", "admin"):
        assert alerts.get_alert(db, setting[who], alert.id).location == HOME
    assert alerts.get_alert(db, setting["other_coordinator"], alert.id).location != HOME
    # Asking from near the exact point: the public distance is from the snapped point.
    [seen] = alerts.alerts_near(db, ANONYMOUS, *HOME, radius_m=500).items
    assert seen.distance_m == pytest.approx(geo.distance_m(*HOME, *public.location))
    [exact] = alerts.alerts_near(db, setting["member"], *HOME, radius_m=500).items
    assert exact.distance_m == 0.0


def test_inside_the_radius_is_judged_from_the_snapped_point(db, setting):
    alert, _ = alerts.post_alert(
        db, setting["coordinator"], setting["group"].id, draft(location=HOME)
    )
    snapped = geo.snap_to_grid_m(*HOME, 150.0)
    gap_m = geo.distance_m(*HOME, *snapped)
    assert gap_m > 5
    # A radius that holds the exact point but not the snapped one: the public does not see it.
    public = alerts.alerts_near(db, ANONYMOUS, *HOME, radius_m=gap_m * 0.9)
    member = alerts.alerts_near(db, setting["member"], *HOME, radius_m=gap_m * 0.9)
    assert public.items == []
    assert [a.id for a in member.items] == [alert.id]


def test_alerts_near_filters_and_orders_newest_first(db, setting):
    now = datetime.now(UTC)
    ids = []
    for i, category in enumerate(CATEGORIES[:4]):
        alert, _ = alerts.post_alert(
            db, setting["coordinator"], setting["group"].id,
            draft(category=category, location=HOME), now=now + timedelta(seconds=i),
        )
        ids.append(alert.id)
    later = now + timedelta(seconds=10)
    page = alerts.alerts_near(db, ANONYMOUS, *HOME, radius_m=1000, now=later)
    assert [a.id for a in page.items] == ids[::-1]
    only = alerts.alerts_near(db, ANONYMOUS, *HOME, radius_m=1000, category=CATEGORIES[1],
                              now=later)
    assert [a.id for a in only.items] == [ids[1]]
    recent = alerts.alerts_near(db, ANONYMOUS, *HOME, radius_m=1000,
                                since=now + timedelta(seconds=2), now=later)
    assert [a.id for a in recent.items] == ids[:1:-1]
    first = alerts.alerts_near(db, ANONYMOUS, *HOME, radius_m=1000, limit=3, now=later)
    rest = alerts.alerts_near(db, ANONYMOUS, *HOME, radius_m=1000, limit=3, next=first.next,
                              now=later)
    assert [a.id for a in first.items + rest.items] == ids[::-1] and rest.next is None


def test_expired_and_cancelled_alerts_leave_the_active_lists(db, setting):
    group_id = setting["group"].id
    now = datetime.now(UTC)
    short, _ = alerts.post_alert(
        db, setting["coordinator"], group_id,
        draft(location=HOME, expires_at=now + timedelta(minutes=5)), now=now,
    )
    cancelled, _ = alerts.post_alert(db, setting["coordinator"], group_id, draft(location=HOME))
    alerts.cancel_alert(db, setting["coordinator"], cancelled.id)
    later = now + timedelta(minutes=10)
    assert alerts.get_alert(db, ANONYMOUS, short.id, now=later).status == "expired"
    assert alerts.alerts_near(db, ANONYMOUS, *HOME, radius_m=1000, now=later).items == []
    assert alerts.alerts_of_group(db, ANONYMOUS, group_id, now=later).items == []
    everything = alerts.alerts_of_group(db, ANONYMOUS, group_id, status="all", now=later)
    assert {a.id: a.status for a in everything.items} == {
        short.id: "expired", cancelled.id: "cancelled"
    }
    before = alerts.get_alert(db, ANONYMOUS, short.id).version
    assert alerts.expire_alerts(db, now=later) == 1
    swept = alerts.get_alert(db, ANONYMOUS, short.id)
    assert swept.status == "expired" and swept.version > before


def test_cancelling_twice_changes_nothing_the_second_time(db, setting):
    alert, _ = alerts.post_alert(db, setting["coordinator"], setting["group"].id, draft())
    once = alerts.cancel_alert(db, setting["coordinator"], alert.id)
    twice = alerts.cancel_alert(db, setting["coordinator"], alert.id)
    assert once == twice
