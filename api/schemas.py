"""Every payload of the HTTP API, defined once as a marshmallow schema.

Query strings, request bodies and responses are all here; the OpenAPI models shown in the docs
are derived from these classes (see :mod:`api.openapi`), never written a second time.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Any

from marshmallow import (
    EXCLUDE,
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_dump,
    validate,
    validates_schema,
)
from shapely.geometry.base import BaseGeometry

import geo
from blockwatch import live
from blockwatch.checks import are_canonical_uuids
from blockwatch.domain import (
    ALERT_STATUSES,
    CATEGORIES,
    CERTAINTIES,
    SEVERITIES,
    TIP_CATEGORIES,
    URGENCIES,
)

MAX_RADIUS_M = 50_000


class UTCDateTime(fields.DateTime):
    """RFC 3339 in UTC with a ``Z`` (``2026-11-23T18:04:05Z``); input must carry a zone."""

    def _serialize(self, value: datetime | None, attr, obj, **kwargs) -> str | None:
        if value is None:
            return None
        # isoformat is several times faster than strftime (sync renders thousands at once).
        return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")

    def _deserialize(self, value, attr, data, **kwargs) -> datetime:
        parsed = super()._deserialize(value, attr, data, **kwargs)
        if parsed.tzinfo is None:
            raise ValidationError("must carry a time zone, e.g. 2026-11-23T18:04:05Z")
        try:
            return parsed.astimezone(UTC)
        except OverflowError as error:
            raise ValidationError("must lie between the years 1 and 9999 in UTC") from error


def _latitude(**kwargs) -> fields.Float:
    return fields.Float(
        validate=validate.Range(-90, 90), allow_nan=False, metadata={"example": 47.61}, **kwargs
    )


def _longitude(**kwargs) -> fields.Float:
    return fields.Float(
        validate=validate.Range(-180, 180), allow_nan=False, metadata={"example": -122.33},
        **kwargs,
    )


def _radius(default_m: float) -> fields.Float:
    return fields.Float(
        load_default=default_m, allow_nan=False,
        validate=validate.Range(min=0, max=MAX_RADIUS_M, min_inclusive=False),
        metadata={"description": f"metres, greater than 0 and at most {MAX_RADIUS_M}",
                  "exclusiveMinimum": True},
    )


def _limit(default: int, maximum: int) -> fields.Integer:
    return fields.Integer(
        load_default=default, strict=False, validate=validate.Range(1, maximum),
        metadata={"description": f"page size, 1 to {maximum}"},
    )


_NEXT = {"metadata": {"description": "the `next` value of the previous page"}}


# -- query strings ---------------------------------------------------------------------------
class QuerySchema(Schema):
    """Query strings ignore parameters they do not know (cache-busters and the like)."""

    class Meta:
        unknown = EXCLUDE


class NearbyGroupsQuery(QuerySchema):
    lat = _latitude(required=True)
    lon = _longitude(required=True)
    radius_m = _radius(1000.0)
    limit = _limit(20, 100)
    next = fields.String(load_default=None, **_NEXT)


class PointQuery(QuerySchema):
    lat = _latitude(required=True)
    lon = _longitude(required=True)


class BboxQuery(QuerySchema):
    bbox = fields.String(
        required=True,
        metadata={"description": "min_lon,min_lat,max_lon,max_lat", "example":
                  "-122.36,47.60,-122.30,47.63"},
    )
    simplify_m = fields.Float(
        load_default=None, allow_nan=False, validate=validate.Range(0, 1000),
        metadata={"description": "simplify boundaries for drawing, tolerance in metres"},
    )
    limit = _limit(1000, 5000)
    next = fields.String(load_default=None, **_NEXT)

    @post_load
    def _split_bbox(self, data: dict[str, Any], **kwargs) -> dict[str, Any]:
        message = "must be four numbers: min_lon,min_lat,max_lon,max_lat"
        try:
            values = [float(part) for part in data["bbox"].split(",")]
        except ValueError as error:
            raise ValidationError({"bbox": [message]}) from error
        if len(values) != 4 or not all(math.isfinite(v) for v in values):
            raise ValidationError({"bbox": [message]})
        min_lon, min_lat, max_lon, max_lat = values
        if not (-180 <= min_lon <= 180 and -180 <= max_lon <= 180
                and -90 <= min_lat <= max_lat <= 90):
            raise ValidationError({"bbox": [
                "longitudes within ±180, latitudes within ±90, min_lat <= max_lat"
            ]})
        data["bbox"] = (min_lon, min_lat, max_lon, max_lat)
        return data


class NearbyAlertsQuery(QuerySchema):
    lat = _latitude(required=True)
    lon = _longitude(required=True)
    radius_m = _radius(2000.0)
    category = fields.String(load_default=None, validate=validate.OneOf(CATEGORIES))
    since = UTCDateTime(load_default=None, metadata={"description": "only alerts sent since"})
    limit = _limit(20, 100)
    next = fields.String(load_default=None, **_NEXT)


class GroupAlertsQuery(QuerySchema):
    status = fields.String(load_default="active", validate=validate.OneOf(["active", "all"]))
    limit = _limit(20, 100)
    next = fields.String(load_default=None, **_NEXT)


class TipsQuery(QuerySchema):
    category = fields.String(load_default=None, validate=validate.OneOf(TIP_CATEGORIES))
    lang = fields.String(
        load_default=None, validate=validate.Regexp(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$"),
        metadata={"description": "BCP 47 tag; else Accept-Language; else English"},
    )


# -- shared parts ----------------------------------------------------------------------------
class LatLon(Schema):
    """A point as ``{"lat", "lon"}``; in Python it is the ``(lon, lat)`` pair."""

    class Meta:
        unknown = RAISE

    lat = _latitude(required=True)
    lon = _longitude(required=True)

    @pre_dump
    def _from_pair(self, pair, **kwargs) -> dict[str, float]:
        lon, lat = pair
        return {"lat": lat, "lon": lon}

    @post_load
    def _to_pair(self, data: dict[str, float], **kwargs) -> tuple[float, float]:
        return data["lon"], data["lat"]


class PointOut(fields.Nested):
    """A ``(lon, lat)`` pair written as :class:`LatLon` describes it, without a nested schema
    pass per object (alerts are rendered by the thousand in a sync page); documented as
    ``LatLon``."""

    def __init__(self, **kwargs) -> None:
        super().__init__(LatLon, **kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        lon, lat = value
        return {"lat": lat, "lon": lon}


class GeoJSONGeometry(fields.Dict):
    """A GeoJSON geometry object (RFC 7946); checked by the service, which names the problem.
    Shapely geometries are written as RFC 7946 GeoJSON."""

    def _serialize(self, value, attr, obj, **kwargs):
        if isinstance(value, BaseGeometry):
            return geo.to_geojson(value)
        return super()._serialize(value, attr, obj, **kwargs)

    def __init__(self, **kwargs) -> None:
        super().__init__(
            metadata={"description": "GeoJSON Polygon or MultiPolygon, [lon, lat] order",
                      "example": {"type": "Polygon", "coordinates": [[
                          [-122.32, 47.61], [-122.31, 47.61], [-122.31, 47.62],
                          [-122.32, 47.62], [-122.32, 47.61]]]}},
            **kwargs,
        )


class Output(Schema):
    """A response payload: clients must accept fields added later (API.md: add fields freely),
    so the documents never say ``additionalProperties: false`` for them."""

    class Meta:
        unknown = EXCLUDE


class Problem(Output):
    """RFC 9457 problem details, as every error is answered."""

    type = fields.String(metadata={"example": "about:blank"})
    title = fields.String(metadata={"example": "Invalid field values"})
    status = fields.Integer(metadata={"example": 422})
    detail = fields.String()
    errors = fields.Dict(
        keys=fields.String(), values=fields.List(fields.String()),
        metadata={"description": "field name -> messages"},
    )


# -- groups ----------------------------------------------------------------------------------
class Group(Output):
    id = fields.String(metadata={"format": "uuid"})
    name = fields.String()
    description = fields.String()
    boundary = GeoJSONGeometry()
    centroid = PointOut()
    bbox = fields.List(fields.Float(), metadata={
        "description": "[min_lon, min_lat, max_lon, max_lat]"})
    area_m2 = fields.Float()
    languages = fields.List(fields.String())
    meeting_info = fields.String()
    member_count = fields.Integer()
    version = fields.Integer()
    updated_at = UTCDateTime()


class NearbyGroup(Group):
    distance_m = fields.Float(metadata={
        "description": "to the nearest point of the boundary, 0 inside"})


class GroupList(Output):
    items = fields.List(fields.Nested(Group))
    next = fields.String(allow_none=True)


class NearbyGroupList(Output):
    items = fields.List(fields.Nested(NearbyGroup))
    next = fields.String(allow_none=True)


class GroupProperties(Output):
    name = fields.String()
    version = fields.Integer()
    languages = fields.List(fields.String())


class GroupFeature(Output):
    """A group as a GeoJSON Feature, for maps: its boundary and a few properties."""

    type = fields.Constant("Feature", metadata={"example": "Feature"})
    id = fields.String()
    geometry = GeoJSONGeometry()
    properties = fields.Nested(GroupProperties)

    @pre_dump
    def _from_group(self, group, **kwargs) -> dict[str, Any]:
        return {"id": group.id, "geometry": group.boundary, "properties": group}


class GroupFeatureCollection(Output):
    """A page of groups as a GeoJSON FeatureCollection; ``next`` is a foreign member."""

    type = fields.Constant("FeatureCollection", metadata={"example": "FeatureCollection"})
    features = fields.List(fields.Nested(GroupFeature), attribute="items")
    next = fields.String(allow_none=True, metadata={
        "description": "foreign member: the next page, when more groups match"})


class GroupCreate(Schema):
    class Meta:
        unknown = RAISE

    id = fields.UUID(load_default=None)
    name = fields.String(required=True, validate=validate.Length(1, 200))
    description = fields.String(load_default="", validate=validate.Length(max=4000))
    boundary = GeoJSONGeometry(required=True)
    languages = fields.List(fields.String(validate=validate.Length(1, 35)), load_default=["en"])
    meeting_info = fields.String(load_default="", validate=validate.Length(max=4000))


class GroupPatch(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(validate=validate.Length(1, 200))
    description = fields.String(validate=validate.Length(max=4000))
    boundary = GeoJSONGeometry()
    languages = fields.List(fields.String(validate=validate.Length(1, 35)))
    meeting_info = fields.String(validate=validate.Length(max=4000))

    @validates_schema
    def _not_empty(self, data: dict[str, Any], **kwargs) -> None:
        if not data:
            raise ValidationError("give at least one field to change", field_name="_schema")


# -- alerts ----------------------------------------------------------------------------------
class Author(Output):
    id = fields.String(allow_none=True)
    display_name = fields.String()


class AuthorOut(fields.Nested):
    """An alert's author as :class:`Author` describes it, without a nested schema pass."""

    def __init__(self, **kwargs) -> None:
        super().__init__(Author, **kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return {"id": value.id, "display_name": value.display_name}


class Alert(Output):
    id = fields.String(metadata={"format": "uuid"})
    group_id = fields.String(metadata={"format": "uuid"})
    category = fields.String(validate=validate.OneOf(CATEGORIES))
    severity = fields.String(validate=validate.OneOf(SEVERITIES))
    urgency = fields.String(validate=validate.OneOf(URGENCIES))
    certainty = fields.String(validate=validate.OneOf(CERTAINTIES))
    title = fields.String()
    body = fields.String()
    location = PointOut(allow_none=True)
    location_precision = fields.String(
        validate=validate.OneOf(["exact", "approximate"]),
        metadata={"description": "approximate: snapped to about 150 m for public readers"},
    )
    sent_at = UTCDateTime()
    expires_at = UTCDateTime()
    status = fields.String(validate=validate.OneOf(ALERT_STATUSES))
    author = AuthorOut()
    version = fields.Integer()


class NearbyAlert(Alert):
    distance_m = fields.Float(metadata={"description": "from the location this reader is shown"})


class AlertList(Output):
    items = fields.List(fields.Nested(Alert))
    next = fields.String(allow_none=True)


class NearbyAlertList(Output):
    items = fields.List(fields.Nested(NearbyAlert))
    next = fields.String(allow_none=True)


class AlertCreate(Schema):
    class Meta:
        unknown = RAISE

    id = fields.UUID(load_default=None, metadata={"description": "client-made id (offline posts)"})
    category = fields.String(required=True, validate=validate.OneOf(CATEGORIES))
    severity = fields.String(load_default="moderate", validate=validate.OneOf(SEVERITIES))
    urgency = fields.String(load_default="expected", validate=validate.OneOf(URGENCIES))
    certainty = fields.String(load_default="likely", validate=validate.OneOf(CERTAINTIES))
    title = fields.String(required=True, validate=validate.Length(1, 120))
    body = fields.String(load_default="", validate=validate.Length(max=4000))
    location = fields.Nested(LatLon, load_default=None, allow_none=True)
    expires_at = UTCDateTime(load_default=None, metadata={
        "description": "in the future, at most 30 days ahead; default 24 h after sending"})


# -- tips and service ------------------------------------------------------------------------
class Tip(Output):
    id = fields.String(metadata={"format": "uuid"})
    category = fields.String(validate=validate.OneOf(TIP_CATEGORIES))
    language = fields.String()
    title = fields.String()
    body = fields.String()
    updated_at = UTCDateTime()


class TipList(Output):
    items = fields.List(fields.Nested(Tip))
    next = fields.String(allow_none=True)


class Health(Output):
    status = fields.String(metadata={"example": "ok"})
    database = fields.String(metadata={"example": "ok"})


# -- sync (SYNC.md) --------------------------------------------------------------------------
class UUIDList(fields.List):
    """A list of UUID strings. Lists of canonical (lower-case) ids, which is what clients
    send, are taken in one pass; anything else goes through the per-item checks, which name
    the offending item. (A replica's ``have_groups`` holds hundreds.)"""

    def __init__(self, **kwargs) -> None:
        super().__init__(fields.String(metadata={"format": "uuid"}), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if are_canonical_uuids(value):
            return list(value)
        items = super()._deserialize(value, attr, data, **kwargs)
        errors = {
            index: ["must be a UUID"] for index, item in enumerate(items)
            if not _is_uuid(item)
        }
        if errors:
            raise ValidationError(errors)
        return [str(uuid.UUID(item)) for item in items]


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


SYNC_OPS = ("alert.create", "alert.cancel", "group.update")
SYNC_STATUSES = ("applied", "duplicate", "rejected", "conflict")
#: The largest integer every client language holds exactly (JavaScript's Number included).
MAX_SAFE_INTEGER = 2**53 - 1
_UUID_TEXT = {"metadata": {"format": "uuid"}}


class SyncArea(Schema):
    class Meta:
        unknown = RAISE

    lat = _latitude(required=True)
    lon = _longitude(required=True)
    radius_m = fields.Float(
        required=True, allow_nan=False,
        validate=validate.Range(min=0, max=MAX_RADIUS_M, min_inclusive=False),
        metadata={"description": f"metres, greater than 0 and at most {MAX_RADIUS_M}",
                  "example": 3000},
    )


class SyncScope(Schema):
    """The groups whose boundary intersects ``area``, plus ``group_ids``, plus the token's own
    groups; their alerts; tips in ``languages`` (English always comes too, as the fallback)."""

    class Meta:
        unknown = RAISE

    area = fields.Nested(SyncArea, load_default=None, allow_none=True)
    group_ids = UUIDList(load_default=list, validate=validate.Length(max=1000))
    languages = fields.List(
        fields.String(validate=validate.Regexp(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")),
        load_default=lambda: ["en"], validate=validate.Length(max=20),
        metadata={"description": "BCP 47 tags", "example": ["en", "es"]},
    )


class SyncPullRequest(Schema):
    class Meta:
        unknown = RAISE

    cursor = fields.String(load_default=None, allow_none=True, metadata={
        "description": "the cursor of the last page applied; null for a first sync"})
    scope = fields.Nested(SyncScope, required=True)
    have_groups = UUIDList(
        load_default=list, validate=validate.Length(max=10_000),
        metadata={"description": "ids of the groups the replica holds"},
    )
    limit = fields.Integer(load_default=500, strict=True, validate=validate.Range(1, 5000),
                           metadata={"description": "most entities in the page, 1 to 5000"})
    schema_version = fields.Integer(load_default=1, strict=True, validate=validate.Equal(1))


class SyncGroupChanges(Output):
    upserted = fields.List(fields.Nested(Group))
    deleted = fields.List(fields.String(**_UUID_TEXT))


class SyncAlertChanges(Output):
    upserted = fields.List(fields.Nested(Alert))
    deleted = fields.List(fields.String(**_UUID_TEXT))


class SyncTip(Tip):
    key = fields.String(metadata={"description": "ties the translations of one tip"})
    version = fields.Integer()


class SyncTipChanges(Output):
    upserted = fields.List(fields.Nested(SyncTip))
    deleted = fields.List(fields.String(**_UUID_TEXT))


class SyncPullResponse(Output):
    """One page: apply ``removed_groups`` and the deletions, then the upserts, and store the
    cursor, all in one local transaction; pull again at once while ``has_more``."""

    cursor = fields.String(metadata={"description": "opaque; send it with the next pull"})
    has_more = fields.Boolean()
    reset = fields.Boolean(metadata={
        "description": "clear the replica (keep the outbox) before applying this page"})
    groups = fields.Nested(SyncGroupChanges)
    alerts = fields.Nested(SyncAlertChanges)
    tips = fields.Nested(SyncTipChanges)
    removed_groups = fields.List(fields.String(**_UUID_TEXT), metadata={
        "description": "held groups now out of scope: drop each with its alerts"})


class SyncMutation(Schema):
    class Meta:
        unknown = RAISE

    mutation_id = fields.Integer(
        required=True, strict=True, validate=validate.Range(1, MAX_SAFE_INTEGER),
        metadata={"description": "increasing per client_id (at most 2^53 - 1)"},
    )
    op = fields.String(required=True, validate=validate.OneOf(SYNC_OPS))
    base_version = fields.Integer(
        load_default=None, strict=True, validate=validate.Range(0, MAX_SAFE_INTEGER),
        metadata={"description": "group.update: the version the edit was made against"},
    )
    args = fields.Dict(required=True, metadata={
        "description": "alert.create: the fields of a new alert (as POST "
                       "/groups/{id}/alerts takes them) with its group_id and a client-made id; "
                       "alert.cancel: {id}; group.update: {id} and the fields to replace"})


class AlertCreateArgs(AlertCreate):
    group_id = fields.UUID(required=True)


class AlertCancelArgs(Schema):
    class Meta:
        unknown = RAISE

    id = fields.UUID(required=True)


class GroupUpdateArgs(GroupPatch):
    id = fields.UUID(required=True)

    @validates_schema
    def _not_empty(self, data: dict[str, Any], **kwargs) -> None:
        if set(data) <= {"id"}:
            raise ValidationError("give at least one field to change", field_name="_schema")


class SyncPushRequest(Schema):
    class Meta:
        unknown = RAISE

    client_id = fields.UUID(required=True, metadata={
        "description": "made once per installation (and account)"})
    mutations = fields.List(fields.Nested(SyncMutation), required=True,
                            validate=validate.Length(max=500))


class SyncMutationResult(Output):
    mutation_id = fields.Integer()
    status = fields.String(validate=validate.OneOf(SYNC_STATUSES))
    original_status = fields.String(allow_none=True, metadata={
        "description": "on a duplicate: the status the mutation got when first applied"})
    id = fields.String(allow_none=True, metadata={"description": "the entity it changed"})
    version = fields.Integer(allow_none=True, metadata={
        "description": "applied: the entity's new version; conflict: its current version"})
    problem = fields.Nested(Problem, allow_none=True, metadata={
        "description": "rejected: why it can never apply"})
    entity = fields.Nested(Group, allow_none=True, metadata={
        "description": "conflict: the group as it is now"})


class SyncPushResponse(Output):
    results = fields.List(fields.Nested(SyncMutationResult))
    last_mutation_id = fields.Integer(metadata={
        "description": "drop outbox mutations up to this id"})


# -- devices and push (API.md "Devices and push") ------------------------------------------
PLATFORMS = ("fcm", "webpush", "webhook")


class DeviceArea(SyncArea):
    """The circle a device watches: alerts whose (rounded) point lies in it, or whose group's
    boundary reaches into it."""


class QuietHours(Schema):
    """Local times in ``tz``: start inside, end outside; they may wrap midnight."""

    class Meta:
        unknown = RAISE

    start = fields.String(required=True, validate=validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$"),
                          metadata={"example": "22:00"})
    end = fields.String(required=True, validate=validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$"),
                        metadata={"example": "07:00"})
    tz = fields.String(required=True, validate=validate.Length(1, 64),
                       metadata={"description": "IANA time zone",
                                 "example": "America/Los_Angeles"})


class Subscription(Schema):
    """What a device gets: alerts in ``area`` or of ``group_ids``, of ``categories`` (empty:
    all), at least ``min_severity``; during ``quiet_hours`` only severe and extreme at once."""

    class Meta:
        unknown = RAISE

    area = fields.Nested(DeviceArea, load_default=None, allow_none=True)
    group_ids = UUIDList(load_default=list, validate=validate.Length(max=100))
    categories = fields.List(fields.String(validate=validate.OneOf(CATEGORIES)),
                             load_default=list, metadata={"description": "empty: all"})
    min_severity = fields.String(load_default="minor", validate=validate.OneOf(SEVERITIES))
    quiet_hours = fields.Nested(QuietHours, load_default=None, allow_none=True)


_PUSH_DESCRIPTION = (
    "Write-only, never returned. fcm: {\"token\"}; webpush: the browser's subscription "
    "{\"endpoint\", \"keys\": {\"p256dh\", \"auth\"}}; webhook: {\"url\", \"secret\"} (https, "
    "public address; the secret signs every delivery, at least 16 characters)."
)


class DeviceCreate(Schema):
    class Meta:
        unknown = RAISE

    platform = fields.String(required=True, validate=validate.OneOf(PLATFORMS))
    push = fields.Dict(required=True, metadata={"description": _PUSH_DESCRIPTION})
    subscription = fields.Nested(Subscription, required=True)


class DevicePatch(Schema):
    class Meta:
        unknown = RAISE

    push = fields.Dict(metadata={"description": _PUSH_DESCRIPTION})
    subscription = fields.Nested(Subscription)

    @validates_schema
    def _something(self, data: dict, **kwargs) -> None:
        if not data:
            raise ValidationError("send push, subscription or both", "_schema")


class Device(Output):
    id = fields.String(metadata={"format": "uuid"})
    platform = fields.String(validate=validate.OneOf(PLATFORMS))
    subscription = fields.Nested(Subscription)
    active = fields.Boolean(metadata={
        "description": "false once the push service said the address is gone for good; "
                       "a PATCH with a new push address makes it true again"})
    created_at = UTCDateTime()


class DeviceRegistered(Device):
    device_secret = fields.String(metadata={
        "description": "shown once: send it as 'Authorization: Bearer <device_secret>' to "
                       "change or remove the device"})


class PlatformFigures(Output):
    sent = fields.Integer()
    failed_attempts = fields.Integer(metadata={"description": "tries that did not deliver"})
    dead = fields.Integer(metadata={"description": "dead-lettered deliveries"})
    pending = fields.Integer()


class DeadLetter(Output):
    id = fields.Integer()
    alert_id = fields.String(metadata={"format": "uuid"})
    device_id = fields.String(metadata={"format": "uuid"})
    kind = fields.String(validate=validate.OneOf(("alert", "cancel")))
    platform = fields.String(validate=validate.OneOf(PLATFORMS))
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    dead_at = UTCDateTime(allow_none=True)
    idempotency_key = fields.String()


class DeliveryReport(Output):
    queue_depth = fields.Integer(metadata={"description": "deliveries waiting, due or not"})
    due_now = fields.Integer()
    oldest_due_at = UTCDateTime(allow_none=True)
    oldest_due_age_s = fields.Float(allow_none=True, metadata={
        "description": "how long the oldest due delivery has waited"})
    platforms = fields.Dict(keys=fields.String(), values=fields.Nested(PlatformFigures))
    dead_letters = fields.List(fields.Nested(DeadLetter), metadata={
        "description": "the latest 50"})
    inactive_devices = fields.Integer()


# -- the live stream (docs/live-stream.md) ----------------------------------------------
def _event_id(**kwargs) -> fields.Integer:
    """A stream event's id (a change-log number), as a query parameter or a header."""
    return fields.Integer(strict=False, validate=validate.Range(0, live.MAX_SEQ), **kwargs)


class AlertStreamQuery(PointQuery):
    """``lat``, ``lon`` and ``radius_m`` as ``/v1/alerts/nearby`` takes them."""

    radius_m = _radius(2000.0)
    last_event_id = _event_id(
        load_default=None,
        metadata={"description": "the Last-Event-ID header, for EventSource polyfills that "
                  "cannot send it (the header wins when both are sent)"},
    )
    timeout_s = fields.Float(
        load_default=None, allow_nan=False, validate=validate.Range(0, live.MAX_TIMEOUT_S),
        metadata={"description": "end the stream after this many seconds (0: send what is "
                  "already there and end); default: stream until the client disconnects"},
    )


class LastEventIdHeader(Schema):
    """The ``Last-Event-ID`` header an EventSource sends when it reconnects."""

    last_event_id = _event_id(data_key="Last-Event-ID", required=True)
