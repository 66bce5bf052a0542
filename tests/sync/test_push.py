"""``POST /v1/sync/push`` (SYNC.md, Push): offline mutations applied in order, each exactly once
per ``client_id``, whatever is replayed; every result and every request-level refusal; one
transaction per push. Over the Flask test client, and through :class:`SyncClient` over a real
WSGI transport that loses a response."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from blockwatch import groups
from blockwatch.models import Alert, Group, SyncClient, SyncMutation, SyncState
from blockwatch.sync import push as push_service
from blockwatch.sync.client import SyncClient as Client
from blockwatch.sync.scope import Area, Scope
from tests.api.helpers import assert_problem, box, make_alert, make_group
from tests.blockwatch.factories import admin
from tests.sync.test_concurrent_pull import wait_until_another_writer_waits_for

BLOCK = (-122.33, 47.60, -122.32, 47.61)
SPOT = {"lat": 47.6051, "lon": -122.3249}
GROUP_FIELDS = {"id", "name", "description", "boundary", "centroid", "bbox", "area_m2",
                "languages", "member_count", "version", "updated_at"}


# -- arranging -------------------------------------------------------------------------------
@pytest.fixture
def group(db):
    return make_group(db, "Pike/Pine", box(*BLOCK))


@pytest.fixture
def coordinator(group, tokens):
    return tokens("coordinator", group.id)


def version_of(db, group_id: str) -> int:
    return groups.get_group(db, group_id).version


def create(number: int, group_id: str, alert_id: str | None = None, **fields) -> dict:
    args = {"id": alert_id or str(uuid.uuid4()), "group_id": group_id, "category": "burglary",
            "title": "Break-in on 12th Ave", "location": SPOT}
    args.update(fields)
    return {"mutation_id": number, "op": "alert.create", "args": args}


def cancel(number: int, alert_id: str) -> dict:
    return {"mutation_id": number, "op": "alert.cancel", "args": {"id": alert_id}}


def update(number: int, group_id: str, base_version: int | None, **fields) -> dict:
    mutation = {"mutation_id": number, "op": "group.update", "args": {"id": group_id, **fields}}
    if base_version is not None:
        mutation["base_version"] = base_version
    return mutation


def push(client, headers, client_id: str, mutations: list[dict]):
    return client.post("/v1/sync/push", json={"client_id": client_id, "mutations": mutations},
                       headers=headers)


def pushed(client, headers, client_id: str, mutations: list[dict]) -> dict:
    response = push(client, headers, client_id, mutations)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def server_state(db) -> dict:
    """Everything a push may write: the counter, alerts, groups, clients, stored results."""
    with db.read() as session:
        return {
            "seq": session.scalar(select(SyncState.seq)),
            "alerts": sorted(tuple(row) for row in session.execute(
                select(Alert.id, Alert.group_id, Alert.status, Alert.title, Alert.seq))),
            "groups": sorted(tuple(row) for row in session.execute(
                select(Group.id, Group.name, Group.description, Group.seq))),
            "clients": sorted(tuple(row) for row in session.execute(
                select(SyncClient.client_id, SyncClient.account_id,
                       SyncClient.last_mutation_id))),
            "mutations": sorted(tuple(row) for row in session.execute(
                select(SyncMutation.client_id, SyncMutation.mutation_id, SyncMutation.status))),
        }


def assert_duplicates_of(first: list[dict], again: list[dict]) -> None:
    """``again`` answers the mutations of ``first`` as duplicates carrying the first results."""
    assert [r["mutation_id"] for r in again] == [r["mutation_id"] for r in first]
    for original, duplicate in zip(first, again, strict=True):
        assert duplicate["status"] == "duplicate", duplicate
        assert duplicate["original_status"] == original["status"], (original, duplicate)
        for key in ("id", "version", "problem", "entity"):
            assert duplicate[key] == original[key], (key, original, duplicate)


@pytest.fixture
def mixed(db, group, coordinator):
    """A push of every kind of outcome: applied create, cancel and edit, a conflict, a
    rejection, and an alert created after them."""
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    version = version_of(db, group.id)
    return [
        create(1, group.id, first),
        cancel(2, first),
        update(3, group.id, version, name="Pike/Pine Watch"),
        update(4, group.id, version, description="stale: made against the old version"),
        cancel(5, str(uuid.uuid4())),  # no such alert: rejected
        create(6, group.id, second, category="vehicle-prowl"),
    ]


# -- replays ---------------------------------------------------------------------------------
def test_the_same_push_three_times_gives_one_effect_and_the_same_answers(
    client, db, coordinator, mixed
):
    client_id = str(uuid.uuid4())
    first = pushed(client, coordinator, client_id, mixed)
    assert [r["status"] for r in first["results"]] == [
        "applied", "applied", "applied", "conflict", "rejected", "applied"]
    assert first["last_mutation_id"] == 6
    after_first = server_state(db)

    second = pushed(client, coordinator, client_id, mixed)
    assert server_state(db) == after_first
    third = pushed(client, coordinator, client_id, mixed)
    assert server_state(db) == after_first

    assert second == third
    assert second["last_mutation_id"] == 6
    assert_duplicates_of(first["results"], second["results"])
    # The conflict's duplicate still carries the group; the rejection its problem.
    assert second["results"][3]["entity"]["id"] == mixed[3]["args"]["id"]
    assert second["results"][4]["problem"]["status"] == 404
    assert len(after_first["alerts"]) == 2
    assert [m[1] for m in after_first["mutations"]] == [1, 2, 3, 4, 5, 6]


def test_a_replay_in_part_changes_nothing_and_a_new_tail_still_applies(
    client, db, group, coordinator, mixed
):
    client_id = str(uuid.uuid4())
    first = pushed(client, coordinator, client_id, mixed)["results"]
    state = server_state(db)

    prefix = pushed(client, coordinator, client_id, mixed[:2])
    assert_duplicates_of(first[:2], prefix["results"])
    assert prefix["last_mutation_id"] == 6
    suffix = pushed(client, coordinator, client_id, mixed[3:])
    assert_duplicates_of(first[3:], suffix["results"])
    middle = pushed(client, coordinator, client_id, [mixed[2], mixed[4]])
    assert_duplicates_of([first[2], first[4]], middle["results"])
    assert server_state(db) == state

    # A retry that carries the old tail and something new: the old part is duplicate, the new
    # part applies once.
    late = str(uuid.uuid4())
    mixed_tail = pushed(client, coordinator, client_id, [*mixed[4:], create(7, group.id, late)])
    assert [r["status"] for r in mixed_tail["results"]] == ["duplicate", "duplicate", "applied"]
    assert mixed_tail["results"][2]["id"] == late
    assert mixed_tail["last_mutation_id"] == 7
    assert len(server_state(db)["alerts"]) == 3


def test_a_mutation_id_replayed_with_other_content_is_refused_and_changes_nothing(
    client, db, group, coordinator
):
    client_id, alert_id = str(uuid.uuid4()), str(uuid.uuid4())
    first = pushed(client, coordinator, client_id, [create(1, group.id, alert_id)])
    state = server_state(db)
    other = pushed(client, coordinator, client_id, [
        create(1, group.id, str(uuid.uuid4()), title="Another alert under mutation 1")])
    [result] = other["results"]
    assert result["status"] == "rejected"
    assert result["problem"]["status"] == 409
    assert other["last_mutation_id"] == 1
    assert server_state(db) == state
    # The mutation as first sent is still a plain duplicate.
    again = pushed(client, coordinator, client_id, [create(1, group.id, alert_id)])
    assert_duplicates_of(first["results"], again["results"])


def test_mutation_ids_belong_to_their_client_id(client, db, group, coordinator):
    """Another installation of the same account starts its own count at 1."""
    one, other = str(uuid.uuid4()), str(uuid.uuid4())
    assert pushed(client, coordinator, one, [create(1, group.id)])["results"][0]["status"] \
        == "applied"
    answer = pushed(client, coordinator, other, [create(1, group.id)])
    assert answer["results"][0]["status"] == "applied"
    assert len(server_state(db)["alerts"]) == 2


# -- each op ---------------------------------------------------------------------------------
def test_create_cancel_and_edit_apply_with_their_new_versions(client, db, group, coordinator):
    alert_id = str(uuid.uuid4())
    version = version_of(db, group.id)
    answer = pushed(client, coordinator, str(uuid.uuid4()), [
        create(1, group.id, alert_id, title="Car window smashed"),
        cancel(2, alert_id),
        update(3, group.id, version, name="Pike/Pine Block Watch", description="Tuesdays"),
    ])
    created, cancelled, edited = answer["results"]
    assert (created["status"], created["id"]) == ("applied", alert_id)
    assert (cancelled["status"], cancelled["id"]) == ("applied", alert_id)
    assert (edited["status"], edited["id"]) == ("applied", group.id)
    assert created["version"] < cancelled["version"] < edited["version"]
    assert version < created["version"]
    for result in answer["results"]:
        assert result["problem"] is None and result["entity"] is None
        assert result["original_status"] is None

    stored = client.get(f"/v1/alerts/{alert_id}").get_json()
    assert (stored["title"], stored["status"], stored["version"]) == (
        "Car window smashed", "cancelled", cancelled["version"])
    now = client.get(f"/v1/groups/{group.id}").get_json()
    assert (now["name"], now["description"], now["version"]) == (
        "Pike/Pine Block Watch", "Tuesdays", edited["version"])


def test_a_stale_base_version_is_a_conflict_with_the_current_group_and_writes_nothing(
    client, db, group, coordinator
):
    stale = version_of(db, group.id)
    pushed(client, coordinator, str(uuid.uuid4()), [update(1, group.id, stale, name="First")])
    before = server_state(db)
    current = client.get(f"/v1/groups/{group.id}").get_json()

    answer = pushed(client, coordinator, str(uuid.uuid4()), [
        update(1, group.id, stale, name="Second", description="lost edit")])
    [result] = answer["results"]
    assert result["status"] == "conflict"
    assert result["id"] == group.id
    assert result["version"] == current["version"] != stale
    assert result["problem"] is None
    entity = result["entity"]
    assert set(entity) >= GROUP_FIELDS
    assert entity == current  # the Group object, as GET /v1/groups/{id} gives it
    assert answer["last_mutation_id"] == 1

    after = server_state(db)
    assert after["groups"] == before["groups"] and after["seq"] == before["seq"]
    assert client.get(f"/v1/groups/{group.id}").get_json()["name"] == "First"


def test_rejections_carry_a_problem_advance_the_id_and_do_not_stop_the_push(
    client, db, group, coordinator
):
    existing = str(uuid.uuid4())
    pushed(client, coordinator, str(uuid.uuid4()), [create(1, group.id, existing)])
    late = str(uuid.uuid4())
    client_id = str(uuid.uuid4())
    answer = pushed(client, coordinator, client_id, [
        create(1, group.id, title="x" * 121),  # invalid arguments
        cancel(2, str(uuid.uuid4())),  # no such alert
        create(3, group.id, existing, title="Another story under a used id"),
        update(4, group.id, None, name="No base version"),
        create(5, group.id, category="not-a-category"),
        create(6, group.id, late),  # still applies, after all of them
    ])
    results = answer["results"]
    assert [r["mutation_id"] for r in results] == [1, 2, 3, 4, 5, 6]
    assert [r["status"] for r in results] == ["rejected"] * 5 + ["applied"]
    assert answer["last_mutation_id"] == 6

    statuses = [r["problem"]["status"] for r in results[:5]]
    assert statuses == [422, 404, 409, 422, 422]
    for result in results[:5]:
        problem = result["problem"]
        assert {"type", "title", "status", "detail"} <= set(problem), problem
        assert problem["detail"], problem
        assert result["entity"] is None
    assert "args.title" in results[0]["problem"]["errors"]
    assert "base_version" in results[3]["problem"]["errors"]
    assert "args.category" in results[4]["problem"]["errors"]
    assert results[2]["id"] == existing

    with db.read() as session:
        assert session.get(Alert, existing).title == "Break-in on 12th Ave"
        stored = session.scalars(select(SyncMutation.mutation_id).where(
            SyncMutation.client_id == client_id, SyncMutation.status == "rejected")).all()
    assert sorted(stored) == [1, 2, 3, 4, 5]
    assert client.get(f"/v1/alerts/{late}").status_code == 200
    assert client.get(f"/v1/groups/{group.id}").get_json()["name"] == "Pike/Pine"


def test_arguments_the_services_refuse_are_named_under_args(client, db, group, coordinator):
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    bowtie = {"type": "Polygon", "coordinates": [[
        [-122.33, 47.60], [-122.32, 47.61], [-122.32, 47.60], [-122.33, 47.61],
        [-122.33, 47.60]]]}
    answer = pushed(client, coordinator, str(uuid.uuid4()), [
        create(1, group.id, expires_at=past),
        update(2, group.id, version_of(db, group.id), boundary=bowtie),
    ])
    assert [r["status"] for r in answer["results"]] == ["rejected", "rejected"]
    assert [r["problem"]["status"] for r in answer["results"]] == [422, 422]
    assert "args.expires_at" in answer["results"][0]["problem"]["errors"]
    assert "args.boundary" in answer["results"][1]["problem"]["errors"]


def test_a_member_who_does_not_coordinate_is_refused_in_the_result(
    client, db, group, coordinator, tokens
):
    alert_id = str(uuid.uuid4())
    pushed(client, coordinator, str(uuid.uuid4()), [create(1, group.id, alert_id)])
    member = tokens("member", group.id)
    before = server_state(db)
    answer = pushed(client, member, str(uuid.uuid4()), [
        create(1, group.id),
        cancel(2, alert_id),
        update(3, group.id, version_of(db, group.id), name="Taken over"),
    ])
    assert [r["status"] for r in answer["results"]] == ["rejected"] * 3
    for result in answer["results"]:
        assert result["problem"]["status"] == 403
        assert result["problem"]["title"]
    assert answer["last_mutation_id"] == 3
    after = server_state(db)
    assert after["alerts"] == before["alerts"] and after["groups"] == before["groups"]


# -- request-level refusals ------------------------------------------------------------------
def test_a_push_without_a_token_is_401(client, group):
    response = push(client, {}, str(uuid.uuid4()), [create(1, group.id)])
    assert_problem(response, 401)
    assert "Bearer" in response.headers.get("WWW-Authenticate", "")
    response = push(client, {"Authorization": "Bearer bw_not-a-token"}, str(uuid.uuid4()),
                    [create(1, group.id)])
    assert_problem(response, 401)


@pytest.mark.parametrize("numbers", [(1, 1), (2, 1), (0, 1)])
def test_mutation_ids_that_do_not_increase_are_422_and_nothing_applies(
    client, db, group, coordinator, numbers
):
    before = server_state(db)
    mutations = [create(number, group.id) for number in numbers]
    response = push(client, coordinator, str(uuid.uuid4()), mutations)
    body = assert_problem(response, 422)
    assert any(name.startswith("mutations.") and name.endswith(".mutation_id")
               for name in body["errors"]), body
    assert server_state(db) == before


def test_a_client_id_of_another_account_is_403(client, db, group, coordinator, tokens):
    client_id = str(uuid.uuid4())
    pushed(client, coordinator, client_id, [create(1, group.id)])
    other = tokens("coordinator", group.id)
    before = server_state(db)
    assert_problem(push(client, other, client_id, [create(2, group.id)]), 403)
    assert server_state(db) == before


def test_an_unknown_op_is_422_naming_it(client, db, group, coordinator):
    before = server_state(db)
    response = push(client, coordinator, str(uuid.uuid4()), [
        create(1, group.id), {"mutation_id": 2, "op": "alert.edit", "args": {"id": "x"}}])
    body = assert_problem(response, 422)
    assert "mutations.1.op" in body["errors"], body
    assert server_state(db) == before


@pytest.mark.parametrize("body", [
    {"client_id": "not-a-uuid", "mutations": []},
    {"mutations": []},
    {"client_id": "{uuid}", "mutations": [], "since": 3},
])
def test_a_malformed_push_body_is_422(client, coordinator, body):
    body = json.loads(json.dumps(body).replace("{uuid}", str(uuid.uuid4())))
    problem = assert_problem(client.post("/v1/sync/push", json=body, headers=coordinator), 422)
    assert problem["errors"], problem


def test_a_body_that_is_not_json_is_415(client, coordinator):
    response = client.post("/v1/sync/push", data="client_id=1", headers={
        **coordinator, "Content-Type": "application/x-www-form-urlencoded"})
    assert_problem(response, 415)


# -- one transaction -------------------------------------------------------------------------
def test_a_push_that_fails_midway_writes_nothing(client, db, group, coordinator, monkeypatch):
    client_id = str(uuid.uuid4())
    pushed(client, coordinator, client_id, [create(1, group.id)])
    before = server_state(db)
    real = push_service._applied

    def failing(session, actor, mutation, now):
        if mutation.mutation_id == 3:
            raise RuntimeError("the disk caught fire")
        return real(session, actor, mutation, now)

    monkeypatch.setattr(push_service, "_applied", failing)
    second, third = str(uuid.uuid4()), str(uuid.uuid4())
    mutations = [create(2, group.id, second), create(3, group.id, third)]
    response = push(client, coordinator, client_id, mutations)
    assert_problem(response, 500)
    assert server_state(db) == before  # neither the 2nd alert nor last_mutation_id 2
    assert client.get(f"/v1/alerts/{second}").status_code == 404

    monkeypatch.setattr(push_service, "_applied", real)
    answer = pushed(client, coordinator, client_id, mutations)
    assert [r["status"] for r in answer["results"]] == ["applied", "applied"]
    assert answer["last_mutation_id"] == 3


# -- through the client, over a transport that loses a response ------------------------------
class LosesResponses(httpx.BaseTransport):
    """The app gets the request and answers it; the answer to the first ``lose`` pushes never
    reaches the client (a dropped connection). Keeps what the app said."""

    def __init__(self, app, lose: int = 1) -> None:
        self.inner = httpx.WSGITransport(app=app)
        self.lose = lose
        self.lost: list[dict] = []
        self.pushes = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path == "/v1/sync/push":
            self.pushes += 1
            if self.lose > 0:
                self.lose -= 1
                response.read()
                self.lost.append(json.loads(response.content))
                raise httpx.ReadError("connection reset by peer", request=request)
        return response


def test_a_lost_push_response_is_retried_and_applies_once(app, db, group, tokens, tmp_path):
    token = tokens("coordinator", group.id)["Authorization"].removeprefix("Bearer ")
    transport = LosesResponses(app)
    sleeps: list[float] = []
    scope = Scope(area=Area(lon=SPOT["lon"], lat=SPOT["lat"], radius_m=500))
    with Client("http://testserver", tmp_path / "replica.db", token=token, scope=scope,
                transport=transport, sleep=sleeps.append) as phone:
        alert_id = phone.post_alert(group.id, "burglary", "Break-in on 12th Ave",
                                    location=(SPOT["lon"], SPOT["lat"]))
        phone.cancel_alert(alert_id)
        results = phone.push()

        assert transport.pushes == 2 and len(sleeps) == 1
        [lost] = transport.lost
        assert [r["status"] for r in lost["results"]] == ["applied", "applied"]
        assert_duplicates_of(lost["results"], results)
        assert phone.outbox() == []
        assert phone.push_results() == []
        with db.read() as session:
            assert session.scalars(select(Alert.id)).all() == [alert_id]
            assert session.get(Alert, alert_id).status == "cancelled"

        phone.sync()
        assert transport.pushes == 2  # nothing left to push
        [held] = phone.dump()["alerts"].values()
        assert (held["id"], held["status"]) == (alert_id, "cancelled")
        assert held["version"] == lost["results"][1]["version"]


def test_the_client_keeps_rejections_and_conflicts_for_the_app(app, db, group, tokens, tmp_path):
    """What the server refused leaves the outbox (it must not block it) but is kept to show."""
    token = tokens("coordinator", group.id)["Authorization"].removeprefix("Bearer ")
    scope = Scope(area=Area(lon=SPOT["lon"], lat=SPOT["lat"], radius_m=500))
    with Client("http://testserver", tmp_path / "replica.db", token=token, scope=scope,
                transport=httpx.WSGITransport(app=app), sleep=lambda s: None) as phone:
        phone.sync()
        groups.update_group(db, admin(db), group.id, {"name": "Renamed meanwhile"},
                            version_of(db, group.id))
        phone.update_group(group.id, name="Mine")
        phone.cancel_alert(str(uuid.uuid4()))
        kept = phone.post_alert(group.id, "theft", "Bike stolen")
        phone.sync()
        assert phone.outbox() == []
        assert [(r["op"], r["status"]) for r in phone.push_results()] == [
            ("group.update", "conflict"), ("alert.cancel", "rejected")]
        assert kept in phone.dump()["alerts"]
        [held] = phone.groups()
        assert held["name"] == "Renamed meanwhile"


def test_an_alert_posted_over_rest_then_pushed_under_its_id_is_stored_once(
    client, db, group, coordinator
):
    """An alert posted over the REST API and then pushed under the same id (the app retried
    through the other path) is the same request: applied once, answered with the stored one."""
    author = admin(db)
    alert = make_alert(db, author, group.id, title="Break-in on 12th Ave", category="burglary",
                       location=(SPOT["lon"], SPOT["lat"]))
    answer = pushed(client, coordinator, str(uuid.uuid4()), [create(1, group.id, alert.id)])
    [result] = answer["results"]
    assert (result["status"], result["id"], result["version"]) == (
        "applied", alert.id, alert.version)
    assert len(server_state(db)["alerts"]) == 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_push_racing_a_cancel_of_an_alert_it_cancels_does_not_deadlock(
        client, db, group, coordinator, monkeypatch):
    """A push takes the change counter with its first mutation. A cancel elsewhere that holds
    the alert the push cancels next, and waits for the counter, must not deadlock with it: the
    push locks its rows before its first mutation takes the counter."""
    from blockwatch import alerts
    from blockwatch.delivery import outbox
    from tests.blockwatch.factories import actor

    captain = actor(db, "Captain Two", "coordinator", group.id)
    target = make_alert(db, captain, group.id, location=(SPOT["lon"], SPOT["lat"]))
    holding, release = threading.Event(), threading.Event()
    original = outbox.enqueue_cancel
    held: dict[str, object] = {}

    def held_in_the_canceller(session, alert_id, now):
        # Called with the alert locked and the counter not yet taken.
        if threading.current_thread().name == "canceller":
            held["session"] = session
            holding.set()
            release.wait(10)
        return original(session, alert_id, now)

    monkeypatch.setattr(outbox, "enqueue_cancel", held_in_the_canceller)
    outcome: dict[str, object] = {}

    def cancel_elsewhere() -> None:
        try:
            outcome["cancel"] = alerts.cancel_alert(db, captain, target.id).status
        except Exception as error:  # a deadlock victim, reported below
            outcome["cancel"] = error

    def push_both() -> None:
        try:
            outcome["push"] = pushed(client, coordinator, str(uuid.uuid4()), [
                create(1, group.id), cancel(2, target.id)])
        except Exception as error:
            outcome["push"] = error

    canceller = threading.Thread(target=cancel_elsewhere, name="canceller")
    pusher = threading.Thread(target=push_both, name="pusher")
    canceller.start()
    try:
        assert holding.wait(10)
        pusher.start()
        # The push waits on the alert the canceller holds (this backend's lock, not any).
        wait_until_another_writer_waits_for(db, held["session"])
    finally:
        release.set()
        canceller.join(30)
        if pusher.ident is not None:  # started
            pusher.join(30)
    assert outcome["cancel"] == "cancelled", outcome
    push_result = outcome["push"]
    assert not isinstance(push_result, Exception), push_result
    assert [r["status"] for r in push_result["results"]] == ["applied", "applied"]
