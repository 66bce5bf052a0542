"""Quiet hours in the device's own time zone: start inside, end outside, wrapping midnight,
daylight saving moving them with the clock (a controllable clock, never a sleep)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockwatch.delivery.devices import quiet_hours_end

LA = "America/Los_Angeles"
NIGHT = (22 * 60, 7 * 60, LA)
AFTERNOON = (13 * 60, 15 * 60, LA)


def at(local: str, tz: str = LA) -> datetime:
    """A local wall time in ``tz`` as an aware UTC datetime."""
    return datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(tz)).astimezone(UTC)


@pytest.mark.parametrize(("quiet", "now", "ends"), [
    (NIGHT, "2026-11-24T23:00", "2026-11-25T07:00"),  # before midnight: ends tomorrow
    (NIGHT, "2026-11-25T03:00", "2026-11-25T07:00"),  # after midnight: ends today
    (NIGHT, "2026-11-24T22:00", "2026-11-25T07:00"),  # the start is inside
    (NIGHT, "2026-11-25T07:00", None),  # the end is outside
    (NIGHT, "2026-11-25T06:59:59", "2026-11-25T07:00"),
    (NIGHT, "2026-11-24T12:00", None),
    (NIGHT, "2026-11-24T21:59:59", None),
    (AFTERNOON, "2026-11-24T14:00", "2026-11-24T15:00"),
    (AFTERNOON, "2026-11-24T15:00", None),
    (AFTERNOON, "2026-11-24T12:59", None),
    # Autumn: the night of 31 Oct 2026 is an hour longer (PDT to PST at 02:00).
    (NIGHT, "2026-10-31T22:30", "2026-11-01T07:00"),
    # Spring: the night of 7 March 2026 is an hour shorter (PST to PDT at 02:00).
    (NIGHT, "2026-03-07T23:00", "2026-03-08T07:00"),
])
def test_quiet_hours_end(quiet, now, ends):
    expected = None if ends is None else at(ends)
    assert quiet_hours_end(quiet, at(now)) == expected


def test_daylight_saving_changes_the_length_of_the_night():
    autumn = quiet_hours_end(NIGHT, at("2026-10-31T22:00"))
    spring = quiet_hours_end(NIGHT, at("2026-03-07T22:00"))
    assert autumn - at("2026-10-31T22:00") == timedelta(hours=10)
    assert spring - at("2026-03-07T22:00") == timedelta(hours=8)


def test_an_end_in_the_spring_gap_never_ends_early():
    # 02:30 does not exist on 8 March 2026 in Los Angeles: the quiet hours end at 03:30 PDT.
    quiet = (60, 150, LA)
    ends = quiet_hours_end(quiet, at("2026-03-08T01:30"))
    assert ends == datetime(2026, 3, 8, 10, 30, tzinfo=UTC)
    assert ends.astimezone(ZoneInfo(LA)).hour == 3


def test_zones_are_read_where_the_device_is():
    now = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)  # 06:00 in Seattle, 23:00 in Tokyo
    assert quiet_hours_end(NIGHT, now) == at("2026-11-24T07:00")
    assert quiet_hours_end((22 * 60, 7 * 60, "Asia/Tokyo"), now) == at(
        "2026-11-25T07:00", "Asia/Tokyo")
    assert quiet_hours_end((22 * 60, 7 * 60, "UTC"), now) is None
    assert quiet_hours_end(None, now) is None


ZONES = ["America/Los_Angeles", "Europe/Berlin", "Asia/Kathmandu", "Australia/Lord_Howe", "UTC"]


@given(
    start=st.integers(0, 24 * 60 - 1), end=st.integers(0, 24 * 60 - 1),
    tz=st.sampled_from(ZONES),
    now=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31),
                     timezones=st.just(UTC)),
)
def test_the_end_is_the_first_end_time_after_now(start, end, tz, now):
    if start == end:
        return
    ends = quiet_hours_end((start, end, tz), now)
    local = now.astimezone(ZoneInfo(tz))
    minute = local.hour * 60 + local.minute + local.second / 60 + local.microsecond / 6e7
    inside = start <= minute < end if start < end else (minute >= start or minute < end)
    assert (ends is not None) is inside
    if ends is None:
        return
    assert now <= ends <= now + timedelta(hours=25)
    # Every minute from now to the end (exclusive) is quiet, read on the wall clock.
    probe = now
    while probe < ends:
        wall = probe.astimezone(ZoneInfo(tz))
        m = wall.hour * 60 + wall.minute
        assert (start <= m < end) if start < end else (m >= start or m < end), probe
        probe += timedelta(minutes=29)


def test_in_the_repeated_autumn_hour_the_end_is_its_second_showing():
    # 1 November 2026, Los Angeles: 01:00-02:00 happens twice. Quiet 00:00-01:30, asked at the
    # second 01:10 (PST): the quiet hours end at the second 01:30, 20 minutes later.
    second_0110 = datetime(2026, 11, 1, 1, 10, fold=1, tzinfo=ZoneInfo(LA)).astimezone(UTC)
    ends = quiet_hours_end((0, 90, LA), second_0110)
    assert ends == second_0110 + timedelta(minutes=20)
