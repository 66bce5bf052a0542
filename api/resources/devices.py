"""``/v1/devices``: devices register for pushed alerts, then change or remove themselves with
their device secret; ``/v1/admin/delivery``: how delivery is going, for admins."""

from __future__ import annotations

import dataclasses

from flask_restx import Namespace, Resource

from api import http, schemas
from api.openapi import model
from blockwatch.delivery import devices, outbox

ns = Namespace("devices", description="Devices that get alerts pushed (FCM, Web Push, webhooks)")
admin = Namespace("admin", description="Operators' views")
_problem = model(ns, schemas.Problem)
_admin_problem = model(admin, schemas.Problem)
# A device's subscription is its owner's business: never in a shared cache.
_PRIVATE = {"Cache-Control": "private, no-store"}


@ns.route("")
class Devices(Resource):
    @ns.expect(model(ns, schemas.DeviceCreate))
    @ns.response(201, "Registered; device_secret is shown this once",
                 model(ns, schemas.DeviceRegistered))
    @ns.response(400, "Malformed JSON", _problem)
    @ns.response(413, "Body too large", _problem)
    @ns.response(415, "Body not application/json", _problem)
    @ns.response(422, "Invalid fields (a webhook url on a private address, say)", _problem)
    @ns.response(429, "Too many writes; see Retry-After", _problem)
    def post(self):
        """Register a device for pushed alerts (no account needed)."""
        http.anonymous_write()
        fields = http.body(schemas.DeviceCreate)
        device, secret = devices.register_device(
            http.database(), fields["platform"], fields["push"], fields["subscription"]
        )
        payload = {**dataclasses.asdict(device), "device_secret": secret}
        return http.respond(http.dump(schemas.DeviceRegistered, payload), 201,
                            headers=_PRIVATE)


@ns.route("/<string:device_id>")
@ns.param("device_id", "The device's id (UUID)")
@ns.doc(security="bearer")
@ns.response(401, "No device secret, or not this device's", _problem)
class DeviceItem(Resource):
    @ns.response(200, "The device (never its push address)", model(ns, schemas.Device))
    def get(self, device_id: str):
        """The device as registered, and whether it is still active."""
        device = devices.get_device(http.database(), device_id, http.bearer())
        return http.respond(http.dump(schemas.Device, device), headers=_PRIVATE)

    @ns.expect(model(ns, schemas.DevicePatch))
    @ns.response(200, "Changed", model(ns, schemas.Device))
    @ns.response(422, "Invalid fields", _problem)
    @ns.response(429, "Too many writes; see Retry-After", _problem)
    def patch(self, device_id: str):
        """Replace the push address and/or the subscription."""
        http.anonymous_write()
        fields = http.body(schemas.DevicePatch)
        device = devices.update_device(
            http.database(), device_id, http.bearer(), push=fields.get("push"),
            subscription=fields.get("subscription"),
        )
        return http.respond(http.dump(schemas.Device, device), headers=_PRIVATE)

    @ns.response(204, "Unregistered")
    @ns.response(429, "Too many writes; see Retry-After", _problem)
    def delete(self, device_id: str):
        """Unregister: nothing more is pushed to it."""
        http.anonymous_write()
        devices.delete_device(http.database(), device_id, http.bearer())
        return http.respond(None, 204, body=b"")


@admin.route("/delivery")
class Delivery(Resource):
    @admin.doc(security="bearer")
    @admin.response(200, "Queue and delivery figures", model(admin, schemas.DeliveryReport))
    @admin.response(401, "No or bad token", _admin_problem)
    @admin.response(403, "Not an admin", _admin_problem)
    def get(self):
        """Queue depth, the oldest due delivery, sent and failed per platform, dead letters."""
        report = outbox.delivery_report(http.database(), http.actor())
        return http.respond(http.dump(schemas.DeliveryReport, report), headers=_PRIVATE)
