"""The ``blockwatch`` command line, on both databases."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from blockwatch import accounts
from blockwatch.cli import cli
from blockwatch.config import Settings
from blockwatch.db import Database
from blockwatch.models import Group

BOWTIE = {"type": "Feature", "properties": {"S_HOOD": "Bow Tie"}, "geometry": {
    "type": "Polygon",
    "coordinates": [[[-122.30, 47.60], [-122.29, 47.61], [-122.29, 47.60], [-122.30, 47.61],
                     [-122.30, 47.60]]]}}


@pytest.fixture
def run(database_url, monkeypatch):
    monkeypatch.setenv("BLOCKWATCH_DATABASE_URL", database_url)

    def invoke(*args):
        return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return invoke


def count_groups(database_url) -> int:
    db = Database(database_url, Settings(database_url=database_url))
    with db.read() as session:
        count = session.scalar(select(func.count()).select_from(Group))
    db.dispose()
    return count


def test_version_and_init_db(run):
    assert "blockwatch" in run("--version").output
    result = run("init-db")
    assert result.exit_code == 0 and "database ready" in result.output


def test_import_all_119_neighbourhoods_then_nothing_when_one_is_invalid(
    run, database_url, shared_data, tmp_path
):
    source = shared_data / "seattle_city_clerk_neighborhoods.geojson"
    first = run("import-groups", source, "--name-field", "S_HOOD")
    assert first.exit_code == 0, first.output
    assert first.stdout.strip().splitlines()[-1] == "119"
    assert "unnamed: feature 107: no 'S_HOOD', imported as 'Unnamed (feature 107)'" in (
        first.stderr
    )
    assert count_groups(database_url) == 119
    document = json.loads(source.read_text())
    document["features"].append(BOWTIE)
    broken = tmp_path / "with_invalid.geojson"
    broken.write_text(json.dumps(document))
    second = run("import-groups", broken, "--name-field", "S_HOOD")
    assert second.exit_code == 1
    assert "feature 119" in second.stderr and "self-intersection" in second.stderr
    assert second.stdout.strip() == "0"
    assert count_groups(database_url) == 119


def test_skip_and_repair_say_what_they_did(run, database_url, tmp_path):
    good = {"type": "Feature", "properties": {"S_HOOD": "Square"}, "geometry": {
        "type": "Polygon",
        "coordinates": [[[-122.3, 47.6], [-122.29, 47.6], [-122.29, 47.61], [-122.3, 47.61],
                         [-122.3, 47.6]]]}}
    unnamed = dict(good, properties={"S_HOOD": " "})
    path = tmp_path / "mixed.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection",
                                "features": [good, BOWTIE, unnamed]}))
    skipped = run("import-groups", path, "--name-field", "S_HOOD", "--on-invalid", "skip")
    assert skipped.exit_code == 0
    assert skipped.stdout.strip() == "2"
    assert "skipped: feature 1: self-intersection at (-122.295, 47.605)" in skipped.stderr
    assert "unnamed: feature 2" in skipped.stderr
    repaired = run("import-groups", path, "--name-field", "S_HOOD", "--on-invalid", "repair")
    assert repaired.stdout.strip() == "3"
    assert "repaired: feature 1" in repaired.stderr
    assert count_groups(database_url) == 5


def test_create_token_prints_only_the_token(run, database_url):
    result = run("create-token", "--name", "Ada", "--role", "admin")
    assert result.exit_code == 0
    assert re.fullmatch(r"bw_[A-Za-z0-9_-]{43}\n", result.stdout)
    db = Database(database_url, Settings(database_url=database_url))
    assert accounts.authenticate(db, result.stdout.strip()).is_admin
    db.dispose()
    refused = run("create-token", "--name", "Bo", "--role", "coordinator")
    assert refused.exit_code != 0


def test_load_fixtures_twice_writes_once(run, database_url):
    first = run("load-fixtures")
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("31 groups, 13 alerts, ")
    second = run("load-fixtures")
    assert second.stdout.startswith("0 groups, 0 alerts, 0 tips")
    assert count_groups(database_url) == 31


def test_purge_tombstones_keeps_young_deletes(run, database_url):
    from blockwatch import groups
    from blockwatch.domain import OPERATOR
    from tests.blockwatch.factories import group

    db = Database(database_url, Settings(database_url=database_url))
    groups.delete_group(db, OPERATOR, group(db).id)
    db.dispose()
    kept = run("purge-tombstones")
    assert kept.exit_code == 0 and kept.stdout.startswith("0 tombstone(s) older than 90 days")
    # The sync protocol promises 90 days: a shorter horizon is refused.
    assert run("purge-tombstones", "--older-than-days", "0").exit_code != 0


def test_revoke_token(run, database_url):
    token = run("create-token", "--name", "Ada", "--role", "admin").stdout.strip()
    assert run("revoke-token", token).stdout.strip() == "revoked"
    assert run("revoke-token", token).exit_code == 1
    db = Database(database_url, Settings(database_url=database_url))
    with pytest.raises(accounts.NotAuthenticated):
        accounts.authenticate(db, token)
    db.dispose()


def test_purge_tombstones_moves_the_horizon_and_forgets_old_push_results(run, database_url):
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from blockwatch import groups
    from blockwatch.domain import OPERATOR
    from blockwatch.models import SyncMutation, SyncState, Tombstone
    from blockwatch.sync.push import Mutation, push
    from tests.blockwatch.factories import group

    db = Database(database_url, Settings(database_url=database_url))
    doomed, kept = group(db), group(db, name="Kept")
    groups.delete_group(db, OPERATOR, doomed.id)
    actor = accounts.actor_for(db, accounts.ensure_account(db, "Pusher", is_admin=True))
    client_id = "6f1c9a53-2a4e-4f5e-9d7c-1b4c6a0e9b21"
    first = push(db, actor, client_id, [Mutation(
        1, "group.update", kept.id, changes={"name": "Kept!"}, base_version=kept.version,
    )])
    assert first.results[0].status == "applied"
    long_ago = datetime.now(UTC) - timedelta(days=91)
    with db.write() as session:  # both happened more than 90 days ago
        session.execute(update(Tombstone).values(deleted_at=long_ago))
        session.execute(update(SyncMutation).values(applied_at=long_ago))
    result = run("purge-tombstones")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("1 tombstone(s) older than 90 days purged")
    assert "1 pushed mutation result(s)" in result.stdout
    with db.read() as session:
        horizon = session.get(SyncState, 1).purged_through_seq
    assert horizon > 0  # cursors from before the delete now get a reset
    replay = push(db, actor, client_id, [Mutation(
        1, "group.update", kept.id, changes={"name": "Kept!"}, base_version=kept.version,
    )])
    # Still never applied twice; only its first result is forgotten.
    assert (replay.results[0].status, replay.results[0].original_status) == ("duplicate", None)
    assert groups.get_group(db, kept.id).name == "Kept!"
    db.dispose()
