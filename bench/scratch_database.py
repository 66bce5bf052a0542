"""A database a benchmark can fill and throw away: a SQLite file in its temporary directory, or a
PostgreSQL schema of its own (created here, dropped when the bench's exit stack closes); and
its tables analysed after a bulk load."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

from blockwatch.db import Database, normalise_url
from blockwatch.models import Base


def open_database(kind: str, name: str, tmp: Path, postgres_url: str,
                  stack: contextlib.ExitStack) -> str:
    """The URL of an empty database of ``kind`` (``sqlite`` or ``postgresql``) for the bench
    ``name``; a PostgreSQL schema is dropped, with everything in it, when ``stack`` closes."""
    if kind == "sqlite":
        return f"sqlite:///{tmp / f'{name}.db'}"
    schema = f"{name.replace('-', '_')}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalise_url(postgres_url))
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    stack.callback(drop)
    separator = "&" if "?" in postgres_url else "?"
    return f"{postgres_url}{separator}options=-csearch_path%3D{schema}"


def analyse(db: Database, *tables: str, vacuum: bool = False) -> None:
    """What autovacuum does soon after a bulk load, done at once: planner statistics for
    ``tables`` (every table of the schema when none is named); with ``vacuum`` on PostgreSQL
    also the visibility map that lets an index-only scan skip the table."""
    names = ", ".join(f'"{name}"' for name in tables or
                      [table.name for table in Base.metadata.sorted_tables])
    if db.dialect == "postgresql":
        command = "VACUUM (ANALYZE)" if vacuum else "ANALYZE"
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f"{command} {names}"))
    else:
        with db.engine.begin() as connection:
            for name in names.split(", "):
                connection.execute(text(f"ANALYZE {name}"))
