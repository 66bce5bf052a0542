"""A write made by one process shows in another process's spatial queries within a second."""

from __future__ import annotations

import subprocess
import sys
import time

from blockwatch import groups
from blockwatch.config import Settings
from blockwatch.db import Database

WRITER = """
import sys

import shapely

from blockwatch import groups
from blockwatch.config import Settings
from blockwatch.db import Database
from blockwatch.domain import OPERATOR, GroupDraft

url, action = sys.argv[1], sys.argv[2]
db = Database(url, Settings(database_url=url))
if action == "create":
    made = groups.create_group(db, OPERATOR, GroupDraft(
        name="Made elsewhere", boundary=shapely.box(-122.35, 47.65, -122.34, 47.66)))
    print(made.id)
else:
    groups.delete_group(db, OPERATOR, action)
"""


def run_writer(url: str, action: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", WRITER, url, action],
        capture_output=True, text=True, check=True, timeout=120,
    )
    return done.stdout.strip()


def wait_until(condition, seconds: float) -> float:
    started = time.monotonic()
    while not condition():
        elapsed = time.monotonic() - started
        assert elapsed < seconds, f"not visible after {elapsed:.2f} s"
        time.sleep(0.02)
    return time.monotonic() - started


def test_another_process_write_is_visible_within_one_second(database_url):
    # The default staleness (0.25 s), as a server would run.
    db = Database(database_url, Settings(database_url=database_url))
    assert groups.groups_at(db, -122.345, 47.655) == []  # the index is built and warm
    created = run_writer(database_url, "create")
    wait_until(lambda: [g.id for g in groups.groups_at(db, -122.345, 47.655)] == [created], 1.0)
    run_writer(database_url, created)
    wait_until(lambda: groups.groups_at(db, -122.345, 47.655) == [], 1.0)
    db.dispose()
