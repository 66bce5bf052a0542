"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, select, text

from blockwatch.config import Settings
from blockwatch.db import MIGRATIONS, Database, normalise_url
from blockwatch.models import Base, Delivery
from tests.conftest import POSTGRES_URL, _with_search_path


def test_models_and_migrations_agree(db):
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_migrating_twice_is_harmless(db):
    db.migrate()
    db.migrate()
    with db.read() as session:
        from blockwatch.changelog import sync_state

        assert sync_state(session).seq == 0


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    """The URL of a database with no tables at all (a PostgreSQL schema of its own)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    request.getfixturevalue("postgres_schema_url")  # reachable (or skipped, or failed on CI)
    schema = f"bw_migration_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalise_url(POSTGRES_URL))
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield _with_search_path(POSTGRES_URL, schema)
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def test_a_database_made_by_the_released_0003_reaches_the_models_keeping_its_deliveries(
        empty_url):
    """0003 shipped with foreign keys and a unique constraint on deliveries that later code
    dropped: a database created then must be brought to the models by a later revision."""
    db = Database(empty_url, Settings(database_url=empty_url))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    kept = {"alert_id": str(uuid.uuid4()), "device_id": str(uuid.uuid4())}
    try:
        with db.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0003")
        # A sent delivery whose alert and device are gone (as the worker leaves them): the old
        # keys are switched off to write it, as purging its alert would have left it.
        insert = text(
            "INSERT INTO deliveries (alert_id, device_id, kind, platform, state, due_at, "
            "attempts, created_at) VALUES (:alert_id, :device_id, 'alert', 'webhook', 'sent', "
            "'2026-11-24 10:00:00.000000', 1, '2026-11-24 10:00:00.000000')")
        if db.dialect == "postgresql":
            with db.engine.begin() as connection:
                connection.execute(text("SET LOCAL session_replication_role = replica"))
                connection.execute(insert, kept)
        else:
            raw = sqlite3.connect(db.engine.url.database)  # foreign keys off, SQLite's default
            with raw:
                raw.execute(insert.text.replace(":alert_id", "?").replace(":device_id", "?"),
                            (kept["alert_id"], kept["device_id"]))
            raw.close()
        db.migrate()
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
        with db.write() as session:  # no key ties a delivery to an alert or device any more
            session.add(Delivery(alert_id=str(uuid.uuid4()), device_id=str(uuid.uuid4()),
                                 kind="alert", platform="webhook", state="pending",
                                 due_at=datetime.now(UTC), attempts=0,
                                 created_at=datetime.now(UTC)))
        with db.read() as session:
            rows = session.execute(select(Delivery.alert_id, Delivery.state)
                                   .order_by(Delivery.id)).all()
        assert [row.state for row in rows] == ["sent", "pending"]
        assert rows[0].alert_id == kept["alert_id"]
    finally:
        db.dispose()
