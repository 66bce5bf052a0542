"""The client's local store: a SQLite file holding the replica of a scope and the outbox.

Entities are kept as the JSON the server sent (so the replica is exactly what was pulled), with
the few columns local queries need. A pulled page and its cursor are applied in one
transaction; the outbox (mutations made offline) lives beside the replica and survives a reset.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS groups (id TEXT PRIMARY KEY, version INTEGER NOT NULL,
    document TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (id TEXT PRIMARY KEY, group_id TEXT NOT NULL,
    version INTEGER NOT NULL, document TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alerts_group ON alerts (group_id);
CREATE TABLE IF NOT EXISTS tips (id TEXT PRIMARY KEY, language TEXT NOT NULL,
    version INTEGER NOT NULL, document TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (mutation_id INTEGER PRIMARY KEY, op TEXT NOT NULL,
    args TEXT NOT NULL, base_version INTEGER, created_at TEXT NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS acknowledged (mutation_id INTEGER PRIMARY KEY, op TEXT NOT NULL,
    args TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS push_results (mutation_id INTEGER PRIMARY KEY, op TEXT NOT NULL,
    args TEXT NOT NULL, status TEXT NOT NULL, result TEXT NOT NULL);
"""


class Replica:
    """One replica file. Not shared between threads; open one per thread or process."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        with self.transaction():
            if self.get("client_id") is None:
                self.set("client_id", str(uuid.uuid4()))
                self.set("next_mutation_id", "1")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One local transaction: all of it is written, or none."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- meta --------------------------------------------------------------------------
    def get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set(self, key: str, value: str | None) -> None:
        if value is None:
            self._db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value)
            )

    @property
    def client_id(self) -> str:
        return self.get("client_id") or ""

    @property
    def cursor(self) -> str | None:
        return self.get("cursor")

    # -- pulled pages ------------------------------------------------------------------
    def group_ids(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT id FROM groups ORDER BY id")]

    def apply(self, page: dict[str, Any]) -> None:
        """A pulled page and its cursor, in one transaction: a reset first clears the replica,
        then removals and deletions, then upserts."""
        with self.transaction() as db:
            if page["reset"]:
                for table in ("groups", "alerts", "tips"):
                    db.execute(f"DELETE FROM {table}")
            dropped = [*page["removed_groups"], *page["groups"]["deleted"]]
            db.executemany("DELETE FROM groups WHERE id = ?", [(key,) for key in dropped])
            db.executemany("DELETE FROM alerts WHERE group_id = ?", [(key,) for key in dropped])
            db.executemany("DELETE FROM alerts WHERE id = ?",
                           [(key,) for key in page["alerts"]["deleted"]])
            db.executemany("DELETE FROM tips WHERE id = ?",
                           [(key,) for key in page["tips"]["deleted"]])
            db.executemany(
                "INSERT OR REPLACE INTO groups (id, version, document) VALUES (?, ?, ?)",
                [(g["id"], g["version"], json.dumps(g)) for g in page["groups"]["upserted"]],
            )
            db.executemany(
                "INSERT OR REPLACE INTO alerts (id, group_id, version, document) "
                "VALUES (?, ?, ?, ?)",
                [(a["id"], a["group_id"], a["version"], json.dumps(a))
                 for a in page["alerts"]["upserted"]],
            )
            db.executemany(
                "INSERT OR REPLACE INTO tips (id, language, version, document) "
                "VALUES (?, ?, ?, ?)",
                [(t["id"], t["language"], t["version"], json.dumps(t))
                 for t in page["tips"]["upserted"]],
            )
            self.set("cursor", page["cursor"])
            if not page["has_more"]:
                # A complete pull reflects every mutation the server had applied before it.
                db.execute("DELETE FROM acknowledged")

    def clear(self) -> None:
        """Forget the replica and its cursor (the outbox stays)."""
        with self.transaction() as db:
            for table in ("groups", "alerts", "tips"):
                db.execute(f"DELETE FROM {table}")
            self.set("cursor", None)

    def documents(self, table: str) -> list[dict[str, Any]]:
        """Every entity of ``groups``, ``alerts`` or ``tips``, ordered by id."""
        if table not in ("groups", "alerts", "tips"):
            raise ValueError(table)
        return [json.loads(row[0]) for row in self._db.execute(
            f"SELECT document FROM {table} ORDER BY id"
        )]

    def document(self, table: str, key: str) -> dict[str, Any] | None:
        if table not in ("groups", "alerts", "tips"):
            raise ValueError(table)
        row = self._db.execute(
            f"SELECT document FROM {table} WHERE id = ?", (key,)
        ).fetchone()
        return None if row is None else json.loads(row[0])

    def change_count(self) -> int:
        """Grows with every local write: a cheap way to know cached views are stale."""
        return self._db.total_changes

    # -- outbox ------------------------------------------------------------------------
    def enqueue(self, op: str, args: dict[str, Any], base_version: int | None = None) -> int:
        """Add a mutation to the outbox; returns its id."""
        with self.transaction() as db:
            number = int(self.get("next_mutation_id") or "1")
            db.execute(
                "INSERT INTO outbox (mutation_id, op, args, base_version, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (number, op, json.dumps(args), base_version, datetime.now(UTC).isoformat()),
            )
            self.set("next_mutation_id", str(number + 1))
        return number

    def merge_group_update(self, group_id: str, fields: dict[str, Any]) -> bool:
        """Fold new fields into an edit of the same group not yet sent (two offline edits of
        one group are one edit against the version both started from); False if there is none.
        An edit already sent is never changed: its push may have been applied."""
        with self.transaction() as db:
            for number, args in db.execute(
                "SELECT mutation_id, args FROM outbox WHERE op = 'group.update' AND sent = 0 "
                "ORDER BY mutation_id DESC"
            ).fetchall():
                merged = json.loads(args)
                if merged["id"] == group_id:
                    merged.update(fields)
                    db.execute("UPDATE outbox SET args = ? WHERE mutation_id = ?",
                               (json.dumps(merged), number))
                    return True
        return False

    def outbox(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Mutations not acknowledged yet, oldest first, as the push body lists them."""
        query = "SELECT mutation_id, op, args, base_version FROM outbox ORDER BY mutation_id"
        rows = self._db.execute(query + (f" LIMIT {int(limit)}" if limit else "")).fetchall()
        mutations = []
        for number, op, args, base_version in rows:
            mutation = {"mutation_id": number, "op": op, "args": json.loads(args)}
            if base_version is not None:
                mutation["base_version"] = base_version
            mutations.append(mutation)
        return mutations

    def mark_sent(self, through_mutation_id: int) -> None:
        """Mutations about to go out: never to be folded into again (their push may be applied
        even if its answer is lost)."""
        with self.transaction() as db:
            db.execute("UPDATE outbox SET sent = 1 WHERE mutation_id <= ?", (through_mutation_id,))

    def acknowledge(self, sent: list[dict[str, Any]], results: list[dict[str, Any]],
                    last_mutation_id: int) -> None:
        """Drop what the server has taken (up to ``last_mutation_id``) from the outbox: applied
        mutations stay visible locally until a complete pull brings them back; results that
        need the user's attention (rejected, conflict) are kept for the app to show."""
        by_id = {mutation["mutation_id"]: mutation for mutation in sent}
        with self.transaction() as db:
            for result in results:
                status = result.get("original_status") or result["status"]
                mutation = by_id.get(result["mutation_id"])
                if status == "applied" and mutation is not None:
                    db.execute(
                        "INSERT OR REPLACE INTO acknowledged (mutation_id, op, args) "
                        "VALUES (?, ?, ?)",
                        (result["mutation_id"], mutation["op"], json.dumps(mutation["args"])),
                    )
                    if mutation["op"] == "group.update" and result.get("version") is not None:
                        # Later edits of this group were made on top of this one.
                        self._rebase(db, mutation["args"]["id"], result["mutation_id"],
                                     result["version"])
                if status in ("rejected", "conflict") and mutation is not None:
                    db.execute(
                        "INSERT OR REPLACE INTO push_results (mutation_id, op, args, status, "
                        "result) VALUES (?, ?, ?, ?, ?)",
                        (result["mutation_id"], mutation["op"], json.dumps(mutation["args"]),
                         status, json.dumps(result)),
                    )
            db.execute("DELETE FROM outbox WHERE mutation_id <= ?", (last_mutation_id,))

    @staticmethod
    def _rebase(db: sqlite3.Connection, group_id: str, after: int, version: int) -> None:
        for number, args in db.execute(
            "SELECT mutation_id, args FROM outbox WHERE op = 'group.update' "
            "AND mutation_id > ?", (after,)
        ).fetchall():
            if json.loads(args)["id"] == group_id:
                db.execute("UPDATE outbox SET base_version = ? WHERE mutation_id = ?",
                           (version, number))

    def pending(self) -> list[dict[str, Any]]:
        """What this device changed that the replica does not show yet: mutations the server
        applied since the last complete pull, then the outbox; oldest first."""
        acknowledged = [
            {"mutation_id": number, "op": op, "args": json.loads(args)}
            for number, op, args in self._db.execute(
                "SELECT mutation_id, op, args FROM acknowledged ORDER BY mutation_id"
            )
        ]
        return acknowledged + self.outbox()

    def push_results(self) -> list[dict[str, Any]]:
        """Mutations the server refused (rejected) or found stale (conflict), oldest first."""
        return [
            {"mutation_id": number, "op": op, "args": json.loads(args), "status": status,
             "result": json.loads(result)}
            for number, op, args, status, result in self._db.execute(
                "SELECT mutation_id, op, args, status, result FROM push_results "
                "ORDER BY mutation_id"
            )
        ]
