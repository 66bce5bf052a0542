"""The write budget: how many writes a client may make in a window, counted by ``limits``.

Only writes are counted, at the moment their actor is known (reads pay nothing): per account
for a valid token, per address otherwise, so invented tokens share their address's budget.
"""

from __future__ import annotations

from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from werkzeug.exceptions import TooManyRequests


class TooManyWrites(TooManyRequests):
    """429: the budget is spent; ``retry_after_s`` always frees it again."""

    def __init__(self, limit: str, retry_after_s: int) -> None:
        super().__init__(f"too many writes: at most {limit}")
        self.retry_after_s = retry_after_s


class WriteBudget:
    """``setting`` like ``"120 per minute"``; ``storage_uri`` ``memory://`` (per worker) or a
    shared store such as ``redis://127.0.0.1:6379/0`` (with the redis client installed)."""

    def __init__(self, setting: str, storage_uri: str = "memory://") -> None:
        self._item = parse(setting)
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))

    def spend(self, key: str) -> None:
        """Count one write for ``key``; :class:`TooManyWrites` when the budget is spent."""
        if not self._limiter.hit(self._item, key):
            raise TooManyWrites(str(self._item), self._item.get_expiry())
