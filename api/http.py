"""Request and response plumbing shared by the resources: the database and the actor of the
request, parsing query strings and JSON bodies through the schemas, ETags, language choice; how
entities render to JSON text (kept per version in :class:`RenderedCache`), and the alert
renderer whose texts are stored with alert rows (:func:`alert_renderer`)."""

from __future__ import annotations

import functools
import hashlib
import json as _stdlib_json
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from flask import Response, current_app, g, json, request
from marshmallow import Schema
from marshmallow import ValidationError as SchemaValidationError
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge, UnsupportedMediaType

from api import schemas
from blockwatch import __version__, accounts, renderings
from blockwatch.checks import is_storable_text
from blockwatch.db import Database
from blockwatch.domain import Actor, NotAuthenticated

_SCHEMAS: dict[type[Schema], Schema] = {}
# A NUL or a surrogate spelled as a JSON escape, or a surrogate as raw (CESU-style) bytes, which
# json.loads lets through.
_SUSPECT_ESCAPE = re.compile(rb"\\u(0000|[dD][89a-fA-F])|\xed[\xa0-\xbf]")
# If-Match compares strongly (RFC 9110): a weak W/ tag, or anything but our version, is refused.
_STRONG_VERSION_TAG = re.compile(r'"([0-9]{1,18})"', re.ASCII)


def schema(cls: type[Schema]) -> Schema:
    """One instance per schema class (marshmallow schemas are safe to reuse)."""
    instance = _SCHEMAS.get(cls)
    if instance is None:
        instance = _SCHEMAS[cls] = cls()
    return instance


def database() -> Database:
    """The database of the running app."""
    return current_app.extensions["blockwatch.db"]


def actor() -> Actor:
    """Who sent the request: the account of its bearer token, or the anonymous public."""
    if "actor" not in g:
        header = request.headers.get("Authorization")
        token = None
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise NotAuthenticated("use 'Authorization: Bearer <token>'")
        g.actor = accounts.authenticate(database(), token.strip() if token else None)
    return g.actor


def query(cls: type[Schema]) -> dict[str, Any]:
    """The query string, loaded (validated and converted) by a schema."""
    return schema(cls).load(request.args.to_dict(flat=True))


def body(cls: type[Schema]) -> dict[str, Any]:
    """The JSON body, loaded by a schema: 415 if it is not JSON, 400 if it does not parse."""
    if not request.is_json:
        raise UnsupportedMediaType("send the body as application/json")
    raw = request.get_data(cache=True)
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit is not None and len(raw) >= limit:  # a chunked body is cut at the limit, not refused
        raise RequestEntityTooLarge(f"the body may hold at most {limit - 1} bytes")
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise BadRequest(f"the body is not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise BadRequest("the body must be a JSON object")
    # Parsed JSON can hold a NUL or a lone surrogate only through a \u escape or a surrogate's
    # own bytes: a body without either (nearly every body) needs no walk through its strings.
    # (Two substring tests first: they run at memory speed, the regex over a whole sync body
    # costs about as much as parsing it.)
    if (b"\\u" in raw or b"\xed" in raw) and _SUSPECT_ESCAPE.search(raw):
        _check_text(document, "")
    return schema(cls).load(document)


def _check_text(value: Any, path: str) -> None:
    """Every string of a body must be storable text: no NUL (PostgreSQL refuses it) and no lone
    surrogate (it has no UTF-8 form). A 422 names the field."""
    if isinstance(value, str):
        if not is_storable_text(value):
            raise SchemaValidationError(
                {path or "_schema": ["must be text without NUL characters or lone surrogates"]}
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, path)
            _check_text(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_text(item, f"{path}.{index}" if path else str(index))


def authenticated_actor() -> Actor:
    """The actor of a write, its write counted: without a valid token, a 401 (counted against
    the address) before anything else is judged."""
    try:
        who = actor()
    except NotAuthenticated:
        _spend_write("address:" + (request.remote_addr or "unknown"))
        raise
    if not who.is_authenticated:
        _spend_write("address:" + (request.remote_addr or "unknown"))
        raise NotAuthenticated("this needs 'Authorization: Bearer <token>'")
    _spend_write(f"account:{who.account_id}")
    return who


def bearer() -> str | None:
    """The credential of ``Authorization: Bearer <credential>`` as sent (a device secret, say),
    without reading it as an account token; None when there is no such header."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise NotAuthenticated("use 'Authorization: Bearer <device_secret>'")
    return credential.strip()


def anonymous_write() -> None:
    """Count a write that needs no account (registering a device) against the address."""
    _spend_write("address:" + (request.remote_addr or "unknown"))


def _spend_write(key: str) -> None:
    budget = current_app.extensions.get("blockwatch.write_budget")
    if budget is not None:
        budget.spend(key)


class RenderedCache:
    """JSON text of entities by ``(schema, (id, version, *variant))``: an entity's version
    changes with every edit, so a rendering never goes stale; the least recently used make
    room. The inner tuple is what identifies a view of an entity; a sync page asks by
    :class:`blockwatch.alerts.AlertRef`, which is such a tuple, without unpacking it."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._texts: OrderedDict[tuple, str] = OrderedDict()
        self._lock = threading.Lock()

    def text(self, cls: type[Schema], entity: Any, variant: tuple = ()) -> str:
        """``entity`` rendered by ``cls``; ``variant`` names whatever else the rendering
        depends on (an alert's location precision for this reader, its status by the clock)."""
        key = (cls, (entity.id, entity.version, *variant))
        found = self.get(key)
        if found is None:
            found = rendering(cls, entity)
            self.put(key, found)
        return found

    def get_many(self, keys: list[tuple]) -> list[str | None]:
        """:meth:`get` for each key, under one hold of the lock (a sync page asks thousands)."""
        texts, touch = self._texts, self._texts.move_to_end
        found = []
        with self._lock:
            for key in keys:
                text = texts.get(key)
                if text is not None:
                    touch(key)
                found.append(text)
        return found

    def get(self, key: tuple) -> str | None:
        """The rendering kept under ``(schema, (id, version, *variant))``, if any."""
        with self._lock:
            found = self._texts.get(key)
            if found is not None:
                self._texts.move_to_end(key)
            return found

    def put(self, key: tuple, text: str) -> None:
        self.put_many([(key, text)])

    def put_many(self, items: list[tuple[tuple, str]]) -> None:
        """Keep each ``(key, text)``, under one hold of the lock."""
        with self._lock:
            self._texts.update(items)
            while len(self._texts) > self._capacity:
                self._texts.popitem(last=False)


def respond_page(cls: type[Schema], page: Any, distances_m: list[float] | None = None
                 ) -> Response:
    """A ``{"items": [...], "next": ...}`` response whose items are rendered by ``cls``, once
    per entity version (lists of the same groups are the hot path); with ``distances_m``, each
    item also carries its ``distance_m``, after the schema's own fields."""
    rendered: RenderedCache = current_app.extensions["blockwatch.rendered"]
    parts = [rendered.text(cls, item) for item in page.items]
    if distances_m is not None:
        parts = [
            f'{text[:-1]},"distance_m":{distance!r}}}'
            for text, distance in zip(parts, distances_m, strict=True)
        ]
    body = f'{{"items":[{",".join(parts)}],"next":{compact_json(page.next)}}}'
    return Response(body, mimetype="application/json")


def rendering(cls: type[Schema], entity: Any) -> str:
    """``entity`` as the JSON text of ``cls``: what every response carrying it holds."""
    return compact_json(schema(cls).dump(entity))


@functools.cache
def alert_renderer() -> renderings.AlertRenderer:
    """Alerts as every response renders them (:class:`api.schemas.Alert`), for storing with
    their rows. Its format names this release and the text of ``api/schemas.py`` (an edit
    there may change what an alert renders to), and digests a sample alert's renderings (see
    :func:`blockwatch.renderings.renderer_of`): any of them changing makes every stored
    rendering stale."""
    digest = hashlib.sha256(Path(schemas.__file__).read_bytes()).hexdigest()[:12]
    return renderings.renderer_of(functools.partial(rendering, schemas.Alert),
                                  f"{__version__}+{digest}")


def compact_json(value: Any) -> str:
    """``value`` as JSON without the optional spaces (a sync page is mostly such text: each
    space left out is thousands of bytes a page)."""
    return _stdlib_json.dumps(value, separators=(",", ":"))


def dump(cls: type[Schema], obj: Any, many: bool = False) -> Any:
    """An object (or a list) in the shape of a schema."""
    return schema(cls).dump(obj, many=many)


def respond(
    payload: Any,
    status: int = 200,
    *,
    version: int | None = None,
    mimetype: str = "application/json",
    headers: dict[str, str] | None = None,
    body: bytes | str | None = None,
) -> Response:
    """A JSON response (or ``body`` as given); with ``version``, an ``ETag`` and the 304 of
    ``If-None-Match``."""
    if version is not None:
        etag = f'"{version}"'
        if status == 200 and request.method in ("GET", "HEAD") and etag_matches(
            request.headers.get("If-None-Match"), version
        ):
            response = Response(status=304)
            response.headers["ETag"] = etag
            return response
    content = body if body is not None else json.dumps(payload)
    response = Response(content, status=status, mimetype=mimetype)
    if version is not None:
        response.headers["ETag"] = f'"{version}"'
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def etag_matches(header: str | None, version: int) -> bool:
    """Whether an ``If-None-Match`` / ``If-Match`` header names this version (or ``*``)."""
    if not header:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in tags or f'"{version}"' in tags


def if_match_version() -> int | None:
    """The version ``If-Match`` names (``"42"``), or None when the header is absent."""
    header = request.headers.get("If-Match")
    if header is None:
        return None
    match = _STRONG_VERSION_TAG.fullmatch(header.strip())
    if match is None:
        raise BadRequest('If-Match must be the ETag of the version you edited, e.g. "42"')
    return int(match[1])


def preferred_languages(explicit: str | None) -> list[str]:
    """``lang`` if given, else the ``Accept-Language`` languages by quality, else none."""
    if explicit:
        return [explicit]
    return [tag for tag, quality in request.accept_languages if quality > 0 and tag != "*"]
