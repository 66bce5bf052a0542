"""Running the HTTP API: gunicorn when it is installed, Werkzeug's development server (with a
warning saying so) when it is not.

The API package is imported only here, when serving, so the domain library never depends on
Flask (``api`` -> ``blockwatch``, never back).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys


def serve(host: str, port: int, workers: int = 2, threads: int = 4) -> None:
    """Serve ``api.create_app()`` until interrupted."""
    if importlib.util.find_spec("gunicorn") is None:
        print(
            "gunicorn is not installed: serving with Werkzeug's development server, which is "
            "not for production (pip install 'blockwatch[serve]' for gunicorn)",
            file=sys.stderr,
        )
        from werkzeug.serving import run_simple

        app = importlib.import_module("api").create_app()
        run_simple(host, port, app, threaded=True)
        return
    from gunicorn.app.base import BaseApplication

    class _Gunicorn(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("accesslog", "-")

        def load(self):
            return importlib.import_module("api").create_app()

    _Gunicorn().run()
