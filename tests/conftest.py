"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from blockwatch.config import Settings
from blockwatch.db import Database, normalise_url
from blockwatch.models import Base
from tests.ci import skip_unless_ci

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real public data sets, ``../shared/data`` from the project root.

    The data is not copied into the project, so a checkout without it skips the tests that need
    it; on CI (``CI=true``) a missing folder is a failure, so the tests cannot silently vanish.
    """
    if not SHARED_DATA.is_dir():
        skip_unless_ci(
            f"../shared/data not present: expected the public data sets at {SHARED_DATA}"
        )
    return SHARED_DATA


# -- databases: every storage, service and API test runs on SQLite and on PostgreSQL ----------
# PostgreSQL comes from BLOCKWATCH_TEST_POSTGRES_URL (default: CI's
# postgresql://postgres@127.0.0.1:5432/test). Each test session works in a schema of its own,
# dropped at the end, so runs never collide. Unreachable PostgreSQL skips those tests, except on
# CI (CI=true), where it fails them.

POSTGRES_URL = os.environ.get(
    "BLOCKWATCH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def _with_search_path(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def postgres_schema_url():
    """A URL whose connections work in a fresh schema of this test session."""
    admin = create_engine(normalise_url(POSTGRES_URL))
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:  # any failure to connect means the same here
        admin.dispose()
        skip_unless_ci(
            f"PostgreSQL is not reachable at {POSTGRES_URL}: {error.__class__.__name__}"
        )
    schema = f"bw_test_{uuid.uuid4().hex[:12]}"
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = _with_search_path(POSTGRES_URL, schema)
    migrated = Database(url, Settings(database_url=url))
    migrated.migrate()
    migrated.dispose()
    yield url
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _empty_postgres(url: str) -> None:
    engine = create_engine(normalise_url(url))
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """The URL of an empty, migrated database of each kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'blockwatch.db'}"
        fresh = Database(url, Settings(database_url=url))
        fresh.migrate()
        fresh.dispose()
        return url
    url = request.getfixturevalue("postgres_schema_url")
    _empty_postgres(url)
    fresh = Database(url, Settings(database_url=url))
    fresh.migrate()  # recreates the counter row the truncation removed
    fresh.dispose()
    return url


@pytest.fixture
def db(database_url):
    """A Database on an empty schema, on SQLite and on PostgreSQL in turn."""
    database = Database(database_url, Settings(database_url=database_url, index_staleness_s=0.0))
    yield database
    database.dispose()
