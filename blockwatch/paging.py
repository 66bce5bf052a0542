"""Opaque ``next`` tokens for lists: where the previous page stopped.

A token is the sort position of the last item given, as base64 JSON. It comes back from
clients, so decoding checks every part's type: a token that is not one of ours is a 422 on
``next``, never a crash deeper down.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from blockwatch.checks import is_storable_text
from blockwatch.domain import ValidationError
from geo.coordinates import finite_number

_NOT_OURS = "is not a token this server gave out"


def encode_next(position: list[Any]) -> str:
    """Token for "after this sort position"."""
    raw = json.dumps(position, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_next(token: str | None, kinds: tuple[type, ...]) -> list[Any] | None:
    """The sort position a token names, each part of the type in ``kinds`` (``float`` accepts
    any finite number, ``str`` a string)."""
    if token is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        position = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise ValidationError.field("next", _NOT_OURS) from error
    if not isinstance(position, list) or len(position) != len(kinds):
        raise ValidationError.field("next", _NOT_OURS)
    checked = []
    for value, kind in zip(position, kinds, strict=True):
        if kind is float:
            value = finite_number(value)
            if value is None:
                raise ValidationError.field("next", _NOT_OURS)
        elif not isinstance(value, kind) or (kind is str and not is_storable_text(value)):
            raise ValidationError.field("next", _NOT_OURS)
        checked.append(value)
    return checked
