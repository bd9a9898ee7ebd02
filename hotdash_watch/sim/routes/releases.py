"""The GraphQL route (``POST /graphql``): the releases query, over the slice of Fly's schema it
needs (``graphql.py`` executes it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from hotdash_watch.sim.graphql import ObjectType, execute
from hotdash_watch.sim.ids import rfc3339
from hotdash_watch.sim.model import Release
from hotdash_watch.sim.routes.common import json_body, world_of
from hotdash_watch.sim.world import World

__all__ = ["RELEASE_USER", "add_routes", "release_schema"]

#: Who made every release (the ``user`` of a GraphQL release node).
RELEASE_USER = {"id": "Kx81q", "email": "ci-bot@hotdash.example", "name": "CI Bot"}


def release_schema(world: World) -> ObjectType:
    """The slice of Fly's GraphQL schema the releases query needs, over ``world``."""

    def scalar(fn: Callable[[Any], Any]) -> tuple[Callable[[Any, Any], Any], None]:
        return (lambda parent, _args: fn(parent)), None

    user = ObjectType("User", {k: scalar(lambda u, k=k: u[k]) for k in ("id", "email", "name")})
    release = ObjectType("Release", {
        "id": scalar(lambda r: r.id),
        "version": scalar(lambda r: r.version),
        "description": scalar(lambda r: "Deploy image"),
        "reason": scalar(lambda r: "deploy"),
        "status": scalar(lambda r: r.status),
        "imageRef": scalar(lambda r: r.image),
        "stable": scalar(lambda r: r.stable),
        "inProgress": scalar(lambda r: r.status == "running"),
        "deploymentStrategy": scalar(lambda r: r.strategy),
        "evaluationId": scalar(lambda r: None),
        "createdAt": scalar(lambda r: rfc3339(world.ts(r.created_s))),
        "updatedAt": scalar(lambda r: rfc3339(world.ts(r.updated_s))),
        "user": ((lambda r, _a: dict(RELEASE_USER)), user),
    })
    page_info = ObjectType("PageInfo", {
        k: scalar(lambda p, k=k: p[k])
        for k in ("hasNextPage", "hasPreviousPage", "startCursor", "endCursor")
    })
    connection = ObjectType("ReleaseConnection", {
        "nodes": ((lambda c, _a: c["nodes"]), release),
        "totalCount": scalar(lambda c: c["totalCount"]),
        "pageInfo": ((lambda c, _a: c["pageInfo"]), page_info),
    })

    def releases(app_name: str, args: Any) -> dict[str, Any]:
        rels: list[Release] = world.releases(app_name)
        total = len(rels)
        if args.get("status"):
            rels = [r for r in rels if r.status.lower() == str(args["status"]).lower()]
        first, last = args.get("first"), args.get("last")
        if isinstance(first, int):
            rels = rels[:max(first, 0)]
        elif isinstance(last, int):
            rels = rels[-last:] if last > 0 else []
        return {"nodes": rels, "totalCount": total, "pageInfo": {
            "hasNextPage": len(rels) < total, "hasPreviousPage": False,
            "startCursor": "MQ" if rels else None, "endCursor": None}}

    def current(app_name: str, _args: Any) -> Release | None:
        rels = world.releases(app_name)
        return rels[0] if rels else None

    app = ObjectType("App", {
        "id": scalar(lambda a: a),
        "name": scalar(lambda a: a),
        "status": scalar(lambda a: "deployed"),
        "releasesUnprocessed": (releases, connection),
        "releases": (releases, connection),
        "currentReleaseUnprocessed": (current, release),
        "currentRelease": (current, release),
    })

    def find_app(_parent: Any, args: Any) -> str:
        name = args.get("name")
        if name not in world.apps:
            raise LookupError("Could not find App")
        return str(name)

    return ObjectType("Query", {"app": (find_app, app)})


async def graphql(request: web.Request) -> web.Response:
    body = await json_body(request, required=True)
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        return web.json_response({"errors": [{"message": "No query string was present"}]})
    variables = body.get("variables") or {}
    if not isinstance(variables, dict):
        return web.json_response({"errors": [{"message": "variables must be an object"}]})
    return web.json_response(execute(release_schema(world_of(request)), body["query"], variables))


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_post("/graphql", graphql, name="graphql")
