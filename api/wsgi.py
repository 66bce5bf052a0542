"""The WSGI entry point of a server process: ``gunicorn 'api.wsgi:app'`` (``blockwatch serve``
does the same), the app plus what a long-lived server process wants of the interpreter.

The one process setting is the cycle collector's first threshold. A server holds hundreds of
thousands of long-lived objects (the spatial indexes, the cached views and renderings), and a
sync page allocates thousands of short-lived rows and refs: at Python's default (a collection
every 700 net allocations) the collector keeps walking the long-lived heap, a third of a
large page's time when measured. ``BLOCKWATCH_GC_GEN0_THRESHOLD`` sets it (50,000 by default,
0 leaves Python's own); the older generations keep Python's ratios, so nothing is postponed
for long and cyclic garbage is still collected.
"""

from __future__ import annotations

import gc
import os

from api import create_app

DEFAULT_GC_GEN0_THRESHOLD = 50_000


def tune_collector(environ: os._Environ | dict[str, str] = os.environ) -> None:
    """Set the collector's first threshold from ``BLOCKWATCH_GC_GEN0_THRESHOLD``."""
    text = environ.get("BLOCKWATCH_GC_GEN0_THRESHOLD", str(DEFAULT_GC_GEN0_THRESHOLD))
    try:
        threshold = int(text)
    except ValueError:
        raise ValueError(
            f"BLOCKWATCH_GC_GEN0_THRESHOLD must be a whole number, not {text!r}"
        ) from None
    if threshold > 0:
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(threshold, older, oldest)


tune_collector()
app = create_app()
