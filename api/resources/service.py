"""``/v1/health``: is the service up, and can it reach its database."""

from __future__ import annotations

from flask_restx import Namespace, Resource

from api import http, schemas
from api.openapi import model
from blockwatch.health import database_ok

ns = Namespace("service", path="/", description="The service itself")


@ns.route("/health")
class Health(Resource):
    @ns.response(200, "Up", model(ns, schemas.Health))
    @ns.response(503, "The database is unreachable", model(ns, schemas.Health))
    def get(self):
        """Health of the service and its database."""
        ok = database_ok(http.database())
        payload = {"status": "ok" if ok else "degraded", "database": "ok" if ok else "unreachable"}
        return http.respond(http.dump(schemas.Health, payload), 200 if ok else 503)
