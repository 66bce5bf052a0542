"""Settings from the environment: every variable starts with ``BLOCKWATCH_``."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_DATABASE_URL = "sqlite:///blockwatch.db"
MIN_TOMBSTONE_HORIZON_DAYS = 90
TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """What a Blockwatch process is configured with.

    ``database_url``: ``BLOCKWATCH_DATABASE_URL``, a SQLAlchemy URL; ``postgresql://...`` is taken
    to mean psycopg 3. ``tombstone_horizon_days``: ``BLOCKWATCH_TOMBSTONE_HORIZON_DAYS``, how long
    deletes stay in the change log (at least 90 by the sync protocol).
    ``index_staleness_s``: ``BLOCKWATCH_INDEX_STALENESS_S``, how old the in-memory spatial index
    may be before a query first catches it up with the change log.
    ``sync_secret``: ``BLOCKWATCH_SYNC_SECRET``, the key sync cursors are signed with; unset, a
    random key made with the database is used (shared by every process of that database).

    Push delivery (``blockwatch worker``): ``fcm_credentials``, ``BLOCKWATCH_FCM_CREDENTIALS``,
    the path of a Firebase service-account key file (unset: FCM devices wait, then are
    dead-lettered); ``fcm_url``, ``BLOCKWATCH_FCM_URL``, FCM's base URL (tests point it at a
    local server); ``vapid_private_key`` and ``vapid_subject``, ``BLOCKWATCH_VAPID_PRIVATE_KEY``
    and ``BLOCKWATCH_VAPID_SUBJECT`` (a ``mailto:`` or ``https:`` contact), for Web Push;
    ``webhook_allow_private``, ``BLOCKWATCH_WEBHOOK_ALLOW_PRIVATE=1``, lets webhooks reach
    private and loopback addresses over plain http (development and tests only);
    ``delivery_max_attempts``, ``BLOCKWATCH_DELIVERY_MAX_ATTEMPTS``, tries before a delivery is
    dead-lettered.

    Live streams: ``stream_heartbeat_s``, ``BLOCKWATCH_STREAM_HEARTBEAT_S``, how often an idle
    stream sends a comment so proxies keep it open.
    """

    database_url: str = DEFAULT_DATABASE_URL
    tombstone_horizon_days: int = MIN_TOMBSTONE_HORIZON_DAYS
    index_staleness_s: float = 0.25
    sync_secret: str | None = None
    fcm_credentials: str | None = None
    fcm_url: str = "https://fcm.googleapis.com"
    vapid_private_key: str | None = None
    vapid_subject: str | None = None
    webhook_allow_private: bool = False
    delivery_max_attempts: int = 8
    stream_heartbeat_s: float = 15.0

    def __post_init__(self) -> None:
        if self.tombstone_horizon_days < MIN_TOMBSTONE_HORIZON_DAYS:
            raise ValueError(
                f"the tombstone horizon must be at least {MIN_TOMBSTONE_HORIZON_DAYS} days "
                "(the sync protocol promises clients that long)"
            )
        if self.delivery_max_attempts < 1:
            raise ValueError("BLOCKWATCH_DELIVERY_MAX_ATTEMPTS must be at least 1")
        if self.stream_heartbeat_s <= 0:
            raise ValueError("BLOCKWATCH_STREAM_HEARTBEAT_S must be greater than 0")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Settings from ``environ`` (default ``os.environ``), defaults for what is unset."""
        env = os.environ if environ is None else environ
        return cls(
            database_url=env.get("BLOCKWATCH_DATABASE_URL", DEFAULT_DATABASE_URL),
            tombstone_horizon_days=int(env.get("BLOCKWATCH_TOMBSTONE_HORIZON_DAYS", "90")),
            index_staleness_s=float(env.get("BLOCKWATCH_INDEX_STALENESS_S", "0.25")),
            sync_secret=env.get("BLOCKWATCH_SYNC_SECRET") or None,
            fcm_credentials=env.get("BLOCKWATCH_FCM_CREDENTIALS") or None,
            fcm_url=env.get("BLOCKWATCH_FCM_URL") or "https://fcm.googleapis.com",
            vapid_private_key=env.get("BLOCKWATCH_VAPID_PRIVATE_KEY") or None,
            vapid_subject=env.get("BLOCKWATCH_VAPID_SUBJECT") or None,
            webhook_allow_private=env.get("BLOCKWATCH_WEBHOOK_ALLOW_PRIVATE", "") in TRUE,
            delivery_max_attempts=int(env.get("BLOCKWATCH_DELIVERY_MAX_ATTEMPTS", "8")),
            stream_heartbeat_s=float(env.get("BLOCKWATCH_STREAM_HEARTBEAT_S", "15")),
        )
