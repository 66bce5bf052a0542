"""Resuming (SYNC.md, Pull): a client that dies between pages resumes from its last stored
cursor with nothing lost and nothing applied twice; a client that dies while applying a page
keeps the replica as it was after the page before (a page and its cursor are one local
transaction). Over the real app through a WSGI transport, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from blockwatch import accounts, alerts, groups, tips
from blockwatch.domain import OPERATOR, AlertDraft, GroupDraft
from blockwatch.sync.replica import Replica
from blockwatch.sync.scope import Scope
from tests.sync.test_convergence import (
    FAR,
    NEAR,
    WIDE,
    CutShort,
    PageRecorder,
    assert_replica_is_scope,
    canonical,
    expected_replica,
    open_client,
    square,
)

LIMIT = 3
SCOPE = Scope(area=WIDE, languages=("en", "es"))
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def world(db):
    """Groups on every place of the grid (and one far away), with up to four alerts each (some
    with a location, one cancelled), tips in three languages; and a reader who is a member of
    one group. Returns the reader's token."""
    writer = accounts.authenticate(db, accounts.create_token(db, "Dispatcher", "admin"))
    made = []
    for number, cell in enumerate((*NEAR, FAR[0])):
        group = groups.create_group(db, OPERATOR, GroupDraft(
            name=f"Block {number}", boundary=square(cell), languages=("en", "es")))
        made.append(group.id)
        for index in range(number % 5):
            lon, lat = cell
            alert, _ = alerts.post_alert(db, writer, group.id, AlertDraft(
                category="burglary", title=f"Break-in {number}.{index}",
                location=(lon + 0.001, lat + 0.001) if index % 2 else None,
                expires_at=datetime.now(UTC) + timedelta(hours=index + 1),
            ))
            if index == 3:
                alerts.cancel_alert(db, writer, alert.id)
    tips.upsert_tips(db, [
        {"key": key, "category": "home-security", "translations": {
            language: {"title": f"{key} ({language})", "body": "…"}
            for language in ("en", "es", "vi")}}
        for key in ("lock-doors", "porch-lights", "trim-hedges")
    ])
    return accounts.create_token(db, "Night Owl", "member", made[4])


def held_groups(path: Path) -> list[str]:
    with closing(Replica(path)) as replica:
        return replica.group_ids()


def entity_ids(page: dict) -> set[str]:
    return {entity["id"] for kind in ("groups", "alerts", "tips")
            for entity in page[kind]["upserted"]}


def reference_pages(app, tmp_path, token) -> list[dict]:
    """The pages of one uninterrupted pull of the scope."""
    transport = PageRecorder(app)
    with open_client(transport, tmp_path / "reference.db", token, SCOPE, LIMIT) as client:
        client.pull()
    return transport.pages


@pytest.mark.parametrize("lost", [False, True], ids=["before-the-request", "response-lost"])
def test_a_client_cut_off_between_pages_resumes_where_it_stopped(app, db, world, tmp_path,
                                                                 lost):
    token = world
    reference = reference_pages(app, tmp_path, token)
    assert len(reference) >= 8, "the scope should take many pages"
    scope_size = sum(len(entity_ids(page)) for page in reference)
    for cut_after in range(1, len(reference)):
        path = tmp_path / f"replica-{cut_after}.db"
        first = PageRecorder(app)
        first.budget, first.lose_response = cut_after, lost
        with open_client(first, path, token, SCOPE, LIMIT) as client, \
                pytest.raises(CutShort):
            client.pull()
        assert len(first.pages) == cut_after
        applied = set().union(*(entity_ids(page) for page in first.pages))

        # The app starts again: a new client on the same replica file.
        second = PageRecorder(app)
        with open_client(second, path, token, limit=LIMIT) as client:
            assert client.replica.cursor == first.pages[-1]["cursor"]
            client.pull()
            assert_replica_is_scope(client, db, token, app)
        assert second.requests[0]["cursor"] == first.pages[-1]["cursor"]
        # Resumed, not restarted: the pages are those the uninterrupted pull went on with,
        # and nothing applied before the cut was sent again.
        assert [canonical(page) for page in second.pages] == \
            [canonical(page) for page in reference[cut_after:]], cut_after
        sent_again = applied & set().union(*(entity_ids(page) for page in second.pages))
        assert not sent_again, (cut_after, sorted(sent_again))
        assert len(applied) + sum(len(entity_ids(page)) for page in second.pages) == scope_size
        assert not any(page["reset"] for page in second.pages)


def test_writes_while_a_client_is_cut_off_arrive_when_it_resumes(app, db, world, tmp_path):
    """Between the cut and the resume, a group the replica holds moves away, another is
    deleted, a group the backfill has not reached yet gets an alert, and a tip changes."""
    token = world
    path = tmp_path / "replica.db"
    first = PageRecorder(app)
    first.budget = 6  # 18 entities: three groups or more (five entities at most each)
    with open_client(first, path, token, SCOPE, LIMIT) as client, pytest.raises(CutShort):
        client.pull()
    own = accounts.authenticate(db, token).roles  # in scope wherever they are
    held = [key for key in held_groups(path) if key not in own]
    waiting = sorted(set(expected_replica(db, token, SCOPE)["groups"]) - set(held_groups(path)))
    assert len(held) >= 2 and waiting
    moved, deleted = held[0], held[1]
    version = groups.get_group(db, moved).version
    groups.update_group(db, OPERATOR, moved, {"boundary": square(FAR[1])}, version)
    groups.delete_group(db, OPERATOR, deleted)
    writer = accounts.authenticate(db, accounts.create_token(db, "Dispatcher", "admin"))
    alerts.post_alert(db, writer, waiting[-1], AlertDraft(
        category="vandalism", title="Tagging on the fence"))
    tips.upsert_tips(db, [{"key": "lock-doors", "category": "home-security", "translations": {
        "es": {"title": "Cierre con llave", "body": "Siempre"}}}])

    with open_client(PageRecorder(app), path, token, limit=LIMIT) as client:
        client.pull()
        assert_replica_is_scope(client, db, token, app)
        held = client.dump()["groups"]
        assert moved not in held and deleted not in held and waiting[-1] in held


def test_a_client_failing_inside_a_page_keeps_the_page_before(app, db, world, tmp_path,
                                                              monkeypatch):
    """The page's rows are written, then storing its cursor fails: the transaction rolls back
    whole, the replica is as it was after the previous page, and a new client resumes."""
    token = world
    path = tmp_path / "replica.db"
    transport = PageRecorder(app)
    snapshots: list[tuple[str, str | None, int]] = []
    written_before_failing: list[int] = []
    real_apply, real_set = Replica.apply, Replica.set

    def apply(replica: Replica, page: dict) -> None:
        real_apply(replica, page)
        snapshots.append((canonical(replica_dump(replica)), replica.cursor, count(replica)))

    def set_failing_on_the_fifth_page(replica: Replica, key: str, value) -> None:
        if key == "cursor" and len(snapshots) == 4:
            written_before_failing.append(count(replica))  # inside the page's transaction
            raise OSError("disk I/O error")
        real_set(replica, key, value)

    monkeypatch.setattr(Replica, "apply", apply)
    monkeypatch.setattr(Replica, "set", set_failing_on_the_fifth_page)
    with open_client(transport, path, token, SCOPE, LIMIT) as client, \
            pytest.raises(OSError, match="disk I/O"):
        client.pull()
    monkeypatch.undo()
    assert len(transport.pages) == 5 and len(snapshots) == 4
    assert entity_ids(transport.pages[4])
    assert written_before_failing[0] > snapshots[-1][2], "failing before the rows were written"

    with closing(Replica(path)) as replica:
        assert (canonical(replica_dump(replica)), replica.cursor, count(replica)) == \
            snapshots[-1]
    with open_client(PageRecorder(app), path, token, limit=LIMIT) as client:
        client.pull()
        assert_replica_is_scope(client, db, token, app)


_CHILD = """
import json, os, sys
import httpx
from api import create_app
from blockwatch.config import Settings
from blockwatch.db import Database
from blockwatch.sync.client import SyncClient
from blockwatch.sync.replica import Replica

url, path, token, limit, die_in_page, log = sys.argv[1:]
db = Database(url, Settings(database_url=url, index_staleness_s=0.0))
app = create_app({"database": db, "BLOCKWATCH_RATE_LIMIT_WRITES": "off"})
real_apply, real_set = Replica.apply, Replica.set
applied = []

def apply(replica, page):
    real_apply(replica, page)
    applied.append(1)
    with open(log, "a") as out:
        out.write(json.dumps({"cursor": replica.cursor, "dump": {
            kind: replica.documents(kind) for kind in ("groups", "alerts", "tips")}}) + "\\n")

def set(replica, key, value):
    if key == "cursor" and len(applied) + 1 == int(die_in_page):
        os._exit(17)  # killed with the page's rows written, its transaction open
    real_set(replica, key, value)

Replica.apply, Replica.set = apply, set
client = SyncClient("http://testserver", path, token=token, page_limit=int(limit),
                    transport=httpx.WSGITransport(app=app))
client.pull()
sys.exit(3)  # never reached: the pull is longer than that
"""


def test_a_process_killed_inside_a_page_keeps_the_page_before(app, db, database_url, world,
                                                              tmp_path):
    token = world
    path, log = tmp_path / "replica.db", tmp_path / "applied.jsonl"
    with closing(Replica(path)) as replica, replica.transaction():
        replica.set("scope", json.dumps(SCOPE.as_json()))
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, database_url, str(path), token, str(LIMIT), "4",
         str(log)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert child.returncode == 17, child.stderr
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == 3
    with closing(Replica(path)) as replica:
        assert replica.cursor == lines[-1]["cursor"]
        assert {kind: replica.documents(kind) for kind in ("groups", "alerts", "tips")} == \
            lines[-1]["dump"]
    with open_client(PageRecorder(app), path, token, limit=LIMIT) as client:
        client.pull()
        assert_replica_is_scope(client, db, token, app)


def replica_dump(replica: Replica) -> dict:
    return {kind: replica.documents(kind) for kind in ("groups", "alerts", "tips")}


def count(replica: Replica) -> int:
    """Rows the replica holds, as its own connection sees them (inside a transaction too)."""
    return sum(replica._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
               for table in ("groups", "alerts", "tips"))
