"""Who may write what (API.md): every write against every kind of actor, one test per cell,
and bad credentials. A refused write must also leave nothing behind."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from blockwatch import accounts
from tests.api.helpers import assert_problem, box, etag, make_alert, make_group, polygon

ACTORS = ["anonymous", "member", "other_coordinator", "coordinator", "admin"]

#: API.md's "who" column: write -> the status each actor gets.
MATRIX = {
    "create_group": {"anonymous": 401, "member": 403, "other_coordinator": 403,
                     "coordinator": 403, "admin": 201},
    "edit_group": {"anonymous": 401, "member": 403, "other_coordinator": 403,
                   "coordinator": 200, "admin": 200},
    "post_alert": {"anonymous": 401, "member": 403, "other_coordinator": 403,
                   "coordinator": 201, "admin": 201},
    "cancel_alert": {"anonymous": 401, "member": 403, "other_coordinator": 403,
                     "coordinator": 200, "admin": 200},
}


@pytest.fixture
def world(db, tokens):
    """A group with an active alert, another group, and a header for each actor."""
    group = make_group(db, "Pike/Pine", box(-122.33, 47.60, -122.32, 47.61))
    other = make_group(db, "Elsewhere", box(-122.40, 47.50, -122.39, 47.51))
    headers = {
        "anonymous": {},
        "member": tokens("member", group.id),
        "other_coordinator": tokens("coordinator", other.id),
        "coordinator": tokens("coordinator", group.id),
        "admin": tokens("admin"),
    }
    author = accounts.authenticate(
        db, headers["coordinator"]["Authorization"].removeprefix("Bearer "))
    alert = make_alert(db, author, group.id, location=(-122.325, 47.605))
    return {"group": group, "alert": alert, "headers": headers}


def _create_group(client, world, headers):
    response = client.post("/v1/groups", headers=headers,
                           json={"name": "New group", "boundary": polygon(-122.30, 47.62)})
    made = client.get("/v1/groups/at?lat=47.622&lon=-122.298").get_json()["items"]
    return response, bool(made)


def _edit_group(client, world, headers):
    group_id = world["group"].id
    current = client.get(f"/v1/groups/{group_id}").get_json()["version"]
    response = client.patch(f"/v1/groups/{group_id}", json={"name": "Renamed"},
                            headers={**headers, "If-Match": etag(current)})
    return response, client.get(f"/v1/groups/{group_id}").get_json()["name"] == "Renamed"


def _post_alert(client, world, headers):
    group_id = world["group"].id
    response = client.post(f"/v1/groups/{group_id}/alerts", headers=headers,
                           json={"category": "theft", "title": "Bike taken"})
    titles = [a["title"] for a in
              client.get(f"/v1/groups/{group_id}/alerts").get_json()["items"]]
    return response, "Bike taken" in titles


def _cancel_alert(client, world, headers):
    alert_id = world["alert"].id
    response = client.post(f"/v1/alerts/{alert_id}/cancel", headers=headers)
    return response, client.get(f"/v1/alerts/{alert_id}").get_json()["status"] == "cancelled"


WRITES = {
    "create_group": _create_group,
    "edit_group": _edit_group,
    "post_alert": _post_alert,
    "cancel_alert": _cancel_alert,
}


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("write", list(WRITES))
def test_who_may_write(client, world, write, actor):
    expected = MATRIX[write][actor]
    response, took_effect = WRITES[write](client, world, world["headers"][actor])
    if expected < 400:
        assert response.status_code == expected, response.get_data(as_text=True)
        assert took_effect
    else:
        assert_problem(response, expected)
        assert not took_effect
        if expected == 401:
            assert response.headers["WWW-Authenticate"].lower().startswith("bearer")


# -- bad credentials ------------------------------------------------------------------------
BAD_HEADERS = [
    pytest.param("Basic dXNlcjpwYXNz", id="basic-scheme"),
    pytest.param("Bearer", id="bearer-without-token"),
    pytest.param("Bearer    ", id="bearer-with-blank-token"),
    pytest.param("Token bw_abc", id="other-scheme"),
    pytest.param("bw_abc", id="no-scheme"),
    pytest.param("", id="empty"),
    pytest.param("Bearer bw_unknown-token", id="unknown-token"),
    pytest.param("Bearer " + "x" * 5000, id="huge-token"),
]


@pytest.mark.parametrize("write", list(WRITES))
@pytest.mark.parametrize("header", BAD_HEADERS)
def test_a_bad_authorization_header_is_401_with_www_authenticate(client, world, write, header):
    response, took_effect = WRITES[write](client, world, {"Authorization": header})
    body = assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].lower().startswith("bearer")
    assert body["title"]
    assert not took_effect


def test_a_revoked_token_is_401(client, db, world):
    token = accounts.create_token(db, "Revoked admin", "admin")
    assert accounts.revoke_token(db, token)
    response, took_effect = _create_group(client, world, {"Authorization": f"Bearer {token}"})
    assert_problem(response, 401)
    assert "WWW-Authenticate" in response.headers
    assert not took_effect


def test_an_expired_token_is_401(client, db, world):
    token = accounts.create_token(db, "Expired admin", "admin",
                                  expires_in=timedelta(seconds=-1))
    response, took_effect = _create_group(client, world, {"Authorization": f"Bearer {token}"})
    assert_problem(response, 401)
    assert not took_effect


def test_the_bearer_scheme_is_case_insensitive(client, world):
    token = world["headers"]["admin"]["Authorization"].removeprefix("Bearer ")
    response, took_effect = _create_group(client, world, {"Authorization": f"bearer {token}"})
    assert response.status_code == 201
    assert took_effect


def test_a_coordinator_cannot_cancel_another_groups_alert_even_after_posting(
    client, world, tokens
):
    """Roles are per group: coordinating one group gives nothing in another."""
    other_id = str(uuid.uuid4())
    response = client.post(
        f"/v1/groups/{world['group'].id}/alerts", headers=world["headers"]["other_coordinator"],
        json={"id": other_id, "category": "theft", "title": "Not mine"},
    )
    assert_problem(response, 403)
    assert_problem(client.get(f"/v1/alerts/{other_id}"), 404)


# A request with a bad token that is also invalid in another way: the contract's "401 no or
# bad token" should win over what the body or headers would get (and it must not tell an
# unauthenticated caller how its body would have been judged).
INVALID_TOO = [
    pytest.param("POST", "/v1/groups", {"json": {}}, id="create-group-empty-body"),
    pytest.param("PATCH", "/v1/groups/{group}", {"json": {"name": "X"}},
                 id="edit-group-without-if-match"),
    pytest.param("POST", "/v1/groups/{group}/alerts", {"json": {"title": 5}},
                 id="post-alert-invalid-body"),
]


@pytest.mark.parametrize("header", [None, "Bearer bw_unknown-token"], ids=["none", "unknown"])
@pytest.mark.parametrize(("method", "path", "kwargs"), INVALID_TOO)
def test_a_bad_token_is_401_whatever_else_is_wrong(client, world, method, path, kwargs,
                                                   header):
    headers = {"Authorization": header} if header else {}
    url = path.format(group=world["group"].id)
    response = client.open(url, method=method, headers=headers, **kwargs)
    assert_problem(response, 401)
