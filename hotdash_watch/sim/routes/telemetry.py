"""The logs polling API (``GET /api/v1/apps/{app}/logs``, what ``fly logs`` polls) and Fly's
edge and instance metrics (``GET /metrics``, Prometheus text)."""

from __future__ import annotations

from aiohttp import web

from hotdash_watch.sim.routes.common import world_of

__all__ = ["add_routes"]


async def logs(request: web.Request) -> web.Response:
    world = world_of(request)
    q = request.query
    return web.json_response(world.logs_page(
        request.match_info["app"], q.get("next_token") or None, q.get("instance") or None,
        q.get("region") or None))


async def metrics(request: web.Request) -> web.Response:
    return web.Response(text=world_of(request).metrics_text(),
                        content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/api/v1/apps/{app}/logs", logs, name="logs")
    r.add_get("/metrics", metrics, name="metrics")
