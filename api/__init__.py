"""The HTTP face of Blockwatch: a Flask app with flask-restx namespaces under ``/v1``.

``create_app(config)`` builds everything (no global state): the database, the API, error
handling as problem+json, gzip, the OpenAPI document at ``/v1/openapi.json`` and Swagger UI at
``/docs``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping
from functools import cached_property
from typing import Any

from flask import Blueprint, Flask, g
from flask_compress import Compress
from flask_restx import Api
from werkzeug.exceptions import HTTPException

from api import http, openapi
from api.problems import problem_for
from api.ratelimit import WriteBudget
from blockwatch import __version__, renderings
from blockwatch.config import Settings
from blockwatch.db import Database

MAX_BODY_BYTES = 1_000_000
DEFAULT_WRITES = "120 per minute"


class BlockwatchApi(Api):
    """flask-restx's Api, answering every error as problem+json and documenting every model."""

    def handle_error(self, e: BaseException):
        return problem_for(e)

    @cached_property
    def __schema__(self) -> dict[str, Any]:
        schema = super().__schema__
        definitions = schema.get("definitions") or {}
        for name, definition in openapi.definitions().items():
            definitions.setdefault(name, definition)
        schema["definitions"] = definitions
        schema["securityDefinitions"] = {
            "bearer": {"type": "apiKey", "in": "header", "name": "Authorization",
                       "description": "Bearer <token>, from `blockwatch create-token`"}
        }
        return schema


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """A Blockwatch app. ``config`` may set ``BLOCKWATCH_DATABASE_URL`` (else the environment's)
    and any Flask setting; ``database`` may hand over a ready :class:`Database`."""
    from api.resources import alerts, devices, groups, service, sync, tips
    from api.resources import stream as _stream  # noqa: F401  (adds /alerts/stream)

    config = dict(config or {})
    app = Flask(__name__)
    app.json.sort_keys = False  # fields in the order the schemas define them
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        RESTX_MASK_SWAGGER=False,
        RESTX_ERROR_404_HELP=False,
        COMPRESS_MIMETYPES=["application/json", "application/geo+json",
                            "application/problem+json", "application/cap+xml"],
        COMPRESS_MIN_SIZE=1024,
        COMPRESS_ALGORITHM=["gzip"],
    )
    database = config.pop("database", None)
    app.config.update(config)
    if database is None:
        settings = Settings.from_env()
        url = app.config.get("BLOCKWATCH_DATABASE_URL", settings.database_url)
        database = Database(url, dataclasses.replace(settings, database_url=url))
    app.extensions["blockwatch.db"] = database
    # Alerts are rendered into their rows as they are written, so a server's first sync of a
    # scope reads texts rather than rendering thousands of alerts (blockwatch.renderings).
    renderings.install(database, http.alert_renderer())
    # Renderings of entities by version, per app (so per database): enough for every group of
    # a large city without evicting on every request.
    app.extensions["blockwatch.rendered"] = http.RenderedCache(
        int(app.config.get("BLOCKWATCH_RENDER_CACHE", 100_000))
    )

    blueprint = Blueprint("v1", __name__, url_prefix="/v1")
    api = BlockwatchApi(
        blueprint, version=__version__, title="Blockwatch API",
        description="Neighborhood Block Watch groups, alerts and safety tips for mobile apps.",
        doc="/docs", default_swagger_filename="openapi.json", catch_all_404s=True,
        validate=False, ordered=True,
    )
    api.add_namespace(groups.ns, path="/groups")
    api.add_namespace(alerts.ns, path="/alerts")
    api.add_namespace(tips.ns, path="/tips")
    api.add_namespace(sync.ns, path="/sync")
    api.add_namespace(devices.ns, path="/devices")
    api.add_namespace(devices.admin, path="/admin")
    api.add_namespace(service.ns, path="")
    app.register_blueprint(blueprint)
    app.add_url_rule("/docs", "docs", api.render_doc)
    app.extensions["blockwatch.api"] = api

    _time_requests(app)
    app.register_error_handler(HTTPException, problem_for)
    app.register_error_handler(Exception, problem_for)
    Compress(app)
    _limit_writes(app)
    return app


def _time_requests(app: Flask) -> None:
    """``Server-Timing: app;dur=<ms>`` on every response: the time spent in the app, which a
    client (or a benchmark) can tell apart from the network's."""

    @app.before_request
    def _start() -> None:
        g.started_at = time.perf_counter()

    @app.after_request
    def _stamp(response):
        started = g.get("started_at")
        if started is not None:
            response.headers["Server-Timing"] = (
                f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
            )
        return response


def _limit_writes(app: Flask) -> None:
    """Writes per account (or per address without a valid token): 429 with ``Retry-After`` past
    ``BLOCKWATCH_RATE_LIMIT_WRITES`` (default 120 per minute; ``off`` turns it off). Counters
    live in memory per worker, or in ``BLOCKWATCH_RATE_LIMIT_STORAGE`` to be shared."""
    setting = app.config.get(
        "BLOCKWATCH_RATE_LIMIT_WRITES",
        os.environ.get("BLOCKWATCH_RATE_LIMIT_WRITES", DEFAULT_WRITES),
    )
    if str(setting).strip().lower() == "off":
        return
    app.extensions["blockwatch.write_budget"] = WriteBudget(setting, app.config.get(
        "BLOCKWATCH_RATE_LIMIT_STORAGE",
        os.environ.get("BLOCKWATCH_RATE_LIMIT_STORAGE", "memory://"),
    ))
