"""The simulator's HTTP face: one aiohttp server with every Fly endpoint the daemon uses.

=========================================  ============================================
path                                       what
=========================================  ============================================
``/v1/apps/{app}/machines…``               Machines API (list, get, start, stop, restart,
                                           update, wait, events, leases): routes/machines.py
``POST /graphql``                          GraphQL releases query: routes/releases.py
``GET /api/v1/apps/{app}/logs``            logs polling API (what ``fly logs`` polls):
                                           routes/telemetry.py
``GET /metrics``                           Fly's edge and instance series (Prometheus text):
                                           routes/telemetry.py
``/apps/{app}/…``                          the app's public URL, through the proxy:
                                           routes/public.py
=========================================  ============================================

The Machines API, GraphQL and logs need ``Authorization: Bearer <token>`` or
``FlyV1 <token>`` (anything else: 401) and answer 503 or hang during ``fly_api_down``. Errors
are Fly's JSON body ``{"error": "…", "status": "unknown"}``. Every response carries a
``fly-request-id`` header. ``/metrics`` and the public URLs need no token, as on Fly.

Every Machines API mutation received (whatever the answer) is appended to
``World.mutations`` as ``{"at_s", "app", "machine", "call", "status"}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from hotdash_watch.clock import Clock
from hotdash_watch.sim.ids import IdSource
from hotdash_watch.sim.model import ApiError
from hotdash_watch.sim.routes import machines, public, releases, telemetry
from hotdash_watch.sim.routes.common import WORLD_KEY, error
from hotdash_watch.sim.spec import Scenario
from hotdash_watch.sim.world import World

__all__ = ["SimServer", "build_app"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

OUTAGE_HANG_MAX_S = 300.0
API_PREFIXES = ("/v1/", "/graphql", "/api/")
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TOKEN_KEY = web.AppKey("token", str)
IDS_KEY = web.AppKey("request_ids", IdSource)


def _authorized(request: web.Request, token: str) -> bool:
    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
    return scheme in ("Bearer", "FlyV1") and value.strip() == token


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    world = request.app[WORLD_KEY]
    world.step_to()
    if request.path.startswith(API_PREFIXES):
        response = await _api(request, handler, world)
    else:
        try:
            response = await handler(request)
        except web.HTTPException as e:
            response = web.Response(status=e.status, text=f"{e.status} {e.reason}")
    rid = request.app[IDS_KEY].ulid(world.ts(world.now))
    response.headers["fly-request-id"] = f"{rid}-{_region(world)}"
    return response


def _region(world: World) -> str:
    return next(iter(world.apps.values())).spec.region if world.apps else "iad"


async def _api(request: web.Request, handler: Handler, world: World) -> web.StreamResponse:
    """Outage, auth and error translation for the Fly APIs; records every mutation."""
    response: web.StreamResponse
    if world.api_down():
        if world.api_outage_hangs():
            waited = 0.0
            while world.api_down() and not world.stopping and waited < OUTAGE_HANG_MAX_S:
                await world.pause(1.0)
                waited += 1.0
                world.step_to()
        response = error(503, "the Fly API is unavailable (simulated outage), try again later")
    elif not _authorized(request, request.app[TOKEN_KEY]):
        response = error(401, "You must be authenticated to view this.")
    else:
        try:
            response = await handler(request)
        except ApiError as e:
            response = error(e.status, e.message, e.headers)
        except web.HTTPException as e:
            response = error(e.status, f"{e.reason}: {request.method} {request.path}")
    if request.method in MUTATING and request.path.startswith("/v1/apps/"):
        route = request.match_info.route
        call = route.name or request.path.rstrip("/").rsplit("/", 1)[-1]
        world.record_mutation(request.match_info.get("app", ""), request.match_info.get("id", ""),
                              call, response.status)
    return response


# ---------------------------------------------------------------------- server


def build_app(world: World, token: str) -> web.Application:
    """The aiohttp application serving ``world`` with ``token`` as the only valid token."""
    app = web.Application(middlewares=[_middleware])
    app[WORLD_KEY] = world
    app[TOKEN_KEY] = token
    app[IDS_KEY] = IdSource(world.scenario.seed, "requests")
    for routes in (machines, releases, telemetry, public):
        routes.add_routes(app.router)
    return app


class SimServer:
    """The Fly simulator as a real HTTP server on a local port, driven by ``clock``."""

    def __init__(self, scenario: Scenario, clock: Clock, *, token: str = "sim-token",
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.scenario = scenario
        self.clock = clock
        self.token = token
        self.host = host
        self.port = port
        self.world = World(scenario, clock)
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def machines_url(self) -> str:
        """Base URL of the Machines API (paths start ``/v1/apps/…``)."""
        return self.base_url

    @property
    def api_url(self) -> str:
        """Base URL of GraphQL (``POST /graphql``) and logs (``/api/v1/apps/{app}/logs``)."""
        return self.base_url

    @property
    def metrics_url(self) -> str:
        return f"{self.base_url}/metrics"

    def health_url(self, app: str) -> str:
        """The app's public health URL, through the simulated proxy."""
        return f"{self.base_url}/apps/{app}/health"

    async def start(self) -> None:
        """Bind, start the world's background task; world time 0 is now."""
        if self._runner is not None:
            return
        self.world.begin()
        runner = web.AppRunner(build_app(self.world, self.token), access_log=None,
                               shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        self.port = runner.addresses[0][1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.base_url = f"http://{host}:{self.port}"
        self._task = asyncio.create_task(self.world.run(), name="hotdash-sim-world")

    async def stop(self) -> None:
        """Cancel the background task, wake waiting requests and close the server."""
        self.world.shutdown()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
