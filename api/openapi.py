"""The OpenAPI (Swagger 2.0) models, derived from the marshmallow schemas by apispec.

flask-restx draws the documents; apispec's marshmallow plugin turns each schema in
:mod:`api.schemas` into the JSON schema flask-restx shows, so a payload is defined once.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask_restx import Namespace
from marshmallow import Schema

_PLUGIN = MarshmallowPlugin()
_SPEC = APISpec(
    title="Blockwatch", version="1", openapi_version="2.0", plugins=[_PLUGIN]
)


def _register(schema: type[Schema]) -> str:
    name = schema.__name__
    if name not in _SPEC.components.schemas:
        _SPEC.components.schema(name, schema=schema)
    return name


def definitions() -> dict[str, Any]:
    """Every JSON schema registered so far, nested ones included, by name."""
    return _SPEC.to_dict().get("definitions", {})


def model(namespace: Namespace, schema: type[Schema]):
    """The flask-restx model of a marshmallow schema, for ``expect`` and ``response``."""
    name = _register(schema)
    if name in namespace.models:
        return namespace.models[name]
    return namespace.schema_model(name, definitions()[name])


@cache
def query_params(schema: type[Schema]) -> dict[str, dict[str, Any]]:
    """The query parameters a schema reads, as ``Namespace.doc(params=...)`` takes them."""
    params = _PLUGIN.converter.schema2parameters(schema, location="query")
    for param in params:
        param.pop("example", None)  # Swagger 2.0 has no examples on query parameters
    return {param.pop("name"): param for param in params}


# What the shared write plumbing answers (``http.authenticated_actor`` and ``http.body``),
# whichever write it serves.
_WRITE_ERRORS = (
    (400, "Malformed JSON or header"),
    (401, "No or bad token"),
    (413, "Body too large"),
    (415, "Body not application/json"),
    (429, "Too many writes; see Retry-After"),
)


def write_errors(namespace: Namespace, problem_schema: type[Schema]):
    """Decorator documenting a write's bearer security and the statuses every write may get."""
    problem = model(namespace, problem_schema)

    def decorate(method):
        for code, description in _WRITE_ERRORS:
            method = namespace.response(code, description, problem)(method)
        return namespace.doc(security="bearer")(method)

    return decorate
