"""Alert renderings stored with their rows (``blockwatch.renderings``): every writer of an alert
stores what a read of it renders, in both views; a sync page serves them; a stale one (another
renderer's, an older version's, another status's) is never served; ``blockwatch render-alerts``
brings rows written without a renderer up to date."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

import api.serving  # noqa: F401  (adds serve, worker and render-alerts to the command line)
from api import create_app, http
from blockwatch import alerts, renderings
from blockwatch.cli import cli
from blockwatch.config import Settings
from blockwatch.db import Database
from blockwatch.models import Alert
from tests.api.helpers import box, make_alert, make_group
from tests.blockwatch.factories import actor
from tests.sync.test_pull_rules import Replica, scope_of, statements_of, sync

WHERE = (-122.33, 47.60, -122.32, 47.61)
SPOT = (-122.32637, 47.60411)  # inside WHERE, off the public grid
SCOPE = scope_of(area={"lat": 47.605, "lon": -122.325, "radius_m": 1000}, languages=())


@pytest.fixture
def place(db, tokens):
    """A group, its coordinator (as an actor and as headers) and an anonymous reader."""
    group = make_group(db, "Pike/Pine", box(*WHERE))
    headers = tokens("coordinator", group.id)
    author = actor(db, "Coordinator Two", "coordinator", group.id)
    return {"group": group, "headers": headers, "author": author}


def stored(db, alert_id: str) -> dict:
    with db.read() as session:
        row = session.execute(select(
            Alert.rendering_exact, Alert.rendering_public, Alert.rendered_as, Alert.seq,
        ).where(Alert.id == alert_id)).one()
    return {"exact": row[0] and json.loads(row[0]), "public": row[1] and json.loads(row[1]),
            "rendered_as": row[2], "seq": row[3]}


def as_written(text: str | bytes) -> dict:
    """JSON with numbers kept as written (``-0.0`` is not ``0.0`` here)."""
    return json.loads(text, parse_float=str, parse_int=str)


def assert_stored_as_read(client, db, alert_id: str, member_headers: dict) -> None:
    """Both stored views are what a read of the alert answers, for its version."""
    with db.read() as session:
        exact, public, rendered_as, seq = session.execute(select(
            Alert.rendering_exact, Alert.rendering_public, Alert.rendered_as, Alert.seq,
        ).where(Alert.id == alert_id)).one()
    assert rendered_as == http.alert_renderer().stamp(seq)
    assert as_written(public) == as_written(client.get(f"/v1/alerts/{alert_id}").data)
    assert as_written(exact) == as_written(
        client.get(f"/v1/alerts/{alert_id}", headers=member_headers).data)
    assert json.loads(public)["version"] == seq


def test_every_writer_of_an_alert_stores_both_views_as_a_read_renders_them(client, db, place):
    posted = make_alert(db, place["author"], place["group"].id, location=SPOT)
    assert_stored_as_read(client, db, posted.id, place["headers"])
    assert stored(db, posted.id)["public"]["location_precision"] == "approximate"
    assert stored(db, posted.id)["exact"]["location"] == {"lon": SPOT[0], "lat": SPOT[1]}

    response = client.post(f"/v1/groups/{place['group'].id}/alerts", headers=place["headers"],
                           json={"category": "vehicle-prowl", "title": "Car prowl on Pike"})
    assert response.status_code == 201, response.get_data(as_text=True)
    unlocated = response.get_json()["id"]
    assert_stored_as_read(client, db, unlocated, place["headers"])
    assert stored(db, unlocated)["public"] == stored(db, unlocated)["exact"]

    pushed_id = str(uuid.uuid4())
    response = client.post("/v1/sync/push", headers=place["headers"], json={
        "client_id": str(uuid.uuid4()), "mutations": [{
            "mutation_id": 1, "op": "alert.create",
            "args": {"id": pushed_id, "group_id": place["group"].id, "category": "burglary",
                     "title": "Break-in, posted offline",
                     "location": {"lat": SPOT[1], "lon": SPOT[0]}}}]})
    assert response.get_json()["results"][0]["status"] == "applied"
    assert_stored_as_read(client, db, pushed_id, place["headers"])

    before = stored(db, posted.id)["seq"]
    alerts.cancel_alert(db, place["author"], posted.id)
    assert stored(db, posted.id)["seq"] > before
    assert stored(db, posted.id)["public"]["status"] == "cancelled"
    assert_stored_as_read(client, db, posted.id, place["headers"])


def test_the_expiry_sweep_stores_the_expired_view_and_until_then_reads_render_it(
        client, db, place):
    posted = make_alert(db, place["author"], place["group"].id, location=SPOT)
    with db.write() as session:  # its time runs out (posts cannot be made in the past)
        session.execute(update(Alert).where(Alert.id == posted.id).values(
            expires_at=datetime.now(UTC) - timedelta(minutes=1)))
    replica = Replica()
    seen = statements_of(db, lambda: sync(client, replica, SCOPE))
    assert replica.alerts[posted.id]["status"] == "expired"  # rendered when read
    assert any("alerts.title" in statement for statement in seen)
    assert stored(db, posted.id)["public"]["status"] == "active"

    assert alerts.expire_alerts(db) == 1
    assert stored(db, posted.id)["public"]["status"] == "expired"
    assert_stored_as_read(client, db, posted.id, place["headers"])


@pytest.mark.parametrize("view", ["public", "exact"])
def test_a_sync_page_serves_only_current_stored_renderings(client, db, place, view):
    """A rendering stamped with the current renderer and version is what the page carries
    (shown with a marked text); one stamped for another renderer or another version is not."""
    posted = make_alert(db, place["author"], place["group"].id, location=SPOT)
    renderer = http.alert_renderer()
    seq = stored(db, posted.id)["seq"]
    headers = place["headers"] if view == "exact" else {}
    truth = client.get(f"/v1/alerts/{posted.id}", headers=headers).get_json()
    assert truth["location_precision"] == ("exact" if view == "exact" else "approximate")

    def pulled_with(stamp: str) -> dict:
        marked = json.dumps({**truth, "title": "MARKED"})
        with db.write() as session:
            session.execute(update(Alert).where(Alert.id == posted.id).values(
                {f"rendering_{view}": marked, "rendered_as": stamp}))
        # A fresh app: nothing kept in memory from an earlier page.
        fresh = create_app({"TESTING": True, "database": db}).test_client()
        replica = Replica()
        sync(fresh, replica, SCOPE, headers)
        return replica.alerts[posted.id]

    assert pulled_with(renderer.stamp(seq))["title"] == "MARKED"
    assert pulled_with(renderer.stamp(seq - 1)) == truth
    assert pulled_with(f"0.0.0+another/{seq}") == truth


def test_the_command_line_stores_renderings_too(db, place, database_url, monkeypatch):
    """``blockwatch`` commands (an expiry sweep from cron) write through the same renderer."""
    posted = make_alert(db, place["author"], place["group"].id, location=SPOT)
    with db.write() as session:
        session.execute(update(Alert).where(Alert.id == posted.id).values(
            expires_at=datetime.now(UTC) - timedelta(minutes=1)))
    monkeypatch.setenv("BLOCKWATCH_DATABASE_URL", database_url)
    result = CliRunner().invoke(cli, ["expire-alerts"], catch_exceptions=False)
    assert result.exit_code == 0 and "1 alert(s) expired" in result.output, result.output
    kept = stored(db, posted.id)
    assert kept["public"]["status"] == kept["exact"]["status"] == "expired"
    assert kept["rendered_as"] == http.alert_renderer().stamp(kept["seq"])


def test_an_alert_on_the_greenwich_meridian_is_stored_as_it_reads(client, db, tokens):
    """-0.0 is stored as 0.0 by SQLite: the rendering made before the row is stored agrees."""
    group = make_group(db, "Greenwich", box(-0.01, 51.47, 0.01, 51.49))
    author = actor(db, "Greenwich Coordinator", "coordinator", group.id)
    posted = make_alert(db, author, group.id, location=(-0.0, 51.4779))
    assert_stored_as_read(client, db, posted.id, tokens("coordinator", group.id))


def test_render_alerts_renders_rows_written_without_a_renderer(database_url, monkeypatch):
    plain = Database(database_url, Settings(database_url=database_url, index_staleness_s=0.0))
    plain.migrate()
    try:
        group = make_group(plain, "Pike/Pine", box(*WHERE))
        author = actor(plain, "Coordinator", "coordinator", group.id)
        ids = [make_alert(plain, author, group.id, location=SPOT, title=f"Alert {n}").id
               for n in range(3)]
        assert {stored(plain, key)["rendered_as"] for key in ids} == {None}
        monkeypatch.setenv("BLOCKWATCH_DATABASE_URL", database_url)
        result = CliRunner().invoke(cli, ["render-alerts", "--batch-size", "2"],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert "rendered 3 alerts" in result.output
        renderer = http.alert_renderer()
        for key in ids:
            kept = stored(plain, key)
            assert kept["rendered_as"] == renderer.stamp(kept["seq"])
            assert kept["public"]["id"] == key and kept["exact"]["location_precision"] == "exact"
        renderings.install(plain, renderer)
        assert renderings.render_stale(plain) == 0  # nothing left
    finally:
        plain.dispose()


TEXT = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=st.text(TEXT, min_size=1, max_size=120).filter(str.strip),
       body=st.text(TEXT, max_size=200),
       located=st.booleans(),
       category=st.sampled_from(["burglary", "vehicle-prowl", "suspicious-activity"]))
def test_stored_renderings_equal_what_a_read_renders_for_any_alert(
        client, db, place, title, body, located, category):
    posted = make_alert(db, place["author"], place["group"].id, title=title, body=body,
                        category=category, location=SPOT if located else None)
    assert_stored_as_read(client, db, posted.id, place["headers"])


def test_posting_renders_without_a_query_under_the_change_counters_lock(db, place):
    """Every writer queues on the change counter's row lock until it commits: rendering a new
    alert there must not add a round trip (the author's name comes from the post itself)."""
    seen = statements_of(db, lambda: make_alert(db, place["author"], place["group"].id,
                                                location=SPOT))
    counter = next(n for n, statement in enumerate(seen) if "UPDATE sync_state" in statement)
    after = [statement for statement in seen[counter + 1:] if "accounts" in statement]
    assert after == [], after
    with db.read() as session:
        [public] = session.scalars(select(Alert.rendering_public)).all()
    assert json.loads(public)["author"]["display_name"] == "Coordinator Two"


def test_cancelling_and_the_sweep_render_without_a_query_under_the_counters_lock(db, place):
    """The cancel is by someone other than the author, and the sweep meets alerts of authors
    it has not seen: their names are read before the counter is taken."""
    posted = make_alert(db, place["author"], place["group"].id, location=SPOT)
    someone_else = actor(db, "Admin Two", "admin")
    other = make_alert(db, place["author"], place["group"].id, location=SPOT, title="Other")
    with db.write() as session:
        session.execute(update(Alert).where(Alert.id == other.id).values(
            expires_at=datetime.now(UTC) - timedelta(minutes=1)))
    for write in (lambda: alerts.cancel_alert(db, someone_else, posted.id),
                  lambda: alerts.expire_alerts(db)):
        seen = statements_of(db, write)
        counter = next(n for n, text in enumerate(seen) if "UPDATE sync_state" in text)
        assert [text for text in seen[counter + 1:] if "accounts" in text] == []
    assert stored(db, posted.id)["public"]["author"]["display_name"] == "Coordinator Two"
    assert stored(db, other.id)["public"]["status"] == "expired"
