"""Sync test fixtures: the API tests' app over each database, its test client, its database
and tokens (see ``tests/api/conftest.py``)."""

from __future__ import annotations

from tests.api.conftest import app, client, db, tokens

__all__ = ["app", "client", "db", "tokens"]
