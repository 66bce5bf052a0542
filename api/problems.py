"""Errors as RFC 9457 problem details (``application/problem+json``), whatever raised them.

Domain errors from the services, marshmallow validation errors, werkzeug's HTTP errors (404,
405, 413, 415, ...) and anything unexpected (a 500, logged) all leave as the same shape:
``{"type", "title", "status", "detail", "errors"}``.
"""

from __future__ import annotations

from http import HTTPStatus

from flask import Response, current_app, json
from marshmallow import ValidationError as SchemaValidationError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from api.ratelimit import TooManyWrites
from blockwatch.domain import DomainError, PreconditionFailed

PROBLEM_JSON = "application/problem+json"


def problem(
    status: int,
    detail: str,
    errors: dict[str, list[str]] | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A problem+json response."""
    body = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def flatten(messages, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as ``{"field.sub": ["message"]}`` (under ``prefix``)."""
    if isinstance(messages, list):
        return {prefix or "_schema": [str(m) for m in messages]}
    flat: dict[str, list[str]] = {}
    for key, value in messages.items():
        name = str(key) if not prefix else f"{prefix}.{key}"
        if key == "_schema" and prefix:
            name = prefix
        for field, texts in flatten(value, name).items():
            flat.setdefault(field, []).extend(texts)
    return flat


def problem_for(error: BaseException) -> Response:
    """The problem response for any exception."""
    if isinstance(error, DomainError):
        headers = {}
        if isinstance(error, PreconditionFailed):
            headers["ETag"] = f'"{error.current_version}"'
        if error.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="blockwatch"'
        return problem(error.status, error.detail, error.errors, error.title, headers)
    if isinstance(error, SchemaValidationError):
        errors = flatten(error.messages)
        detail = "; ".join(f"{field}: {' '.join(texts)}" for field, texts in errors.items())
        return problem(422, detail, errors, "Invalid field values")
    if isinstance(error, TooManyWrites):
        return problem(429, error.description or "", headers={
            "Retry-After": str(error.retry_after_s)})
    if isinstance(error, HTTPException):
        headers = {}
        if error.code == 405 and error.valid_methods:
            headers["Allow"] = ", ".join(sorted(error.valid_methods))
        return problem(error.code or 500, error.description or "", headers=headers)
    if isinstance(error, OperationalError):
        current_app.logger.error("database unavailable: %s", error)
        return problem(503, "the database is unavailable; try again shortly",
                       headers={"Retry-After": "5"})
    current_app.logger.exception("unexpected error", exc_info=error)
    return problem(500, "the server failed; the error is logged")
