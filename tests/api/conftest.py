"""API test fixtures: a fresh app per test over each database, a client, and tokens."""

from __future__ import annotations

import pytest

from api import create_app
from blockwatch import accounts
from blockwatch.config import Settings
from blockwatch.db import Database


@pytest.fixture
def app(database_url):
    database = Database(database_url, Settings(database_url=database_url, index_staleness_s=0.0))
    application = create_app(
        {"TESTING": True, "database": database, "BLOCKWATCH_RATE_LIMIT_WRITES": "off"}
    )
    yield application
    database.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def db(app):
    """The app's database, for arranging data through the services."""
    return app.extensions["blockwatch.db"]


@pytest.fixture
def tokens(db):
    """Make tokens: ``tokens("coordinator", group_id)`` -> ``{"Authorization": "Bearer ..."}``."""
    made = {"count": 0}

    def make(role: str, group_id: str | None = None) -> dict[str, str]:
        made["count"] += 1
        token = accounts.create_token(db, f"{role} {made['count']}", role, group_id)
        return {"Authorization": f"Bearer {token}"}

    return make
