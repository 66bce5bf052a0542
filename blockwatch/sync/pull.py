"""The server side of ``POST /v1/sync/pull``: what changed in a replica's scope since its cursor.

A page is built in two phases. **Backfill** first: groups in scope the replica does not hold
completely (new in scope, or held with alert locations of another precision than this reader
may now see) arrive whole, group row first and then all its alerts by id, and tips of newly
wanted languages likewise; while a backfill is under way the cursor's ``seq`` stays where it
was, so whatever changes during it is sent afterwards. **Incremental** next: the change log in
``(seq, H]`` (``H`` the newest committed ``seq``) for the groups held and the tip languages held,
oldest first, up to ``limit``; ``seq`` then moves to the last change sent (or to ``H``).

Entities are always read as they are now, never older than the cursor claims; a change sent
twice is the same upsert twice. Scope changes are found by comparing states, not by replaying
history: a held group out of scope is in ``removed_groups`` (or ``groups.deleted`` when it no
longer exists), whatever happened to it meanwhile. Everything a page lists counts against its
``limit``, removals included.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from sqlalchemy import Integer, Select, String, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from blockwatch import alerts as alert_services
from blockwatch import groups as group_services
from blockwatch import renderings
from blockwatch import tips as tip_services
from blockwatch.alerts import AlertRef
from blockwatch.checks import (
    are_canonical_uuids,
    check_limit,
    check_point,
    check_radius,
    check_uuid,
)
from blockwatch.db import Database
from blockwatch.domain import Actor, Alert, Group, Tip, ValidationError
from blockwatch.models import Alert as AlertRow
from blockwatch.models import Group as GroupRow
from blockwatch.models import SafetyTip, SyncState, Tombstone
from blockwatch.sync import cursor as cursors
from blockwatch.sync.cursor import SCHEMA_VERSION, Cursor
from blockwatch.sync.scope import FALLBACK_LANGUAGE, Area, Scope

__all__ = ["Area", "PullPage", "PullRequest", "Scope", "pull"]

#: The statements every page runs, built once: building a statement costs more than
#: SQLAlchemy's cached compilation of it, and a sync page of 100 entities runs in about 3 ms.
_STATE = select(
    SyncState.seq, SyncState.server_id, SyncState.purged_through_seq, SyncState.cursor_secret,
).where(SyncState.id == 1)


def _backfill_statements(group_among) -> tuple[Select, Select]:
    """The alerts of some groups (``chunk``) in backfill order, ``fetch`` at most; and the same
    resuming within the group ``current`` after the alert ``after``."""
    plain = (
        select(*alert_services.REF_COLUMNS).where(group_among)
        .order_by(AlertRow.group_id, AlertRow.id)
        .limit(bindparam("fetch", type_=Integer))
    )
    return plain, plain.where(
        (AlertRow.group_id != bindparam("current")) | (AlertRow.id > bindparam("after"))
    )


#: By dialect: PostgreSQL takes the chunk as one array (``= ANY``), so the statement's text
#: stays the same whatever the chunk's length (an expanded ``IN`` of a hundred parameters
#: cost about 0.5 ms more a query, in SQLAlchemy and psycopg); SQLite takes an ``IN``.
_BACKFILL = {
    "postgresql": _backfill_statements(
        AlertRow.group_id == any_(bindparam("chunk", type_=ARRAY(String)))
    ),
    "sqlite": _backfill_statements(AlertRow.group_id.in_(bindparam("chunk", expanding=True))),
}

MAX_LIMIT = 5000
DEFAULT_LIMIT = 500
MAX_HAVE_GROUPS = 10_000
MAX_GROUP_IDS = 1000
MAX_LANGUAGES = 20


@dataclass(frozen=True)
class PullRequest:
    cursor: str | None
    scope: Scope
    have_groups: tuple[str, ...] = ()
    limit: int = DEFAULT_LIMIT
    schema_version: int = SCHEMA_VERSION


@dataclass
class PullPage:
    """One page: entities to upsert and ids to delete, per kind; groups to drop with their
    alerts; the cursor to store with it; whether to pull again at once; whether to start over.

    Alerts come as :class:`AlertRef` (what identifies this reader's view of each): a caller
    that keeps renderings by ref needs nothing more, and :meth:`load_alerts` gives the others.
    """

    cursor: str
    has_more: bool
    reset: bool
    groups: list[Group] = field(default_factory=list)
    deleted_groups: list[str] = field(default_factory=list)
    alerts: list[AlertRef] = field(default_factory=list)
    deleted_alerts: list[str] = field(default_factory=list)
    tips: list[Tip] = field(default_factory=list)
    deleted_tips: list[str] = field(default_factory=list)
    removed_groups: list[str] = field(default_factory=list)

    loader: Callable[[list[str]], dict[str, Alert]] | None = field(default=None, repr=False)
    stored: Callable[[list[AlertRef]], dict[AlertRef, str]] | None = field(default=None,
                                                                           repr=False)

    def load_alerts(self, ids: list[str]) -> dict[str, Alert]:
        """The alerts of this page by id, as its reader may see them (read now: an alert that
        changed since the page was built comes newer, never older)."""
        return self.loader(ids) if self.loader is not None and ids else {}

    def stored_texts(self, refs: list[AlertRef]) -> dict[AlertRef, str]:
        """The renderings stored with the alerts of ``refs`` that are current for those
        views (see :mod:`blockwatch.renderings`); :meth:`load_alerts` gives the rest."""
        return self.stored(refs) if self.stored is not None and refs else {}


def pull(db: Database, actor: Actor, request: PullRequest, now: datetime | None = None
         ) -> PullPage:
    """The next page of changes for a replica of ``request.scope`` (see the module doc)."""
    _check(request)
    now = now or datetime.now(UTC)
    with db.read() as session:
        state = session.connection().execute(_STATE).one()
        # The scope comes from the spatial index, brought to at least the log position the
        # page claims (entities are then read as they are now: newer is harmless, older never
        # happens).
        db.spatial.catch_up_to(state.seq)
        secret = db.settings.sync_secret or state.cursor_secret
        newest = state.seq
        position, reset = _position(request, actor, state, secret)
        builder = _Page(session, db, actor, request, position, newest, now)
        builder.build(fresh=request.cursor is None or reset, reset=reset)
        page = builder.page
        page.reset = reset
        page.loader = partial(alert_services.views_by_id, db, actor, now=now)
        page.stored = partial(renderings.stored_texts, db)
        page.cursor = cursors.sign(builder.position, secret)
        return page


def _check(request: PullRequest) -> None:
    check_limit(request.limit, MAX_LIMIT)
    if request.schema_version != SCHEMA_VERSION:
        raise ValidationError.field(
            "schema_version", f"this server speaks sync schema version {SCHEMA_VERSION}"
        )
    area = request.scope.area
    if area is not None:
        check_point(area.lon, area.lat)
        check_radius(area.radius_m)
    if len(request.scope.group_ids) > MAX_GROUP_IDS:
        raise ValidationError.field("scope.group_ids", f"at most {MAX_GROUP_IDS} ids")
    if len(request.scope.languages) > MAX_LANGUAGES:
        raise ValidationError.field("scope.languages", f"at most {MAX_LANGUAGES} languages")
    if len(request.have_groups) > MAX_HAVE_GROUPS:
        raise ValidationError.field("have_groups", f"at most {MAX_HAVE_GROUPS} ids")
    for name, ids in (("scope.group_ids", request.scope.group_ids),
                      ("have_groups", request.have_groups)):
        if not are_canonical_uuids(ids):
            for value in ids:
                check_uuid(value, name)


def _position(request: PullRequest, actor: Actor, state, secret: str) -> tuple[Cursor, bool]:
    """Where the replica stands, and whether it must start over."""
    fresh = Cursor(
        server_id=state.server_id, seq=state.seq, account=actor.account_id,
        admin=actor.is_admin,
    )
    if request.cursor is None:
        return fresh, False
    position = cursors.read(request.cursor, secret, state.server_id)
    if (
        position is None  # another server's, or another schema version's
        or position.seq < state.purged_through_seq  # deletes it needs are purged
        or position.seq > state.seq  # from a database restored to an earlier point
        or position.account != actor.account_id  # filled for someone else
        or position.admin != actor.is_admin
    ):
        return fresh, True
    return position, False


class _Page:
    """Builds one :class:`PullPage` within a read transaction."""

    def __init__(self, session: Session, db: Database, actor: Actor, request: PullRequest,
                 position: Cursor, newest: int, now: datetime) -> None:
        self.session, self.db, self.actor, self.request = session, db, actor, request
        self.position, self.newest, self.now = position, newest, now
        self.room = request.limit
        self.page = PullPage(cursor="", has_more=False, reset=False)

    # -- the plan ----------------------------------------------------------------------
    def build(self, fresh: bool, reset: bool) -> None:
        scope = self._scope_groups()
        claimed = set(self.request.have_groups)
        # A replica that starts over is cleared by the client itself.
        if not reset and not self._drop_out_of_scope(claimed - scope):
            self.page.has_more = True  # more groups to drop than the page holds
            return
        held = set() if fresh else self._held(claimed & scope)
        pending = sorted(scope - held)
        if self.position.group in pending:  # finish the group under way first
            pending.remove(self.position.group)
            pending.insert(0, self.position.group)
        elif self.position.group is not None:
            self.position = self.position.but(group=None, after_alert=None)
        wanted = self._wanted_languages()
        languages_change = wanted != self.position.languages
        if languages_change and not self._drop_languages(wanted):
            self.page.has_more = True
            return
        if pending or languages_change:
            done_groups = self._backfill_groups(pending)
            if done_groups is None or not self._backfill_tips(wanted):
                self.page.has_more = True
                return
            held |= done_groups
        self._incremental(held)

    def _scope_groups(self) -> set[str]:
        scope: set[str] = set(self.actor.roles)
        area = self.request.scope.area
        if area is not None:
            scope.update(self.db.spatial.group_keys_within(area.lon, area.lat, area.radius_m))
        # Groups named by id count if they exist: the index (current to this page) knows.
        index = self.db.spatial.groups
        scope.update(key for key in map(check_uuid, self.request.scope.group_ids)
                     if key in index)
        return scope

    def _held(self, claimed_in_scope: set[str]) -> set[str]:
        """Groups the replica holds completely, with alert locations as this reader sees them."""
        held = set(claimed_in_scope)
        held.discard(self.position.group)
        if not self.actor.is_admin:
            exact = set(self.position.exact)
            held = {key for key in held if (key in exact) == (key in self.actor.roles)}
        return held

    def _drop_out_of_scope(self, gone: set[str]) -> bool:
        """Held groups out of scope: removed, or deleted if they no longer exist, as many as
        the page holds (the rest on the next page: they are still held then). False when some
        are left."""
        if not gone:
            return True
        dropped = sorted(gone)[: self.room]
        existing = set(self.session.scalars(select(GroupRow.id).where(GroupRow.id.in_(dropped))))
        self.page.removed_groups = [key for key in dropped if key in existing]
        self.page.deleted_groups = [key for key in dropped if key not in existing]
        self.room -= len(dropped)
        self.position = self.position.but(
            exact=tuple(key for key in self.position.exact if key not in dropped)
        )
        return len(dropped) == len(gone)

    def _wanted_languages(self) -> tuple[str, ...]:
        tags = {tip_services.normalise_language(tag) for tag in self.request.scope.languages}
        tags.add(FALLBACK_LANGUAGE)
        return tuple(sorted(tags))

    def _drop_languages(self, wanted: tuple[str, ...]) -> bool:
        """Tips the replica holds that the new languages do not want, by id, as many as the
        page holds; False when some are left for the next page."""
        if not self.position.languages:
            return True
        if self.position.tip_languages != wanted:  # deletions towards another language set
            self.position = self.position.but(
                tip_languages=wanted, after_tip=None, after_dropped_tip=None
            )
        held = tip_services.language_matcher(self.position.languages)
        still_wanted = tip_services.language_matcher(wanted)
        query = select(SafetyTip.id, SafetyTip.language).order_by(SafetyTip.id)
        if self.position.after_dropped_tip is not None:
            query = query.where(SafetyTip.id > self.position.after_dropped_tip)
        dropped = [key for key, language in self.session.execute(query)
                   if held(language) and not still_wanted(language)]
        sent = dropped[: self.room]
        self.page.deleted_tips.extend(sent)
        self.room -= len(sent)
        if len(sent) < len(dropped):
            self.position = self.position.but(after_dropped_tip=sent[-1] if sent else
                                              self.position.after_dropped_tip)
            return False
        # What is left is what both the old and the new languages want: held from now on, so
        # the deletions go out once even if the tips to add take several pages.
        self.position = self.position.but(after_dropped_tip=None, languages=tuple(
            tag for tag in self.position.languages if still_wanted(tag)
        ))
        return True

    # -- backfill ----------------------------------------------------------------------
    def _backfill_groups(self, pending: list[str]) -> set[str] | None:
        """Send whole groups until the page is full; the groups completed, or None when the page
        filled first (the cursor then says where to go on)."""
        done: set[str] = set()
        rows_sent: list = []
        connection = self.session.connection()
        plain, resuming = _BACKFILL[self.db.dialect]
        position = self.position
        exact = set(position.exact)
        exact_view = self.actor.belongs_to if not self.actor.is_admin else None
        current, after = position.group, position.after_alert
        try:
            start = 0
            while start < len(pending):
                # A group brings its row and its alerts (about ten in a busy city): fetch
                # about as many groups as the page can hold, more on the next turn.
                chunk = pending[start: start + max(1, min(200, self.room // 8))]
                groups = group_services.views(
                    self.db, [key for key in chunk if key != current or after is None],
                    self.session,
                )
                parameters = {"chunk": chunk, "fetch": self.room + 1, "ref_now": self.now}
                query = plain
                if current in chunk and after is not None:
                    query = resuming
                    parameters.update(current=current, after=after)
                rows = connection.execute(query, parameters).all()
                by_group: dict[str, list] = {}
                for row in rows:
                    by_group.setdefault(row[1], []).append(row)
                for key in chunk:
                    start += 1
                    if key != current or after is None:
                        group = groups.get(key)
                        if group is None:  # gone since the index named it
                            continue
                        if self.room == 0:
                            return None
                        self.page.groups.append(group)
                        self.room -= 1
                        current, after = key, ""
                    own = by_group.get(key, ())
                    fits = own[: self.room]
                    if fits:
                        rows_sent.extend(fits)
                        self.room -= len(fits)
                        after = fits[-1][0]
                    if len(fits) < len(own):
                        return None  # more of this group's alerts on the next page
                    # Rows are fetched up to the room left plus one, so a group whose alerts
                    # all fit was fetched whole.
                    done.add(key)
                    if exact_view is not None and exact_view(key):
                        exact.add(key)
                    else:
                        exact.discard(key)
                    current, after = None, None
            return done
        finally:
            # The cursor moves once: to the group under way (and its last alert sent), or
            # past the groups completed.
            self.position = position.but(group=current, after_alert=after,
                                         exact=tuple(sorted(exact)))
            self.page.alerts.extend(alert_services.refs_of(self.actor, rows_sent))

    def _backfill_tips(self, wanted: tuple[str, ...]) -> bool:
        """Send the tips the new languages want that the replica lacks; False when the page
        filled first (the cursor then says where to go on)."""
        if wanted == self.position.languages:
            return True
        if self.position.tip_languages != wanted:
            self.position = self.position.but(tip_languages=wanted, after_tip=None)
        held = tip_services.language_matcher(self.position.languages)
        new = tip_services.language_matcher(wanted)
        query = select(SafetyTip).order_by(SafetyTip.id)
        if self.position.after_tip is not None:
            query = query.where(SafetyTip.id > self.position.after_tip)
        for row in self.session.scalars(query):
            if not new(row.language) or held(row.language):
                continue
            if self.room == 0:
                return False
            self.page.tips.append(tip_services.view(row))
            self.room -= 1
            self.position = self.position.but(after_tip=row.id)
        self.position = self.position.but(languages=wanted, tip_languages=(), after_tip=None)
        return True

    # -- incremental -------------------------------------------------------------------
    def _incremental(self, held: set[str]) -> None:
        since, through = self.position.seq, self.newest
        if since >= through:
            self.position = self.position.but(seq=through)
            return
        session, fetch = self.session, self.room + 1
        in_range = (AlertRow.seq > since) & (AlertRow.seq <= through)
        held_ids = sorted(held)
        streams: list[Iterable[tuple[int, str, object]]] = []
        if held_ids:
            alert_rows = session.connection().execute(
                select(*alert_services.REF_COLUMNS)
                .where(in_range, AlertRow.group_id.in_(held_ids))
                .order_by(AlertRow.seq).limit(fetch),
                {"ref_now": self.now},
            ).all()
            streams.append([(row.seq, "alert", row) for row in alert_rows])
            streams.append([(seq, "group", key) for key, seq in session.execute(
                select(GroupRow.id, GroupRow.seq)
                .where(GroupRow.seq > since, GroupRow.seq <= through, GroupRow.id.in_(held_ids))
                .order_by(GroupRow.seq).limit(fetch)
            )])
            streams.append([(seq, "alert-deleted", key) for key, seq in session.execute(
                select(Tombstone.entity_id, Tombstone.seq)
                .where(Tombstone.entity == "alert", Tombstone.seq > since,
                       Tombstone.seq <= through, Tombstone.group_id.in_(held_ids))
                .order_by(Tombstone.seq).limit(fetch)
            )])
        wanted = tip_services.language_matcher(self.position.languages)
        # Tips are few (a few hundred translations): filtered here, never cut by the limit.
        streams.append([(row.seq, "tip", row) for row in session.scalars(
            select(SafetyTip).where(SafetyTip.seq > since, SafetyTip.seq <= through)
            .order_by(SafetyTip.seq)
        ) if wanted(row.language)])
        streams.append([(seq, "tip-deleted", key) for key, seq in session.execute(
            select(Tombstone.entity_id, Tombstone.seq)
            .where(Tombstone.entity == "tip", Tombstone.seq > since, Tombstone.seq <= through)
            .order_by(Tombstone.seq)
        )])
        changes = list(heapq.merge(*streams, key=lambda change: change[0]))
        if len(changes) > self.room:
            changes = changes[: self.room]
            self.page.has_more = True
            if changes:
                self.position = self.position.but(seq=changes[-1][0])
        else:
            self.position = self.position.but(seq=through)
        self._emit(changes)

    def _emit(self, changes: Sequence[tuple[int, str, object]]) -> None:
        # A group completed earlier in this page may have changed since its backfill began:
        # what this page already carries at the same version is not sent twice.
        sent_alerts = {alert.id: alert.version for alert in self.page.alerts}
        sent_groups = {group.id: group.version for group in self.page.groups}
        alert_rows = [row for _, kind, row in changes
                      if kind == "alert" and sent_alerts.get(row.id) != row.seq]
        group_ids = [key for seq, kind, key in changes
                     if kind == "group" and sent_groups.get(key) != seq]
        views = group_services.views(self.db, group_ids, self.session) if group_ids else {}
        self.page.groups.extend(views[key] for key in group_ids if key in views)
        self.page.alerts.extend(alert_services.refs_of(self.actor, alert_rows))
        self.page.tips.extend(tip_services.view(row) for _, kind, row in changes if kind == "tip")
        self.page.deleted_alerts.extend(
            key for _, kind, key in changes if kind == "alert-deleted"
        )
        self.page.deleted_tips.extend(key for _, kind, key in changes if kind == "tip-deleted")
        self.room -= len(changes)
