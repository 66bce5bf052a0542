"""Opaque ``next`` tokens for lists: where the previous page stopped."""

from __future__ import annotations

import base64
import json
from typing import Any

from blockwatch.domain import ValidationError


def encode_next(position: list[Any]) -> str:
    """Token for "after this sort position"."""
    raw = json.dumps(position, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_next(token: str | None, arity: int) -> list[Any] | None:
    """The sort position a token names; a token that is not ours is a 422 on ``next``."""
    if token is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        position = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise ValidationError.field("next", "is not a token this server gave out") from error
    if not isinstance(position, list) or len(position) != arity:
        raise ValidationError.field("next", "is not a token this server gave out")
    return position

