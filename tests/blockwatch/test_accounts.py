"""Tokens and accounts on both databases."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select

from blockwatch import accounts
from blockwatch.domain import NotAuthenticated, ValidationError
from blockwatch.models import Token
from tests.blockwatch.factories import group


def test_a_token_is_random_shown_once_and_stored_hashed(db):
    g = group(db)
    token = accounts.create_token(db, "Captain", "coordinator", g.id)
    assert token.startswith("bw_") and len(token) >= 3 + 43  # 32 random bytes, base64
    with db.read() as session:
        stored = [row.token_sha256 for row in session.scalars(select(Token))]
    assert hashlib.sha256(token.encode()).hexdigest() in stored
    assert all(token not in value for value in stored)
    actor = accounts.authenticate(db, token)
    assert actor.display_name == "Captain" and actor.coordinates(g.id) and not actor.is_admin


def test_reusing_a_name_reuses_the_account_and_adds_roles(db):
    g1, g2 = group(db, "One"), group(db, "Two", lon=-122.3)
    first = accounts.authenticate(db, accounts.create_token(db, "Sam", "member", g1.id))
    second = accounts.authenticate(db, accounts.create_token(db, "Sam", "coordinator", g2.id))
    assert first.account_id == second.account_id
    assert second.roles == {g1.id: "member", g2.id: "coordinator"}


def test_admin_needs_no_group_others_do(db):
    assert accounts.authenticate(db, accounts.create_token(db, "Root", "admin")).is_admin
    with pytest.raises(ValidationError):
        accounts.create_token(db, "Lost", "coordinator")
    with pytest.raises(ValidationError):
        accounts.create_token(db, "Odd", "overlord")


def test_expired_revoked_and_unknown_tokens_are_refused(db):
    expired = accounts.issue_token(
        db, accounts.ensure_account(db, "Old"), expires_in=timedelta(seconds=-1)
    )
    revoked = accounts.create_token(db, "Gone", "admin")
    assert accounts.revoke_token(db, revoked)
    assert not accounts.revoke_token(db, revoked)
    for token in (expired, revoked, "bw_nonsense"):
        with pytest.raises(NotAuthenticated):
            accounts.authenticate(db, token)
    assert not accounts.authenticate(db, None).is_authenticated
