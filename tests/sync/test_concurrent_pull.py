"""No change skipped with concurrent writers (SYNC.md, Versions and "What must be shown by
tests"): writer threads post, cancel and expire alerts, rename and move groups in and out of the
area, create and delete groups and edit tips, some holding their transaction open a while after
taking their ``seq``, while a client pulls over and over in small pages. After the writers stop,
one more pull must leave the replica equal to the scope: a change whose ``seq`` a cursor had
already passed when it committed would be missing.

On PostgreSQL (the counter row's lock orders the commits) and on SQLite (one writer at a time);
unreachable PostgreSQL fails these tests on CI, as every database fixture does. Writers lock
rows before the counter, so none of them may fail (a deadlock would: the last test makes the
interleaving that used to deadlock on purpose).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from blockwatch import accounts, alerts, changelog, groups, tips
from blockwatch.domain import OPERATOR, Actor, AlertDraft, GroupDraft
from blockwatch.sync.scope import Scope
from tests.sync.test_convergence import (
    CELLS,
    NEAR,
    WIDE,
    PageRecorder,
    assert_replica_is_scope,
    open_client,
    square,
)

WRITERS = 4
ROUNDS = 40
LIMIT = 3


class Writers:
    """Threads that write until each has done its rounds; the first error of any is kept."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []
        self.start = threading.Barrier(1)

    def add(self, work: Callable[[], None]) -> None:
        def run() -> None:
            self.start.wait()
            try:
                work()
            except BaseException as error:  # reported by the test
                self.errors.append(error)

        self.threads.append(threading.Thread(target=run, daemon=True))

    def go(self) -> None:
        self.start = threading.Barrier(len(self.threads) + 1)
        for thread in self.threads:
            thread.start()
        self.start.wait()

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self.threads)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=120)
        assert not self.running, "a writer hangs"
        if self.errors:
            raise self.errors[0]


def coordinator_work(db, actor: Actor, own: list[str], seed: int) -> Callable[[], None]:
    """Post alerts (half of them in a transaction held open after taking its ``seq``), cancel
    them, rename the coordinator's groups and move them around the grid and away."""
    rng = random.Random(seed)

    def post_slowly(group_id: str, draft: AlertDraft):
        with db.write() as session:
            alert, _ = alerts.post_alert_in(session, actor, group_id, draft, datetime.now(UTC))
            # Its seq stays uncommitted a while: later writers must not become visible first.
            time.sleep(rng.uniform(0.002, 0.02))
        return alert

    def edit(group_id: str, changes: dict[str, Any]) -> None:
        version = groups.get_group(db, group_id).version
        groups.update_group(db, actor, group_id, changes, version)

    def work() -> None:
        posted: list[str] = []
        for round_ in range(ROUNDS):
            group_id = rng.choice(own)
            action = rng.random()
            if action < 0.45:
                draft = AlertDraft(
                    id=str(uuid.uuid4()), category="suspicious-activity",
                    title=f"Writer {seed} round {round_}", location=(-122.3195, 47.6105),
                    expires_at=datetime.now(UTC) + timedelta(hours=rng.choice((1, 24))),
                )
                if rng.random() < 0.5:
                    alert, _ = alerts.post_alert(db, actor, group_id, draft)
                else:
                    alert = post_slowly(group_id, draft)
                posted.append(alert.id)
            elif action < 0.6 and posted:
                alert_id = posted.pop(rng.randrange(len(posted)))
                alerts.cancel_alert(db, actor, alert_id)
            elif action < 0.8:
                edit(group_id, {"boundary": square(rng.choice(CELLS))})
            else:
                edit(group_id, {"name": f"Block {seed}.{round_}"})
            time.sleep(rng.uniform(0, 0.003))

    return work


def admin_work(db, seed: int) -> Callable[[], None]:
    """Create groups (in the area or not) and delete some, edit tips, expire alerts."""
    rng = random.Random(seed)

    def work() -> None:
        created: list[str] = []
        for round_ in range(ROUNDS):
            action = rng.random()
            if action < 0.35:
                draft = GroupDraft(name=f"New block {round_}",
                                   boundary=square(rng.choice(CELLS)))
                group = groups.create_group(db, OPERATOR, draft)
                created.append(group.id)
            elif action < 0.55 and created:
                group_id = created.pop(rng.randrange(len(created)))
                groups.delete_group(db, OPERATOR, group_id)
            elif action < 0.85:
                language = rng.choice(("en", "es", "vi"))
                tip = {"key": "lock-doors", "category": "home-security", "translations": {
                    language: {"title": f"Lock up ({round_})", "body": "…"}}}
                tips.upsert_tips(db, [tip])
            else:
                alerts.expire_alerts(db, now=datetime.now(UTC) + timedelta(hours=2))
            time.sleep(rng.uniform(0, 0.003))

    return work


def test_no_change_is_skipped_while_writers_race_a_pulling_client(app, db, tmp_path):
    own: dict[int, list[str]] = {}
    for number, cell in enumerate(NEAR[: WRITERS * 2]):
        group = groups.create_group(db, OPERATOR, GroupDraft(
            name=f"Block {number}", boundary=square(cell)))
        own.setdefault(number % WRITERS, []).append(group.id)
    tips.upsert_tips(db, [{"key": "lock-doors", "category": "home-security", "translations": {
        language: {"title": "Lock up", "body": "…"} for language in ("en", "es", "vi")}}])
    writers = Writers()
    for number, group_ids in own.items():
        token = ""
        for group_id in group_ids:
            token = accounts.create_token(db, f"Coordinator {number}", "coordinator", group_id)
        writers.add(coordinator_work(db, accounts.authenticate(db, token), group_ids, number))
    writers.add(admin_work(db, WRITERS))
    reader = accounts.create_token(db, "Night Owl", "member", own[0][0])

    transport = PageRecorder(app)
    with open_client(transport, tmp_path / "replica.db", reader,
                     Scope(area=WIDE, languages=("es",)), LIMIT) as client:
        client.pull()
        writers.go()
        pulls_while_writing = 0
        while writers.running:
            client.pull()
            pulls_while_writing += 1
        pages_while_writing = len(transport.pages)
        writers.join()
        client.pull()
        assert_replica_is_scope(client, db, reader, app)

    # The writers and the puller did overlap, and the pulls carried their changes.
    assert pulls_while_writing >= 2 and pages_while_writing >= 20, (
        pulls_while_writing, pages_while_writing)
    changes = sum(len(page[kind]["upserted"]) for page in transport.pages[:pages_while_writing]
                  for kind in ("groups", "alerts", "tips"))
    assert changes >= 20, changes
    assert any(page["has_more"] for page in transport.pages[:pages_while_writing])


def test_an_edit_and_a_post_in_one_group_at_once_both_succeed(db, monkeypatch):
    """The interleaving the writers above hit by chance (it deadlocked on PostgreSQL while
    post_alert took the counter before the group's key-share lock), made on purpose: an edit
    has locked its group and is about to take the counter when an alert is posted in the same
    group. Both must succeed, one waiting for the other."""
    group = groups.create_group(db, OPERATOR, GroupDraft(name="Pike/Pine",
                                                         boundary=square(NEAR[4])))
    editing, real_stamp = threading.Event(), changelog.stamp
    errors: list[BaseException] = []

    def stamp(session, *rows) -> None:
        if threading.current_thread().name == "editor":
            editing.set()  # the group row is locked FOR UPDATE by now
            wait_until_another_writer_waits_for(db, session)
        real_stamp(session, *rows)

    def edit() -> None:
        try:
            version = groups.get_group(db, group.id).version
            groups.update_group(db, OPERATOR, group.id, {"name": "Pike/Pine East"}, version)
        except BaseException as error:
            errors.append(error)

    monkeypatch.setattr(changelog, "stamp", stamp)
    editor = threading.Thread(target=edit, name="editor")
    editor.start()
    assert editing.wait(10)
    try:
        alerts.post_alert(db, OPERATOR, group.id, AlertDraft(category="burglary",
                                                             title="Break-in on 12th Ave"))
    finally:
        editor.join(30)
    if errors:
        raise errors[0]
    assert groups.get_group(db, group.id).name == "Pike/Pine East"


def wait_until_another_writer_waits_for(db, session) -> None:
    """Until another transaction waits for a lock this session's holds (PostgreSQL); a moment
    on SQLite, where the other writer waits for this one's whole transaction to end."""
    if db.dialect != "postgresql":
        time.sleep(0.2)
        return
    pid = session.connection().connection.driver_connection.info.backend_pid
    query = text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
    with db.engine.connect() as connection:
        for _ in range(1000):
            waiting = connection.execute(query, {"pid": pid}).scalar_one()
            connection.rollback()  # pg_stat_activity is a snapshot per transaction
            if waiting:
                return
            time.sleep(0.01)
    raise AssertionError(f"no other writer waited for this one ({pid})")
