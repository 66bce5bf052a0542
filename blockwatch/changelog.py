"""The change log: one database-wide counter, stamped on every synced row and tombstone.

Every write to a group, alert or tip takes the next ``seq`` from the single ``sync_state`` row
inside the writing transaction (``UPDATE ... SET seq = seq + n RETURNING seq``). On PostgreSQL
that row's lock makes writers queue from the moment they stamp until they commit; on SQLite
``BEGIN IMMEDIATE`` already lets one writer in at a time. Either way numbers become visible in
commit order, so a reader that has seen ``seq`` 11 will never later find a 10 it missed.

Lock order: a writer locks the rows it changes (``FOR UPDATE``, or ``FOR KEY SHARE`` on a
group it adds an alert to) *before* it takes the counter, which it takes last. Every writer
waits on the counter, so one that took the counter and then waited for a row another writer
holds while that one waits for the counter would deadlock.

``changes_since`` is the one way to read the log; deletes appear as tombstones until
``purge_tombstones`` moves the horizon past them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import String, cast, delete, func, literal, select, union_all, update
from sqlalchemy.orm import Session

from blockwatch.models import Alert, Group, SafetyTip, SyncState, Tombstone

ENTITIES = ("group", "alert", "tip")


@dataclass(frozen=True)
class Change:
    """One entry of the log: an entity's newest ``seq``, and whether it is a deletion.

    ``group_id`` is the group an alert belongs to (the group itself for a group, None for a tip).
    """

    entity: str
    id: str
    seq: int
    deleted: bool
    group_id: str | None


#: The PostgreSQL channel a writing transaction notifies (live streams listen: blockwatch.live).
NOTIFY_CHANNEL = "blockwatch_changes"


def allocate(session: Session, count: int = 1) -> list[int]:
    """Take the next ``count`` numbers of the counter, in this transaction."""
    statement = (
        update(SyncState).where(SyncState.id == 1).values(seq=SyncState.seq + count)
        .returning(SyncState.seq)
    )
    connection = session.connection()
    # A savepoint counts as its own transaction: a NOTIFY in one that is rolled back is
    # discarded with it (a rejected mutation of a sync push), so the next one notifies again.
    level = connection.get_nested_transaction() or connection.get_transaction()
    if connection.dialect.name == "postgresql" and session.info.get(NOTIFY_CHANNEL) is not level:
        # Once per transaction, on PostgreSQL: wake the live streams of every process.
        # NOTIFY is delivered at commit (never an uncommitted seq), takes no row lock (the
        # counter stays the last lock taken) and, riding on this RETURNING, costs no round trip.
        statement = statement.returning(func.pg_notify(NOTIFY_CHANNEL, cast(SyncState.seq, String)))
        session.info[NOTIFY_CHANNEL] = level
    # Rows waiting for their numbers must not be flushed before they have them.
    with session.no_autoflush:
        last = session.execute(statement).first()[0]
    return list(range(last - count + 1, last + 1))


def stamp(session: Session, *rows: Group | Alert | SafetyTip) -> None:
    """Give each row the next ``seq``: call it in the transaction that changes the rows."""
    for row, seq in zip(rows, allocate(session, len(rows)), strict=True):
        row.seq = seq


def tombstone(session: Session, entity: str, entity_id: str, group_id: str | None = None) -> int:
    """Record the deletion of an entity (replacing an older tombstone of it); returns its seq."""
    [seq] = allocate(session)
    existing = session.get(Tombstone, (entity, entity_id))
    if existing is None:
        session.add(Tombstone(
            entity=entity, entity_id=entity_id, group_id=group_id, seq=seq,
            deleted_at=datetime.now(UTC),
        ))
    else:
        existing.seq, existing.deleted_at = seq, datetime.now(UTC)
    return seq


def forget_tombstones(session: Session, entity: str, entity_ids: list[str]) -> None:
    """Entities created again under deleted ids are alive: their old tombstones go."""
    session.execute(
        delete(Tombstone).where(Tombstone.entity == entity, Tombstone.entity_id.in_(entity_ids))
    )


def current_seq(session: Session) -> int:
    """The newest committed ``seq`` (everything up to it is visible)."""
    return session.execute(select(SyncState.seq).where(SyncState.id == 1)).scalar_one()


def sync_state(session: Session) -> SyncState:
    """The counter row: newest seq, this database's server id, the purge horizon."""
    return session.execute(select(SyncState).where(SyncState.id == 1)).scalar_one()


def changes_since(
    session: Session,
    seq: int,
    *,
    through_seq: int | None = None,
    limit: int | None = None,
    entities: tuple[str, ...] = ENTITIES,
) -> list[Change]:
    """Changes with ``seq`` in ``(seq, through_seq]``, oldest first, at most ``limit``.

    Each entity appears once, at its newest ``seq``: a row edited twice since ``seq`` shows only
    its latest state, a deleted one only its tombstone.
    """
    parts = []

    def bounded(column):
        condition = column > seq
        if through_seq is not None:
            condition = condition & (column <= through_seq)
        return condition

    if "group" in entities:
        parts.append(select(
            literal("group").label("entity"), Group.id.label("id"), Group.seq.label("seq"),
            literal(False).label("deleted"), Group.id.label("group_id"),
        ).where(bounded(Group.seq)))
    if "alert" in entities:
        parts.append(select(
            literal("alert"), Alert.id, Alert.seq, literal(False), Alert.group_id,
        ).where(bounded(Alert.seq)))
    if "tip" in entities:
        parts.append(select(
            literal("tip"), SafetyTip.id, SafetyTip.seq, literal(False),
            literal(None).cast(Group.id.type),
        ).where(bounded(SafetyTip.seq)))
    parts.append(select(
        Tombstone.entity, Tombstone.entity_id, Tombstone.seq, literal(True), Tombstone.group_id,
    ).where(bounded(Tombstone.seq) & Tombstone.entity.in_(entities)))
    query = union_all(*parts).order_by("seq")
    if limit is not None:
        query = query.limit(limit)
    return [
        Change(entity, entity_id, int(row_seq), bool(deleted), group_id)
        for entity, entity_id, row_seq, deleted, group_id in session.execute(query)
    ]


def purge_tombstones(session: Session, horizon: timedelta, now: datetime | None = None) -> int:
    """Delete tombstones older than ``horizon`` and move the purge horizon past them.

    Returns how many were purged. A sync cursor at or below the new horizon can no longer be
    served incrementally: its client must reset.
    """
    cutoff = (now or datetime.now(UTC)) - horizon
    newest_purged = session.execute(
        select(Tombstone.seq).where(Tombstone.deleted_at < cutoff)
        .order_by(Tombstone.seq.desc()).limit(1)
    ).scalar()
    if newest_purged is None:
        return 0
    purged = session.execute(delete(Tombstone).where(Tombstone.seq <= newest_purged)).rowcount
    state = sync_state(session)
    state.purged_through_seq = max(state.purged_through_seq, newest_purged)
    return purged
