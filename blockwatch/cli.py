"""The ``blockwatch`` command line: set up the database, import boundaries, issue tokens, load
demo data, serve.

Every command works on the database ``BLOCKWATCH_DATABASE_URL`` names (default: the SQLite file
``blockwatch.db`` in the working directory), set up by the functions in :data:`DATABASE_SETUP`
(the ``blockwatch`` script, ``api.serving``, installs its alert renderer there).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import click

from blockwatch import __version__
from blockwatch.config import MIN_TOMBSTONE_HORIZON_DAYS
from blockwatch.db import Database
from blockwatch.domain import DomainError
from geo import GeometryError

#: Called with each command's database before it is used: the application adds what the
#: domain cannot know, such as its alert renderer (``api.serving`` installs it).
DATABASE_SETUP: list[Callable[[Database], None]] = []


def _database() -> Database:
    db = Database()
    for setup in DATABASE_SETUP:
        setup(db)
    return db


class _Commands(click.Group):
    """Domain errors (a bad role, a missing group) and unreadable files end a command with their
    message and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DomainError as error:
            raise click.ClickException(error.detail) from error
        except GeometryError as error:
            raise click.ClickException(str(error)) from error


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="blockwatch")
def cli() -> None:
    """Blockwatch: the backend for Neighborhood Block Watch apps."""


@cli.command("init-db")
def init_db() -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    db = _database()
    db.migrate()
    click.echo(f"database ready: {db.engine.url.render_as_string(hide_password=True)}")


@cli.command("import-groups")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--name-field", required=True, help="The feature property that names each group.")
@click.option("--description-field", default=None, help="A property to use as description.")
@click.option(
    "--on-invalid", type=click.Choice(["fail", "skip", "repair"]), default="fail",
    show_default=True,
    help="fail: import nothing if any feature is invalid; skip: leave invalid ones out; "
         "repair: mend what can be mended, skip the rest.",
)
def import_groups_command(
    file: str, name_field: str, description_field: str | None, on_invalid: str
) -> None:
    """Import group boundaries from a GeoJSON FILE, in one transaction."""
    from blockwatch.importer import import_groups

    db = _database()
    db.migrate()

    def progress(items):
        with click.progressbar(
            items, label="checking features", file=sys.stderr,
            show_pos=True,
        ) as bar:
            yield from bar

    report = import_groups(db, file, name_field, on_invalid, description_field, progress)
    for label, reason in report.failed:
        click.echo(f"invalid: {label}: {reason}", err=True)
    if report.failed:
        click.echo(
            f"imported 0: {len(report.failed)} invalid feature(s) and --on-invalid fail; "
            "nothing was written", err=True,
        )
        click.echo("0")
        sys.exit(1)
    for label in report.repaired:
        click.echo(f"repaired: {label}", err=True)
    for label, name in report.unnamed:
        click.echo(f"unnamed: {label}: no {name_field!r}, imported as {name!r}", err=True)
    for label, reason in report.skipped:
        click.echo(f"skipped: {label}: {reason}", err=True)
    click.echo(
        f"imported {len(report.imported)}, repaired {len(report.repaired)}, "
        f"unnamed {len(report.unnamed)}, skipped {len(report.skipped)}", err=True,
    )
    click.echo(str(len(report.imported)))


@cli.command("create-token")
@click.option("--name", required=True, help="The account's display name (reused if it exists).")
@click.option("--role", type=click.Choice(["admin", "coordinator", "member"]), required=True)
@click.option("--group", "group_id", default=None, help="The group a coordinator or member "
              "belongs to.")
@click.option("--expires-days", type=click.IntRange(min=1), default=None,
              help="Days until the token expires (default: never).")
def create_token_command(
    name: str, role: str, group_id: str | None, expires_days: int | None
) -> None:
    """Create an account (or reuse one by name) and print a new token, alone on stdout."""
    from datetime import timedelta

    from blockwatch.accounts import create_token

    db = _database()
    db.migrate()
    token = create_token(
        db, name, role, group_id,
        expires_in=timedelta(days=expires_days) if expires_days else None,
    )
    click.echo(token)


@cli.command("revoke-token")
@click.argument("token")
def revoke_token_command(token: str) -> None:
    """Revoke TOKEN at once (exit status 1 if it was not known or already revoked)."""
    from blockwatch.accounts import revoke_token

    if not revoke_token(_database(), token.strip()):
        raise click.ClickException("no such active token")
    click.echo("revoked")


@cli.command("load-fixtures")
def load_fixtures_command() -> None:
    """Load the demo groups, alerts and safety tips (idempotent)."""
    from blockwatch.fixtures import load_fixtures

    db = _database()
    db.migrate()
    written = load_fixtures(db)
    click.echo(", ".join(f"{count} {kind}" for kind, count in written.items()) + " written")


@cli.command("expire-alerts")
def expire_alerts_command() -> None:
    """Mark alerts past their expiry as expired in the change log (run it from cron)."""
    from blockwatch.alerts import expire_alerts

    click.echo(f"{expire_alerts(_database())} alert(s) expired")


@cli.command("purge-tombstones")
@click.option("--older-than-days", type=click.IntRange(min=MIN_TOMBSTONE_HORIZON_DAYS),
              default=None,
              help="Keep deletes younger than this, at least 90 (default: "
                   "BLOCKWATCH_TOMBSTONE_HORIZON_DAYS, 90).")
def purge_tombstones_command(older_than_days: int | None) -> None:
    """Forget deletes (and pushed mutations' results) older than the horizon; sync cursors from
    before it must reset."""
    from datetime import UTC, datetime, timedelta

    from blockwatch.changelog import purge_tombstones
    from blockwatch.sync.push import purge_mutations

    db = _database()
    days = db.settings.tombstone_horizon_days if older_than_days is None else older_than_days
    with db.write() as session:
        purged = purge_tombstones(session, timedelta(days=days))
        forgotten = purge_mutations(session, datetime.now(UTC) - timedelta(days=days))
    click.echo(f"{purged} tombstone(s) older than {days} days purged")
    if forgotten:
        click.echo(f"{forgotten} pushed mutation result(s) older than {days} days forgotten")


@cli.command("purge-deliveries")
@click.option("--older-than-days", type=click.IntRange(min=1), default=30, show_default=True,
              help="Keep finished deliveries younger than this (dead letters included).")
def purge_deliveries_command(older_than_days: int) -> None:
    """Forget push deliveries that finished long ago (never those still waiting)."""
    from datetime import UTC, datetime, timedelta

    from blockwatch.delivery.outbox import purge_finished

    purged = purge_finished(_database(), datetime.now(UTC) - timedelta(days=older_than_days))
    click.echo(f"{purged} finished deliveries older than {older_than_days} days forgotten")


@cli.command("sync")
@click.option("--server", required=True, help="The server's base URL, e.g. http://127.0.0.1:8000")
@click.option("--replica", required=True, type=click.Path(dir_okay=False),
              help="The SQLite file of the replica (created if missing).")
@click.option("--lat", type=click.FloatRange(-90, 90), default=None)
@click.option("--lon", type=click.FloatRange(-180, 180), default=None)
@click.option("--radius-m", type=click.FloatRange(0, 50_000, min_open=True), default=3000.0,
              show_default=True, help="The area around --lat/--lon whose groups are synced.")
@click.option("--group-id", "group_ids", multiple=True, help="A group to hold wherever it is.")
@click.option("--language", "languages", multiple=True,
              help="Tip languages (BCP 47); English always comes too.")
@click.option("--token", envvar="BLOCKWATCH_TOKEN", default=None,
              help="Bearer token (or BLOCKWATCH_TOKEN): your groups, exact locations, push.")
@click.option("--limit", type=click.IntRange(1, 5000), default=500, show_default=True,
              help="Entities per page.")
@click.option("--attempts", type=click.IntRange(1, 20), default=6, show_default=True,
              help="Tries per request on network errors, 5xx and 429 (with backoff).")
def sync_command(server: str, replica: str, lat: float | None, lon: float | None,
                 radius_m: float, group_ids: tuple[str, ...], languages: tuple[str, ...],
                 token: str | None, limit: int, attempts: int) -> None:
    """Bring a local replica up to date: push its outbox, then pull its scope."""
    from blockwatch.sync.client import SyncClient, SyncError
    from blockwatch.sync.scope import FALLBACK_LANGUAGE, Area, Scope

    if (lat is None) != (lon is None):
        raise click.UsageError("give --lat and --lon together")
    with SyncClient(server, replica, token=token, page_limit=limit,
                    max_attempts=attempts) as client:
        if lat is not None or group_ids or languages:
            client.set_scope(Scope(
                area=Area(lon, lat, radius_m) if lat is not None else None,
                group_ids=group_ids, languages=languages or (FALLBACK_LANGUAGE,),
            ))
        elif client.replica.get("scope") is None:
            raise click.UsageError("give a scope (--lat/--lon, --group-id) for a new replica")
        try:
            summary = client.sync()
        except SyncError as error:
            raise click.ClickException(str(error)) from error
        held = client.dump()
        unsent = len(client.outbox())
        refused = len(client.push_results())
    click.echo(
        f"pulled {summary.pages} page(s), {summary.bytes} bytes: {summary.upserted} upserted, "
        f"{summary.deleted} deleted, {summary.removed_groups} group(s) out of scope"
        + (" (after a reset)" if summary.reset else "")
    )
    click.echo(
        f"replica {replica}: {len(held['groups'])} groups, {len(held['alerts'])} alerts, "
        f"{len(held['tips'])} tips; outbox {unsent} unsent, {refused} refused"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="blockwatch")
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
