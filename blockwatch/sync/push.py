"""The server side of ``POST /v1/sync/push``: apply a device's offline mutations exactly once.

All mutations of a push are applied in order in one transaction, each inside a savepoint, and
the last mutation id of the ``client_id`` is stored in that same transaction with each result.
A mutation at or below the stored id was applied before: it is answered ``duplicate`` with its
first result and changes nothing, so a push replayed whole or in part (a lost response, a retry)
leaves the same state and gets the same results. A ``rejected`` mutation still advances the id:
it can never apply, and must not block the outbox behind it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from blockwatch import alerts as alert_services
from blockwatch import groups as group_services
from blockwatch.checks import check_uuid
from blockwatch.db import Database
from blockwatch.domain import (
    Actor,
    AlertDraft,
    Conflict,
    DomainError,
    Forbidden,
    Group,
    NotAuthenticated,
    PreconditionFailed,
    ValidationError,
)
from blockwatch.models import Alert as AlertRow
from blockwatch.models import Group as GroupRow
from blockwatch.models import SyncClient, SyncMutation

OPS = ("alert.create", "alert.cancel", "group.update")
STATUSES = ("applied", "duplicate", "rejected", "conflict")
MAX_MUTATIONS = 500


@dataclass(frozen=True)
class Mutation:
    """One change made offline, as the edge parsed it.

    ``alert.create``: ``target_id`` is the group, ``draft`` the alert (its ``id`` client-made).
    ``alert.cancel``: ``target_id`` is the alert. ``group.update``: ``target_id`` is the group,
    ``changes`` the fields replaced, ``base_version`` the version they were made against.
    ``invalid`` holds why the arguments could not be read: the mutation is then rejected.
    """

    mutation_id: int
    op: str
    target_id: str | None = None
    draft: AlertDraft | None = None
    changes: dict[str, Any] | None = None
    base_version: int | None = None
    invalid: DomainError | None = None
    #: What identifies the mutation as sent (a hash of its op, arguments and base version):
    #: a replay under the same id must carry the same.
    fingerprint: str | None = None


@dataclass(frozen=True)
class MutationResult:
    """What became of one mutation. ``original_status`` is set on a ``duplicate``: what the
    first application gave. ``entity`` is the current group of a ``conflict``."""

    mutation_id: int
    status: str
    id: str | None = None
    version: int | None = None
    problem: dict[str, Any] | None = None
    entity: Group | None = None
    original_status: str | None = None


@dataclass(frozen=True)
class PushOutcome:
    results: list[MutationResult] = field(default_factory=list)
    last_mutation_id: int = 0


def problem_of(error: DomainError) -> dict[str, Any]:
    """A domain error as an RFC 9457 problem object."""
    body: dict[str, Any] = {
        "type": "about:blank", "title": error.title, "status": error.status,
        "detail": error.detail,
    }
    if error.errors:
        body["errors"] = error.errors
    return body


def push(db: Database, actor: Actor, client_id: str, mutations: list[Mutation],
         now: datetime | None = None) -> PushOutcome:
    """Apply ``mutations`` for ``client_id`` (see the module doc) and return their results."""
    if actor.account_id is None:
        raise NotAuthenticated("pushing needs 'Authorization: Bearer <token>'")
    client_id = check_uuid(client_id, "client_id")
    _check_order(mutations)
    now = now or datetime.now(UTC)
    with db.write() as session:
        client = _client(session, db, client_id, actor, now)
        _lock_targets(session, actor, [
            mutation for mutation in mutations
            if mutation.mutation_id > client.last_mutation_id and mutation.invalid is None
        ])
        results = []
        for mutation in mutations:
            if mutation.mutation_id <= client.last_mutation_id:
                results.append(_duplicate(session, client_id, mutation))
                continue
            result = _apply(session, actor, mutation, now)
            session.add(SyncMutation(
                client_id=client_id, mutation_id=mutation.mutation_id, status=result.status,
                result=_stored(result), applied_at=now, fingerprint=mutation.fingerprint,
            ))
            client.last_mutation_id = mutation.mutation_id
            results.append(result)
        client.updated_at = now
        return PushOutcome(results, client.last_mutation_id)


def purge_mutations(session: Session, before: datetime) -> int:
    """Forget results of mutations applied before ``before`` (kept as long as tombstones):
    a replay that old is still answered ``duplicate``, only without its first result."""
    return session.execute(delete(SyncMutation).where(SyncMutation.applied_at < before)).rowcount


def _check_order(mutations: list[Mutation]) -> None:
    if len(mutations) > MAX_MUTATIONS:
        raise ValidationError.field("mutations", f"at most {MAX_MUTATIONS} in one push")
    previous = 0
    for index, mutation in enumerate(mutations):
        if mutation.mutation_id <= previous:
            raise ValidationError.field(
                f"mutations.{index}.mutation_id",
                "mutation ids must be positive and increase through the push",
            )
        if mutation.op not in OPS:
            raise ValidationError.field(f"mutations.{index}.op", f"must be one of {', '.join(OPS)}")
        previous = mutation.mutation_id


def _client(session: Session, db: Database, client_id: str, actor: Actor, now: datetime
            ) -> SyncClient:
    """The client's row, locked until commit so two pushes of one client apply one by one."""
    insert = postgresql_insert if db.dialect == "postgresql" else sqlite_insert
    session.execute(insert(SyncClient).values(
        client_id=client_id, account_id=actor.account_id, last_mutation_id=0, updated_at=now,
    ).on_conflict_do_nothing(index_elements=["client_id"]))
    client = session.scalars(
        select(SyncClient).where(SyncClient.client_id == client_id).with_for_update()
    ).one()
    if client.account_id != actor.account_id:
        raise Forbidden("this client_id is another account's; make a new one for this account")
    return client


def _lock_targets(session: Session, actor: Actor, mutations: list[Mutation]) -> None:
    """Lock the rows the mutations change or depend on, groups then alerts (as deleting a group
    does), each in id order, before the first mutation takes the change counter; each as the
    mutation itself locks it (a group edited: ``FOR UPDATE``; a group posted in:
    ``FOR NO KEY UPDATE``), and only where the actor may change it (others are refused).

    The counter is the last lock a transaction takes (:mod:`blockwatch.changelog`). A push
    takes it with its first mutation and holds it to the end, so without this its later
    mutations would lock rows after it: a cancel of one of those alerts, or an edit of one of
    those groups, running meanwhile holds the row and waits for the counter, and the two
    deadlock.
    """
    def ids(*ops: str) -> set[str]:
        return {key for mutation in mutations if mutation.op in ops
                for key in [_id_or_none(mutation.target_id)] if key is not None}

    edited = ids("group.update")
    for key in sorted(key for key in edited | ids("alert.create") if actor.coordinates(key)):
        session.execute(select(GroupRow.id).where(GroupRow.id == key)
                        .with_for_update(key_share=key not in edited))
    alert_ids = sorted(ids("alert.cancel"))
    coordinated = [key for key, role in actor.roles.items() if role == "coordinator"]
    if alert_ids and (actor.is_admin or coordinated):
        query = select(AlertRow.id).where(AlertRow.id.in_(alert_ids))
        if not actor.is_admin:
            query = query.where(AlertRow.group_id.in_(coordinated))
        session.execute(query.order_by(AlertRow.id).with_for_update())


def _id_or_none(value: str | None) -> str | None:
    """The id as the services read it; None for what is not one (the mutation itself refuses
    it, with its problem)."""
    try:
        return check_uuid(value)
    except ValidationError:
        return None


def _apply(session: Session, actor: Actor, mutation: Mutation, now: datetime
           ) -> MutationResult:
    number = mutation.mutation_id
    if mutation.invalid is not None:
        return MutationResult(number, "rejected", mutation.target_id,
                              problem=problem_of(mutation.invalid))
    try:
        with session.begin_nested():
            return _applied(session, actor, mutation, now)
    except PreconditionFailed:
        current = group_services.views_in(session, [mutation.target_id])
        entity = current.get(mutation.target_id)
        return MutationResult(number, "conflict", mutation.target_id,
                              version=entity.version if entity else None, entity=entity)
    except DomainError as error:
        return MutationResult(number, "rejected", _target(mutation),
                              problem=problem_of(_under_args(error)))
    except IntegrityError:
        # Only an alert post can lose a race (the same client id from elsewhere, or its group
        # deleted meanwhile): answered as the post itself would be.
        if mutation.op != "alert.create":
            raise
        try:
            alert, _ = alert_services.repeat_after_race(
                session, actor, mutation.target_id, mutation.draft
            )
        except DomainError as error:
            return MutationResult(number, "rejected", _target(mutation),
                                  problem=problem_of(error))
        return MutationResult(number, "applied", alert.id, version=alert.version)


def _applied(session: Session, actor: Actor, mutation: Mutation, now: datetime
             ) -> MutationResult:
    number = mutation.mutation_id
    if mutation.op == "alert.create":
        alert, _ = alert_services.post_alert_in(
            session, actor, mutation.target_id, mutation.draft, now
        )
        return MutationResult(number, "applied", alert.id, version=alert.version)
    if mutation.op == "alert.cancel":
        alert = alert_services.cancel_alert_in(session, actor, mutation.target_id, now)
        return MutationResult(number, "applied", alert.id, version=alert.version)
    if mutation.base_version is None:
        raise ValidationError.field("base_version", "group.update needs the version it edits")
    group = group_services.update_group_in(
        session, actor, mutation.target_id, mutation.changes or {}, mutation.base_version
    )
    return MutationResult(number, "applied", group.id, version=group.version)


def _under_args(error: DomainError) -> DomainError:
    """Field errors named as the push body names them (``args.title``); ``base_version`` sits
    beside ``args``."""
    if not isinstance(error, ValidationError) or not error.errors:
        return error
    renamed = {
        (name if name == "base_version" else f"args.{name}"): messages
        for name, messages in error.errors.items()
    }
    detail = "; ".join(f"{name}: {', '.join(messages)}" for name, messages in renamed.items())
    return ValidationError(detail, renamed)


def _target(mutation: Mutation) -> str | None:
    if mutation.op == "alert.create" and mutation.draft is not None:
        return mutation.draft.id
    return mutation.target_id


def _stored(result: MutationResult) -> dict[str, Any]:
    stored: dict[str, Any] = {"id": result.id, "version": result.version}
    if result.problem is not None:
        stored["problem"] = result.problem
    return stored


def _duplicate(session: Session, client_id: str, mutation: Mutation) -> MutationResult:
    mutation_id = mutation.mutation_id
    row = session.get(SyncMutation, (client_id, mutation_id))
    if row is None:  # applied so long ago that its result was purged
        return MutationResult(mutation_id, "duplicate")
    if row.fingerprint and mutation.fingerprint and row.fingerprint != mutation.fingerprint:
        # The client reused an id for another change: nothing happens, and it is told so.
        return MutationResult(mutation_id, "rejected", problem=problem_of(Conflict(
            f"mutation {mutation_id} of this client was first pushed with other content; "
            "its first result stands and this one was not applied"
        )))
    result = row.result or {}
    entity = None
    if row.status == "conflict" and result.get("id"):
        entity = group_services.views_in(session, [result["id"]]).get(result["id"])
    return MutationResult(
        mutation_id, "duplicate", result.get("id"), version=result.get("version"),
        problem=result.get("problem"), entity=entity, original_status=row.status,
    )
