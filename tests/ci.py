"""Skips that cannot hide a failure on CI.

Outside CI a test may skip when something it needs is missing (PostgreSQL, Node.js, the public
data in ``../shared/data``). On CI all of it is there, so a skip would hide a broken test or
setup: with ``CI`` set (to anything but an empty value, ``0``, ``false`` or ``no``) the same
call fails the test instead.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

_NOT_SET = {"", "0", "false", "no"}


def on_ci() -> bool:
    """Whether the environment says this run is CI."""
    return os.environ.get("CI", "").strip().lower() not in _NOT_SET


def skip_unless_ci(reason: str) -> NoReturn:
    """Skip the test with ``reason``, or fail it with the same reason on CI."""
    if on_ci():
        pytest.fail(reason)
    pytest.skip(reason)
