"""The service itself (API.md, Service): health, the OpenAPI document (complete enough for a
client generator or a fuzzer), Swagger UI, gzip."""

from __future__ import annotations

import gzip
import json
import re

import jsonschema
import pytest
import shapely
from flask_restx.schemas import OAS_20

from blockwatch import accounts, fixtures, tips
from blockwatch.config import Settings
from blockwatch.db import Database
from tests.api.helpers import app_over, assert_problem, make_alert, make_group

#: Every operation of API.md but sync, devices and the delivery report (not built): method and
#: path under /v1 -> the query parameters it reads and the 4xx statuses it documents.
OPERATIONS = {
    ("GET", "/groups/nearby"): ({"lat", "lon", "radius_m", "limit", "next"}, {"422"}),
    ("GET", "/groups/at"): ({"lat", "lon"}, {"422"}),
    ("GET", "/groups"): ({"bbox", "simplify_m", "limit", "next"}, {"422"}),
    ("GET", "/groups/{group_id}"): (set(), {"404"}),
    ("POST", "/groups"): (set(), {"401", "403", "422"}),
    ("PATCH", "/groups/{group_id}"): (set(), {"401", "403", "404", "412", "422", "428"}),
    ("GET", "/alerts/nearby"): (
        {"lat", "lon", "radius_m", "category", "since", "limit", "next"}, {"422"}),
    ("GET", "/groups/{group_id}/alerts"): ({"status", "limit", "next"}, {"404", "422"}),
    ("POST", "/groups/{group_id}/alerts"): (set(), {"401", "403", "404", "409", "422"}),
    ("GET", "/alerts/{alert_id}"): (set(), {"404"}),
    ("POST", "/alerts/{alert_id}/cancel"): (set(), {"401", "403", "404"}),
    ("GET", "/tips"): ({"category", "lang"}, {"422"}),
    ("GET", "/tips/{tip_id}"): (set(), {"404"}),
    ("GET", "/health"): (set(), set()),
    ("POST", "/sync/pull"): (set(), {"400", "401", "422"}),
    ("POST", "/sync/push"): (set(), {"401", "403", "422"}),
    ("GET", "/alerts/stream"): ({"lat", "lon", "radius_m", "last_event_id", "timeout_s"},
                                {"422"}),
    ("POST", "/devices"): (set(), {"422", "429"}),
    ("GET", "/devices/{device_id}"): (set(), {"401"}),
    ("PATCH", "/devices/{device_id}"): (set(), {"401", "422"}),
    ("DELETE", "/devices/{device_id}"): (set(), {"401"}),
    ("GET", "/admin/delivery"): (set(), {"401", "403"}),
}
#: Operations whose success is not a JSON object: an event stream, an empty 204.
NOT_JSON_OBJECTS = {("GET", "/alerts/stream"), ("DELETE", "/devices/{device_id}")}
REQUIRED_QUERY = {"lat", "lon", "bbox"}
BODIES = {
    ("POST", "/groups"): ("GroupCreate", {"name", "boundary"}),
    ("PATCH", "/groups/{group_id}"): ("GroupPatch", set()),
    ("POST", "/groups/{group_id}/alerts"): ("AlertCreate", {"category", "title"}),
    ("POST", "/sync/pull"): ("SyncPullRequest", {"scope"}),
    ("POST", "/sync/push"): ("SyncPushRequest", {"client_id", "mutations"}),
    ("POST", "/devices"): ("DeviceCreate", {"platform", "push", "subscription"}),
    ("PATCH", "/devices/{device_id}"): ("DevicePatch", set()),
}


@pytest.fixture(scope="module")
def document(tmp_path_factory):
    """The document does not depend on the data, so one (over SQLite) serves every check."""
    url = f"sqlite:///{tmp_path_factory.mktemp('openapi') / 'blockwatch.db'}"
    database = Database(url, Settings(database_url=url))
    try:
        response = app_over(database).test_client().get("/v1/openapi.json")
    finally:
        database.dispose()
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def test_the_document_is_served_the_same_over_each_database(client, document):
    assert client.get("/v1/openapi.json").get_json() == document


def _operation(document, method, path):
    return document["paths"][path][method.lower()]


def _parameters(document, method, path):
    item = document["paths"][path]
    return [*item.get("parameters", []), *_operation(document, method, path).get("parameters", [])]


def _resolve(document, schema):
    ref = schema.get("$ref")
    if ref is None:
        return schema
    assert ref.startswith("#/definitions/"), ref
    return document["definitions"][ref.removeprefix("#/definitions/")]


# -- health ---------------------------------------------------------------------------------
def test_health_is_ok(client):
    response = client.get("/v1/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_health_is_503_when_the_database_is_unreachable(tmp_path):
    url = f"sqlite:///{tmp_path / 'missing' / 'dir' / 'blockwatch.db'}"
    database = Database(url, Settings(database_url=url))
    try:
        response = app_over(database).test_client().get("/v1/health")
    finally:
        database.dispose()
    assert response.status_code == 503
    assert response.get_json()["status"] != "ok"
    assert response.get_json()["database"] != "ok"


# -- the OpenAPI document -------------------------------------------------------------------
def test_openapi_is_a_swagger_2_document_of_v1(document):
    assert document["swagger"] == "2.0"
    assert document["basePath"] == "/v1"
    assert document["info"]["title"] and document["info"]["version"]
    assert "bearer" in document["securityDefinitions"]


def test_openapi_has_every_operation_of_the_contract(document):
    documented = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item if method != "parameters"
    }
    assert documented == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), sorted(OPERATIONS))
def test_openapi_documents_every_query_parameter(document, method, path):
    expected, _ = OPERATIONS[(method, path)]
    query = {p["name"]: p for p in _parameters(document, method, path) if p["in"] == "query"}
    assert set(query) == expected
    for name, parameter in query.items():
        assert parameter["type"] in ("number", "integer", "string"), parameter
        assert parameter.get("required", False) == (name in REQUIRED_QUERY), parameter


@pytest.mark.parametrize(("method", "path"), sorted(OPERATIONS))
def test_openapi_documents_path_parameters(document, method, path):
    names = set(re.findall(r"{(\w+)}", path))
    documented = {p["name"]: p for p in _parameters(document, method, path) if p["in"] == "path"}
    assert set(documented) == names
    assert all(p["required"] is True and p["type"] == "string" for p in documented.values())


def test_openapi_documents_ranges_and_choices(document):
    nearby = {p["name"]: p for p in _parameters(document, "GET", "/alerts/nearby")}
    assert (nearby["lat"]["minimum"], nearby["lat"]["maximum"]) == (-90, 90)
    assert (nearby["lon"]["minimum"], nearby["lon"]["maximum"]) == (-180, 180)
    assert nearby["radius_m"]["maximum"] == 50000
    assert (nearby["limit"]["minimum"], nearby["limit"]["maximum"]) == (1, 100)
    assert "fire" in nearby["category"]["enum"]
    bbox = {p["name"]: p for p in _parameters(document, "GET", "/groups")}
    assert bbox["limit"]["maximum"] == 5000
    status = {p["name"]: p for p in _parameters(document, "GET", "/groups/{group_id}/alerts")}
    assert set(status["status"]["enum"]) >= {"active", "all"}


def test_openapi_radius_m_excludes_zero(document):
    for path in ("/groups/nearby", "/alerts/nearby"):
        radius = {p["name"]: p for p in _parameters(document, "GET", path)}["radius_m"]
        assert radius["minimum"] > 0 or radius.get("exclusiveMinimum") is True


def test_openapi_documents_the_if_match_header_of_patch(document):
    headers = {p["name"]: p for p in _parameters(document, "PATCH", "/groups/{group_id}")
               if p["in"] == "header"}
    assert headers["If-Match"]["required"] is True


@pytest.mark.parametrize(("method", "path"), sorted(BODIES))
def test_openapi_documents_request_bodies(document, method, path):
    name, required = BODIES[(method, path)]
    [body] = [p for p in _parameters(document, method, path) if p["in"] == "body"]
    schema = _resolve(document, body["schema"])
    assert schema is document["definitions"][name]
    assert set(schema.get("required", [])) == required
    assert schema.get("additionalProperties") is False  # unknown fields are a 422


@pytest.mark.parametrize(("method", "path"), sorted(OPERATIONS))
def test_openapi_documents_success_and_4xx_responses(document, method, path):
    _, client_errors = OPERATIONS[(method, path)]
    responses = _operation(document, method, path)["responses"]
    success = [code for code in responses if code.startswith("2")]
    assert success
    for code in success:
        if (method, path) not in NOT_JSON_OBJECTS:
            assert _resolve(document, responses[code]["schema"])["type"] == "object"
    assert {code for code in responses if code.startswith("4")} >= client_errors
    for code in client_errors:
        assert responses[code]["schema"] == {"$ref": "#/definitions/Problem"}
        assert responses[code]["description"]


def test_openapi_references_resolve(document):
    text = json.dumps(document)
    for name in set(re.findall(r'"#/definitions/(\w+)"', text)):
        assert name in document["definitions"], name


def test_openapi_describes_the_objects_of_the_contract(document):
    definitions = document["definitions"]
    group = set(definitions["Group"]["properties"])
    assert group >= {"id", "name", "description", "boundary", "centroid", "bbox", "area_m2",
                     "languages", "member_count", "version", "updated_at"}
    assert "distance_m" in definitions["NearbyGroup"]["properties"]
    alert = set(definitions["Alert"]["properties"])
    assert alert >= {"id", "group_id", "category", "severity", "urgency", "certainty", "title",
                     "body", "location", "sent_at", "expires_at", "status", "author", "version"}
    assert "distance_m" in definitions["NearbyAlert"]["properties"]
    assert set(definitions["Tip"]["properties"]) >= {
        "id", "category", "language", "title", "body", "updated_at"}
    assert set(definitions["Problem"]["properties"]) >= {
        "type", "title", "status", "detail", "errors"}


def test_openapi_validates_against_the_swagger_2_schema(document):
    errors = list(jsonschema.Draft4Validator(dict(OAS_20)).iter_errors(document))
    assert errors == []


def test_openapi_query_parameters_carry_only_swagger_2_fields(document):
    allowed = {"name", "in", "description", "required", "type", "format", "allowEmptyValue",
               "items", "collectionFormat", "default", "maximum", "exclusiveMaximum",
               "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern",
               "maxItems", "minItems", "uniqueItems", "enum", "multipleOf"}
    for method, path in OPERATIONS:
        for parameter in _parameters(document, method, path):
            if parameter["in"] != "body":
                extra = {k for k in parameter if k not in allowed and not k.startswith("x-")}
                assert not extra, (method, path, parameter["name"], extra)


def test_openapi_tags_are_unique(document):
    names = [tag["name"] for tag in document["tags"]]
    assert len(names) == len(set(names))


# Statuses the API deliberately answers that the document does not list for the operation: a
# generated client cannot decode them and a fuzzer's status check flags them.
@pytest.mark.parametrize(("method", "url", "path", "headers"), [
    ("GET", "/v1/alerts/nearby?lat=47.6&lon=-122.3", "/alerts/nearby", "bad-token"),
    ("GET", "/v1/alerts/{alert}", "/alerts/{alert_id}", "bad-token"),
    ("GET", "/v1/groups/{group}/alerts", "/groups/{group_id}/alerts", "bad-token"),
    ("PATCH", "/v1/groups/{group}", "/groups/{group_id}", "bad-if-match"),
], ids=["alerts-nearby-401", "alert-401", "group-alerts-401", "patch-400"])
def test_every_status_answered_is_documented(client, db, tokens, document, method, url, path,
                                             headers):
    group = make_group(db, "Documented", shapely.box(-122.33, 47.60, -122.32, 47.61))
    author = accounts.authenticate(
        db, tokens("coordinator", group.id)["Authorization"].removeprefix("Bearer "))
    alert = make_alert(db, author, group.id)
    sent = {"bad-token": {"Authorization": "Bearer bw_unknown"},
            "bad-if-match": {**tokens("admin"), "If-Match": "abc"}}[headers]
    response = client.open(url.format(group=group.id, alert=alert.id), method=method,
                           headers=sent, json={"name": "x"} if method == "PATCH" else None)
    assert 400 <= response.status_code < 500
    assert_problem(response, response.status_code)
    assert str(response.status_code) in _operation(document, method, path)["responses"]


# -- Swagger UI -----------------------------------------------------------------------------
def test_docs_serve_swagger_ui_for_the_document(client):
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "swagger-ui" in page.lower()
    assert "/v1/openapi.json" in page
    for asset in re.findall(r'(?:src|href)="(/swaggerui/[^"]+)"', page):
        assert client.get(asset).status_code == 200, asset


# -- gzip -----------------------------------------------------------------------------------
@pytest.fixture
def many(db):
    fixtures.load_fixtures(db)


@pytest.mark.parametrize("url", [
    "/v1/groups?bbox=-180,-90,180,90",
    "/v1/tips",
    "/v1/groups/nearby?lat=47.62&lon=-122.31&radius_m=5000&limit=100",
    "/v1/openapi.json",
])
def test_large_responses_are_gzipped_on_request(client, many, url):
    plain = client.get(url)
    assert plain.status_code == 200
    assert "Content-Encoding" not in plain.headers
    assert len(plain.data) > 4096
    zipped = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert zipped.status_code == 200
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.headers["Content-Type"] == plain.headers["Content-Type"]
    assert "accept-encoding" in zipped.headers.get("Vary", "").lower()
    assert len(zipped.data) < len(plain.data)
    assert json.loads(gzip.decompress(zipped.data)) == json.loads(plain.data)


def test_small_responses_are_not_gzipped(client):
    response = client.get("/v1/health", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in response.headers
    assert response.get_json()["status"] == "ok"


def test_tips_in_every_language_gzip_to_the_same_json(client, db):
    fixtures_file = fixtures.FIXTURES / "safety_tips.json"
    tips.upsert_tips(db, json.loads(fixtures_file.read_text(encoding="utf-8")))
    for language in ("en", "es", "zh-Hans", "vi", "so"):
        url = f"/v1/tips?lang={language}"
        zipped = client.get(url, headers={"Accept-Encoding": "gzip"})
        assert zipped.headers["Content-Encoding"] == "gzip"
        assert json.loads(gzip.decompress(zipped.data)) == client.get(url).get_json()
