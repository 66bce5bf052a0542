"""Settings from the environment: every variable starts with ``BLOCKWATCH_``."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_DATABASE_URL = "sqlite:///blockwatch.db"
MIN_TOMBSTONE_HORIZON_DAYS = 90


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
    """

    database_url: str = DEFAULT_DATABASE_URL
    tombstone_horizon_days: int = MIN_TOMBSTONE_HORIZON_DAYS
    index_staleness_s: float = 0.25
    sync_secret: str | None = None

    def __post_init__(self) -> None:
        if self.tombstone_horizon_days < MIN_TOMBSTONE_HORIZON_DAYS:
            raise ValueError(
                f"the tombstone horizon must be at least {MIN_TOMBSTONE_HORIZON_DAYS} days "
                "(the sync protocol promises clients that long)"
            )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Settings from ``environ`` (default ``os.environ``), defaults for what is unset."""
        env = os.environ if environ is None else environ
        return cls(
            database_url=env.get("BLOCKWATCH_DATABASE_URL", DEFAULT_DATABASE_URL),
            tombstone_horizon_days=int(env.get("BLOCKWATCH_TOMBSTONE_HORIZON_DAYS", "90")),
            index_staleness_s=float(env.get("BLOCKWATCH_INDEX_STALENESS_S", "0.25")),
            sync_secret=env.get("BLOCKWATCH_SYNC_SECRET") or None,
        )
