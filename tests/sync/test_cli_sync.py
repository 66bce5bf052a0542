"""``blockwatch sync``: the command pulls a replica from a live server (a real HTTP server in
a thread) and pushes what was queued offline."""

from __future__ import annotations

import threading

import pytest
from click.testing import CliRunner
from werkzeug.serving import make_server

from api import create_app
from blockwatch import accounts, fixtures
from blockwatch.cli import cli
from blockwatch.config import Settings
from blockwatch.db import Database
from blockwatch.sync.client import SyncClient


@pytest.fixture
def live_server(database_url):
    database = Database(database_url, Settings(database_url=database_url, index_staleness_s=0.0))
    fixtures.load_fixtures(database)
    app = create_app({"database": database, "BLOCKWATCH_RATE_LIMIT_WRITES": "off"})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", database
    server.shutdown()
    thread.join()
    database.dispose()


def test_sync_pulls_the_area_and_reports_what_it_holds(live_server, tmp_path):
    url, _ = live_server
    replica = tmp_path / "replica.db"
    result = CliRunner().invoke(cli, [
        "sync", "--server", url, "--replica", str(replica), "--lat", "47.62", "--lon",
        "-122.315", "--radius-m", "800", "--language", "es", "--limit", "10",
    ])
    assert result.exit_code == 0, result.output
    with SyncClient(url, replica) as client:
        held = client.dump()
    assert held["groups"] and held["tips"]
    assert f"{len(held['groups'])} groups, {len(held['alerts'])} alerts" in result.output
    assert {tip["language"] for tip in held["tips"].values()} == {"en", "es"}

    again = CliRunner().invoke(cli, ["sync", "--server", url, "--replica", str(replica)])
    assert again.exit_code == 0, again.output
    assert "pulled 1 page(s)" in again.output and "0 upserted" in again.output


def test_sync_pushes_the_outbox_with_a_token(live_server, tmp_path):
    url, database = live_server
    replica = tmp_path / "replica.db"
    token = accounts.create_token(database, "Night Owl", "admin")
    args = ["sync", "--server", url, "--replica", str(replica), "--token", token,
            "--lat", "47.62", "--lon", "-122.315", "--radius-m", "500"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    with SyncClient(url, replica, token=token) as client:
        group_id = next(iter(client.dump()["groups"]))
        alert_id = client.post_alert(group_id, "suspicious-activity", "Someone trying car doors")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "outbox 0 unsent, 0 refused" in result.output
    with SyncClient(url, replica) as client:
        assert client.dump()["alerts"][alert_id]["title"] == "Someone trying car doors"


def test_a_new_replica_needs_a_scope_and_an_unreachable_server_is_an_error(tmp_path):
    replica = str(tmp_path / "replica.db")
    result = CliRunner().invoke(cli, ["sync", "--server", "http://127.0.0.1:9", "--replica",
                                      replica])
    assert result.exit_code == 2 and "scope" in result.output
    result = CliRunner().invoke(cli, [
        "sync", "--server", "http://127.0.0.1:9", "--replica", replica, "--lat", "47.6",
        "--lon", "-122.3", "--limit", "5", "--attempts", "2",
    ], env={"BLOCKWATCH_TOKEN": ""})
    assert result.exit_code == 1 and "Error" in result.output
