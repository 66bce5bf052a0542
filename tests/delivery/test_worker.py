"""``blockwatch worker``: every targeted device gets its message once per idempotency key,
through crashes, retries with backoff, dead letters and deactivation (a controllable clock and
a local webhook receiver; never a sleep as synchronisation)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from api.serving import render_alert
from blockwatch import alerts
from blockwatch.config import Settings
from blockwatch.db import Database
from blockwatch.delivery import outbox
from blockwatch.delivery.devices import register_device
from blockwatch.delivery.transports import Outcome, WebhookTransport, verify_signature
from blockwatch.delivery.worker import (
    BASE_DELAY_S,
    MAX_DELAY_S,
    RoundFigures,
    Worker,
    backoff_s,
    transports_from_settings,
)
from blockwatch.domain import ANONYMOUS
from blockwatch.models import Delivery, Device
from tests.blockwatch import factories
from tests.delivery.conftest import WEBHOOK_SECRET, deliveries, subscribe

LON, LAT = -122.32, 47.61
T0 = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def place(delivery_db):
    group = factories.group(delivery_db, lon=LON, lat=LAT)
    captain = factories.actor(delivery_db, "Captain", "coordinator", group.id)
    return delivery_db, group, captain


def worker(db: Database, clock: Clock | None = None, **options) -> Worker:
    webhook = WebhookTransport(allow_private=True, timeout_s=5.0)
    return Worker(db, {"webhook": webhook}, render_alert, clock=clock,
                  rng=random.Random(7), **options)


def post(db, group, captain, now=T0, **fields):
    alert, _ = alerts.post_alert(db, captain, group.id,
                                 factories.draft(location=(LON, LAT), **fields), now=now)
    return alert


def test_a_posted_alert_reaches_its_webhook_signed_and_once(place, receiver):
    db, group, captain = place
    device = subscribe(db, area=(LON, LAT, 1000), url=receiver.url("a"))
    alert = post(db, group, captain)
    clock = Clock()
    figures = worker(db, clock).run_once()
    assert (figures.claimed, figures.sent) == (1, 1)
    [got] = receiver.requests()
    key = f"{alert.id}:{device}:alert"
    assert got.path == "/hook/a" and got.headers["Idempotency-Key"] == key
    assert verify_signature(WEBHOOK_SECRET, got.headers["Blockwatch-Signature"], got.body,
                            now=time.time())
    public = alerts.get_alert(db, ANONYMOUS, alert.id, now=T0)
    assert got.json == {"kind": "alert", "alert": render_alert(public), "idempotency_key": key}
    assert got.json["alert"]["location"] != {"lat": LAT, "lon": LON}  # the public, rounded point
    [row] = deliveries(db)
    assert (row.state, row.attempts) == ("sent", 1)
    assert worker(db, clock).run_once().claimed == 0  # nothing twice


def test_backoff_then_dead_letter_visible_to_admins(place, receiver):
    db, group, captain = place
    settings = Settings(database_url=str(db.engine.url.render_as_string(hide_password=False)),
                        webhook_allow_private=True, delivery_max_attempts=4)
    db.settings = settings  # the same database, four tries
    subscribe(db, area=(LON, LAT, 1000), url=receiver.url("down"))
    receiver.answer("down", 503)
    post(db, group, captain)
    clock = Clock()
    work = worker(db, clock)
    waits = []
    for tries in range(1, 4):
        assert work.run_once().retried == 1
        [row] = deliveries(db)
        wait_s = (row.due_at - clock.now).total_seconds()
        ceiling = BASE_DELAY_S * 2 ** (tries - 1)
        assert ceiling / 2 <= wait_s <= ceiling, (tries, wait_s)
        waits.append(wait_s)
        clock.now = row.due_at - timedelta(seconds=1)
        assert work.run_once().claimed == 0  # not before it is due
        clock.now = row.due_at
    assert work.run_once().dead == 1
    [row] = deliveries(db)
    assert (row.state, row.attempts) == ("dead", 4) and "503" in row.last_error
    assert len(receiver.requests()) == 4
    report = outbox.delivery_report(db, factories.admin(db), now=clock.now)
    assert report.platforms["webhook"].dead == 1
    assert report.platforms["webhook"].failed_attempts == 4
    assert report.queue_depth == 0
    [letter] = report.dead_letters
    assert letter["attempts"] == 4 and letter["idempotency_key"].endswith(":alert")


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    rng = random.Random(3)
    for attempts in range(1, 30):
        ceiling = min(MAX_DELAY_S, BASE_DELAY_S * 2 ** (attempts - 1))
        samples = [backoff_s(attempts, rng) for _ in range(50)]
        assert all(ceiling / 2 <= wait <= ceiling for wait in samples)
        assert len(set(samples)) > 1  # jittered


def test_retry_after_is_honoured(place, receiver):
    db, group, captain = place
    subscribe(db, area=(LON, LAT, 1000), url=receiver.url("busy"))
    receiver.answer("busy", 429, Retry_After="3600")
    post(db, group, captain)
    clock = Clock()
    worker(db, clock).run_once()
    [row] = deliveries(db)
    assert row.state == "pending" and row.due_at >= T0 + timedelta(seconds=3600)


def test_a_gone_receiver_deactivates_the_device_and_drops_its_queue(place, receiver):
    db, group, captain = place
    gone = subscribe(db, area=(LON, LAT, 1000), url=receiver.url("gone"))
    fine = subscribe(db, area=(LON, LAT, 1000), url=receiver.url("fine"))
    receiver.answer("gone", 410)
    first = post(db, group, captain)
    second = post(db, group, captain, title="A second alert")
    clock = Clock()
    # One delivery per round: the gone device's second delivery is still queued when its
    # first one fails for good.
    worker(db, clock, batch_size=1).drain()
    rows = {(row.alert_id, row.device_id): row for row in deliveries(db)}
    assert rows[first.id, gone].state == "dead"
    assert rows[second.id, gone].state == "dropped"
    assert {rows[first.id, fine].state, rows[second.id, fine].state} == {"sent"}
    with db.read() as session:
        device = session.get(Device, gone)
        assert not device.active and "410" in device.deactivated_reason
    assert [item.path for item in receiver.requests()].count("/hook/gone") == 1
    third = post(db, group, captain, title="A third alert")
    assert gone not in {row.device_id for row in deliveries(db) if row.alert_id == third.id}


def test_a_cancellation_follows_a_sent_alert_with_its_own_key(place, receiver):
    db, group, captain = place
    device = subscribe(db, area=(LON, LAT, 1000), url=receiver.url("a"))
    alert = post(db, group, captain)
    clock = Clock()
    work = worker(db, clock)
    work.run_once()
    alerts.cancel_alert(db, captain, alert.id, now=T0 + timedelta(minutes=1))
    clock.now = T0 + timedelta(minutes=1)
    assert work.run_once().sent == 1
    kinds = [(item.json["kind"], item.headers["Idempotency-Key"]) for item in receiver.requests()]
    assert kinds == [("alert", f"{alert.id}:{device}:alert"),
                     ("cancel", f"{alert.id}:{device}:cancel")]
    assert receiver.requests()[1].json["alert"]["status"] == "cancelled"


def test_an_alert_cancelled_while_held_is_never_sent(place, receiver):
    db, group, captain = place
    night = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)  # 23:00 in Seattle
    subscribe(db, area=(LON, LAT, 1000), url=receiver.url("sleepy"),
              quiet=("22:00", "07:00", "America/Los_Angeles"))
    alert = post(db, group, captain, now=night, severity="minor")
    clock = Clock(night)
    work = worker(db, clock)
    assert work.run_once().claimed == 0  # held until 07:00 local
    alerts.cancel_alert(db, captain, alert.id, now=night + timedelta(hours=1))
    clock.now = night + timedelta(hours=12)
    assert work.run_once().claimed == 0
    assert receiver.requests() == []
    assert [row.state for row in deliveries(db)] == ["withdrawn"]


def test_a_held_alert_goes_out_when_the_quiet_hours_end(place, receiver):
    db, group, captain = place
    night = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
    subscribe(db, area=(LON, LAT, 1000), url=receiver.url("sleepy"),
              quiet=("22:00", "07:00", "America/Los_Angeles"))
    post(db, group, captain, now=night, severity="moderate")
    clock = Clock(datetime(2026, 11, 25, 14, 59, tzinfo=UTC))
    work = worker(db, clock)
    assert work.run_once().claimed == 0
    clock.now = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)  # 07:00 in Seattle
    assert work.run_once().sent == 1


def test_a_lease_keeps_rows_from_other_workers_until_it_runs_out(place, receiver):
    db, group, captain = place
    subscribe(db, area=(LON, LAT, 1000), url=receiver.url("a"))
    post(db, group, captain)
    clock = Clock()
    crashed = worker(db, clock, lease_s=60, name="crashed")
    claimed = crashed.claim()  # ...and then it died without sending
    assert len(claimed) == 1
    other = worker(db, clock, name="other")
    assert other.run_once().claimed == 0
    clock.now = T0 + timedelta(seconds=60)
    assert other.run_once().sent == 1
    # The first worker's late word changes nothing: the row is no longer its.
    late = RoundFigures()
    crashed.record([(claimed[0], Outcome("permanent", "HTTP 410"))], late)
    assert late.dead == 0 and [row.state for row in deliveries(db)] == ["sent"]
    with db.read() as session:
        assert session.scalar(select(Device.active))


def test_two_workers_share_the_queue_without_sending_twice(place, receiver):
    db, group, captain = place
    for index in range(40):
        subscribe(db, area=(LON, LAT, 1000), url=receiver.url(f"d{index}"))
    post(db, group, captain)
    receiver.delay_s = 0.005
    workers = [worker(db, Clock(), name=f"w{k}", batch_size=5) for k in range(2)]
    threads = [threading.Thread(target=work.drain) for work in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    counts = Counter(receiver.keys())
    assert len(counts) == 40 and set(counts.values()) == {1}
    assert {row.state for row in deliveries(db)} == {"sent"}
    assert sum(work.totals["sent"] for work in workers) == 40


def test_an_unconfigured_platform_waits_then_is_dead_lettered(place):
    db, group, captain = place
    device, _ = register_device(
        db, "fcm", {"token": "fcm-token"}, {"area": {"lat": LAT, "lon": LON, "radius_m": 500}})
    post(db, group, captain)
    transports = transports_from_settings(db.settings)
    assert set(transports) == {"webhook"}
    clock = Clock()
    work = Worker(db, transports, render_alert, clock=clock, max_attempts=2,
                  rng=random.Random(1))
    assert work.run_once().retried == 1
    [row] = deliveries(db)
    assert "no fcm transport" in row.last_error and row.device_id == device.id
    clock.now = row.due_at
    assert work.run_once().dead == 1


# -- the command --------------------------------------------------------------------------
def _env(db: Database) -> dict[str, str]:
    return {**os.environ, "BLOCKWATCH_DATABASE_URL":
            db.engine.url.render_as_string(hide_password=False),
            "BLOCKWATCH_WEBHOOK_ALLOW_PRIVATE": "1", "BLOCKWATCH_RATE_LIMIT_WRITES": "off"}


def test_worker_once_exits_zero_whatever_receivers_answer(place, receiver):
    from api.serving import worker_command

    db, group, captain = place
    subscribe(db, area=(LON, LAT, 1000), url=receiver.url("ok"))
    subscribe(db, area=(LON, LAT, 1000), url=receiver.url("down"))
    subscribe(db, area=(LON, LAT, 1000), url=receiver.url("gone"))
    receiver.answer("down", 500)
    receiver.answer("gone", 404)
    post(db, group, captain, now=datetime.now(UTC))
    result = CliRunner().invoke(worker_command, ["--once"], env=_env(db))
    assert result.exit_code == 0, result.output
    assert "delivered 1, retrying 1, dead-lettered 1, devices deactivated 1" in result.output
    assert sorted(row.state for row in deliveries(db)) == ["dead", "pending", "sent"]


def test_a_worker_killed_mid_batch_and_restarted_misses_no_one(place, receiver):
    """A real ``blockwatch worker`` process, killed (SIGKILL) while a batch is half sent;
    another started once its lease ran out: every device got the alert, and each device saw
    it under one idempotency key (at most the killed batch's sends arrive twice, under the
    same key, which receivers drop)."""
    db, group, captain = place
    count, batch = 30, 10
    devices = [subscribe(db, area=(LON, LAT, 1000), url=receiver.url(f"d{index}"))
               for index in range(count)]
    alert = post(db, group, captain, now=datetime.now(UTC))
    receiver.delay_s = 0.5  # a whole batch goes out at once, then waits for its answers
    command = [sys.executable, "-c", "import sys; from api.serving import main; "
               "sys.exit(main(sys.argv[1:]))", "worker", "--batch-size", str(batch),
               "--lease-s", "1", "--idle-s", "0.05"]
    process = subprocess.Popen(command, env=_env(db), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(receiver.requests()) <= batch:  # the second batch is out, unanswered
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.01)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    received_before = len(receiver.requests())
    assert received_before < count  # killed mid-way
    with db.read() as session:
        leases = session.scalars(select(Delivery.claimed_until)
                                 .where(Delivery.claimed_until.is_not(None))).all()
    assert leases  # the dead worker left rows claimed
    deadline = time.monotonic() + 30
    while datetime.now(UTC) <= max(leases):  # wait out the lease (at most a second)
        assert time.monotonic() < deadline
        time.sleep(0.05)
    receiver.delay_s = 0.0
    restarted = subprocess.run([*command[:-2], "--once"], env=_env(db), capture_output=True,
                               text=True, timeout=120)
    assert restarted.returncode == 0, restarted.stderr
    counts = Counter(receiver.keys())
    assert set(counts) == {f"{alert.id}:{device}:alert" for device in devices}
    assert sum(counts.values()) - count <= batch  # only the killed batch can repeat
    assert {row.state for row in deliveries(db)} == {"sent"}


def test_a_round_releases_what_it_cannot_send_within_its_lease(place, receiver):
    db, group, captain = place
    for index in range(5):
        subscribe(db, area=(LON, LAT, 1000), url=receiver.url(f"d{index}"))
    post(db, group, captain)
    receiver.delay_s = 0.1
    work = worker(db, Clock(), lease_s=0.2, concurrency=1)
    first = work.run_once()
    assert first.sent >= 1 and first.released >= 1 and first.sent + first.released == 5
    released = [row for row in deliveries(db) if row.state == "pending"]
    assert len(released) == first.released and {row.attempts for row in released} == {0}
    work.lease_s = 60
    assert work.run_once().sent == first.released
    assert sorted(Counter(receiver.keys()).values()) == [1] * 5


def test_an_alert_that_expired_while_held_is_dropped_not_sent(place, receiver):
    db, group, captain = place
    night = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)  # 23:00 in Seattle
    subscribe(db, area=(LON, LAT, 1000), url=receiver.url("sleepy"),
              quiet=("22:00", "07:00", "America/Los_Angeles"))
    post(db, group, captain, now=night, severity="moderate",
         expires_at=night + timedelta(hours=1))
    work = worker(db, Clock(datetime(2026, 11, 25, 15, 0, tzinfo=UTC)))
    assert work.run_once().dropped == 1
    assert receiver.requests() == []
    [row] = deliveries(db)
    assert row.state == "dropped" and "expired" in row.last_error


def test_webhook_deliveries_reuse_their_connection(place, receiver):
    db, group, captain = place
    for index in range(6):
        subscribe(db, area=(LON, LAT, 1000), url=receiver.url(f"d{index}"))
    post(db, group, captain)
    worker(db, Clock(), concurrency=1).run_once()
    ports = {item.client_port for item in receiver.requests()}
    assert len(receiver.requests()) == 6 and len(ports) == 1


def test_a_new_push_address_saves_the_device_from_its_old_one_refusal(place, receiver):
    """FCM rotates tokens: the app sends the new one while a delivery to the old one is under
    way. The old address's 'gone' must not deactivate the device that just got a new one."""
    from blockwatch.delivery.devices import register_device, update_device

    db, group, captain = place
    device, secret = register_device(
        db, "webhook", {"url": receiver.url("old"), "secret": WEBHOOK_SECRET},
        {"area": {"lat": LAT, "lon": LON, "radius_m": 1000}})
    receiver.answer("old", 410)
    post(db, group, captain)
    work = worker(db, Clock())
    claimed = work.claim()
    update_device(db, device.id, secret,
                  push={"url": receiver.url("new"), "secret": WEBHOOK_SECRET})
    outcomes = [(row, work._send(row, alerts.get_alert(db, ANONYMOUS, row.alert_id)))
                for row in claimed]
    assert outcomes[0][1].status == "permanent"
    figures = RoundFigures()
    work.record(outcomes, figures)
    assert (figures.dead, figures.deactivated) == (1, 0)
    with db.read() as session:
        assert session.get(Device, device.id).active


def test_a_slow_receiver_cannot_hold_a_round_past_its_lease(place, receiver):
    db, group, captain = place
    subscribe(db, area=(LON, LAT, 1000), url=receiver.url("slow"))
    alert = post(db, group, captain)
    receiver.delay_s = 2.0  # answers long after the round's lease
    work = worker(db, Clock(), lease_s=0.4)
    figures = work.run_once()
    # Had the round waited for the answer (2 s), the send would count as sent: the round left
    # it under way instead, its row still pending.
    assert (figures.sent, figures.released) == (0, 1)
    [row] = deliveries(db)
    assert (row.state, row.attempts) == ("pending", 0)
    # The send may yet arrive, so the claim is kept until its lease ends: a cancellation now
    # treats the alert as maybe sent and queues its cancel.
    alerts.cancel_alert(db, captain, alert.id, now=T0 + timedelta(seconds=1))
    assert [(row.kind, row.state) for row in deliveries(db)] == [
        ("alert", "withdrawn"), ("cancel", "pending")]
