"""Running the HTTP API: gunicorn when it is installed, Werkzeug's development server (with a
warning saying so) when it is not; and the ``blockwatch serve`` command that does it.

The ``blockwatch`` console script is ``api.serving:main``: the domain's command line
(:mod:`blockwatch.cli`) with ``serve`` added here, so the domain library never depends on Flask
(``api`` -> ``blockwatch``, never back).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

import click

from api import create_app
from blockwatch import cli as blockwatch_cli


def serve(host: str, port: int, workers: int = 2, threads: int = 4) -> None:
    """Serve ``api.create_app()`` until interrupted."""
    if importlib.util.find_spec("gunicorn") is None:
        print(
            "gunicorn is not installed: serving with Werkzeug's development server, which is "
            "not for production (pip install 'blockwatch[serve]' for gunicorn)",
            file=sys.stderr,
        )
        from werkzeug.serving import run_simple

        run_simple(host, port, create_app(), threaded=True)
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
            return create_app()

    _Gunicorn().run()


@blockwatch_cli.cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1),
              help="gunicorn worker processes")
@click.option("--threads", default=4, show_default=True, type=click.IntRange(min=1),
              help="threads per gunicorn worker")
def serve_command(host: str, port: int, workers: int, threads: int) -> None:
    """Serve the HTTP API on HOST:PORT (gunicorn when installed)."""
    db = blockwatch_cli._database()
    db.migrate()
    click.echo(
        f"Blockwatch API on http://{host}:{port}/v1 (docs: http://{host}:{port}/docs), "
        f"database {db.engine.url.render_as_string(hide_password=True)}", err=True,
    )
    db.dispose()
    serve(host, port, workers, threads)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``blockwatch`` console script: the domain's commands plus ``serve``."""
    return blockwatch_cli.main(argv)
