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
