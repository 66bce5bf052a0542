"""``POST /v1/sync/pull`` (SYNC.md, Pull), over HTTP: pages of at most ``limit`` entities that
add up to the scope; groups leaving and entering the scope; exact locations for members only;
what each kind of cursor gets; a pull with nothing new costs no entity query; validation."""

from __future__ import annotations

import itertools
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from itsdangerous import URLSafeSerializer
from sqlalchemy import delete, event, select

from blockwatch import accounts, changelog, groups, tips
from blockwatch.models import Alert, Membership
from blockwatch.models import Group as GroupRow
from tests.api.helpers import app_over, assert_problem, box, fresh_database, make_alert, make_group
from tests.blockwatch.factories import admin

CENTER = {"lat": 47.605, "lon": -122.325}
AREA = {**CENTER, "radius_m": 1000}
NEAR_1 = (-122.33, 47.60, -122.32, 47.61)  # covers the centre
NEAR_2 = (-122.318, 47.600, -122.312, 47.606)  # about 500 m east of it
FAR = (-122.40, 47.50, -122.39, 47.51)  # about 13 km away
ASKED = (-122.20, 47.70, -122.19, 47.71)  # named in group_ids
MINE = (-122.10, 47.40, -122.09, 47.41)  # the reader's own group
AWAY = (-121.60, 47.20, -121.59, 47.21)  # where groups are moved out of every scope
TIP_LANGUAGES = ("en", "es", "fr", "zh-Hans")
#: For checks of requests alone, where storage plays no part.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


# -- a scene and a replica ---------------------------------------------------------------------
def spots(bounds, count: int) -> list[tuple[float, float]]:
    """``count`` points inside the box, off the public 150 m grid (so rounding moves them)."""
    min_lon, min_lat, max_lon, max_lat = bounds
    return [(round(min_lon + (max_lon - min_lon) * (0.137 + 0.17 * n), 6),
             round(min_lat + (max_lat - min_lat) * (0.241 + 0.15 * n), 6))
            for n in range(count)]


@pytest.fixture
def scene(db, tokens):
    """Five groups with alerts (one cancelled), tips in four languages, and readers."""
    made = {name: make_group(db, name, box(*bounds)).id for name, bounds in (
        ("near_1", NEAR_1), ("near_2", NEAR_2), ("far", FAR), ("asked", ASKED), ("mine", MINE))}
    headers = {"resident": tokens("member", made["mine"]),
               "watcher": tokens("member", made["near_1"]), "anonymous": {}}
    author = admin(db)
    alert_ids: dict[str, list[str]] = {}
    for name, bounds, count in (("near_1", NEAR_1, 3), ("near_2", NEAR_2, 2),
                                ("far", FAR, 2), ("asked", ASKED, 1), ("mine", MINE, 2)):
        alert_ids[name] = [
            make_alert(db, author, made[name], location=point, title=f"{name} {n}").id
            for n, point in enumerate(spots(bounds, count))
        ]
    from blockwatch import alerts

    alerts.cancel_alert(db, author, alert_ids["near_1"][2])
    tips.upsert_tips(db, [
        {"key": key, "category": category, "translations": {
            language: {"title": f"{key} ({language})", "body": f"{key} body"}
            for language in TIP_LANGUAGES}}
        for key, category in (("lock-doors", "home-security"), ("hide-valuables", "vehicles"))
    ])
    return {"groups": made, "alerts": alert_ids, "headers": headers, "admin": author}


def scope_of(area=AREA, group_ids=(), languages=("es",)) -> dict:
    return {"area": area, "group_ids": list(group_ids), "languages": list(languages)}


class Replica:
    """What a client holds, applied page by page as SYNC.md says."""

    def __init__(self) -> None:
        self.groups: dict[str, dict] = {}
        self.alerts: dict[str, dict] = {}
        self.tips: dict[str, dict] = {}
        self.cursor: str | None = None

    def apply(self, page: dict) -> None:
        if page["reset"]:
            self.groups.clear(), self.alerts.clear(), self.tips.clear()
        for key in [*page["removed_groups"], *page["groups"]["deleted"]]:
            self.groups.pop(key, None)
            self.alerts = {k: a for k, a in self.alerts.items() if a["group_id"] != key}
        for kind in ("alerts", "tips"):
            for key in page[kind]["deleted"]:
                getattr(self, kind).pop(key, None)
        for kind in ("groups", "alerts", "tips"):
            getattr(self, kind).update(
                (entity["id"], entity) for entity in page[kind]["upserted"])
        self.cursor = page["cursor"]


def pull(client, headers=None, *, scope, cursor=None, have=(), limit=500, **extra):
    body = {"cursor": cursor, "scope": scope, "have_groups": list(have), "limit": limit,
            "schema_version": 1, **extra}
    return client.post("/v1/sync/pull", json=body, headers=headers or {})


def pulled(client, headers=None, **arguments) -> dict:
    response = pull(client, headers, **arguments)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return response.get_json()


def sync(client, replica: Replica, scope: dict, headers=None, limit: int = 500) -> list[dict]:
    """Pull until ``has_more`` is false, applying each page; returns the pages."""
    pages = []
    while True:
        page = pulled(client, headers, scope=scope, cursor=replica.cursor,
                      have=sorted(replica.groups), limit=limit)
        replica.apply(page)
        pages.append(page)
        if not page["has_more"]:
            return pages
        assert len(pages) < 500, "the pull never ends"


def entities_in(page: dict) -> int:
    return sum(len(page[kind]["upserted"]) + len(page[kind]["deleted"])
               for kind in ("groups", "alerts", "tips"))


def assert_holds_exactly(client, db, replica: Replica, group_ids, languages, headers=None):
    """The replica is the scope as the server has it now, entity for entity."""
    headers = headers or {}
    assert set(replica.groups) == set(group_ids)
    for key, group in replica.groups.items():
        assert group == client.get(f"/v1/groups/{key}").get_json()
    with db.read() as session:
        alert_ids = set(session.scalars(
            select(Alert.id).where(Alert.group_id.in_(list(group_ids)))))
    assert set(replica.alerts) == alert_ids
    for key, alert in replica.alerts.items():
        assert alert == client.get(f"/v1/alerts/{key}", headers=headers).get_json()
    wanted = {*languages, "en"}
    assert {(t["key"], t["language"]) for t in replica.tips.values()} == {
        (key, language) for key in ("lock-doors", "hide-valuables") for language in wanted}
    for key, tip in replica.tips.items():
        assert key == tips.tip_id(tip["key"], tip["language"])
        stored = client.get(f"/v1/tips/{key}").get_json()
        assert {name: tip[name] for name in stored} == stored


def version_of(db, group_id: str) -> int:
    return groups.get_group(db, group_id).version


def account_of(db, headers) -> str:
    return accounts.authenticate(db, headers["Authorization"].removeprefix("Bearer ")).account_id


def end_membership(db, account_id: str, group_id: str) -> None:
    """What ending a membership must do (there is no service for it yet): the row goes, and
    the group gets a new version, its member_count having changed."""
    with db.write() as session:
        session.execute(delete(Membership).where(
            Membership.account_id == account_id, Membership.group_id == group_id))
        changelog.stamp(session, session.get(GroupRow, group_id))


# -- paging ------------------------------------------------------------------------------------
@pytest.mark.parametrize("limit", [1, 4])
def test_a_first_sync_comes_in_pages_of_at_most_limit_that_add_up_to_the_scope(
    client, db, scene, limit
):
    g, resident = scene["groups"], scene["headers"]["resident"]
    scope = scope_of(group_ids=[g["asked"]], languages=["es"])
    replica = Replica()
    pages = sync(client, replica, scope, resident, limit=limit)

    # Four groups ('far' is out of scope), their 3 + 2 + 1 + 2 alerts, two tips in es and en.
    total = 4 + 8 + 2 * 2
    assert len(pages) >= -(-total // limit)
    cursors = [None] + [page["cursor"] for page in pages]
    assert all(a != b for a, b in itertools.pairwise(cursors)), "every page moves the cursor"
    for page in pages:
        assert 0 < entities_in(page) <= limit
        assert page["reset"] is False and page["removed_groups"] == []
        assert page["groups"]["deleted"] == page["alerts"]["deleted"] == []
    assert [page["has_more"] for page in pages] == [True] * (len(pages) - 1) + [False]
    assert sum(entities_in(page) for page in pages) == total
    in_scope = [g["near_1"], g["near_2"], g["asked"], g["mine"]]
    assert_holds_exactly(client, db, replica, in_scope, ["es"], resident)

    again = pulled(client, resident, scope=scope, cursor=replica.cursor,
                   have=sorted(replica.groups), limit=limit)
    assert entities_in(again) == 0 and again["has_more"] is False


def test_a_language_change_comes_in_pages_of_at_most_limit(client, db, scene):
    resident = scene["headers"]["resident"]
    replica = Replica()
    sync(client, replica, scope_of(languages=["es", "fr"]), resident)
    pages = sync(client, replica, scope_of(languages=["zh"]), resident, limit=1)
    assert_holds_exactly(client, db, replica, list(replica.groups), ["zh-Hans"], resident)
    assert [entities_in(page) for page in pages if entities_in(page) > 1] == []


def test_deleted_groups_come_in_pages_of_at_most_limit(client, db, scene):
    g, resident = scene["groups"], scene["headers"]["resident"]
    replica = Replica()
    sync(client, replica, scope_of(), resident)
    groups.delete_group(db, scene["admin"], g["near_1"])
    groups.delete_group(db, scene["admin"], g["near_2"])
    pages = sync(client, replica, scope_of(), resident, limit=1)
    assert_holds_exactly(client, db, replica, [g["mine"]], ["es"], resident)
    assert [entities_in(page) for page in pages if entities_in(page) > 1] == []


def test_every_entity_of_a_first_sync_arrives_once(client, db, scene):
    replica = Replica()
    pages = sync(client, replica, scope_of(), scene["headers"]["resident"], limit=3)
    for kind in ("groups", "alerts", "tips"):
        sent = [entity["id"] for page in pages for entity in page[kind]["upserted"]]
        assert len(sent) == len(set(sent)), kind


def test_a_change_made_during_a_paged_backfill_is_not_lost(client, db, scene):
    g, resident = scene["groups"], scene["headers"]["resident"]
    scope, replica = scope_of(), Replica()
    first = pulled(client, resident, scope=scope, limit=2)
    replica.apply(first)
    assert first["has_more"]
    late = make_alert(db, scene["admin"], g["near_1"], location=spots(NEAR_1, 1)[0]).id
    groups.update_group(db, scene["admin"], g["near_2"], {"name": "Renamed midway"},
                        version_of(db, g["near_2"]))
    sync(client, replica, scope, resident, limit=2)
    assert late in replica.alerts
    assert replica.groups[g["near_2"]]["name"] == "Renamed midway"
    assert_holds_exactly(client, db, replica, [g["near_1"], g["near_2"], g["mine"]], ["es"],
                         resident)


# -- groups leaving and entering the scope -----------------------------------------------------
def test_a_group_whose_boundary_moves_away_is_removed_with_its_alerts(client, db, scene):
    g, resident = scene["groups"], scene["headers"]["resident"]
    replica = Replica()
    sync(client, replica, scope_of(), resident)
    assert g["near_2"] in replica.groups
    groups.update_group(db, scene["admin"], g["near_2"], {"boundary": box(*AWAY)},
                        version_of(db, g["near_2"]))
    [page] = sync(client, replica, scope_of(), resident)
    assert page["removed_groups"] == [g["near_2"]]
    assert page["groups"]["deleted"] == []
    assert g["near_2"] not in {a["group_id"] for a in replica.alerts.values()}
    assert_holds_exactly(client, db, replica, [g["near_1"], g["mine"]], ["es"], resident)


def test_groups_left_behind_by_a_moved_area_are_removed_and_new_ones_arrive_whole(
    client, db, scene
):
    g, resident, author = scene["groups"], scene["headers"]["resident"], scene["admin"]
    replica = Replica()
    sync(client, replica, scope_of(), resident)
    # Changes long after the alerts of 'far' were written: its alerts are far behind the cursor.
    for _ in range(3):
        make_alert(db, author, g["near_1"], location=spots(NEAR_1, 1)[0])
    groups.update_group(db, author, g["mine"], {"description": "Second Tuesdays"},
                        version_of(db, g["mine"]))
    sync(client, replica, scope_of(), resident)
    with db.read() as session:
        far_seqs = session.scalars(select(Alert.seq).where(Alert.group_id == g["far"])).all()
        assert max(far_seqs) < changelog.current_seq(session) - 3

    moved = {"lat": 47.505, "lon": -122.395, "radius_m": 1000}
    pages = sync(client, replica, scope_of(area=moved), resident, limit=2)
    removed = {key for page in pages for key in page["removed_groups"]}
    assert removed == {g["near_1"], g["near_2"]}
    arrived = {a["id"] for page in pages for a in page["alerts"]["upserted"]}
    assert arrived == set(scene["alerts"]["far"])
    assert_holds_exactly(client, db, replica, [g["far"], g["mine"]], ["es"], resident)


def test_a_group_named_in_group_ids_arrives_whole_and_leaves_when_no_longer_named(
    client, db, scene
):
    g, resident = scene["groups"], scene["headers"]["resident"]
    replica = Replica()
    sync(client, replica, scope_of(), resident)
    assert g["asked"] not in replica.groups
    sync(client, replica, scope_of(group_ids=[g["asked"]]), resident)
    assert_holds_exactly(client, db, replica, [g["near_1"], g["near_2"], g["asked"], g["mine"]],
                         ["es"], resident)
    [page] = sync(client, replica, scope_of(), resident)
    assert page["removed_groups"] == [g["asked"]]


def test_a_group_whose_membership_ended_is_removed(client, db, scene):
    g, resident = scene["groups"], scene["headers"]["resident"]
    replica = Replica()
    sync(client, replica, scope_of(), resident)
    assert g["mine"] in replica.groups
    end_membership(db, account_of(db, resident), g["mine"])
    [page] = sync(client, replica, scope_of(), resident)
    assert page["removed_groups"] == [g["mine"]]
    assert_holds_exactly(client, db, replica, [g["near_1"], g["near_2"]], ["es"], resident)


def test_a_deleted_group_is_in_groups_deleted(client, db, scene):
    g, resident = scene["groups"], scene["headers"]["resident"]
    replica = Replica()
    sync(client, replica, scope_of(), resident)
    groups.delete_group(db, scene["admin"], g["near_2"])
    [page] = sync(client, replica, scope_of(), resident)
    assert page["groups"]["deleted"] == [g["near_2"]]
    assert page["removed_groups"] == []
    assert_holds_exactly(client, db, replica, [g["near_1"], g["mine"]], ["es"], resident)


def test_a_cancellation_arrives_as_an_upsert_with_the_new_status(client, db, scene):
    g, resident = scene["groups"], scene["headers"]["resident"]
    replica = Replica()
    sync(client, replica, scope_of(), resident)
    from blockwatch import alerts

    target = scene["alerts"]["near_2"][0]
    alerts.cancel_alert(db, scene["admin"], target)
    [page] = sync(client, replica, scope_of(), resident)
    assert [a["id"] for a in page["alerts"]["upserted"]] == [target]
    assert page["alerts"]["deleted"] == []
    assert replica.alerts[target]["status"] == "cancelled"
    assert_holds_exactly(client, db, replica, [g["near_1"], g["near_2"], g["mine"]], ["es"],
                         resident)


def test_changing_languages_drops_and_backfills_tips(client, db, scene):
    g, resident = scene["groups"], scene["headers"]["resident"]
    replica = Replica()
    sync(client, replica, scope_of(languages=["es"]), resident)
    pages = sync(client, replica, scope_of(languages=["fr"]), resident)
    deleted = {key for page in pages for key in page["tips"]["deleted"]}
    assert deleted == {tips.tip_id(key, "es") for key in ("lock-doors", "hide-valuables")}
    assert_holds_exactly(client, db, replica, [g["near_1"], g["near_2"], g["mine"]], ["fr"],
                         resident)


# -- who sees exact locations ------------------------------------------------------------------
def exact_points(db, ids) -> dict[str, dict]:
    with db.read() as session:
        rows = session.execute(select(Alert.id, Alert.lon, Alert.lat)
                               .where(Alert.id.in_(list(ids)))).all()
    return {row.id: {"lat": row.lat, "lon": row.lon} for row in rows}


def test_members_get_exact_locations_and_the_public_approximate_ones(client, db, scene):
    g, watcher = scene["groups"], scene["headers"]["watcher"]
    points = exact_points(db, [a for ids in scene["alerts"].values() for a in ids])
    mine, public = Replica(), Replica()
    sync(client, mine, scope_of(), watcher)
    sync(client, public, scope_of(), {})

    for key, alert in mine.alerts.items():
        if alert["group_id"] == g["near_1"]:
            assert alert["location_precision"] == "exact"
            assert alert["location"] == points[key]
        else:
            assert alert["location_precision"] == "approximate"
            assert alert["location"] != points[key]
    assert set(public.alerts) == set(mine.alerts)  # the same groups: both near the centre
    for key, alert in public.alerts.items():
        assert alert["location_precision"] == "approximate"
        assert alert["location"] != points[key]
    assert_holds_exactly(client, db, public, [g["near_1"], g["near_2"]], ["es"], {})


def test_a_granted_membership_resends_the_groups_alerts_exact_and_an_ended_one_rounded(
    client, db, scene
):
    g, watcher = scene["groups"], scene["headers"]["watcher"]
    replica = Replica()
    sync(client, replica, scope_of(), watcher)
    near_2 = set(scene["alerts"]["near_2"])
    assert {replica.alerts[k]["location_precision"] for k in near_2} == {"approximate"}
    points = exact_points(db, near_2)

    account = account_of(db, watcher)
    accounts.set_membership(db, account, g["near_2"], "member")
    pages = sync(client, replica, scope_of(), watcher, limit=1)
    resent = {a["id"] for page in pages for a in page["alerts"]["upserted"]}
    assert resent == near_2
    for key in near_2:
        assert replica.alerts[key]["location_precision"] == "exact"
        assert replica.alerts[key]["location"] == points[key]
    assert_holds_exactly(client, db, replica, [g["near_1"], g["near_2"]], ["es"], watcher)

    end_membership(db, account, g["near_2"])
    pages = sync(client, replica, scope_of(), watcher)
    assert {a["id"] for page in pages for a in page["alerts"]["upserted"]} == near_2
    assert {replica.alerts[k]["location_precision"] for k in near_2} == {"approximate"}
    assert_holds_exactly(client, db, replica, [g["near_1"], g["near_2"]], ["es"], watcher)


# -- cursors -----------------------------------------------------------------------------------
CURSOR_SALT = "blockwatch.sync.cursor"


def payload_of(cursor: str) -> dict:
    valid, payload = URLSafeSerializer("not the key", salt=CURSOR_SALT).loads_unsafe(cursor)
    assert not valid and isinstance(payload, dict)
    return payload


def signed_elsewhere(payload: dict, key: str = "not the key") -> str:
    return URLSafeSerializer(key, salt=CURSOR_SALT).dumps(payload)


def flip(character: str) -> str:
    return "B" if character != "B" else "C"


@pytest.fixture
def synced(client, db, scene):
    """A replica of the resident's scope, complete; and a fresh first page to compare with."""
    replica = Replica()
    sync(client, replica, scope_of(), scene["headers"]["resident"])
    return replica


def fresh_first_page(client, headers) -> dict:
    page = pulled(client, headers, scope=scope_of())
    assert page["reset"] is False
    return page


def assert_reset_to_fresh(page: dict, fresh: dict) -> None:
    assert page["reset"] is True
    assert {**page, "reset": False} == fresh


def test_a_cursor_with_an_altered_signature_is_400(client, scene, synced):
    payload, _, signature = synced.cursor.rpartition(".")
    altered = f"{payload}.{flip(signature[0])}{signature[1:]}"
    response = pull(client, scene["headers"]["resident"], scope=scope_of(), cursor=altered,
                    have=sorted(synced.groups))
    assert_problem(response, 400)


def test_a_cursor_with_an_altered_payload_is_400(client, scene, synced):
    resident = scene["headers"]["resident"]
    # Edited and re-encoded (so it decodes), with the original signature: seq back to 0.
    payload = payload_of(synced.cursor)
    edited_payload = signed_elsewhere({**payload, "q": 0}).rpartition(".")[0]
    forged = f"{edited_payload}.{synced.cursor.rpartition('.')[2]}"
    assert_problem(pull(client, resident, scope=scope_of(), cursor=forged), 400)
    # One character of the encoded payload changed.
    text, _, signature = synced.cursor.rpartition(".")
    middle = len(text) // 2
    altered = f"{text[:middle]}{flip(text[middle])}{text[middle + 1:]}.{signature}"
    assert_problem(pull(client, resident, scope=scope_of(), cursor=altered), 400)
    # Signed with another key, naming this server: a forgery.
    assert_problem(pull(client, resident, scope=scope_of(), cursor=signed_elsewhere(payload)),
                   400)


@SQLITE_ONLY
@pytest.mark.parametrize("cursor", ["", "not a cursor", "....", "e30"])
def test_a_cursor_that_is_not_one_is_400(client, cursor):
    assert_problem(pull(client, {}, scope=scope_of(), cursor=cursor), 400)


def test_a_cursor_of_another_server_resets(client, scene, synced, request, tmp_path_factory):
    resident = scene["headers"]["resident"]
    other_db = fresh_database(request, tmp_path_factory, "sqlite")
    try:
        other_app = app_over(other_db)
        make_group(other_db, "Elsewhere", box(*NEAR_1))
        foreign = pulled(other_app.test_client(), {}, scope=scope_of())["cursor"]
    finally:
        other_db.dispose()
    fresh = fresh_first_page(client, resident)
    page = pulled(client, resident, scope=scope_of(), cursor=foreign,
                  have=sorted(synced.groups))
    assert_reset_to_fresh(page, fresh)

    # A cursor naming another server id cannot be checked here: it is another server's.
    renamed = signed_elsewhere({**payload_of(synced.cursor), "s": str(uuid.uuid4())})
    page = pulled(client, resident, scope=scope_of(), cursor=renamed, have=sorted(synced.groups))
    assert_reset_to_fresh(page, fresh)


def test_a_cursor_older_than_the_tombstone_horizon_resets(client, db, scene, synced):
    resident = scene["headers"]["resident"]
    groups.delete_group(db, scene["admin"], scene["groups"]["far"])
    with db.write() as session:
        purged = changelog.purge_tombstones(
            session, timedelta(days=90), now=datetime.now(UTC) + timedelta(days=91))
    assert purged == 3  # the group and its two alerts
    fresh = fresh_first_page(client, resident)
    replica = synced
    pages = sync(client, replica, scope_of(), resident)
    assert_reset_to_fresh(pages[0], fresh)
    g = scene["groups"]
    assert_holds_exactly(client, db, replica, [g["near_1"], g["near_2"], g["mine"]], ["es"],
                         resident)
    # The new cursor is past the horizon: no second reset.
    again = pulled(client, resident, scope=scope_of(), cursor=replica.cursor,
                   have=sorted(replica.groups))
    assert again["reset"] is False and entities_in(again) == 0


def test_a_cursor_issued_to_another_account_resets(client, db, scene, synced):
    g, watcher = scene["groups"], scene["headers"]["watcher"]
    for headers in (watcher, {}):
        fresh = fresh_first_page(client, headers)
        page = pulled(client, headers, scope=scope_of(), cursor=synced.cursor,
                      have=sorted(synced.groups))
        assert_reset_to_fresh(page, fresh)
    # And the reset replica holds what that reader may see (no exact points of 'mine').
    replica = Replica()
    replica.cursor, replica.groups = synced.cursor, dict(synced.groups)
    replica.alerts = dict(synced.alerts)
    sync(client, replica, scope_of(), watcher)
    assert_holds_exactly(client, db, replica, [g["near_1"], g["near_2"]], ["es"], watcher)


def test_another_schema_version_is_422(client, scene, synced):
    response = pull(client, scene["headers"]["resident"], scope=scope_of(),
                    cursor=synced.cursor, schema_version=2)
    assert_problem(response, 422, "schema_version")


def test_a_cursor_of_another_schema_version_resets(client, scene, synced):
    resident = scene["headers"]["resident"]
    # Only this server could sign it; another version of it would, after an upgrade.
    from blockwatch.sync import cursor as cursors

    state_secret = _secret(scene, client)
    payload = {**payload_of(synced.cursor), "v": cursors.SCHEMA_VERSION + 1}
    old = URLSafeSerializer(state_secret, salt=CURSOR_SALT).dumps(payload)
    page = pulled(client, resident, scope=scope_of(), cursor=old, have=sorted(synced.groups))
    assert_reset_to_fresh(page, fresh_first_page(client, resident))


def _secret(scene, client) -> str:
    db = client.application.extensions["blockwatch.db"]
    with db.read() as session:
        return db.settings.sync_secret or changelog.sync_state(session).cursor_secret


# -- a pull with nothing new -------------------------------------------------------------------
ENTITY_TABLE = re.compile(
    r'\b(?:FROM|JOIN|UPDATE|INTO)\s+"?(alerts|groups|safety_tips|tombstones)"?(?:\s|$|,|\))',
    re.IGNORECASE)


def statements_of(db, action) -> list[str]:
    seen: list[str] = []

    def record(connection, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    engines = {db.engine, db.read_engine}  # reads have a pool of their own on PostgreSQL
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)
    return seen


def assert_cheap_empty_pull(client, db, headers, scope, replica: Replica) -> None:
    answers = []
    seen = statements_of(db, lambda: answers.append(pulled(
        client, headers, scope=scope, cursor=replica.cursor, have=sorted(replica.groups))))
    [page] = answers
    assert entities_in(page) == 0 and page["removed_groups"] == []
    assert page["has_more"] is False and page["reset"] is False
    assert any("sync_state" in statement for statement in seen), seen
    if headers:
        assert any("tokens" in statement for statement in seen), seen
    entity_queries = [s for s in seen if ENTITY_TABLE.search(s)]
    assert entity_queries == [], entity_queries


def test_a_pull_with_nothing_new_reads_no_entity(client, db, scene):
    resident = scene["headers"]["resident"]
    replica = Replica()
    sync(client, replica, scope_of(), resident)
    assert_cheap_empty_pull(client, db, resident, scope_of(), replica)
    public = Replica()
    sync(client, public, scope_of(), {})
    assert_cheap_empty_pull(client, db, {}, scope_of(), public)


def test_a_pull_with_nothing_new_and_group_ids_reads_no_entity(client, db, scene):
    resident = scene["headers"]["resident"]
    scope = scope_of(group_ids=[scene["groups"]["asked"]])
    replica = Replica()
    sync(client, replica, scope, resident)
    assert_cheap_empty_pull(client, db, resident, scope, replica)


def test_a_second_reader_of_the_same_view_gets_the_renderings_kept_from_the_first(
        client, db, scene):
    """Alerts are rendered once per version and view: the first public device's sync reads
    the renderings stored with the rows (no alert row loaded), a second one's reads neither
    (its renderings are found by ref in the server's cache) and gets the same objects; a
    member, who sees its own group's alerts exactly, gets the exact renderings."""
    def loads_alerts(statements: list[str]) -> bool:
        return any("alerts.title" in statement for statement in statements)

    def reads_stored(statements: list[str], column: str) -> bool:
        return any(f"alerts.{column}" in statement for statement in statements)

    first, second, resident = Replica(), Replica(), Replica()
    seen = statements_of(db, lambda: sync(client, first, scope_of(), limit=3))
    assert reads_stored(seen, "rendering_public") and not loads_alerts(seen)
    seen = statements_of(db, lambda: sync(client, second, scope_of(), limit=3))
    assert not reads_stored(seen, "rendering_public") and not loads_alerts(seen)
    assert second.alerts == first.alerts and second.alerts
    mine = scene["headers"]["resident"]
    seen = statements_of(db, lambda: sync(client, resident, scope_of(), mine))
    assert reads_stored(seen, "rendering_exact") and not loads_alerts(seen)
    own = set(scene["alerts"]["mine"])
    assert {key for key, alert in resident.alerts.items()
            if alert["location_precision"] == "exact"} == own


# -- validation --------------------------------------------------------------------------------
@SQLITE_ONLY
@pytest.mark.parametrize(("change", "field"), [
    ({"limit": 0}, "limit"),
    ({"limit": 5001}, "limit"),
    ({"limit": "10"}, "limit"),
    ({"scope": scope_of(area={**AREA, "radius_m": 0})}, "scope.area.radius_m"),
    ({"scope": scope_of(area={**AREA, "radius_m": 50001})}, "scope.area.radius_m"),
    ({"scope": scope_of(area={**AREA, "lat": 91})}, "scope.area.lat"),
    ({"have_groups": ["not-a-uuid"]}, "have_groups"),
    ({"scope": scope_of(group_ids=["not-a-uuid"])}, "scope.group_ids"),
    ({"scope": scope_of(languages=["not a tag"])}, "scope.languages.0"),
    ({"since": 3}, "since"),
    ({"scope": {**scope_of(), "radius_m": 10}}, "scope.radius_m"),
    ({"schema_version": 2}, "schema_version"),
])
def test_invalid_pull_fields_are_422_naming_them(client, change, field):
    body = {"cursor": None, "scope": scope_of(), "have_groups": [], "limit": 10,
            "schema_version": 1, **change}
    response = client.post("/v1/sync/pull", json=body)
    problem = assert_problem(response, 422)
    named = [name for name in problem.get("errors", {})
             if name == field or name.startswith(f"{field}.")]
    assert named, problem  # the field itself, or an item of it ('have_groups.0')


@SQLITE_ONLY
def test_a_pull_without_a_scope_is_422_and_a_bad_token_401(client):
    assert_problem(client.post("/v1/sync/pull", json={"cursor": None}), 422, "scope")
    response = client.post("/v1/sync/pull", json={"scope": scope_of()},
                           headers={"Authorization": "Bearer bw_nope"})
    assert_problem(response, 401)
    response = client.post("/v1/sync/pull", data="scope=1",
                           headers={"Content-Type": "text/plain"})
    assert_problem(response, 415)


def test_a_pull_page_is_private(client, scene):
    response = pull(client, scene["headers"]["watcher"], scope=scope_of())
    assert "no-store" in response.headers["Cache-Control"]
    assert "Authorization" in response.headers["Vary"]

