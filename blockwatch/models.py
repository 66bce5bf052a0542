"""The tables: SQLAlchemy 2 declarative models for both SQLite and PostgreSQL.

Synced rows (groups, alerts, tips) carry ``seq``: the database-wide change counter stamped in the
writing transaction (see :mod:`blockwatch.changelog`). An entity's ``version`` is its ``seq``.
Geometry is stored as GeoJSON text plus its bounding box; spatial questions are answered by the
``geo`` indexes in memory, so both databases give the same answers.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from blockwatch.types import UTCDateTime

UUID_LENGTH = 36


class Base(DeclarativeBase):
    """Declarative base of every Blockwatch table."""


class SyncState(Base):
    """One row: the change counter, the id of this database (cursors name it) and the purge
    horizon (the highest ``seq`` whose tombstones may have been purged)."""

    __tablename__ = "sync_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    server_id: Mapped[str] = mapped_column(String(UUID_LENGTH), nullable=False)
    purged_through_seq: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    #: The key sync cursors are signed with (hex), made with the database so every process of
    #: one server shares it; ``BLOCKWATCH_SYNC_SECRET`` overrides it.
    cursor_secret: Mapped[str | None] = mapped_column(String(64))


class Account(Base):
    """A person (or a service) who can hold tokens: a display name, and admin or not."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(120), nullable=False, unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)

    memberships: Mapped[list[Membership]] = relationship(back_populates="account")


class Token(Base):
    """A bearer token: only its SHA-256 is stored; it may expire and may be revoked."""

    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    token_sha256: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Group(Base):
    """A block watch group: its boundary (GeoJSON text and bbox) and what neighbours read."""

    __tablename__ = "groups"

    id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    boundary_geojson: Mapped[str] = mapped_column(Text, nullable=False)
    min_lon: Mapped[float] = mapped_column(Float, nullable=False)
    min_lat: Mapped[float] = mapped_column(Float, nullable=False)
    max_lon: Mapped[float] = mapped_column(Float, nullable=False)
    max_lat: Mapped[float] = mapped_column(Float, nullable=False)
    centroid_lon: Mapped[float] = mapped_column(Float, nullable=False)
    centroid_lat: Mapped[float] = mapped_column(Float, nullable=False)
    area_m2: Mapped[float] = mapped_column(Float, nullable=False)
    languages: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    meeting_info: Mapped[str] = mapped_column(Text, nullable=False, default="")
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="group", cascade="all, delete-orphan", passive_deletes=True
    )


class Membership(Base):
    """An account's role in a group: ``member`` or ``coordinator`` (a group may have several)."""

    __tablename__ = "memberships"
    __table_args__ = (
        CheckConstraint("role IN ('member', 'coordinator')", name="ck_memberships_role"),
    )

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    group_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)

    account: Mapped[Account] = relationship(back_populates="memberships")
    group: Mapped[Group] = relationship(back_populates="memberships")


class Alert(Base):
    """An alert posted in one group (forever). ``status`` is stored as ``active`` or
    ``cancelled`` (or ``expired`` once swept); an active alert past ``expires_at`` reads as
    expired whether or not it was swept."""

    __tablename__ = "alerts"
    __table_args__ = (
        CheckConstraint(
            "status IN ('active', 'cancelled', 'expired')", name="ck_alerts_status"
        ),
        Index("ix_alerts_group_sent", "group_id", "sent_at"),
        # A sync backfill reads a group's alerts in id order, only what identifies a reader's
        # view of each (sync.pull, alerts.REF_COLUMNS): this index alone answers it, in
        # order, without touching the table (three times faster on SQLite for a 3 km scope).
        Index("ix_alerts_sync", "group_id", "id", "seq", "status", "expires_at", "lon"),
    )

    id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    group_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), nullable=False
    )
    category: Mapped[str] = mapped_column(String(40), nullable=False)
    severity: Mapped[str] = mapped_column(String(20), nullable=False)
    urgency: Mapped[str] = mapped_column(String(20), nullable=False)
    certainty: Mapped[str] = mapped_column(String(20), nullable=False)
    title: Mapped[str] = mapped_column(String(120), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False, default="")
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    author_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL")
    )
    #: SHA-256 of the canonical draft, so a repeated client id is recognised as the same post.
    draft_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    #: The alert as the application's renderer writes it, with its exact location and with
    #: the public (snapped) one, made in the transaction that writes the row (see
    #: :mod:`blockwatch.renderings`); deferred, so loading a row does not carry them.
    rendering_exact: Mapped[str | None] = mapped_column(Text, deferred=True)
    rendering_public: Mapped[str | None] = mapped_column(Text, deferred=True)
    #: ``"<renderer format>/<seq>"`` of the renderings: they are used only while both match.
    rendered_as: Mapped[str | None] = mapped_column(String(120))

    author: Mapped[Account | None] = relationship()


#: The columns of :class:`Alert` that hold its stored renderings, not the alert itself.
ALERT_RENDERING_COLUMNS = ("rendering_exact", "rendering_public", "rendered_as")


class SafetyTip(Base):
    """Crime-prevention advice in one language; ``key`` ties the translations of one tip."""

    __tablename__ = "safety_tips"
    __table_args__ = (UniqueConstraint("key", "language", name="uq_safety_tips_key_language"),)

    id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), nullable=False)
    category: Mapped[str] = mapped_column(String(40), nullable=False, index=True)
    language: Mapped[str] = mapped_column(String(35), nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class Tombstone(Base):
    """A deleted synced entity, kept in the change log until the horizon passes."""

    __tablename__ = "tombstones"
    __table_args__ = (
        CheckConstraint("entity IN ('group', 'alert', 'tip')", name="ck_tombstones_entity"),
    )

    entity: Mapped[str] = mapped_column(String(10), primary_key=True)
    entity_id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    #: For an alert, its group: a replica drops what belongs to groups it holds.
    group_id: Mapped[str | None] = mapped_column(String(UUID_LENGTH))
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    deleted_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class SyncClient(Base):
    """A device's outbox as the server knows it: the last mutation applied for ``client_id``
    (stored in the transaction of the mutation's effects, so a replay changes nothing)."""

    __tablename__ = "sync_clients"

    client_id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    last_mutation_id: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class SyncMutation(Base):
    """The result of one pushed mutation, returned again (as ``duplicate``) when it is replayed.
    Kept as long as tombstones are."""

    __tablename__ = "sync_mutations"

    client_id: Mapped[str] = mapped_column(
        ForeignKey("sync_clients.client_id", ondelete="CASCADE"), primary_key=True
    )
    mutation_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    #: ``{"id": ..., "version": 97}``, with ``"problem": {...}`` when rejected.
    result: Mapped[dict] = mapped_column(JSON, nullable=False)
    #: SHA-256 of the mutation as first sent: a replay must be the same mutation.
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)


class Device(Base):
    """A phone, browser or webhook that gets alerts pushed: where to push (write-only) and what
    it wants. The area is kept with its bounding box, which is what a post's targeting reads
    first; categories are a bit mask (0: all) and the lowest severity a rank, so both filter in
    SQL."""

    __tablename__ = "devices"
    __table_args__ = (
        CheckConstraint("platform IN ('fcm', 'webpush', 'webhook')", name="ck_devices_platform"),
        Index("ix_devices_area_box", "active", "min_lat", "max_lat", "min_lon", "max_lon"),
    )

    id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    platform: Mapped[str] = mapped_column(String(10), nullable=False)
    #: The push address as registered (API.md): never returned by any endpoint.
    push: Mapped[dict] = mapped_column(JSON, nullable=False)
    #: SHA-256 (hex) of the device secret that authorises changing or removing it.
    secret_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    area_lon: Mapped[float | None] = mapped_column(Float)
    area_lat: Mapped[float | None] = mapped_column(Float)
    area_radius_m: Mapped[float | None] = mapped_column(Float)
    min_lon: Mapped[float | None] = mapped_column(Float)
    min_lat: Mapped[float | None] = mapped_column(Float)
    max_lon: Mapped[float | None] = mapped_column(Float)
    max_lat: Mapped[float | None] = mapped_column(Float)
    #: The subscription as the client sent it (area, group_ids, categories, min_severity,
    #: quiet_hours), returned as it was given.
    subscription: Mapped[dict] = mapped_column(JSON, nullable=False)
    categories_mask: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    min_severity_rank: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    #: Quiet hours as minutes after local midnight and an IANA zone (all three or none).
    quiet_start_min: Mapped[int | None] = mapped_column(Integer)
    quiet_end_min: Mapped[int | None] = mapped_column(Integer)
    quiet_tz: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    #: Why it stopped getting pushes (an unregistered token, a 410 from the push service).
    deactivated_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class DeviceGroup(Base):
    """A group a device follows by id (it gets the group's alerts wherever they are)."""

    __tablename__ = "device_groups"

    device_id: Mapped[str] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    group_id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True, index=True)


class Delivery(Base):
    """The transactional outbox: one row per device and message, written in the transaction of
    the alert (or its cancellation) and worked off by ``blockwatch worker``.

    ``state``: ``pending`` (due at ``due_at``; a worker holds it while ``claimed_until`` is in
    the future), ``sent``, ``dead`` (dead-lettered after too many tries, or refused for good),
    ``withdrawn`` (the alert was cancelled before this went out, so it never will) or
    ``dropped`` (the device was deactivated or unsubscribed).

    No foreign keys: an alert to a dense city writes tens of thousands of rows at once, and a
    key check per row (two, on PostgreSQL row triggers) costs more than the write itself.
    Unregistering a device deletes its waiting deliveries and deleting a group those of its
    alerts, in the same transaction; finished rows stay until ``blockwatch purge-deliveries``
    forgets them by age, and the worker treats a delivery whose alert or device is gone as
    dropped. For the same
    reason there is no index by device: a deactivated device's deliveries are dropped as the
    worker reaches them, and unregistering finds the device's waiting rows through the
    ``(state, due_at)`` index.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        # By alert, not unique by (alert, device): every row of a fan-out shares the alert, so
        # this index grows at its end; a message is written once by construction (a post is
        # idempotent, a cancellation happens once under the alert's row lock).
        Index("ix_deliveries_alert", "alert_id", "kind"),
        CheckConstraint("kind IN ('alert', 'cancel')", name="ck_deliveries_kind"),
        Index("ix_deliveries_due", "state", "due_at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    alert_id: Mapped[str] = mapped_column(String(UUID_LENGTH), nullable=False)
    device_id: Mapped[str] = mapped_column(String(UUID_LENGTH), nullable=False)
    kind: Mapped[str] = mapped_column(String(10), nullable=False)
    platform: Mapped[str] = mapped_column(String(10), nullable=False)
    state: Mapped[str] = mapped_column(String(10), nullable=False, default="pending")
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(UUID_LENGTH))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
