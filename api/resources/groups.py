"""``/v1/groups``: nearby, at a point, in a box, one group, create, edit."""

from __future__ import annotations

from flask import request
from flask_restx import Namespace, Resource
from werkzeug.exceptions import PreconditionRequired

from api import http, schemas
from api.openapi import model, query_params, write_errors
from blockwatch import groups
from blockwatch.domain import GroupDraft, Page

ns = Namespace("groups", description="Block watch groups and their boundaries")

_problem = model(ns, schemas.Problem)


@ns.route("/nearby")
class NearbyGroups(Resource):
    @ns.doc(params=query_params(schemas.NearbyGroupsQuery))
    @ns.response(200, "Groups within radius_m, nearest first", model(ns, schemas.NearbyGroupList))
    @ns.response(422, "A parameter out of range", _problem)
    def get(self):
        """Groups whose boundary lies within radius_m of the point."""
        args = http.query(schemas.NearbyGroupsQuery)
        page = groups.find_groups_near(
            http.database(), args["lon"], args["lat"], args["radius_m"], args["limit"],
            args["next"],
        )
        # NearbyGroup is Group plus distance_m: each group is rendered once per version.
        return http.respond_page(
            schemas.Group, Page([hit.group for hit in page.items], page.next),
            [hit.distance_m for hit in page.items],
        )


@ns.route("/at")
class GroupsAt(Resource):
    @ns.doc(params=query_params(schemas.PointQuery))
    @ns.response(200, "Groups covering the point (they may overlap)", model(ns, schemas.GroupList))
    @ns.response(422, "A parameter out of range", _problem)
    def get(self):
        """Groups whose boundary covers the point (edges count)."""
        args = http.query(schemas.PointQuery)
        found = groups.groups_at(http.database(), args["lon"], args["lat"])
        return http.respond(http.dump(schemas.GroupList, {"items": found, "next": None}))


@ns.route("")
class GroupCollection(Resource):
    @ns.doc(params=query_params(schemas.BboxQuery))
    @ns.produces(["application/geo+json"])
    @ns.response(200, "FeatureCollection of the groups intersecting the box",
                 model(ns, schemas.GroupFeatureCollection))
    @ns.response(422, "A malformed bbox or a parameter out of range", _problem)
    def get(self):
        """Groups intersecting a box, as GeoJSON, for maps."""
        args = http.query(schemas.BboxQuery)
        page = groups.groups_in_bbox(
            http.database(), args["bbox"], args["limit"], args["next"], args["simplify_m"]
        )
        return http.respond(
            http.dump(schemas.GroupFeatureCollection, page), mimetype="application/geo+json"
        )

    @ns.expect(model(ns, schemas.GroupCreate))
    @ns.response(201, "Created", model(ns, schemas.Group))
    @ns.response(200, "The same id and fields were posted before: the stored group",
                 model(ns, schemas.Group))
    @ns.response(409, "The id was used for a group with other fields", _problem)
    @ns.response(403, "Not an admin", _problem)
    @ns.response(422, "Invalid fields; an invalid boundary names the problem and where",
                 _problem)
    @write_errors(ns, schemas.Problem)
    def post(self):
        """Create a group (admins)."""
        who = http.authenticated_actor()
        fields = http.body(schemas.GroupCreate)
        draft = GroupDraft(
            id=str(fields["id"]) if fields["id"] else None, name=fields["name"],
            boundary=fields["boundary"], description=fields["description"],
            languages=tuple(fields["languages"]), meeting_info=fields["meeting_info"],
        )
        group, created = groups.post_group(http.database(), who, draft)
        return http.respond(
            http.dump(schemas.Group, group), 201 if created else 200, version=group.version,
            headers={"Location": f"{request.script_root}/v1/groups/{group.id}"},
        )


@ns.route("/<string:group_id>")
@ns.param("group_id", "The group's id (UUID)")
class GroupItem(Resource):
    @ns.response(200, "The group", model(ns, schemas.Group))
    @ns.response(304, "Not modified since the ETag in If-None-Match")
    @ns.response(404, "No such group", _problem)
    def get(self, group_id: str):
        """One group, with its version as ETag."""
        group = groups.get_group(http.database(), group_id)
        return http.respond(http.dump(schemas.Group, group), version=group.version)

    @ns.expect(model(ns, schemas.GroupPatch))
    @ns.param("If-Match", 'The ETag of the version edited, e.g. "42"', _in="header",
              required=True)
    @ns.response(200, "The edited group", model(ns, schemas.Group))
    @ns.response(403, "Not a coordinator of this group nor an admin", _problem)
    @ns.response(404, "No such group", _problem)
    @ns.response(412, "The group changed since that version", _problem)
    @ns.response(422, "Invalid fields", _problem)
    @ns.response(428, "If-Match is required", _problem)
    @write_errors(ns, schemas.Problem)
    def patch(self, group_id: str):
        """Edit a group (its coordinators, admins): whole-field replacement."""
        who = http.authenticated_actor()
        expected = http.if_match_version()
        if expected is None:
            raise PreconditionRequired('send If-Match with the ETag you edited, e.g. "42"')
        changes = http.body(schemas.GroupPatch)
        group = groups.update_group(http.database(), who, group_id, changes, expected)
        return http.respond(http.dump(schemas.Group, group), version=group.version)
