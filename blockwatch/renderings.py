"""Alert renderings stored with their rows, so a sync page reads texts instead of making them.

The application (``api``, which owns the wire format) installs an :class:`AlertRenderer` on a
:class:`~blockwatch.db.Database`. From then on every write transaction of that database renders
the alerts it adds or changes just before they are flushed (whatever service wrote them: a post,
a cancel, a sync push, an expiry sweep), in both views an alert has, with its exact location and
with the public snapped one, into ``rendering_exact`` and ``rendering_public``, and stamps
``rendered_as`` with the renderer's :attr:`~AlertRenderer.format` and the row's ``seq``.

A stored rendering is used only while ``rendered_as`` still names the current renderer and the
row's current ``seq``, and only for a reader whose view has the stored status (an active alert
past its expiry reads as expired until the sweep stores it so): anything else is rendered when
read, as it would be without this module, so a stale text is never served. Rows written without
a renderer (bulk loads, an older release, another renderer format) are brought up to date by
:func:`render_stale` (``blockwatch render-alerts``; ``blockwatch serve`` runs it at start).

This module knows nothing of the format itself: the renderer is a function of an
:class:`~blockwatch.domain.Alert`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import String, any_, bindparam, cast, literal, or_, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from blockwatch.alerts import AlertRef, remember_author_names, view_of_row
from blockwatch.db import Database
from blockwatch.domain import Alert
from blockwatch.models import Alert as AlertRow

__all__ = ["AlertRenderer", "install", "render_stale", "renderer_of", "stored_texts"]


@dataclass(frozen=True)
class AlertRenderer:
    """How the application writes an alert view as text, and a name for that way of writing
    it: a rendering made under another ``format`` is never used. Change ``format`` whenever the
    text an alert gives could change."""

    render: Callable[[Alert], str]
    format: str

    def stamp(self, seq: int) -> str:
        """The ``rendered_as`` of renderings of version ``seq`` made by this renderer."""
        return f"{self.format}/{seq}"


def renderer_of(render: Callable[[Alert], str], name: str) -> AlertRenderer:
    """An :class:`AlertRenderer` whose format is ``name`` plus a digest of what ``render`` makes
    of a fixed sample alert, in both views, with and without a point: a change in how views are
    built (the public grid, say) or written makes stored renderings stale without anyone having
    to rename anything."""
    texts = [render(view_of_row(_sample(point), exact, "Sample Author", "active"))
             for point in ((-122.33127, 47.60621), None) for exact in (True, False)]
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]
    return AlertRenderer(render=render, format=f"{name}+{digest}")


def _sample(point: tuple[float, float] | None) -> AlertRow:
    """The alert :func:`renderer_of` renders (never stored), with ``point`` or without one."""
    lon, lat = point if point is not None else (None, None)
    return AlertRow(
        id="00000000-0000-4000-8000-000000000001", group_id="00000000-0000-4000-8000-000000000002",
        category="burglary", severity="moderate", urgency="expected", certainty="likely",
        title='Sample "alert" é', body="Line one\nline two", lon=lon, lat=lat,
        sent_at=datetime(2026, 1, 1, 12, tzinfo=UTC), expires_at=datetime(2026, 1, 2, tzinfo=UTC),
        status="active", author_id="00000000-0000-4000-8000-000000000003", seq=1,
    )


def install(db: Database, renderer: AlertRenderer) -> None:
    """Render, in every write transaction of ``db`` from now on, the alerts it adds or changes
    (installing another renderer later replaces this one)."""
    first = db.alert_renderer is None
    db.alert_renderer = renderer
    if first:
        db.before_flush(lambda session, _context, _instances: _render_flushed(db, session))


def _render_flushed(db: Database, session: Session) -> None:
    renderer = db.alert_renderer
    if renderer is None:
        return
    rows = [
        row for row in (*session.new, *session.dirty)
        if isinstance(row, AlertRow) and row.rendered_as != renderer.stamp(row.seq)
    ]
    if rows:
        refresh(session, renderer, rows)


def refresh(session: Session, renderer: AlertRenderer, rows: Sequence[AlertRow]) -> None:
    """Render ``rows`` (their stored state: status as stored) in both views, on the rows."""
    names = remember_author_names(session, rows)
    for row in rows:
        name = names.get(row.author_id, "") if row.author_id is not None else ""
        row.rendering_exact = renderer.render(view_of_row(row, True, name, row.status))
        row.rendering_public = renderer.render(view_of_row(row, False, name, row.status))
        row.rendered_as = renderer.stamp(row.seq)


def _stale(renderer: AlertRenderer):
    current = literal(renderer.format + "/") + cast(AlertRow.seq, String)
    return or_(AlertRow.rendered_as.is_(None), AlertRow.rendered_as != current)


#: Alerts rendered per transaction by :func:`render_stale` unless told otherwise.
DEFAULT_BATCH = 1000


def render_stale(db: Database, batch_size: int = DEFAULT_BATCH) -> int:
    """Render every alert whose renderings are missing or stale, in one pass by id,
    ``batch_size`` alerts a transaction; returns how many. Needs a renderer installed; writes
    no change-log entry (an alert's content does not change).

    Rows a writer holds locked meanwhile are skipped, not waited for (no deadlock with a push
    that locks alerts in its own order; the writer's own flush renders what it changes): a
    later run, or a read, renders them.
    """
    if db.alert_renderer is None:
        raise RuntimeError("no alert renderer installed on this database")
    done, after = 0, ""
    while True:
        renderer = db.alert_renderer  # the one the flush hook uses, if it was replaced
        with db.write() as session:
            rows = session.scalars(
                select(AlertRow).where(AlertRow.id > after, _stale(renderer))
                .order_by(AlertRow.id).limit(batch_size).with_for_update(skip_locked=True)
            ).all()
            if rows:
                refresh(session, renderer, rows)
        done += len(rows)
        if len(rows) < batch_size:
            return done
        after = rows[-1].id


def _stored_statements(ids) -> dict[bool, object]:
    """By view (exact or not): the stored rendering of each alert among ``ids``, with what
    says whether it is current."""
    return {
        exact: select(AlertRow.id, AlertRow.seq, AlertRow.status, AlertRow.rendered_as, column)
        .where(ids)
        for exact, column in ((True, AlertRow.rendering_exact),
                              (False, AlertRow.rendering_public))
    }


#: By dialect, built once (see blockwatch.sync.pull: an array on PostgreSQL keeps the text of
#: the statement the same whatever the number of ids).
_STORED = {
    "postgresql": _stored_statements(AlertRow.id == any_(bindparam("ids", type_=ARRAY(String)))),
    "sqlite": _stored_statements(AlertRow.id.in_(bindparam("ids", expanding=True))),
}


def stored_texts(db: Database, refs: Iterable[AlertRef]) -> dict[AlertRef, str]:
    """The stored rendering of each alert view in ``refs`` that is current for it (same
    renderer, same version, same status); the others are not in the answer."""
    renderer = db.alert_renderer
    by_view: dict[bool, dict[str, AlertRef]] = {True: {}, False: {}}
    for ref in refs:
        by_view[ref.location_exact][ref.id] = ref
    if renderer is None or not (by_view[True] or by_view[False]):
        return {}
    prefix = renderer.format + "/"
    found: dict[AlertRef, str] = {}
    statements = _STORED[db.dialect]
    with db.read() as session:
        connection = session.connection()
        for exact, wanted in by_view.items():
            if not wanted:
                continue
            # .all(): one fetchall, not a fetchone per row (a third of the time on SQLite).
            for key, seq, status, rendered_as, text in connection.execute(
                statements[exact], {"ids": list(wanted)}
            ).all():
                ref = wanted[key]
                if (text is not None and ref.version == seq and ref.status == status
                        and rendered_as == prefix + str(seq)):
                    found[ref] = text
    return found
