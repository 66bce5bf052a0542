"""``GET /v1/alerts/stream``: new, cancelled and expired alerts near a point as Server-Sent
Events, resumable with ``Last-Event-ID`` (docs/live-stream.md).

The stream lives in :mod:`blockwatch.live`; this parses the request, opens it (a bad request is
a 422 before anything is streamed) and writes each event as ``text/event-stream``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from flask import Response, current_app, request
from flask_restx import Resource

from api import http, schemas
from api.openapi import model, query_params
from api.resources.alerts import ns
from blockwatch import live

EVENT_STREAM = "text/event-stream"
#: How long a client waits before reconnecting after the connection drops (the ``retry:``
#: field, milliseconds).
RETRY_MS = 3000
_LAST_EVENT_ID = {
    "description": "resume after this event id (the `id:` of the last event received)",
}
_problem = model(ns, schemas.Problem)


_PARAMS = {
    **query_params(schemas.AlertStreamQuery),
    "Last-Event-ID": {"in": "header", "type": "integer", "minimum": 0,
                      "maximum": live.MAX_SEQ, **_LAST_EVENT_ID},
}


@ns.route("/stream")
class AlertStream(Resource):
    @ns.doc(params=_PARAMS)
    @ns.produces([EVENT_STREAM])
    @ns.response(200, "Server-Sent Events, `id: <seq>`, `event: alert|cancel|expire`, "
                 "`data: <the alert as GET /v1/alerts/{id} gives it to the public>`, "
                 "with `: heartbeat` comments while quiet (docs/live-stream.md)")
    @ns.response(422, "A parameter out of range", _problem)
    def get(self):
        """Live alerts near a point, as Server-Sent Events.

        New, cancelled and expired alerts in the area as they happen, as the public sees them;
        reconnect with Last-Event-ID to miss nothing.
        """
        args = http.query(schemas.AlertStreamQuery)
        header = request.headers.get("Last-Event-ID", "").strip()
        if header:
            args.update(http.schema(schemas.LastEventIdHeader).load({"Last-Event-ID": header}))
        stream = live.AlertStream(
            http.database(), args["lon"], args["lat"], args["radius_m"], args["last_event_id"],
            timeout_s=args["timeout_s"],
        )
        return Response(
            _events(stream, current_app.json.dumps), mimetype=EVENT_STREAM,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )


def _events(stream: live.AlertStream, dumps: Callable[..., str]) -> Iterator[str]:
    """The stream as ``text/event-stream``: first the reconnection delay and the position
    (an id without data sets the client's Last-Event-ID without firing an event)."""
    yield f"retry: {RETRY_MS}\nid: {stream.position}\n\n"
    for item in stream:
        if item is live.HEARTBEAT:
            yield ": heartbeat\n\n"
        else:
            data = dumps(http.dump(schemas.Alert, item.alert))
            yield f"id: {item.seq}\nevent: {item.kind}\ndata: {data}\n\n"
