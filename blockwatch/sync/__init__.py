"""Offline sync (SYNC.md): the server side of pull and push, and the Python client.

:mod:`blockwatch.sync.pull` and :mod:`blockwatch.sync.push` are what ``/v1/sync/*`` call;
:class:`SyncClient` keeps a local SQLite replica of a scope and an outbox of offline changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from blockwatch.sync.client import SyncClient, SyncError

__all__ = ["SyncClient", "SyncError"]


def __getattr__(name: str) -> Any:
    # The client (and httpx) load only when asked for: the server never needs them.
    if name in __all__:
        from blockwatch.sync import client

        return getattr(client, name)
    raise AttributeError(name)
