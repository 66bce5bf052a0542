"""Running the HTTP API: gunicorn when it is installed, Werkzeug's development server (with a
warning saying so) when it is not; and the ``blockwatch serve`` command that does it.

The ``blockwatch`` console script is ``api.serving:main``: the domain's command line
(:mod:`blockwatch.cli`) with ``serve`` and ``worker`` added here, so the domain library never
depends on Flask (``api`` -> ``blockwatch``, never back). The worker lives here because what
it sends is the alert object as the HTTP layer's schema renders it.
"""

from __future__ import annotations

import importlib.util
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

import click

from api import http, schemas
from blockwatch import cli as blockwatch_cli
from blockwatch import renderings
from blockwatch.db import Database
from blockwatch.delivery.worker import (
    DEFAULT_BATCH,
    DEFAULT_LEASE_S,
    Worker,
    transports_from_settings,
)
from blockwatch.domain import Alert

#: Each open live stream (GET /v1/alerts/stream) holds a thread for as long as it is open.
DEFAULT_THREADS = 16


def serve(host: str, port: int, workers: int = 2, threads: int = DEFAULT_THREADS) -> None:
    """Serve ``api.wsgi:app`` (the app, the collector tuned for a server) until interrupted;
    each gunicorn worker imports it after the fork."""
    if importlib.util.find_spec("gunicorn") is None:
        print(
            "gunicorn is not installed: serving with Werkzeug's development server, which is "
            "not for production (pip install 'blockwatch[serve]' for gunicorn)",
            file=sys.stderr,
        )
        from werkzeug.serving import run_simple

        from api.wsgi import app

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
            from api.wsgi import app

            return app

    _Gunicorn().run()


def _install_alert_renderer(db: Database) -> None:
    renderings.install(db, http.alert_renderer())


# Every command's writes store alert renderings (an expiry sweep from cron, demo data).
blockwatch_cli.DATABASE_SETUP.append(_install_alert_renderer)


@blockwatch_cli.cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1),
              help="gunicorn worker processes")
@click.option("--threads", default=DEFAULT_THREADS, show_default=True,
              type=click.IntRange(min=1),
              help="threads per gunicorn worker (each open live stream holds one)")
def serve_command(host: str, port: int, workers: int, threads: int) -> None:
    """Serve the HTTP API on HOST:PORT (gunicorn when installed)."""
    db = blockwatch_cli._database()
    db.migrate()
    _render_stale_alerts(db)
    click.echo(
        f"Blockwatch API on http://{host}:{port}/v1 (docs: http://{host}:{port}/docs), "
        f"database {db.engine.url.render_as_string(hide_password=True)}", err=True,
    )
    db.dispose()
    serve(host, port, workers, threads)


@blockwatch_cli.cli.command("render-alerts")
@click.option("--batch-size", default=renderings.DEFAULT_BATCH, show_default=True,
              type=click.IntRange(1, 100_000), help="alerts rendered per transaction")
def render_alerts_command(batch_size: int) -> None:
    """Render into their rows the alerts whose stored renderings are missing or stale (after
    an upgrade or a bulk load); ``blockwatch serve`` does this at start."""
    db = blockwatch_cli._database()
    try:
        db.migrate()
        _render_stale_alerts(db, batch_size)
    finally:
        db.dispose()


def _render_stale_alerts(db: Database, batch_size: int = renderings.DEFAULT_BATCH) -> None:
    count = renderings.render_stale(db, batch_size)
    click.echo(f"rendered {count} alerts into their rows", err=True)


@blockwatch_cli.cli.command("worker")
@click.option("--once", is_flag=True, help="deliver what is due now, then exit")
@click.option("--batch-size", default=DEFAULT_BATCH, show_default=True,
              type=click.IntRange(1, 5000), help="deliveries claimed per round")
@click.option("--idle-s", default=1.0, show_default=True, type=click.FloatRange(0.05, 60),
              help="rest between rounds when nothing is due")
@click.option("--lease-s", default=DEFAULT_LEASE_S, show_default=True,
              type=click.FloatRange(0.1, 3600),
              help="how long claimed deliveries stay this worker's (then another may retry them)")
def worker_command(once: bool, batch_size: int, idle_s: float, lease_s: float) -> None:
    """Deliver queued alerts and cancellations to devices (FCM, Web Push, webhooks).

    Exits 0 whatever the receivers answered: failures are retried, dead-lettered or deactivate
    the device, and show in GET /v1/admin/delivery and the log.
    """
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # httpx logs every request's url at INFO: webhook urls are the receivers' secrets.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    db = blockwatch_cli._database()
    worker = Worker(db, transports_from_settings(db.settings), render=render_alert,
                    batch_size=batch_size, lease_s=lease_s)
    try:
        if once:
            figures = worker.drain()
            click.echo(f"delivered {figures.sent}, retrying {figures.retried}, "
                       f"dead-lettered {figures.dead}, devices deactivated "
                       f"{figures.deactivated}", err=True)
            return
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        click.echo(f"worker {worker.name} delivering (Ctrl-C to stop)", err=True)
        worker.run(stop, idle_s=idle_s)
    finally:
        db.dispose()


def render_alert(alert: Alert) -> dict[str, Any]:
    """An alert as API.md's alert object: the same schema GET /v1/alerts/{id} answers with."""
    return http.dump(schemas.Alert, alert)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``blockwatch`` console script: the domain's commands plus ``serve``."""
    return blockwatch_cli.main(argv)
