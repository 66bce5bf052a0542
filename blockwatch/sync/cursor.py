"""Sync cursors: where a replica stands, signed so a client can hold it but not forge it.

A cursor is compact JSON signed with HMAC (itsdangerous) under the server's secret. Its payload
is readable, not secret: that is how a cursor from another server is told apart from a tampered
one (the first gets ``reset``, the second a 400).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from itsdangerous import BadData, URLSafeSerializer

from blockwatch.domain import DomainError

SCHEMA_VERSION = 1
_SALT = "blockwatch.sync.cursor"


class BadCursor(DomainError):
    """A cursor this server signed, altered since (or not a cursor at all): a 400."""

    status = 400
    title = "Bad cursor"


@dataclass(frozen=True)
class Cursor:
    """The position of one replica.

    ``seq``: every change up to it is reflected for the groups the replica holds completely.
    ``group``/``after_alert``: a group being backfilled (its row sent once ``after_alert`` is
    not None; its alerts sent up to that id). ``languages``: tip languages held;
    ``tip_languages``/``after_tip``: a tip backfill under way (``after_dropped_tip``: how far
    the deletions of a language change have gone). ``account``/``admin``/``exact``:
    whom the replica was filled for, and the groups whose alerts it holds with exact locations.
    """

    server_id: str
    seq: int
    schema_version: int = SCHEMA_VERSION
    group: str | None = None
    after_alert: str | None = None
    languages: tuple[str, ...] = ()
    tip_languages: tuple[str, ...] = ()
    after_tip: str | None = None
    after_dropped_tip: str | None = None
    account: str | None = None
    admin: bool = False
    exact: tuple[str, ...] = field(default=())

    def but(self, **changes) -> Cursor:
        """A copy with some fields changed."""
        return replace(self, **changes)


def _serializer(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=_SALT)


def sign(cursor: Cursor, secret: str) -> str:
    """The opaque text a client stores and sends back."""
    payload = {
        "s": cursor.server_id, "v": cursor.schema_version, "q": cursor.seq,
        "g": cursor.group, "ga": cursor.after_alert, "l": list(cursor.languages),
        "tl": list(cursor.tip_languages), "ta": cursor.after_tip,
        "td": cursor.after_dropped_tip, "u": cursor.account, "a": cursor.admin,
        "x": list(cursor.exact),
    }
    return _serializer(secret).dumps(payload)


def read(text: str, secret: str, server_id: str) -> Cursor | None:
    """The cursor in ``text``; None when another server (or another schema version) issued
    it, which the caller answers with a reset. A cursor that claims to be ours but whose
    signature fails is a :class:`BadCursor`."""
    serializer = _serializer(secret)
    try:
        valid, payload = serializer.loads_unsafe(text)
    except (BadData, ValueError, TypeError) as error:  # not even decodable
        raise BadCursor("the cursor is not one this server gave out") from error
    if not isinstance(payload, dict):
        raise BadCursor("the cursor is not one this server gave out")
    if payload.get("s") != server_id:
        return None  # another server's: its signature cannot be checked here, nor need be
    if not valid:
        raise BadCursor("the cursor has been altered")
    if payload.get("v") != SCHEMA_VERSION:
        return None
    try:
        return Cursor(
            server_id=payload["s"], seq=int(payload["q"]), schema_version=payload["v"],
            group=payload["g"], after_alert=payload["ga"], languages=tuple(payload["l"]),
            tip_languages=tuple(payload["tl"]), after_tip=payload["ta"],
            after_dropped_tip=payload["td"],
            account=payload["u"], admin=bool(payload["a"]), exact=tuple(payload["x"]),
        )
    except (KeyError, TypeError, ValueError) as error:  # signed by us but of an older layout
        raise BadCursor("the cursor is not one this server gave out") from error
