"""Generate the example exchanges of ``docs/sync-protocol.md`` from the real app.

Runs the Flask app (``create_app`` with the test client) over a temporary SQLite database
holding the demo data, plays one device's story through ``/v1/sync/pull`` and
``/v1/sync/push``, applies every pulled page to a real replica
(:class:`blockwatch.sync.replica.Replica`), and checks on the way that the replica matches a
fresh pull of the same scope. It writes:

- ``docs/examples/sync_examples.json``: every exchange in full (tokens replaced by
  placeholders, the 1 MB body of the 413 example summarised);
- the blocks between ``<!-- example:NAME -->`` and ``<!-- /example:NAME -->`` in
  ``docs/sync-protocol.md``: the same exchanges, trimmed where long (a visible "…").

    .venv/bin/python docs/examples/make_sync_examples.py            # both
    .venv/bin/python docs/examples/make_sync_examples.py --no-doc   # the JSON only
    .venv/bin/python docs/examples/make_sync_examples.py --print    # and the trimmed text

Group ids come from the fixtures and the alert ids made here from fixed names; a rerun differs
in times, cursors, account ids, the replica's ``client_id`` and the ids of the fixture alerts
(which include the date). The script exits non-zero if any status or check is not as expected.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from api import create_app  # noqa: E402
from blockwatch import accounts, alerts, changelog, fixtures, groups, tips  # noqa: E402
from blockwatch.config import Settings  # noqa: E402
from blockwatch.db import Database  # noqa: E402
from blockwatch.domain import OPERATOR, AlertDraft  # noqa: E402
from blockwatch.sync.replica import Replica  # noqa: E402

JSON_OUT = HERE / "sync_examples.json"
DOC = ROOT / "docs" / "sync-protocol.md"
EXAMPLES_NS = uuid.UUID("3d1c3f4e-58a4-4f0b-9a51-7d0f1d8a2b6e")
ELLIPSIS = "…"


def demo_group(number: int) -> str:
    """The id of the demo group ``demo-NN`` (as :func:`blockwatch.fixtures.load_fixtures`
    makes it)."""
    return str(uuid.uuid5(fixtures._NAMESPACE, f"group/demo-{number:02d}"))


def made_id(name: str) -> str:
    return str(uuid.uuid5(EXAMPLES_NS, name))


# -- recording -------------------------------------------------------------------------------
class Recorder:
    """Sends requests through the Flask test client and keeps each exchange by name."""

    KEPT_HEADERS = ("Content-Type", "Cache-Control", "Retry-After", "WWW-Authenticate")

    def __init__(self, client, tokens: dict[str, str]) -> None:
        self.client = client
        self.tokens = tokens  # placeholder -> real token
        self.exchanges: dict[str, list[dict[str, Any]]] = {}

    def post(self, name: str, path: str, body: Any = None, *, who: str | None = None,
             raw: bytes | None = None, content_type: str = "application/json",
             shown_body: Any = None, expect: int | None = 200) -> dict[str, Any]:
        headers = {"Content-Type": content_type}
        if who is not None:
            token = self.tokens.get(who, who)
            headers["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else json.dumps(body).encode()
        response = self.client.post(path, data=data, headers=headers)
        text = response.get_data(as_text=True)
        try:
            answer = json.loads(text)
        except ValueError:
            answer = text
        if expect is not None and response.status_code != expect:
            raise SystemExit(f"{name}: {path} answered {response.status_code}, not {expect}: "
                             f"{text[:500]}")
        shown_headers = {"Content-Type": content_type}
        if who is not None:
            shown_headers["Authorization"] = f"Bearer {who}"
        self.exchanges.setdefault(name, []).append({
            "request": {
                "method": "POST", "path": path, "headers": shown_headers,
                "body": shown_body if shown_body is not None else body,
            },
            "response": {
                "status": response.status_code, "reason": response.status.partition(" ")[2],
                "headers": {key: response.headers[key] for key in self.KEPT_HEADERS
                            if key in response.headers},
                "body": answer,
            },
        })
        return answer

    def pull(self, name: str, replica: Replica | None, body: dict[str, Any], who: str
             ) -> dict[str, Any]:
        page = self.post(name, "/v1/sync/pull", body, who=who)
        if replica is not None:
            replica.apply(page)
        return page


def pull_body(cursor: str | None, scope: dict[str, Any], replica: Replica | None,
              limit: int = 500) -> dict[str, Any]:
    return {
        "cursor": cursor, "scope": scope,
        "have_groups": replica.group_ids() if replica is not None else [],
        "limit": limit, "schema_version": 1,
    }


def pull_all(recorder: Recorder, name: str, replica: Replica, scope: dict[str, Any], who: str,
             limit: int = 500) -> list[dict[str, Any]]:
    """Pull until ``has_more`` is false, as a client does; the pages pulled."""
    pages = []
    while True:
        page = recorder.pull(name, replica, pull_body(replica.cursor, scope, replica, limit), who)
        pages.append(page)
        if not page["has_more"]:
            return pages


def check_converged(client, replica: Replica, scope: dict[str, Any], token: str,
                    tmp: Path, label: str) -> None:
    """The replica must equal a fresh pull of the same scope (what the design promises)."""
    fresh = Replica(tmp / f"fresh-{label}.db")
    while True:
        response = client.post("/v1/sync/pull", json=pull_body(fresh.cursor, scope, fresh),
                               headers={"Authorization": f"Bearer {token}"})
        page = response.get_json()
        fresh.apply(page)
        if not page["has_more"]:
            break
    for table in ("groups", "alerts", "tips"):
        ours = {d["id"]: d for d in replica.documents(table)}
        theirs = {d["id"]: d for d in fresh.documents(table)}
        if ours != theirs:
            missing = sorted(set(theirs) - set(ours))
            extra = sorted(set(ours) - set(theirs))
            differ = sorted(k for k in set(ours) & set(theirs) if ours[k] != theirs[k])
            raise SystemExit(f"{label}: the replica's {table} differ from a fresh pull: "
                             f"missing {missing}, extra {extra}, different {differ}")
    fresh.close()


def counts(page: dict[str, Any]) -> dict[str, Any]:
    return {
        "has_more": page["has_more"], "reset": page["reset"],
        "groups": len(page["groups"]["upserted"]), "groups_deleted": len(page["groups"]["deleted"]),
        "alerts": len(page["alerts"]["upserted"]), "tips": len(page["tips"]["upserted"]),
        "removed_groups": len(page["removed_groups"]),
    }


# -- the story -------------------------------------------------------------------------------
def run(tmp: Path) -> dict[str, Any]:
    """Play the story in ``tmp``; the exchanges by example name, and notes about them."""
    url = f"sqlite:///{tmp / 'blockwatch.db'}"
    db = Database(url, Settings(database_url=url, index_staleness_s=0.0))
    db.migrate()
    fixtures.load_fixtures(db)
    home, away, other = demo_group(7), demo_group(9), demo_group(8)
    ana = accounts.create_token(db, "Ana Example", "coordinator", home)
    ben = accounts.create_token(db, "Ben Example", "coordinator", away)
    app = create_app({"TESTING": True, "database": db, "BLOCKWATCH_RATE_LIMIT_WRITES": "off"})
    client = app.test_client()
    names = {"<Ana's token>": ana, "<Ben's token>": ben}
    rec = Recorder(client, names)
    ANA, BEN = "<Ana's token>", "<Ben's token>"
    notes: dict[str, Any] = {
        "groups": {"home (Ana coordinates it)": home, "away (Ben coordinates it)": away,
                   "other (neither)": other},
    }

    def as_ana(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = client.post(path, json=body, headers={"Authorization": f"Bearer {ana}"})
        if response.status_code not in (200, 201):
            raise SystemExit(f"{path}: {response.status_code} {response.get_data(as_text=True)}")
        return response.get_json()

    # Before the first sync: Ana has posted three alerts in her group, one since cancelled.
    for key, category, title in (
        ("break-in", "burglary", "Garage break-in on 12th Ave E"),
        ("car-prowl", "suspicious-activity", "Someone trying car doors, 12th & Harrison"),
        ("lost-cat", "lost-pet", "Grey cat missing since Sunday"),
    ):
        as_ana(f"/v1/groups/{home}/alerts", {
            "id": made_id(f"alert/{key}"), "category": category, "title": title,
            "location": {"lat": 47.62091, "lon": -122.31302},
        })
    as_ana(f"/v1/alerts/{made_id('alert/lost-cat')}/cancel", {})

    centroid = client.get(f"/v1/groups/{home}").get_json()["centroid"]
    scope = {"area": {**centroid, "radius_m": 150}, "group_ids": [], "languages": ["es"]}
    replica = Replica(tmp / "replica.db")

    # (1) First sync: cursor null, small pages.
    pages = pull_all(rec, "first-sync", replica, scope, ANA, limit=25)
    notes["first-sync"] = {"pages": [counts(page) for page in pages]}
    check_converged(client, replica, scope, ana, tmp, "first-sync")

    # (2) Incremental: the server changes, the device pulls.
    as_ana(f"/v1/groups/{home}/alerts", {
        "id": made_id("alert/van"), "category": "vehicle-prowl", "severity": "minor",
        "title": "White van checking driveways", "location": {"lat": 47.6199, "lon": -122.3141},
    })
    as_ana(f"/v1/alerts/{made_id('alert/car-prowl')}/cancel", {})
    neighbour = demo_group(27)
    current = groups.get_group(db, neighbour)
    groups.update_group(db, OPERATOR, neighbour,
                        {"meeting_info": "Second Tuesday, 7 pm, Miller Community Center"},
                        current.version)
    records = json.loads((fixtures.FIXTURES / "safety_tips.json").read_text(encoding="utf-8"))
    edited = copy.deepcopy(records[0])
    edited["translations"]["es"]["title"] += " (revisado)"
    tips.upsert_tips(db, [edited])
    pages = pull_all(rec, "incremental", replica, scope, ANA)
    rec.pull("nothing-new", replica, pull_body(replica.cursor, scope, replica), ANA)
    check_converged(client, replica, scope, ana, tmp, "incremental")

    # (3) Scope change. Meanwhile Ben's group (not in scope) got an alert that was cancelled and
    # one that expired (posted two days ago with the default 24 h life, and marked expired by
    # `blockwatch expire-alerts`).
    ben_actor = accounts.authenticate(db, ben)
    alerts.post_alert(db, ben_actor, away, AlertDraft(
        id=made_id("alert/bike"), category="theft", title="Bike taken from a porch",
        location=(-122.3024, 47.6201)))
    alerts.post_alert(db, ben_actor, away, AlertDraft(
        id=made_id("alert/fireworks"), category="other", title="Fireworks reported",
        location=(-122.3030, 47.6205)), now=datetime.now(UTC) - timedelta(days=2))
    alerts.post_alert(db, ben_actor, away, AlertDraft(
        id=made_id("alert/smoke"), category="fire", severity="severe",
        title="Smoke smell near 16th Ave E", location=(-122.3021, 47.6210)))
    alerts.cancel_alert(db, ben_actor, made_id("alert/smoke"))
    alerts.expire_alerts(db)
    away_centroid = client.get(f"/v1/groups/{away}").get_json()["centroid"]
    scope = {**scope, "area": {**away_centroid, "radius_m": 150}}
    pages = pull_all(rec, "scope-change", replica, scope, ANA)
    check_converged(client, replica, scope, ana, tmp, "scope-change")
    cursor_before_delete = replica.cursor

    # (4) Reset. An offline alert waits in the outbox; the operator deletes Ben's group; the
    # device stays away for more than 90 days and the tombstones are purged.
    replica.enqueue("alert.create", {
        "id": made_id("alert/offline"), "group_id": home, "category": "vandalism",
        "title": "Graffiti on the bus shelter", "severity": "minor",
        "location": {"lat": 47.6203, "lon": -122.3127},
    })
    groups.delete_group(db, OPERATOR, away)
    rec.pull("deleted-group", None, pull_body(cursor_before_delete, scope, replica), ANA)
    with db.write() as session:
        purged = changelog.purge_tombstones(session, timedelta(days=90),
                                            now=datetime.now(UTC) + timedelta(days=91))
    pages = pull_all(rec, "reset", replica, scope, ANA)
    notes["reset"] = {"tombstones_purged": purged, "pages": [counts(page) for page in pages],
                      "outbox_after_reset": replica.outbox()}
    check_converged(client, replica, scope, ana, tmp, "reset")

    # (5) Push with a lost response, then a conflict and two rejections.
    replica.enqueue("alert.cancel", {"id": made_id("alert/van")})
    held = replica.document("groups", home)
    replica.enqueue("group.update", {
        "id": home, "description": "Neighbours on 12th Ave E, Denny Way to Harrison St."
    }, held["version"])
    batch = replica.outbox()
    body = {"client_id": replica.client_id, "mutations": batch}
    first = rec.post("push", "/v1/sync/push", body, who=ANA)
    rec.post("push", "/v1/sync/push", body, who=ANA)  # the first answer never arrived
    replica.acknowledge(batch, first["results"], first["last_mutation_id"])
    # Before pulling, the user edits the group again: the replica still holds the old version.
    replica.enqueue("group.update", {"id": home, "name": "12th Ave E Block Watch"},
                    held["version"])
    replica.enqueue("alert.create", {
        "id": made_id("alert/not-mine"), "group_id": other, "category": "theft",
        "title": "Parcel taken from a doorstep",
    })
    replica.enqueue("alert.create", {
        "id": made_id("alert/too-long"), "group_id": home, "category": "other",
        "title": "A title longer than the 120 characters an alert title may have, typed "
                 "on a phone while offline, where nothing checked its length",
    })
    batch = replica.outbox()
    body = {"client_id": replica.client_id, "mutations": batch}
    second = rec.post("push-conflict", "/v1/sync/push", body, who=ANA)
    rec.post("push-conflict", "/v1/sync/push", body, who=ANA)  # sent again: all duplicates
    replica.acknowledge(batch, second["results"], second["last_mutation_id"])
    notes["push"] = {"client_id": replica.client_id, "outbox_after": replica.outbox(),
                     "kept_for_the_user": replica.push_results()}
    pull_all(rec, "after-push", replica, scope, ANA)
    check_converged(client, replica, scope, ana, tmp, "after-push")

    # A cursor issued to Ana, sent with Ben's token: reset.
    rec.post("other-account", "/v1/sync/pull", pull_body(replica.cursor, scope, replica),
             who=BEN)

    # Errors.
    payload, _, signature = replica.cursor.rpartition(".")
    middle = len(signature) // 2
    signature = signature[:middle] + ("A" if signature[middle] != "A" else "B") \
        + signature[middle + 1:]
    tampered = f"{payload}.{signature}"  # one character of the signature changed
    rec.post("errors", "/v1/sync/pull", pull_body(tampered, scope, None), who=ANA, expect=400)
    rec.post("errors", "/v1/sync/pull", pull_body(None, scope, None), who="not-a-real-token",
             expect=401)
    rec.post("errors", "/v1/sync/push", {"client_id": replica.client_id, "mutations": []},
             expect=401)
    rec.post("errors", "/v1/sync/push", {"client_id": replica.client_id, "mutations": []},
             who=BEN, expect=403)
    big = json.dumps({"client_id": replica.client_id, "mutations": [
        {"mutation_id": number, "op": "alert.create", "args": {
            "id": made_id(f"alert/long/{number}"), "group_id": home, "category": "other",
            "title": "Long report", "body": "x" * 4000}}
        for number in range(100, 600)
    ]})
    rec.post("errors", "/v1/sync/push", raw=big.encode(), who=ANA, expect=413,
             shown_body=f'{{"client_id": "{replica.client_id}", "mutations": [500 × '
                        f'alert.create, each with a 4000-character body]}}  ({len(big):,} bytes)')
    rec.post("errors", "/v1/sync/pull", raw=b"cursor=null", content_type="text/plain",
             who=ANA, expect=415, shown_body="cursor=null")
    rec.post("errors", "/v1/sync/pull", {**pull_body(None, scope, None), "limit": 0,
                                         "since": "2026-01-01T00:00:00Z"}, who=ANA, expect=422)
    rec.post("errors", "/v1/sync/push", {"client_id": made_id("client/order"), "mutations": [
        {"mutation_id": 2, "op": "alert.cancel", "args": {"id": made_id("alert/van")}},
        {"mutation_id": 2, "op": "alert.cancel", "args": {"id": made_id("alert/van")}},
    ]}, who=ANA, expect=422)

    # 429: the same app with a budget of two writes a minute (pushes are writes; pulls are not).
    limited = create_app({"TESTING": True, "database": db,
                          "BLOCKWATCH_RATE_LIMIT_WRITES": "2 per minute"})
    rec.client = limited.test_client()
    for _ in range(2):
        rec.post("rate-limit", "/v1/sync/push",
                 {"client_id": made_id("client/busy"), "mutations": []}, who=BEN)
    rec.post("rate-limit", "/v1/sync/push",
             {"client_id": made_id("client/busy"), "mutations": []}, who=BEN, expect=429)
    rec.exchanges["rate-limit"] = rec.exchanges["rate-limit"][-1:]
    rec.client = client

    replica.close()
    db.dispose()
    return {"notes": notes, "exchanges": rec.exchanges}


# -- trimming and rendering for the document ------------------------------------------------
def trim(value: Any, keep: int = 3, key: str = "") -> Any:
    """A shortened copy for reading: long strings, long lists and boundaries get an "…"."""
    if isinstance(value, dict):
        if value.get("type") in ("Polygon", "MultiPolygon") and "coordinates" in value:
            ring = value["coordinates"][0]
            if value["type"] == "MultiPolygon":
                ring = ring[0]
            return {"type": value["type"], "coordinates": [[*ring[:2], ELLIPSIS]]}
        return {name: trim(item, keep, name) for name, item in value.items()}
    if isinstance(value, list):
        if all(isinstance(item, int | float) for item in value):
            return value  # a bbox, a point: short, and only whole are they meaningful
        shown = keep if any(isinstance(item, dict) for item in value) else max(keep, 3)
        items = [trim(item, keep) for item in value[:shown]]
        if len(value) > shown:
            items.append(f"{ELLIPSIS} {len(value) - shown} more")
        return items
    if isinstance(value, str) and key == "cursor" and len(value) > 48:
        return value[:24] + ELLIPSIS + value[-12:]  # the end (the signature) tells cursors apart
    if isinstance(value, str) and key == "body" and len(value) > 68:
        return value[:60] + ELLIPSIS
    return value


def pretty(value: Any, indent: int = 0, used: int = 0, width: int = 96) -> str:
    """JSON, on one line where it fits in ``width``, else one member per line."""
    flat = json.dumps(value, ensure_ascii=False)
    if not isinstance(value, dict | list) or not value or indent + used + len(flat) <= width:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, dict):
        lines = []
        for name, item in value.items():
            prefix = json.dumps(name, ensure_ascii=False) + ": "
            lines.append(pad + prefix + pretty(item, indent + 2, len(prefix), width))
        return "{\n" + ",\n".join(lines) + "\n" + " " * indent + "}"
    lines = [pad + pretty(item, indent + 2, 0, width) for item in value]
    return "[\n" + ",\n".join(lines) + "\n" + " " * indent + "]"


def render(exchange: dict[str, Any], keep: int = 3, keep_by_key: dict[str, int] | None = None,
           *, same_body: bool = False, elide: tuple[str, ...] = ()) -> str:
    """An exchange as two ``http`` blocks. ``same_body``: the request body is the one shown
    just before; ``elide``: request members shown as "…"."""
    request, response = exchange["request"], exchange["response"]
    lines = [f"{request['method']} {request['path']}"]
    lines += [f"{name}: {value}" for name, value in request["headers"].items()]
    shown = request["body"]
    if same_body:
        lines += ["", f"{ELLIPSIS} (byte for byte the body above)"]
    elif isinstance(shown, str):
        lines += ["", shown]
    else:
        shown = {name: ELLIPSIS if name in elide else item for name, item in shown.items()}
        lines += ["", pretty(trim(shown, keep))]
    body = response["body"]
    if isinstance(body, dict) and keep_by_key:
        body = {name: _trim_nested(item, keep_by_key.get(name, keep), keep, name)
                for name, item in body.items()}
    else:
        body = trim(body, keep)
    answer = [f"HTTP/1.1 {response['status']} {response['reason']}"]
    answer += [f"{name}: {value}" for name, value in response["headers"].items()]
    answer += ["", body if isinstance(body, str) else pretty(body)]
    return ("```http\n" + "\n".join(lines) + "\n```\n\n```http\n" + "\n".join(answer)
            + "\n```\n")


def _trim_nested(value: Any, keep_lists: int, keep: int, key: str) -> Any:
    if isinstance(value, dict):
        return {name: trim(item, keep_lists, name) for name, item in value.items()}
    return trim(value, keep, key)


def table(rows: list[dict[str, Any]]) -> str:
    head = ["page", "groups", "alerts", "tips", "removed_groups", "reset", "has_more"]
    out = ["| " + " | ".join(head) + " |", "|" + "---:|" * 5 + "---|---|"]
    for number, row in enumerate(rows, 1):
        out.append(f"| {number} | {row['groups']} | {row['alerts']} | {row['tips']} | "
                   f"{row['removed_groups']} | {json.dumps(row['reset'])} | "
                   f"{json.dumps(row['has_more'])} |")
    return "\n".join(out) + "\n"


def blocks(result: dict[str, Any]) -> dict[str, str]:
    """The text of each ``<!-- example:NAME -->`` block of the document."""
    ex, notes = result["exchanges"], result["notes"]
    first = ex["first-sync"]
    out: dict[str, str] = {}
    out["cast"] = "".join(f"- {role}: `{key}`\n" for role, key in notes["groups"].items())
    out["first-sync"] = (
        "Page 1 (cursor null):\n\n" + render(first[0], 3, {"tips": 2})
        + "\nEvery page of this sync, as the replica applied it (limit 25):\n\n"
        + table(notes["first-sync"]["pages"])
        + f"\nThe last page (page {len(first)}) sends the cursor of the page before and the "
        "groups now held:\n\n" + render(first[-1], 3, {"tips": 1})
    )
    out["incremental"] = (
        render(ex["incremental"][0], 3)
        + "\nPulling again at once, with nothing new on the server (the cursor comes back "
        "unchanged):\n\n" + render(ex["nothing-new"][0], 3, elide=("scope", "have_groups"))
    )
    out["scope-change"] = render(ex["scope-change"][0], 4, {"alerts": 10})
    out["deleted-group"] = render(ex["deleted-group"][0], 3, elide=("scope",))
    out["reset"] = (
        render(ex["reset"][0], 2, {"tips": 1}, elide=("scope",))
        + "\nThe replica after this page:\n\n" + _reset_summary(notes["reset"]) + "\n"
    )
    out["push"] = (
        "The first send (its response is lost on the way back):\n\n" + render(ex["push"][0], 3)
        + "\nThe same body sent again:\n\n" + render(ex["push"][1], 3, same_body=True)
    )
    out["push-conflict"] = (
        render(ex["push-conflict"][0], 3)
        + "\nThe same body sent again (a retry after a timeout, say):\n\n"
        + render(ex["push-conflict"][1], 3, same_body=True)
    )
    out["after-push"] = render(ex["after-push"][0], 3, elide=("scope", "have_groups"))
    out["other-account"] = render(ex["other-account"][0], 1, {"tips": 1, "alerts": 1,
                                                               "groups": 1},
                                  elide=("scope", "have_groups"))
    out["errors"] = "".join(
        render(exchange, 2, elide=("scope", "have_groups")) + "\n"
        for exchange in [*ex["errors"], *ex["rate-limit"]]
    ).rstrip("\n") + "\n"
    return out


def _reset_summary(note: dict[str, Any]) -> str:
    outbox = note["outbox_after_reset"]
    kinds = ", ".join(f"{m['mutation_id']} `{m['op']}`" for m in outbox)
    pages = len(note["pages"])
    return (f"- {note['tombstones_purged']} tombstones had been purged (the group's and its "
            f"alerts');\n- the replica was cleared and refilled, in {pages} "
            f"page{'s' if pages > 1 else ''};\n- the outbox still holds mutation {kinds}, which "
            "example 5 pushes.")


def write_doc(text: dict[str, str]) -> list[str]:
    """Replace the example blocks of the document; the names it has no block for."""
    doc = DOC.read_text(encoding="utf-8")
    missing = []
    for name, content in text.items():
        pattern = re.compile(
            rf"(<!-- example:{re.escape(name)} -->\n).*?(<!-- /example:{re.escape(name)} -->)",
            re.DOTALL,
        )
        if not pattern.search(doc):
            missing.append(name)
            continue
        doc = pattern.sub(lambda match, c=content: match.group(1) + c + match.group(2), doc)
    DOC.write_text(doc, encoding="utf-8")
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-doc", action="store_true", help="leave the document alone")
    parser.add_argument("--print", action="store_true", help="print the trimmed examples")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        result = run(Path(folder))
    result = {
        "generated_by": "docs/examples/make_sync_examples.py",
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **result,
    }
    JSON_OUT.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n",
                        encoding="utf-8")
    print(f"wrote {JSON_OUT.relative_to(ROOT)}")
    text = blocks(result)
    if args.print:
        for name, content in text.items():
            print(f"\n===== {name} =====\n{content}")
    if not args.no_doc and DOC.exists():
        missing = write_doc(text)
        print(f"updated {DOC.relative_to(ROOT)}"
              + (f" (no block for: {', '.join(missing)})" if missing else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
