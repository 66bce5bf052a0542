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

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import String, any_, bindparam, cast, literal, or_, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from blockwatch.alerts import AlertRef, author_names, view_of_row
from blockwatch.db import Database
from blockwatch.domain import Alert
from blockwatch.models import Alert as AlertRow

__all__ = ["AlertRenderer", "install", "render_stale", "stored_texts"]


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
    # The authors' names may need a query: the rows being flushed must not flush it first.
    with session.no_autoflush:
        names = author_names(session, rows)
    for row in rows:
        name = names.get(row.author_id, "") if row.author_id is not None else ""
        row.rendering_exact = renderer.render(view_of_row(row, True, name, row.status))
        row.rendering_public = renderer.render(view_of_row(row, False, name, row.status))
        row.rendered_as = renderer.stamp(row.seq)


def _stale(renderer: AlertRenderer):
    current = literal(renderer.format + "/") + cast(AlertRow.seq, String)
    return or_(AlertRow.rendered_as.is_(None), AlertRow.rendered_as != current)


def render_stale(db: Database, batch_size: int = 1000) -> int:
    """Render every alert whose renderings are missing or stale, ``batch_size`` alerts a
    transaction; returns how many. Needs a renderer installed; writes no change-log entry
    (an alert's content does not change)."""
    renderer = db.alert_renderer
    if renderer is None:
        raise RuntimeError("no alert renderer installed on this database")
    done = 0
    while True:
        with db.write() as session:
            rows = session.scalars(
                select(AlertRow).where(_stale(renderer)).order_by(AlertRow.id)
                .limit(batch_size).with_for_update()
            ).all()
            if rows:
                refresh(session, renderer, rows)
        done += len(rows)
        if len(rows) < batch_size:
            return done


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
            for key, seq, status, rendered_as, text in connection.execute(
                statements[exact], {"ids": list(wanted)}
            ):
                ref = wanted[key]
                if (text is not None and ref.version == seq and ref.status == status
                        and rendered_as == prefix + str(seq)):
                    found[ref] = text
    return found
