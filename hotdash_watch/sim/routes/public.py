"""Each app's public URL (``/apps/{app}/…``): Fly's proxy picks a machine (or autostarts one and
waits), which answers; during a watcher_partition the request hangs or its connection drops."""

from __future__ import annotations

from aiohttp import web

from hotdash_watch.sim.proxy import PROXY_WAIT_S
from hotdash_watch.sim.routes.common import world_of
from hotdash_watch.sim.world import World

__all__ = ["add_routes"]


async def proxy(request: web.Request) -> web.StreamResponse:
    """The app's public URL: Fly's proxy picks a machine (autostart), which answers."""
    world = world_of(request)
    name = request.match_info["app"]
    path = "/" + request.match_info["tail"]
    app = world.apps.get(name)
    if app is None:
        return web.Response(status=404, text="404 page not found")
    if world.partitioned(name):
        return await _partitioned(request, world, name)
    t_start = world.t()
    m = world.route(app)
    while m is None and world.can_wait(app) and not world.stopping:
        if world.t() - t_start >= PROXY_WAIT_S:
            break
        await world.pause(0.25)
        world.step_to()
        m = world.route(app)
    waited = max(0.0, world.t() - t_start)
    if m is None:
        world.no_machine(app, waited)
        return web.Response(status=503, text="no machine is available to serve this request")
    status, latency, body = world.serve(app, m, path, log_all=True, method=request.method)
    await world.pause(latency)
    world.step_to()
    world.record_edge(app, status, waited + latency)
    return web.Response(status=status, text=body)


async def _partitioned(request: web.Request, world: World, name: str) -> web.StreamResponse:
    """The watcher cannot reach the app: hang, or drop the connection without a response."""
    if world.partition_hangs(name):
        while world.partitioned(name) and not world.stopping:
            await world.pause(1.0)
            world.step_to()
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=503)


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_route("*", "/apps/{app}/{tail:.*}", proxy, name="proxy")
