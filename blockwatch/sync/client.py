"""The Python sync client: a local replica of a scope, an outbox that works offline, and the
HTTP conversation of SYNC.md (push, then pull until ``has_more`` is false).

Use::

    client = SyncClient("https://blockwatch.example", "replica.db", token="...",
                        scope=Scope(area=Area(lon=-122.32, lat=47.62, radius_m=3000)))
    client.post_alert(group_id, "burglary", "Break-in on 12th Ave")  # works offline
    client.sync()                                    # push the outbox, then pull every page
    client.alerts_near(lat=47.62, lon=-122.32, radius_m=1000)

Network errors, 5xx and 429 are retried with exponential backoff and jitter (``Retry-After``
honoured); anything else the server refuses raises :class:`SyncError` with its problem.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import shapely
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

import geo
from blockwatch import tips as tip_services
from blockwatch.domain import TIP_CATEGORIES
from blockwatch.sync.replica import Replica
from blockwatch.sync.scope import FALLBACK_LANGUAGE, Area, Scope

__all__ = ["Area", "PullSummary", "Scope", "SyncClient", "SyncError", "SyncUnavailable"]

PUSH_BATCH = 100


class SyncError(Exception):
    """The server refused a request; ``problem`` is its problem+json body (if any)."""

    def __init__(self, status: int | None, problem: dict[str, Any] | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem or {}


class SyncUnavailable(SyncError):
    """The server could not be reached or answered 5xx/429, on every attempt;
    ``retry_after_s`` is what its ``Retry-After`` asked for."""

    def __init__(self, status: int | None, problem: dict[str, Any] | None, message: str,
                 retry_after_s: float | None = None) -> None:
        super().__init__(status, problem, message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class PullSummary:
    pages: int = 0
    upserted: int = 0
    deleted: int = 0
    removed_groups: int = 0
    reset: bool = False
    bytes: int = 0


class SyncClient:
    """A replica of ``scope`` in the SQLite file ``replica_path``, kept by ``base_url``.

    ``transport`` is any httpx transport (``httpx.WSGITransport(app=...)`` runs the real app in
    process). ``sleep`` is what waits between retries (tests pass a recorder).
    """

    def __init__(
        self,
        base_url: str,
        replica_path: str | Path,
        token: str | None = None,
        scope: Scope | None = None,
        *,
        page_limit: int = 500,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 30.0,
        max_attempts: int = 6,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), transport=transport, headers=headers,
            timeout=timeout_s,
        )
        self._has_token = bool(token)
        self.replica = Replica(replica_path)
        self.page_limit = page_limit
        self._max_attempts = max_attempts
        # backoff_initial_s × 2^(attempt - 1), plus up to backoff_initial_s of jitter, capped.
        self._backoff = wait_exponential_jitter(
            multiplier=backoff_initial_s, jitter=backoff_initial_s, max=backoff_max_s
        )
        self._backoff_max_s = backoff_max_s
        self._sleep = sleep
        self._indexes: dict[str, tuple[int, Any]] = {}
        if scope is not None:
            self.set_scope(scope)

    def close(self) -> None:
        self._http.close()
        self.replica.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- scope ---------------------------------------------------------------------------
    @property
    def scope(self) -> Scope:
        stored = self.replica.get("scope")
        return Scope.from_json(json.loads(stored)) if stored else Scope()

    def set_scope(self, scope: Scope) -> None:
        """The scope the next pull asks for (the server drops and backfills the difference)."""
        with self.replica.transaction():
            self.replica.set("scope", json.dumps(scope.as_json()))

    # -- the conversation ------------------------------------------------------------------
    def sync(self) -> PullSummary:
        """Push the outbox (if there is a token), then pull until nothing more is waiting."""
        if self._has_token:
            self.push()
        return self.pull()

    def pull(self) -> PullSummary:
        """Pull pages until ``has_more`` is false, each applied with its cursor in one local
        transaction (a crash between pages resumes from the last one applied)."""
        summary = PullSummary()
        while True:
            body = {
                "cursor": self.replica.cursor, "scope": self.scope.as_json(),
                "have_groups": self.replica.group_ids(), "limit": self.page_limit,
                "schema_version": 1,
            }
            page, size = self._post("/v1/sync/pull", body)
            self.replica.apply(page)
            summary = replace(
                summary, pages=summary.pages + 1, bytes=summary.bytes + size,
                reset=summary.reset or page["reset"],
                upserted=summary.upserted + sum(
                    len(page[kind]["upserted"]) for kind in ("groups", "alerts", "tips")),
                deleted=summary.deleted + sum(
                    len(page[kind]["deleted"]) for kind in ("groups", "alerts", "tips")),
                removed_groups=summary.removed_groups + len(page["removed_groups"]),
            )
            if not page["has_more"]:
                return summary

    def push(self) -> list[dict[str, Any]]:
        """Send the outbox in order, in batches; returns every result. Applied and duplicate
        mutations leave the outbox; rejected and conflicting ones too, recorded in
        :meth:`push_results` for the app to show."""
        if not self._has_token:
            raise SyncError(None, None, "pushing needs a token")
        results: list[dict[str, Any]] = []
        while True:
            batch = _until_dependent_edit(self.replica.outbox(limit=PUSH_BATCH))
            if not batch:
                return results
            self.replica.mark_sent(batch[-1]["mutation_id"])
            answer, _ = self._post("/v1/sync/push", {
                "client_id": self.replica.client_id, "mutations": batch,
            })
            self.replica.acknowledge(batch, answer["results"], answer["last_mutation_id"])
            results.extend(answer["results"])
            if answer["last_mutation_id"] < batch[-1]["mutation_id"]:
                raise SyncError(200, None, "the server did not take the whole batch")

    def _post(self, path: str, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        retrying = Retrying(
            stop=stop_after_attempt(self._max_attempts), wait=self._wait,
            retry=retry_if_exception_type(SyncUnavailable), sleep=self._sleep, reraise=True,
        )
        for attempt in retrying:
            with attempt:
                try:
                    response = self._http.post(path, json=body)
                except httpx.TransportError as error:
                    raise SyncUnavailable(None, None, f"{path}: {error!r}") from error
                if response.status_code == 429 or response.status_code >= 500:
                    raise SyncUnavailable(
                        response.status_code, _problem(response),
                        f"{path}: {response.status_code}",
                        _retry_after(response.headers.get("Retry-After")),
                    )
                if response.status_code >= 400:
                    problem = _problem(response)
                    raise SyncError(response.status_code, problem,
                                    f"{path}: {response.status_code} {problem.get('detail', '')}")
                return response.json(), len(response.content)
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, retry_state) -> float:
        error = retry_state.outcome.exception()
        retry_after = error.retry_after_s if isinstance(error, SyncUnavailable) else None
        if retry_after is not None:
            return min(retry_after, self._backoff_max_s)
        return self._backoff(retry_state)

    # -- offline changes -------------------------------------------------------------------
    def post_alert(
        self,
        group_id: str,
        category: str,
        title: str,
        *,
        severity: str = "moderate",
        urgency: str = "expected",
        certainty: str = "likely",
        body: str = "",
        location: tuple[float, float] | None = None,  # (lon, lat)
        expires_at: datetime | None = None,
        id: str | None = None,
    ) -> str:
        """Queue an alert (it shows in :meth:`alerts_near` at once); returns its id."""
        alert_id = id or str(uuid.uuid4())
        args: dict[str, Any] = {
            "id": alert_id, "group_id": group_id, "category": category, "title": title,
            "severity": severity, "urgency": urgency, "certainty": certainty, "body": body,
        }
        if location is not None:
            args["location"] = {"lon": location[0], "lat": location[1]}
        if expires_at is not None:
            args["expires_at"] = expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.replica.enqueue("alert.create", args)
        return alert_id

    def cancel_alert(self, alert_id: str) -> None:
        """Queue a cancellation (the alert reads as cancelled locally at once)."""
        self.replica.enqueue("alert.cancel", {"id": alert_id})

    def update_group(self, group_id: str, **fields: Any) -> None:
        """Queue an edit of a group (whole-field replacements) against the version held."""
        if "boundary" in fields and not isinstance(fields["boundary"], dict):
            fields["boundary"] = geo.to_geojson(fields["boundary"])
        if self.replica.merge_group_update(group_id, fields):
            return
        held = self.replica.document("groups", group_id)
        if held is None:
            raise KeyError(f"group {group_id} is not in the replica")
        self.replica.enqueue("group.update", {"id": group_id, **fields}, held["version"])

    def outbox(self) -> list[dict[str, Any]]:
        """Mutations not yet acknowledged by the server."""
        return self.replica.outbox()

    def push_results(self) -> list[dict[str, Any]]:
        """Mutations the server rejected or found in conflict."""
        return self.replica.push_results()

    # -- local reads -----------------------------------------------------------------------
    def groups(self) -> list[dict[str, Any]]:
        """Every group held, with this device's edits the replica does not show yet applied."""
        edits: dict[str, dict[str, Any]] = {}
        for mutation in self.replica.pending():
            if mutation["op"] == "group.update":
                args = dict(mutation["args"])
                edits.setdefault(args.pop("id"), {}).update(args)
        groups = self.replica.documents("groups")
        return [{**group, **edits.get(group["id"], {})} for group in groups]

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert held, with this device's alerts and cancellations the replica does not
        show yet applied."""
        alerts = {alert["id"]: alert for alert in self.replica.documents("alerts")}
        for mutation in self.replica.pending():
            args = mutation["args"]
            if mutation["op"] == "alert.create" and args["id"] not in alerts:
                alerts[args["id"]] = _local_alert(args)
            elif mutation["op"] == "alert.cancel" and args["id"] in alerts:
                alerts[args["id"]] = {**alerts[args["id"]], "status": "cancelled"}
        return sorted(alerts.values(), key=lambda alert: alert["id"])

    def groups_near(self, lat: float, lon: float, radius_m: float = 1000.0
                    ) -> list[tuple[dict[str, Any], float]]:
        """Groups whose boundary lies within ``radius_m``, nearest first, with ``distance_m``."""
        groups = {group["id"]: group for group in self.groups()}
        index = self._index("groups", lambda: geo.PolygonIndex(
            (key, shapely.geometry.shape(group["boundary"])) for key, group in groups.items()
        ))
        return [(groups[key], distance)
                for key, distance in index.within(lon=lon, lat=lat, radius_m=radius_m)
                if key in groups]

    def alerts_near(self, lat: float, lon: float, radius_m: float = 2000.0,
                    now: datetime | None = None) -> list[tuple[dict[str, Any], float]]:
        """Active alerts within ``radius_m`` (by the location this reader was given), newest
        first, each with its distance."""
        now = now or datetime.now(UTC)
        alerts = {alert["id"]: alert for alert in self.alerts() if _is_active(alert, now)}
        index = self._index("alerts", lambda: geo.PointIndex(
            (key, (alert["location"]["lon"], alert["location"]["lat"]))
            for key, alert in alerts.items() if alert.get("location")
        ))
        hits = [(alerts[key], distance)
                for key, distance in index.within(lon=lon, lat=lat, radius_m=radius_m)
                if key in alerts]
        hits.sort(key=lambda hit: hit[0]["id"])  # ties: by id, as the server breaks them
        hits.sort(key=lambda hit: hit[0]["sent_at"], reverse=True)
        return hits

    def tips(self, language: str = FALLBACK_LANGUAGE, category: str | None = None
             ) -> list[dict[str, Any]]:
        """One translation of every tip: in ``language`` where there is one, else English; in
        the order ``GET /v1/tips`` gives (by category, then key)."""
        chosen: dict[str, dict[str, Any]] = {}
        wanted = tip_services.language_matcher([language])
        fallback = tip_services.language_matcher([FALLBACK_LANGUAGE])
        for tip in self.replica.documents("tips"):
            if category is not None and tip["category"] != category:
                continue
            current = chosen.get(tip["key"])
            if wanted(tip["language"]) or (current is None and fallback(tip["language"])):
                chosen[tip["key"]] = tip
        order = {category: rank for rank, category in enumerate(TIP_CATEGORIES)}
        return sorted(chosen.values(),
                      key=lambda tip: (order.get(tip["category"], len(order)), tip["key"]))

    def dump(self) -> dict[str, dict[str, Any]]:
        """The replica as pulled (without local changes): entities by id, per kind."""
        return {
            kind: {entity["id"]: entity for entity in self.replica.documents(kind)}
            for kind in ("groups", "alerts", "tips")
        }

    def _index(self, name: str, build: Callable[[], Any]) -> Any:
        version = self.replica.change_count()
        cached = self._indexes.get(name)
        if cached is None or cached[0] != version:
            cached = (version, build())
            self._indexes[name] = cached
        return cached[1]


def _until_dependent_edit(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The batch up to (not including) a second edit of a group already edited in it: that
    edit was made on top of the first, so its base version is known only once the first is
    applied (then :meth:`Replica.acknowledge` rebases it)."""
    edited: set[str] = set()
    for index, mutation in enumerate(batch):
        if mutation["op"] == "group.update":
            if mutation["args"]["id"] in edited:
                return batch[:index]
            edited.add(mutation["args"]["id"])
    return batch


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds)


def _local_alert(args: dict[str, Any]) -> dict[str, Any]:
    """An alert not yet pushed, as the app shows it meanwhile."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "id": args["id"], "group_id": args["group_id"], "category": args["category"],
        "severity": args.get("severity", "moderate"), "urgency": args.get("urgency", "expected"),
        "certainty": args.get("certainty", "likely"), "title": args["title"],
        "body": args.get("body", ""), "location": args.get("location"),
        "location_precision": "exact", "sent_at": now, "expires_at": args.get("expires_at"),
        "status": "active", "author": None, "version": None, "pending": True,
    }


def _is_active(alert: dict[str, Any], now: datetime) -> bool:
    if alert["status"] != "active":
        return False
    expires = alert.get("expires_at")
    if not expires:
        return True
    return datetime.fromisoformat(expires.replace("Z", "+00:00")) > now
