"""``/v1/alerts`` and ``/v1/groups/{id}/alerts``: read near a point or by group, post, cancel,
one alert as JSON or as a CAP 1.2 document."""

from __future__ import annotations

from flask import request
from flask_restx import Namespace, Resource

from api import http, schemas
from api.openapi import model, query_params, write_errors
from api.resources.groups import ns as groups_ns
from blockwatch import alerts
from blockwatch.domain import AlertDraft

ns = Namespace("alerts", description="Alerts posted by coordinators")
group_alerts = groups_ns  # /v1/groups/{id}/alerts belongs with the groups in the docs

CAP_XML = "application/cap+xml"
# Members see exact locations, the public snapped ones: no shared cache may mix them up.
_PER_READER = {"Vary": "Authorization", "Cache-Control": "private"}
_problem = model(ns, schemas.Problem)
_group_problem = model(group_alerts, schemas.Problem)


@ns.route("/nearby")
class NearbyAlerts(Resource):
    @ns.doc(params=query_params(schemas.NearbyAlertsQuery))
    @ns.response(200, "Active alerts within radius_m, newest first",
                 model(ns, schemas.NearbyAlertList))
    @ns.response(401, "A bad token (send none to read as the public)", _problem)
    @ns.response(422, "A parameter out of range", _problem)
    def get(self):
        """Active alerts near a point; the public sees locations rounded to about 150 m."""
        args = http.query(schemas.NearbyAlertsQuery)
        page = alerts.alerts_near(
            http.database(), http.actor(), args["lon"], args["lat"], args["radius_m"],
            args["category"], args["since"], args["limit"], args["next"],
        )
        return http.respond(http.dump(schemas.NearbyAlertList, page), headers=_PER_READER)


@ns.route("/<string:alert_id>")
@ns.param("alert_id", "The alert's id (UUID)")
class AlertItem(Resource):
    @ns.produces(["application/json", CAP_XML])
    @ns.response(200, "The alert (or, with Accept: application/cap+xml, a CAP 1.2 document)",
                 model(ns, schemas.Alert))
    @ns.response(304, "Not modified since the ETag in If-None-Match")
    @ns.response(401, "A bad token (send none to read as the public)", _problem)
    @ns.response(404, "No such alert", _problem)
    def get(self, alert_id: str):
        """One alert."""
        accept = request.accept_mimetypes
        if accept[CAP_XML] > accept["application/json"]:
            document, version = alerts.alert_as_cap(http.database(), http.actor(), alert_id)
            response = http.respond(None, version=version, body=document, mimetype=CAP_XML)
        else:
            alert = alerts.get_alert(http.database(), http.actor(), alert_id)
            response = http.respond(http.dump(schemas.Alert, alert), version=alert.version)
        response.headers["Vary"] = "Accept, Authorization"
        response.headers["Cache-Control"] = "private"
        return response


@ns.route("/<string:alert_id>/cancel")
@ns.param("alert_id", "The alert's id (UUID)")
class CancelAlert(Resource):
    @ns.response(200, "The cancelled alert", model(ns, schemas.Alert))
    @ns.response(429, "Too many writes; see Retry-After", _problem)
    @ns.response(401, "No or bad token", _problem)
    @ns.response(403, "Not a coordinator of its group nor an admin", _problem)
    @ns.response(404, "No such alert", _problem)
    @ns.doc(security="bearer")
    def post(self, alert_id: str):
        """Cancel an alert (its group's coordinators, admins); cancelling twice is harmless."""
        alert = alerts.cancel_alert(http.database(), http.authenticated_actor(), alert_id)
        return http.respond(http.dump(schemas.Alert, alert), version=alert.version)


@group_alerts.route("/<string:group_id>/alerts")
@group_alerts.param("group_id", "The group's id (UUID)")
class GroupAlerts(Resource):
    @group_alerts.doc(params=query_params(schemas.GroupAlertsQuery))
    @group_alerts.response(200, "The group's alerts, newest first",
                           model(group_alerts, schemas.AlertList))
    @group_alerts.response(401, "A bad token (send none to read as the public)",
                           _group_problem)
    @group_alerts.response(404, "No such group", _group_problem)
    @group_alerts.response(422, "A parameter out of range", _group_problem)
    def get(self, group_id: str):
        """A group's alerts: active ones, or all with status=all."""
        args = http.query(schemas.GroupAlertsQuery)
        page = alerts.alerts_of_group(
            http.database(), http.actor(), group_id, args["status"], args["limit"], args["next"]
        )
        return http.respond(http.dump(schemas.AlertList, page), headers=_PER_READER)

    @group_alerts.expect(model(group_alerts, schemas.AlertCreate))
    @group_alerts.response(201, "Created", model(group_alerts, schemas.Alert))
    @group_alerts.response(200, "The same id and body were posted before: the stored alert",
                           model(group_alerts, schemas.Alert))
    @group_alerts.response(403, "Not a coordinator of this group nor an admin", _group_problem)
    @group_alerts.response(404, "No such group", _group_problem)
    @group_alerts.response(409, "The id was used for a different alert", _group_problem)
    @group_alerts.response(422, "Invalid fields", _group_problem)
    @write_errors(group_alerts, schemas.Problem)
    def post(self, group_id: str):
        """Post an alert in a group you coordinate; idempotent on a client-made id."""
        who = http.authenticated_actor()
        draft = draft_from(http.body(schemas.AlertCreate))
        alert, created = alerts.post_alert(http.database(), who, group_id, draft)
        return http.respond(
            http.dump(schemas.Alert, alert), 201 if created else 200, version=alert.version,
            headers={"Location": f"{request.script_root}/v1/alerts/{alert.id}"},
        )


def draft_from(fields: dict) -> AlertDraft:
    """An alert draft from the fields :class:`api.schemas.AlertCreate` loaded."""
    return AlertDraft(
        id=str(fields["id"]) if fields["id"] else None, category=fields["category"],
        title=fields["title"], severity=fields["severity"], urgency=fields["urgency"],
        certainty=fields["certainty"], body=fields["body"], location=fields["location"],
        expires_at=fields["expires_at"],
    )
