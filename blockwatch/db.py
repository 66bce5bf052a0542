"""The database: engines for SQLite or PostgreSQL, one transaction per unit of work, migrations.

``Database.write()`` is the only way to change data: one transaction that commits when the block
ends and rolls back entirely when it raises. On SQLite it starts with ``BEGIN IMMEDIATE`` (one
writer at a time, so change-log numbers become visible in commit order, as SYNC.md requires); on
PostgreSQL writers queue on the change counter's row lock instead (see
:mod:`blockwatch.changelog`).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from blockwatch.config import Settings
from blockwatch.models import SyncState

if TYPE_CHECKING:
    from blockwatch.renderings import AlertRenderer

MIGRATIONS = Path(__file__).with_name("migrations")


def normalise_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (SQLAlchemy would otherwise pick psycopg2).

    >>> normalise_url("postgresql://postgres@127.0.0.1:5432/test")
    'postgresql+psycopg://postgres@127.0.0.1:5432/test'
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


class Database:
    """A Blockwatch database, embedded SQLite by default or PostgreSQL by URL.

    >>> db = Database("sqlite://")  # in memory, for a quick look
    >>> db.migrate()
    >>> from sqlalchemy import select
    >>> with db.read() as session:
    ...     session.scalar(select(SyncState.seq))
    0
    """

    def __init__(self, url: str | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.url = normalise_url(url or self.settings.database_url)
        if make_url(self.url).get_backend_name() == "sqlite":
            self.engine = _sqlite_engine(self.url)
            write_engine = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        else:
            # No pre-ping round trip per checkout on the hot path; a dropped connection fails
            # one request (answered 503), and connections are recycled hourly.
            self.engine = create_engine(self.url, pool_size=10, pool_recycle=3600)
            write_engine = self.engine
        #: Where :meth:`read` sessions run: the engine itself on SQLite; on PostgreSQL a pool
        #: of its own in autocommit. Reads run READ COMMITTED, where each statement sees its own
        #: snapshot anyway, so a read transaction adds only a BEGIN and a COMMIT: two round
        #: trips of the four in a sync page. (A pool of its own, because switching a shared
        #: connection in and out of autocommit costs about as much again.)
        self.read_engine = self.engine
        if self.engine.dialect.name == "postgresql":
            self.read_engine = create_engine(
                self.url, pool_size=10, pool_recycle=3600, isolation_level="AUTOCOMMIT"
            )
        self._reader = sessionmaker(self.read_engine, expire_on_commit=False)
        self._writer = sessionmaker(write_engine, expire_on_commit=False)
        self._spatial = None
        #: How alerts are rendered into their rows as they are written (installed by the
        #: application: :func:`blockwatch.renderings.install`), or None.
        self.alert_renderer: AlertRenderer | None = None

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; whatever it holds is discarded at the end (on PostgreSQL
        each statement is its own READ COMMITTED snapshot, as it would be inside a
        transaction)."""
        with self._reader() as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back whole if it raises."""
        try:
            with self._writer() as session, session.begin():
                yield session
        finally:
            if self._spatial is not None:
                self._spatial.mark_stale()

    def on_commit(self, callback: Callable[[Session], None]) -> None:
        """Call ``callback`` after every commit of a :meth:`write` transaction in this process
        (live streams wake on it instead of waiting for their next poll)."""
        event.listen(self._writer, "after_commit", callback)

    def before_flush(self, callback: Callable[[Session, object, object], None]) -> None:
        """Call ``callback`` before every flush of a :meth:`write` session (SQLAlchemy's
        ``before_flush``: it may still change the rows being flushed)."""
        event.listen(self._writer, "before_flush", callback)

    def migrate(self) -> None:
        """Bring the schema up to the newest migration and make sure the change counter exists."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        with self.write() as session:
            state = session.get(SyncState, 1)
            if state is None:
                state = SyncState(id=1, seq=0, server_id=str(uuid.uuid4()), purged_through_seq=0)
                session.add(state)
            if not state.cursor_secret:
                state.cursor_secret = secrets.token_hex(32)

    @property
    def spatial(self):
        """The in-memory spatial indexes of this database, built on first use."""
        if self._spatial is None:
            from blockwatch.spatial import SpatialIndex

            self._spatial = SpatialIndex(self)
        return self._spatial

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()
