"""Accounts, memberships and bearer tokens: who an actor is and what roles they hold.

Tokens are 32 random bytes (``secrets``), shown once and stored only as their SHA-256, with an
optional expiry and revocation.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from blockwatch import changelog
from blockwatch.checks import existing_id
from blockwatch.db import Database
from blockwatch.domain import ROLES, Actor, NotAuthenticated, NotFound, ValidationError
from blockwatch.models import Account, Group, Membership, Token

TOKEN_PREFIX = "bw_"


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def ensure_account(db: Database, display_name: str, *, is_admin: bool = False) -> str:
    """The id of the account with this display name, created if there is none.

    ``is_admin`` only ever grants admin; it never takes it away from an existing account.
    """
    with db.write() as session:
        return _ensure_account(session, display_name, is_admin).id


def set_membership(db: Database, account_id: str, group_id: str, role: str) -> None:
    """Make the account a ``member`` or ``coordinator`` of the group (replacing its role)."""
    with db.write() as session:
        _set_membership(session, account_id, group_id, role, demote=True)


def issue_token(db: Database, account_id: str, *, expires_in: timedelta | None = None) -> str:
    """A new bearer token for the account; the only time it is ever shown."""
    with db.write() as session:
        if session.get(Account, account_id) is None:
            raise NotFound(f"no account {account_id}")
        return _issue_token(session, account_id, expires_in)


def create_token(
    db: Database,
    name: str,
    role: str,
    group_id: str | None = None,
    *,
    expires_in: timedelta | None = None,
) -> str:
    """Create (or reuse by name) an account with ``role`` and return a new token for it, in
    one transaction.

    ``role`` is ``admin``, or ``coordinator`` / ``member`` of ``group_id``. Reusing an account
    adds the role; it never takes one away (a coordinator stays a coordinator).
    """
    if role not in ("admin", *ROLES):
        raise ValidationError.field("role", "must be admin, coordinator or member")
    if role != "admin" and not group_id:
        raise ValidationError.field("group", f"a {role} needs the group they belong to")
    with db.write() as session:
        account = _ensure_account(session, name, role == "admin")
        if role != "admin":
            _set_membership(session, account.id, group_id, role, demote=False)
        return _issue_token(session, account.id, expires_in)


def _ensure_account(session, display_name: object, is_admin: bool) -> Account:
    if not isinstance(display_name, str) or not display_name.strip() or len(
        display_name.strip()
    ) > 120:
        raise ValidationError.field("name", "must be 1 to 120 characters")
    display_name = display_name.strip()
    account = session.scalar(select(Account).where(Account.display_name == display_name))
    if account is None:
        account = Account(
            id=str(uuid.uuid4()), display_name=display_name, is_admin=is_admin,
            created_at=datetime.now(UTC),
        )
        session.add(account)
        session.flush()
    elif is_admin and not account.is_admin:
        account.is_admin = True
    return account


def _set_membership(session, account_id: str, group_id: str, role: str, demote: bool) -> None:
    if role not in ROLES:
        raise ValidationError.field("role", f"must be one of {', '.join(ROLES)}")
    group_id = existing_id(group_id, "group")
    # Rows first, the change counter last (see blockwatch.changelog): no deadlock with edits.
    group = session.get(Group, group_id, with_for_update=True)
    if group is None:
        raise NotFound(f"no group {group_id}")
    membership = session.get(Membership, (account_id, group_id))
    if membership is None:
        session.add(Membership(
            account_id=account_id, group_id=group_id, role=role, created_at=datetime.now(UTC),
        ))
    elif membership.role != role and (demote or role == "coordinator"):
        membership.role = role
    else:
        return
    # member_count is part of the group: a new version tells caches and sync replicas.
    changelog.stamp(session, group)


def _issue_token(session, account_id: str, expires_in: timedelta | None) -> str:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    session.add(Token(
        id=str(uuid.uuid4()), account_id=account_id, token_sha256=_sha256(token),
        created_at=now, expires_at=now + expires_in if expires_in else None,
    ))
    return token


def authenticate(db: Database, token: str | None) -> Actor:
    """The actor a bearer token stands for; the anonymous public when there is no token.

    A token that is unknown, expired or revoked raises :class:`NotAuthenticated`.
    """
    if not token:
        return Actor.anonymous()
    if not isinstance(token, str):
        raise NotAuthenticated("the token is unknown, expired or revoked")
    with db.read() as session:
        rows = session.execute(
            select(
                Account.id, Account.display_name, Account.is_admin, Token.expires_at,
                Token.revoked_at, Membership.group_id, Membership.role,
            )
            .select_from(Token)
            .join(Account, Account.id == Token.account_id)
            .outerjoin(Membership, Membership.account_id == Account.id)
            .where(Token.token_sha256 == _sha256(token))
        ).all()
    now = datetime.now(UTC)
    if not rows or rows[0].revoked_at is not None or (
        rows[0].expires_at is not None and rows[0].expires_at <= now
    ):
        raise NotAuthenticated("the token is unknown, expired or revoked")
    first = rows[0]
    roles = {row.group_id: row.role for row in rows if row.group_id is not None}
    return Actor(first.id, first.display_name, first.is_admin, roles)


def actor_for(db: Database, account_id: str) -> Actor:
    """The actor an account is, with its roles (for the command line and fixtures)."""
    with db.read() as session:
        account = session.get(Account, account_id)
        if account is None:
            raise NotFound(f"no account {account_id}")
        return _actor(session, account)


def _actor(session, account: Account) -> Actor:
    roles = dict(session.execute(
        select(Membership.group_id, Membership.role).where(Membership.account_id == account.id)
    ).all())
    return Actor(account.id, account.display_name, account.is_admin, roles)


def revoke_token(db: Database, token: str) -> bool:
    """Revoke a token; False when it was not known or already revoked."""
    with db.write() as session:
        result = session.execute(
            update(Token)
            .where(Token.token_sha256 == _sha256(token), Token.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
        return result.rowcount == 1
