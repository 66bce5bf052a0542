"""``blockwatch worker``: works off the delivery outbox through one transport per platform.

A round claims due rows for a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several
workers share the queue without taking the same row; SQLite serialises writers, so one worker
is what it is for), commits the claim, sends, then records every outcome in one more
transaction:

* delivered: ``sent``;
* permanent (an unregistered token, a 404/410 subscription): the row is dead-lettered, the
  device deactivated, and what else was queued for it dropped;
* otherwise retried with exponential backoff and jitter (at least what ``Retry-After`` asked),
  and dead-lettered after ``max_attempts`` tries;
* an alert that expired while held (quiet hours) is dropped, not sent.

Sends run ``concurrency`` at a time (receivers may be slow), and a round stops sending when
most of its lease is spent: what is left is released unsent, for the next round.

A worker that dies mid-round leaves its rows claimed; when the lease runs out another round
takes them again. A message may then go out twice, always under the same idempotency key
(alert id, device id and kind), which a well-behaved receiver uses to show it once. An
outcome is recorded only by the worker that still holds the claim.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from blockwatch import alerts as alert_services
from blockwatch.config import Settings
from blockwatch.db import Database
from blockwatch.delivery.outbox import idempotency_key
from blockwatch.delivery.transports import (
    FcmTransport,
    Message,
    Outcome,
    Transport,
    WebhookTransport,
    WebPushTransport,
)
from blockwatch.domain import ANONYMOUS, Alert
from blockwatch.models import Delivery, Device

log = logging.getLogger("blockwatch.delivery")

DEFAULT_BATCH = 100
DEFAULT_LEASE_S = 120.0
#: Receivers are slow (a webhook may take its whole timeout): a round sends this many at once.
DEFAULT_CONCURRENCY = 16
#: The part of a lease a round may spend starting sends; the rest is margin for recording.
LEASE_SPENDABLE = 0.75
#: How long after that a round waits for sends under way before it releases them.
SEND_GRACE_S = 0.1
BASE_DELAY_S = 30.0
MAX_DELAY_S = 6 * 3600.0
#: Longest a receiver's Retry-After is honoured (a broken header must not park a row for days).
MAX_RETRY_AFTER_S = 24 * 3600.0


def backoff_s(attempts: int, rng: random.Random, *, base_s: float = BASE_DELAY_S,
              maximum_s: float = MAX_DELAY_S) -> float:
    """The wait before try ``attempts + 1``: ``base * 2^(attempts-1)`` capped at ``maximum``,
    half of it fixed and half random ("equal jitter"), so failed deliveries of one alert do
    not all come back at the same instant and yet never come back early."""
    ceiling = min(maximum_s, base_s * 2 ** max(0, attempts - 1))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass(frozen=True)
class Claimed:
    id: int
    alert_id: str
    device_id: str
    kind: str
    platform: str
    attempts: int
    push: dict | None  # None: the device was removed or deactivated since it was queued
    #: When the device was last changed, as claimed: a permanent refusal deactivates it only
    #: if its owner has not given it a new address since.
    device_updated_at: datetime | None = None


@dataclass
class RoundFigures:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    deactivated: int = 0
    dropped: int = 0
    released: int = 0


class Worker:
    """Delivers what is due. ``render`` turns an alert (public view) into the JSON object
    API.md describes (the HTTP layer's schema, passed in: this package knows no HTTP)."""

    def __init__(
        self,
        db: Database,
        transports: Mapping[str, Transport],
        render: Callable[[Alert], dict[str, Any]],
        *,
        clock: Callable[[], datetime] | None = None,
        batch_size: int = DEFAULT_BATCH,
        lease_s: float = DEFAULT_LEASE_S,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_attempts: int | None = None,
        rng: random.Random | None = None,
        name: str | None = None,
    ) -> None:
        self.db, self.transports, self.render = db, dict(transports), render
        self.clock = clock or (lambda: datetime.now(UTC))
        self.batch_size, self.lease_s, self.concurrency = batch_size, lease_s, concurrency
        self.max_attempts = max_attempts or db.settings.delivery_max_attempts
        self.rng = rng or random.Random()
        self.name = name or str(uuid.uuid4())
        self.totals = Counter()

    # -- rounds --------------------------------------------------------------------------
    def run_once(self) -> RoundFigures:
        """Claim up to ``batch_size`` due rows, send them (``concurrency`` at a time), record
        what happened. Rows not sent before most of the lease has passed are released
        unsent, so a slow round never outlives its claim (another worker would then send
        them too)."""
        claimed = self.claim()
        figures = RoundFigures(claimed=len(claimed))
        if not claimed:
            return figures
        deadline = time.monotonic() + self.lease_s * LEASE_SPENDABLE
        now = self.clock()
        alerts = alert_services.views_by_id(
            self.db, ANONYMOUS, sorted({row.alert_id for row in claimed}), now
        )

        def send(row: Claimed) -> Outcome:
            if time.monotonic() > deadline:
                return Outcome("released", "the round ran out of its lease")
            return self._send(row, alerts.get(row.alert_id))

        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(claimed)),
                                  thread_name_prefix="delivery")
        futures = [pool.submit(send, row) for row in claimed]
        # A receiver that answers a byte at a time must not hold the round past its lease:
        # the round moves on without what has not finished by then. Such a send may still
        # arrive, so its row keeps the claim until the lease ends (a cancellation meanwhile
        # treats it as maybe sent); then another round may send it again, under the same
        # idempotency key.
        done, _ = wait(futures, timeout=max(0.0, deadline - time.monotonic()) + SEND_GRACE_S)
        pool.shutdown(wait=False, cancel_futures=True)
        outcomes = [
            (row, future.result() if future in done
             else Outcome("outlasted", "the send outlasted the round"))
            for row, future in zip(claimed, futures, strict=True)
        ]
        self.record(outcomes, figures)
        for name in ("sent", "retried", "dead", "deactivated", "dropped", "released"):
            self.totals[name] += getattr(figures, name)
        log.info("delivery round: claimed=%d sent=%d retried=%d dead=%d deactivated=%d "
                 "dropped=%d released=%d", figures.claimed, figures.sent, figures.retried,
                 figures.dead, figures.deactivated, figures.dropped, figures.released)
        return figures

    def drain(self) -> RoundFigures:
        """Rounds until nothing is due (``blockwatch worker --once``); the figures summed."""
        total = RoundFigures()
        while True:
            figures = self.run_once()
            for name in vars(total):
                setattr(total, name, getattr(total, name) + getattr(figures, name))
            if figures.claimed < self.batch_size:
                return total

    def run(self, stop: threading.Event, idle_s: float = 1.0) -> None:
        """Rounds until ``stop`` is set, resting ``idle_s`` whenever nothing was due."""
        while not stop.is_set():
            try:
                figures = self.run_once()
            except Exception:  # a database blip must not end the worker; the round is retried
                log.exception("delivery round failed")
                figures = RoundFigures()
            if figures.claimed < self.batch_size:
                stop.wait(idle_s)

    # -- steps ---------------------------------------------------------------------------
    def claim(self) -> list[Claimed]:
        """Take due rows for ``lease_s`` (committed before anything is sent)."""
        now = self.clock()
        with self.db.write() as session:
            rows = session.execute(
                select(Delivery.id, Delivery.alert_id, Delivery.device_id, Delivery.kind,
                       Delivery.platform, Delivery.attempts)
                .where(Delivery.state == "pending", Delivery.due_at <= now,
                       (Delivery.claimed_until.is_(None)) | (Delivery.claimed_until <= now))
                .order_by(Delivery.due_at, Delivery.id).limit(self.batch_size)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                return []
            ids = [row.id for row in rows]
            session.execute(
                update(Delivery).where(Delivery.id.in_(ids))
                .values(claimed_by=self.name,
                        claimed_until=now + timedelta(seconds=self.lease_s))
                .execution_options(synchronize_session=False)
            )
            # A deactivated device's deliveries are dropped as they come up (no index by
            # device: see blockwatch.models.Delivery).
            devices = {key: (push, updated_at) for key, push, active, updated_at in
                       session.execute(
                           select(Device.id, Device.push, Device.active, Device.updated_at)
                           .where(Device.id.in_({row.device_id for row in rows}))
                       ) if active}
        return [Claimed(row.id, row.alert_id, row.device_id, row.kind, row.platform,
                        row.attempts, *devices.get(row.device_id, (None, None)))
                for row in rows]

    def _send(self, row: Claimed, alert: Alert | None) -> Outcome:
        if alert is None:  # deleted with its group since it was queued
            return Outcome("gone", "the alert no longer exists")
        if row.push is None:
            return Outcome("gone", "the device is deactivated or unregistered")
        if row.kind == "alert" and alert.status != "active":
            # Held by quiet hours past its expiry (a cancellation withdraws rows itself):
            # news of an alert that is over is noise.
            return Outcome("gone", f"the alert is {alert.status}")
        transport = self.transports.get(row.platform)
        if transport is None:
            return Outcome("retry", f"no {row.platform} transport is configured")
        message = Message(kind=row.kind, alert=self.render(alert),
                          idempotency_key=idempotency_key(row.alert_id, row.device_id, row.kind))
        try:
            return transport.send(row.push, message)
        except Exception as error:  # a transport bug must cost one row, not the round
            log.exception("transport %s failed on delivery %d", row.platform, row.id)
            return Outcome("retry", f"transport error: {error.__class__.__name__}")

    def record(self, outcomes: list[tuple[Claimed, Outcome]], figures: RoundFigures) -> None:
        """Every outcome of a round in one transaction, each only if this worker still holds
        its row (a row whose lease ran out may be someone else's now)."""
        now = self.clock()
        with self.db.write() as session:
            # The round's rows first, in id order, as a cancellation locks an alert's rows:
            # two transactions taking the same rows in one order cannot deadlock.
            session.execute(
                select(Delivery.id).where(Delivery.id.in_([row.id for row, _ in outcomes]))
                .order_by(Delivery.id).with_for_update()
            ).all()

            def finish(row: Claimed, **values) -> bool:
                result = session.execute(
                    update(Delivery).where(Delivery.id == row.id,
                                           Delivery.claimed_by == self.name,
                                           Delivery.state == "pending")
                    .values(claimed_by=None, claimed_until=None, **values)
                    .execution_options(synchronize_session=False)
                )
                return result.rowcount == 1

            # Deliveries that went through, the bulk of a round, are recorded in one statement
            # per number of earlier tries (usually one: none).
            sent: dict[int, list[int]] = {}
            for row, outcome in outcomes:
                if outcome.status == "delivered":
                    sent.setdefault(row.attempts + 1, []).append(row.id)
            for tries, ids in sent.items():
                figures.sent += session.execute(
                    update(Delivery).where(Delivery.id.in_(ids),
                                           Delivery.claimed_by == self.name,
                                           Delivery.state == "pending")
                    .values(claimed_by=None, claimed_until=None, state="sent", attempts=tries,
                            finished_at=now, last_error=None)
                    .execution_options(synchronize_session=False)
                ).rowcount
            for row, outcome in outcomes:
                tries = row.attempts + 1
                detail = outcome.detail[:300]
                if outcome.status == "delivered":
                    continue
                if outcome.status == "released":  # never sent: free to claim at once
                    if finish(row):
                        figures.released += 1
                elif outcome.status == "outlasted":  # held until its lease ends
                    figures.released += 1
                elif outcome.status == "gone":
                    if finish(row, state="dropped", finished_at=now, last_error=detail):
                        figures.dropped += 1
                elif outcome.status == "permanent":
                    if finish(row, state="dead", attempts=tries, finished_at=now,
                              last_error=detail):
                        figures.dead += 1
                        figures.deactivated += self._deactivate(session, row, detail, now)
                    log.warning("delivery %d to %s device %s refused for good: %s", row.id,
                                row.platform, row.device_id, detail)
                elif tries >= self.max_attempts:
                    if finish(row, state="dead", attempts=tries, finished_at=now,
                              last_error=detail):
                        figures.dead += 1
                    log.warning("delivery %d to %s device %s dead-lettered after %d tries: %s",
                                row.id, row.platform, row.device_id, tries, detail)
                else:
                    wait_s = backoff_s(tries, self.rng)
                    if outcome.retry_after_s is not None:
                        wait_s = max(wait_s, min(outcome.retry_after_s, MAX_RETRY_AFTER_S))
                    if finish(row, attempts=tries, last_error=detail,
                              due_at=now + timedelta(seconds=wait_s)):
                        figures.retried += 1
                    log.info("delivery %d to %s device %s failed (%s); try %d in %.0f s",
                             row.id, row.platform, row.device_id, detail, tries + 1, wait_s)

    def _deactivate(self, session, row: Claimed, reason: str, now: datetime) -> int:
        """A device that can never be reached: no more pushes (what waits for it is dropped as
        the worker reaches it)."""
        return session.execute(
            update(Device).where(Device.id == row.device_id, Device.active.is_(True),
                                 Device.updated_at == row.device_updated_at)
            .values(active=False, deactivated_reason=reason[:200], updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount


def transports_from_settings(settings: Settings) -> dict[str, Transport]:
    """One transport per platform the settings make possible. Webhooks always are; FCM needs a
    service-account key, Web Push a VAPID key and subject (without them those deliveries are
    retried, then dead-lettered, and the log says why)."""
    found: dict[str, Transport] = {
        "webhook": WebhookTransport(allow_private=settings.webhook_allow_private),
    }
    if settings.fcm_credentials:
        found["fcm"] = FcmTransport.from_service_account_file(
            settings.fcm_credentials, base_url=settings.fcm_url
        )
    if settings.vapid_private_key and settings.vapid_subject:
        found["webpush"] = WebPushTransport(
            vapid_private_key=settings.vapid_private_key, vapid_subject=settings.vapid_subject,
            allow_private=settings.webhook_allow_private,
        )
    for platform in ("fcm", "webpush"):
        if platform not in found:
            log.warning("no %s transport configured: %s deliveries will wait and then be "
                        "dead-lettered", platform, platform)
    return found
