"""``/v1/sync/pull`` and ``/v1/sync/push``: offline replicas for mobile apps (SYNC.md).

The protocol lives in :mod:`blockwatch.sync`; this parses bodies, calls it and renders pages.
"""

from __future__ import annotations

import hashlib
import json

from flask import Response, current_app
from flask_restx import Namespace, Resource
from marshmallow import ValidationError as SchemaValidationError

from api import http, schemas
from api.openapi import model, write_errors
from api.problems import flatten
from api.resources.alerts import draft_from
from blockwatch.domain import ValidationError
from blockwatch.sync import pull as sync_pull
from blockwatch.sync import push as sync_push

ns = Namespace("sync", description="Offline replicas: pull changes, push offline mutations")
_problem = model(ns, schemas.Problem)
# A page holds what this reader may see (exact or rounded locations): never a shared cache's.
_PRIVATE = {"Cache-Control": "private, no-store", "Vary": "Authorization"}
_ARGS = {
    "alert.create": schemas.AlertCreateArgs,
    "alert.cancel": schemas.AlertCancelArgs,
    "group.update": schemas.GroupUpdateArgs,
}


@ns.route("/pull")
class Pull(Resource):
    @ns.expect(model(ns, schemas.SyncPullRequest))
    @ns.response(200, "A page of changes", model(ns, schemas.SyncPullResponse))
    @ns.response(400, "Malformed JSON, or a cursor that was altered", _problem)
    @ns.response(401, "A bad token (send none to sync as the public)", _problem)
    @ns.response(413, "Body too large", _problem)
    @ns.response(415, "Body not application/json", _problem)
    @ns.response(422, "Invalid fields", _problem)
    def post(self):
        """The next page of changes in a scope since a cursor (token optional: with one, the
        account's groups are in scope and their alerts carry exact locations)."""
        fields = http.body(schemas.SyncPullRequest)
        scope = fields["scope"]
        area = scope["area"]
        request = sync_pull.PullRequest(
            cursor=fields["cursor"],
            scope=sync_pull.Scope(
                area=sync_pull.Area(area["lon"], area["lat"], area["radius_m"])
                if area else None,
                group_ids=tuple(scope["group_ids"]), languages=tuple(scope["languages"]),
            ),
            have_groups=tuple(fields["have_groups"]), limit=fields["limit"],
            schema_version=fields["schema_version"],
        )
        page = sync_pull.pull(http.database(), http.actor(), request)
        return _render(page)


@ns.route("/push")
class Push(Resource):
    @ns.expect(model(ns, schemas.SyncPushRequest))
    @ns.response(200, "One result per mutation, in order", model(ns, schemas.SyncPushResponse))
    @ns.response(403, "The client_id belongs to another account", _problem)
    @ns.response(422, "Invalid fields, or mutation ids that do not increase", _problem)
    @write_errors(ns, schemas.Problem)
    def post(self):
        """Apply mutations made offline, in order, each exactly once per client_id."""
        who = http.authenticated_actor()
        fields = http.body(schemas.SyncPushRequest)
        mutations = [_mutation(item) for item in fields["mutations"]]
        outcome = sync_push.push(http.database(), who, str(fields["client_id"]), mutations)
        return http.respond(http.dump(schemas.SyncPushResponse, outcome), headers=_PRIVATE)


def _mutation(item: dict) -> sync_push.Mutation:
    """A mutation with its arguments read by the schema of its op; arguments that do not read
    make a mutation the service records as rejected (it must still advance the client's id)."""
    number, op = item["mutation_id"], item["op"]
    fingerprint = hashlib.sha256(json.dumps(
        [op, item["args"], item["base_version"]], sort_keys=True, separators=(",", ":")
    ).encode()).hexdigest()
    try:
        args = http.schema(_ARGS[op]).load(item["args"])
    except SchemaValidationError as error:
        errors = flatten(error.messages, "args")
        detail = "; ".join(f"{name}: {' '.join(texts)}" for name, texts in errors.items())
        return sync_push.Mutation(number, op, invalid=ValidationError(detail, errors),
                                  fingerprint=fingerprint)
    if op == "alert.create":
        return sync_push.Mutation(number, op, str(args["group_id"]), draft=draft_from(args),
                                  fingerprint=fingerprint)
    if op == "alert.cancel":
        return sync_push.Mutation(number, op, str(args["id"]), fingerprint=fingerprint)
    target = str(args.pop("id"))
    return sync_push.Mutation(
        number, op, target, changes=args, base_version=item["base_version"],
        fingerprint=fingerprint,
    )


def _render(page: sync_pull.PullPage) -> Response:
    """The page as :class:`api.schemas.SyncPullResponse` describes it, each entity rendered
    once per version and view (a city's devices pull the same groups and alerts). The body is
    joined once from its parts: a page of 5,000 entities is 3 MB, each copy of it counts."""
    rendered: http.RenderedCache = current_app.extensions["blockwatch.rendered"]
    dumps = http.compact_json

    def texts(cls, entities) -> str:
        return ",".join(rendered.text(cls, entity) for entity in entities)

    def changes(name: str, upserted: str, deleted: list[str]) -> list[str]:
        return [f',"{name}":{{"upserted":[', upserted, f'],"deleted":{dumps(deleted)}}}']

    parts = [
        f'{{"cursor":{dumps(page.cursor)},"has_more":{dumps(page.has_more)},'
        f'"reset":{dumps(page.reset)}',
        *changes("groups", texts(schemas.Group, page.groups), page.deleted_groups),
        *changes("alerts", _alert_texts(rendered, page), page.deleted_alerts),
        *changes("tips", texts(schemas.SyncTip, page.tips), page.deleted_tips),
        f',"removed_groups":{dumps(page.removed_groups)}}}',
    ]
    response = Response("".join(parts), mimetype="application/json")
    response.headers.update(_PRIVATE)
    return response


def _alert_texts(rendered: http.RenderedCache, page: sync_pull.PullPage) -> str:
    """Alerts by ref: renderings kept from earlier pages where there are any, then those
    stored with the rows (one query per view), the rest loaded (one query) and rendered now."""
    alert = schemas.Alert
    found = rendered.get_many([(alert, ref) for ref in page.alerts])
    missing = [ref for ref, text in zip(page.alerts, found, strict=True) if text is None]
    if not missing:
        return ",".join(found)
    stored = page.stored_texts(missing)
    rendered.put_many([((alert, ref), text) for ref, text in stored.items()])
    loaded = page.load_alerts([ref.id for ref in missing if ref not in stored])
    for index, (ref, text) in enumerate(zip(page.alerts, found, strict=True)):
        if text is not None:
            continue
        if ref in stored:
            found[index] = stored[ref]
        elif ref.id in loaded:
            view = loaded[ref.id]
            found[index] = rendered.text(alert, view, (view.location_exact, view.status))
    return ",".join(text for text in found if text is not None)
