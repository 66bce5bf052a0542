"""Schemathesis against the app, inside the test suite: every operation of /v1/openapi.json is
fuzzed from its own documentation, and must never answer 5xx nor break its own response schema.

The app runs over a SQLite database with the demo fixtures loaded, so reads find groups, alerts
and tips. Each operation is its own test (so a finding is pinned to one operation), bounded and
derandomised so the suite stays fast and repeatable. Requests go out as anonymous and as an
admin (who may write everything, so bodies get past authorisation into validation).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from api import create_app
from blockwatch import accounts, fixtures
from blockwatch.config import Settings
from blockwatch.db import Database

#: Every operation the document must offer; compared with the document itself below, so an
#: operation added later cannot go unfuzzed.
OPERATIONS = [
    ("GET", "/admin/delivery"),
    ("GET", "/alerts/nearby"),
    ("GET", "/alerts/stream"),
    ("GET", "/alerts/{alert_id}"),
    ("POST", "/alerts/{alert_id}/cancel"),
    ("POST", "/devices"),
    ("GET", "/devices/{device_id}"),
    ("PATCH", "/devices/{device_id}"),
    ("DELETE", "/devices/{device_id}"),
    ("GET", "/groups"),
    ("POST", "/groups"),
    ("GET", "/groups/at"),
    ("GET", "/groups/nearby"),
    ("GET", "/groups/{group_id}"),
    ("PATCH", "/groups/{group_id}"),
    ("GET", "/groups/{group_id}/alerts"),
    ("POST", "/groups/{group_id}/alerts"),
    ("GET", "/health"),
    ("POST", "/sync/pull"),
    ("POST", "/sync/push"),
    ("GET", "/tips"),
    ("GET", "/tips/{tip_id}"),
]

MAX_EXAMPLES = 25
CHECKS = [not_a_server_error, response_schema_conformance]

#: Operations with query parameters or a body, the only ones negative generation can break
#: (a path parameter is any string, and /health takes nothing).
NEGATIVE_OPERATIONS = {
    ("GET", "/alerts/nearby"),
    ("GET", "/alerts/stream"),
    ("POST", "/devices"),
    ("GET", "/devices/{device_id}"),
    ("PATCH", "/devices/{device_id}"),
    ("DELETE", "/devices/{device_id}"),
    ("GET", "/groups"),
    ("POST", "/groups"),
    ("GET", "/groups/at"),
    ("GET", "/groups/nearby"),
    ("PATCH", "/groups/{group_id}"),
    ("GET", "/groups/{group_id}/alerts"),
    ("POST", "/groups/{group_id}/alerts"),
    ("POST", "/sync/pull"),
    ("POST", "/sync/push"),
    ("GET", "/tips"),
}

#: (method, path, actor, mode) cells that find a bug today, with the reason.
KNOWN_BUGS: dict[tuple[str, str, str, str], str] = {}


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    """An app over a migrated SQLite database holding the demo fixtures."""
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'blockwatch.db'}"
    database = Database(url, Settings(database_url=url, index_staleness_s=0.0))
    database.migrate()
    fixtures.load_fixtures(database)
    application = create_app(
        {"TESTING": True, "database": database, "BLOCKWATCH_RATE_LIMIT_WRITES": "off"}
    )
    application.logger.disabled = True  # expected 5xx findings would flood the output
    yield application
    database.dispose()


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_app):
    return schemathesis.openapi.from_wsgi("/v1/openapi.json", fuzz_app)


@pytest.fixture(scope="module")
def admin_headers(fuzz_app):
    token = accounts.create_token(fuzz_app.extensions["blockwatch.db"], "Fuzz Admin", "admin")
    return {"Authorization": f"Bearer {token}"}


def test_the_fuzzed_operations_are_every_operation_of_the_document(fuzz_schema):
    documented = sorted(
        (method.upper(), path)
        for path, item in fuzz_schema.raw_schema["paths"].items()
        for method in item
        if method != "parameters"
    )
    assert documented == sorted(OPERATIONS)


def _cells():
    for method, path in OPERATIONS:
        for who in ("anonymous", "admin"):
            modes = ["positive"]
            if (method, path) in NEGATIVE_OPERATIONS:
                modes.append("negative")
            for mode in modes:
                marks = []
                reason = KNOWN_BUGS.get((method, path, who, mode))
                if reason is not None:
                    marks.append(pytest.mark.xfail(reason=reason, strict=True))
                yield pytest.param(method, path, who, mode, marks=marks,
                                   id=f"{method} {path} {who} {mode}")


@pytest.mark.parametrize(("method", "path", "who", "mode"), list(_cells()))
def test_operation_never_fails_nor_breaks_its_schema(
    fuzz_schema, admin_headers, method, path, who, mode
):
    operation = fuzz_schema[path][method]
    strategy = operation.as_strategy(
        GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE
    )
    # The WSGI transport does not undo gzip (flask-compress answers large bodies gzipped to
    # schemathesis's default Accept-Encoding), so ask for plain bodies.
    headers = {"Accept-Encoding": "identity", **(admin_headers if who == "admin" else {})}

    @settings(
        max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
        suppress_health_check=list(HealthCheck), print_blob=False,
    )
    @given(case=strategy)
    def fuzz(case):
        if path == "/alerts/stream":  # the backlog, then the end (a live stream never ends)
            case.query = {**(case.query or {}), "timeout_s": 0}
        case.call_and_validate(headers=headers, checks=CHECKS)

    fuzz()
