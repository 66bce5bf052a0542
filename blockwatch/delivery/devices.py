"""Devices that get alerts pushed: registering, changing and removing them (API.md, "Devices and
push"), and what their subscriptions mean (targeting fields, quiet hours).

Devices register without an account. Registration returns a device secret, shown once and
stored only as its SHA-256, which authorises every later change: the bearer of the secret is
the owner of the device. The push address is write-only: nothing here returns it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from blockwatch.checks import check_point, check_radius, check_uuid, existing_id
from blockwatch.db import Database
from blockwatch.delivery.transports import check_webhook_url
from blockwatch.domain import CATEGORIES, SEVERITIES, NotAuthenticated, NotFound, ValidationError
from blockwatch.models import Delivery, Device, DeviceGroup, Group
from geo.distance import search_boxes_deg

PLATFORMS = ("fcm", "webpush", "webhook")
SECRET_PREFIX = "bwd_"
MAX_GROUP_IDS = 100
MAX_RADIUS_M = 50_000.0
MIN_WEBHOOK_SECRET_LENGTH = 16
#: Severities that go out during quiet hours too (API.md).
URGENT_SEVERITIES = frozenset({"severe", "extreme"})


@dataclass(frozen=True)
class DeviceView:
    """A device as its owner sees it: everything but the push address."""

    id: str
    platform: str
    subscription: dict[str, Any]
    active: bool
    created_at: datetime


def register_device(db: Database, platform: str, push: dict, subscription: dict,
                    now: datetime | None = None) -> tuple[DeviceView, str]:
    """Register a device; returns it and its secret (the only time the secret is shown)."""
    now = now or datetime.now(UTC)
    platform = _check_platform(platform)
    push = check_push(platform, push, allow_private=db.settings.webhook_allow_private)
    subscription = check_subscription(subscription)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    with db.write() as session:
        _check_groups_exist(session, subscription["group_ids"])
        row = Device(
            id=str(uuid.uuid4()), platform=platform, push=push, secret_sha256=_sha256(secret),
            active=True, created_at=now, updated_at=now,
        )
        _subscribe(row, subscription)
        session.add(row)
        session.flush()
        _follow(session, row.id, subscription["group_ids"])
        return _view(row), secret


def update_device(db: Database, device_id: str, secret: str | None, *,
                  push: dict | None = None, subscription: dict | None = None,
                  now: datetime | None = None) -> DeviceView:
    """Change a device's push address and/or subscription (whole values). A new push address
    makes a deactivated device active again: it is the owner saying where it can be reached."""
    now = now or datetime.now(UTC)
    if subscription is not None:
        subscription = check_subscription(subscription)
    if push is not None:
        # Checked before the write transaction: a url's host is looked up in DNS, which may
        # take seconds, and on SQLite the write transaction holds the database's only write
        # lock. The platform it is checked against never changes.
        with db.read() as session:
            platform = _owned(session, device_id, secret, lock=False).platform
        push = check_push(platform, push, allow_private=db.settings.webhook_allow_private)
    with db.write() as session:
        row = _owned(session, device_id, secret)
        if push is not None:
            row.push = push
            row.active, row.deactivated_reason = True, None
        if subscription is not None:
            _check_groups_exist(session, subscription["group_ids"])
            _subscribe(row, subscription)
            session.execute(delete(DeviceGroup).where(DeviceGroup.device_id == row.id))
            _follow(session, row.id, subscription["group_ids"])
        row.updated_at = now
        return _view(row)


def delete_device(db: Database, device_id: str, secret: str | None) -> None:
    """Unregister a device: it gets nothing more (what was queued for it goes with it)."""
    with db.write() as session:
        row = _owned(session, device_id, secret, lock=False)
        # Its waiting deliveries, then the device: the worker's order (deliveries by id, then
        # the device it deactivates), so the two cannot deadlock.
        waiting = select(Delivery.id).where(Delivery.state == "pending",
                                            Delivery.device_id == row.id)
        session.execute(waiting.order_by(Delivery.id).with_for_update()).all()
        session.execute(delete(Delivery).where(Delivery.id.in_(waiting))
                        .execution_options(synchronize_session=False))
        # Locked now, read again: an unregistration that raced this one may have taken it,
        # which answers as an unknown device does (never a 500).
        locked = session.get(Device, row.id, with_for_update=True, populate_existing=True)
        if locked is None:
            raise NotAuthenticated("unknown device or wrong device secret")
        session.delete(locked)


def get_device(db: Database, device_id: str, secret: str | None) -> DeviceView:
    """A device as its owner sees it."""
    with db.read() as session:
        return _view(_owned(session, device_id, secret, lock=False))


# -- checks --------------------------------------------------------------------------------
def _check_platform(platform: str) -> str:
    if platform not in PLATFORMS:
        raise ValidationError.field("platform", f"must be one of {', '.join(PLATFORMS)}")
    return platform


def check_push(platform: str, push: dict, *, allow_private: bool) -> dict:
    """The push address of ``platform`` with only the fields it needs, or a 422 naming the bad
    one. Webhook urls and Web Push endpoints must be https on a public address (no
    server-side request forgery) unless ``allow_private``."""
    if not isinstance(push, dict):
        raise ValidationError.field("push", "must be an object")

    def text(name: str, maximum: int, minimum: int = 1) -> str:
        value = push.get(name)
        if not isinstance(value, str) or not minimum <= len(value) <= maximum:
            raise ValidationError.field(
                f"push.{name}", f"must be a string of {minimum} to {maximum} characters"
            )
        return value

    def url(name: str) -> str:
        value = text(name, 2048)
        refused = check_webhook_url(value, allow_private=allow_private)
        if refused is not None:
            raise ValidationError.field(f"push.{name}", refused)
        return value

    if platform == "fcm":
        return {"token": text("token", 4096)}
    if platform == "webhook":
        return {"url": url("url"),
                "secret": text("secret", 256, minimum=MIN_WEBHOOK_SECRET_LENGTH)}
    keys = push.get("keys")
    if not isinstance(keys, dict):
        raise ValidationError.field("push.keys", "must be an object with p256dh and auth")
    endpoint = url("endpoint")
    found = {}
    for name, maximum in (("p256dh", 200), ("auth", 64)):
        value = keys.get(name)
        if not isinstance(value, str) or not 1 <= len(value) <= maximum:
            raise ValidationError.field(f"push.keys.{name}", "must be the browser's key "
                                        "(base64url)")
        found[name] = value
    return {"endpoint": endpoint, "keys": found}


def check_subscription(subscription: dict) -> dict:
    """The subscription with defaults filled in, or a 422 naming the field that breaks a rule.

    A device must follow an area or at least one group: otherwise it could never get anything.
    """
    area = subscription.get("area")
    if area is not None:
        try:
            check_point(area.get("lon"), area.get("lat"))
        except ValidationError as error:
            raise _prefixed(error, "subscription.area") from None
        try:
            check_radius(area.get("radius_m"), MAX_RADIUS_M)
        except ValidationError as error:
            raise _prefixed(error, "subscription.area") from None
        area = {"lat": float(area["lat"]), "lon": float(area["lon"]),
                "radius_m": float(area["radius_m"])}
    group_ids = list(dict.fromkeys(
        check_uuid(value, "subscription.group_ids") for value in subscription.get("group_ids")
        or []
    ))
    if len(group_ids) > MAX_GROUP_IDS:
        raise ValidationError.field("subscription.group_ids", f"at most {MAX_GROUP_IDS} groups")
    if area is None and not group_ids:
        raise ValidationError.field(
            "subscription", "give an area, group_ids or both: a device following neither "
            "would never get an alert"
        )
    categories = list(dict.fromkeys(subscription.get("categories") or []))
    unknown = [name for name in categories if name not in CATEGORIES]
    if unknown:
        raise ValidationError.field("subscription.categories",
                                    f"unknown categories: {', '.join(map(str, unknown))}")
    min_severity = subscription.get("min_severity") or "minor"
    if min_severity not in SEVERITIES:
        raise ValidationError.field("subscription.min_severity",
                                    f"must be one of {', '.join(SEVERITIES)}")
    quiet = subscription.get("quiet_hours")
    if quiet is not None:
        quiet = _check_quiet_hours(quiet)
    return {"area": area, "group_ids": group_ids, "categories": categories,
            "min_severity": min_severity, "quiet_hours": quiet}


def _check_quiet_hours(quiet: dict) -> dict:
    start = _minutes(quiet.get("start"), "subscription.quiet_hours.start")
    end = _minutes(quiet.get("end"), "subscription.quiet_hours.end")
    if start == end:
        raise ValidationError.field("subscription.quiet_hours.end",
                                    "must differ from start (quiet hours would be empty)")
    tz = quiet.get("tz")
    try:
        # "localtime" and the posix/right trees name the server's clock or its variants, not
        # a place: a device's quiet hours must not move with the server.
        if not isinstance(tz, str) or not tz or tz == "localtime" \
                or tz.startswith(("posix/", "right/")):
            raise ZoneInfoNotFoundError(tz)
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError.field("subscription.quiet_hours.tz",
                                    "must be an IANA time zone such as America/Los_Angeles"
                                    ) from None
    return {"start": quiet["start"], "end": quiet["end"], "tz": tz}


def _minutes(value: object, field: str) -> int:
    """``"HH:MM"`` (24-hour) as minutes after midnight."""
    if isinstance(value, str) and len(value) == 5 and value[2] == ":" \
            and value[:2].isdigit() and value[3:].isdigit():
        hours, minutes = int(value[:2]), int(value[3:])
        if hours < 24 and minutes < 60:
            return hours * 60 + minutes
    raise ValidationError.field(field, "must be a 24-hour time HH:MM, such as 22:00")


def _prefixed(error: ValidationError, prefix: str) -> ValidationError:
    errors = {f"{prefix}.{name}": messages for name, messages in error.errors.items()}
    detail = "; ".join(f"{name}: {' '.join(texts)}" for name, texts in errors.items())
    return ValidationError(detail, errors)


def _check_groups_exist(session: Session, group_ids: list[str]) -> None:
    if not group_ids:
        return
    found = set(session.scalars(select(Group.id).where(Group.id.in_(group_ids))))
    missing = [key for key in group_ids if key not in found]
    if missing:
        raise ValidationError.field("subscription.group_ids",
                                    f"no such groups: {', '.join(missing)}")


def unfollow_group(session: Session, group_id: str) -> None:
    """A deleted group leaves the subscriptions that named it, in the caller's transaction."""
    followers = session.scalars(
        select(DeviceGroup.device_id).where(DeviceGroup.group_id == group_id)
        .order_by(DeviceGroup.device_id)
    ).all()
    for device in session.scalars(select(Device).where(Device.id.in_(followers))
                                  .order_by(Device.id)):
        subscription = dict(device.subscription)
        subscription["group_ids"] = [key for key in subscription.get("group_ids", [])
                                     if key != group_id]
        device.subscription = subscription
    session.execute(delete(DeviceGroup).where(DeviceGroup.group_id == group_id))


# -- quiet hours ---------------------------------------------------------------------------
def quiet_hours_end(quiet: tuple[int, int, str] | None, now: datetime) -> datetime | None:
    """When the quiet hours holding at ``now`` end (UTC), or None when ``now`` is outside them.

    ``quiet`` is (start, end) in minutes after local midnight and an IANA zone, read in that
    zone on the day in question (so daylight saving moves them with the clock). The start is
    inside, the end outside; they may wrap midnight.
    """
    if quiet is None:
        return None
    start, end, tz = quiet
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    minute = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
    if start < end:
        inside, ends_tomorrow = start <= minute < end, False
    else:
        inside, ends_tomorrow = minute >= start or minute < end, minute >= start
    if not inside:
        return None
    day = local.date() + timedelta(days=1 if ends_tomorrow else 0)
    # A wall time that falls in a spring-forward gap is read with the offset before the gap,
    # which lands just after it: quiet hours never end early.
    ends = datetime.combine(day, time(end // 60, end % 60), tzinfo=zone)
    if ends.astimezone(UTC) <= now:
        # In the hour that repeats when clocks fall back, the end is its second showing.
        ends = ends.replace(fold=1)
    return max(ends.astimezone(UTC), now)


# -- rows ----------------------------------------------------------------------------------
def _subscribe(row: Device, subscription: dict) -> None:
    """Copy the subscription into the columns targeting filters on."""
    row.subscription = subscription
    area = subscription["area"]
    if area is None:
        row.area_lon = row.area_lat = row.area_radius_m = None
        row.min_lon = row.min_lat = row.max_lon = row.max_lat = None
    else:
        row.area_lon, row.area_lat, row.area_radius_m = area["lon"], area["lat"], area["radius_m"]
        boxes = search_boxes_deg(area["lon"], area["lat"], area["radius_m"])
        # One box per area: one split at the antimeridian becomes the whole band of latitude.
        row.min_lon = min(box[0] for box in boxes) if len(boxes) == 1 else -180.0
        row.max_lon = max(box[2] for box in boxes) if len(boxes) == 1 else 180.0
        row.min_lat = min(box[1] for box in boxes)
        row.max_lat = max(box[3] for box in boxes)
    row.categories_mask = sum(1 << CATEGORIES.index(name) for name in subscription["categories"])
    row.min_severity_rank = SEVERITIES.index(subscription["min_severity"])
    quiet = subscription["quiet_hours"]
    if quiet is None:
        row.quiet_start_min = row.quiet_end_min = row.quiet_tz = None
    else:
        row.quiet_start_min = _minutes(quiet["start"], "start")
        row.quiet_end_min = _minutes(quiet["end"], "end")
        row.quiet_tz = quiet["tz"]


def _follow(session: Session, device_id: str, group_ids: list[str]) -> None:
    session.add_all(DeviceGroup(device_id=device_id, group_id=key) for key in group_ids)


def _owned(session: Session, device_id: str, secret: str | None, *,
           lock: bool = True) -> Device:
    """The device (locked for change unless not ``lock``) if ``secret`` is its secret; a
    wrong secret and an unknown id answer alike (401), so secrets cannot be used to probe
    for ids."""
    if not secret:
        raise NotAuthenticated("send the device secret as Authorization: Bearer <secret>")
    try:
        key = existing_id(device_id, "device")
    except NotFound:
        raise NotAuthenticated("unknown device or wrong device secret") from None
    row = session.get(Device, key, with_for_update=lock)
    if row is None or not hmac.compare_digest(row.secret_sha256, _sha256(secret)):
        raise NotAuthenticated("unknown device or wrong device secret")
    return row


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _view(row: Device) -> DeviceView:
    return DeviceView(id=row.id, platform=row.platform, subscription=row.subscription,
                      active=row.active, created_at=row.created_at)
