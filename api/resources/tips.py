"""``/v1/tips``: safety tips in the reader's language."""

from __future__ import annotations

from flask_restx import Namespace, Resource

from api import http, schemas
from api.openapi import model, query_params
from blockwatch import tips

ns = Namespace("tips", description="Crime-prevention advice in several languages")
_problem = model(ns, schemas.Problem)


@ns.route("")
class TipCollection(Resource):
    @ns.doc(params=query_params(schemas.TipsQuery))
    @ns.param("Accept-Language", "Used when lang is not given", _in="header")
    @ns.response(200, "Tips; Content-Language says which languages were chosen",
                 model(ns, schemas.TipList))
    @ns.response(422, "A parameter out of range", _problem)
    def get(self):
        """Safety tips in lang, else Accept-Language, else English."""
        args = http.query(schemas.TipsQuery)
        chosen, languages = tips.tips_for(
            http.database(), http.preferred_languages(args["lang"]), args["category"]
        )
        return http.respond(
            http.dump(schemas.TipList, {"items": chosen, "next": None}),
            headers={"Content-Language": ", ".join(languages), "Vary": "Accept-Language"},
        )


@ns.route("/<string:tip_id>")
@ns.param("tip_id", "The tip's id (UUID)")
class TipItem(Resource):
    @ns.response(200, "The tip", model(ns, schemas.Tip))
    @ns.response(404, "No such tip", _problem)
    def get(self, tip_id: str):
        """One tip."""
        tip = tips.get_tip(http.database(), tip_id)
        return http.respond(
            http.dump(schemas.Tip, tip), version=tip.version,
            headers={"Content-Language": tip.language},
        )
